// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubCrypto
import HubHarness
import JSONCore

/// The console's pages at `--people` people (target: each answers in ≤ 100 ms at 100,000):
/// a release hub with the reference policy, everyone provisioned and a reconciliation run
/// done; an administrator signed in with emergency sign-in (password and TOTP, as a person
/// would); each page fetched 20 times in a row over one connection. Medians and p95.
func runConsoleBenchmark(_ o: Options) throws {
    let ref = try ReferenceHub(o)
    defer { ref.stop() }
    let (hub, hr, admin) = (ref.hub, ref.hr, ref.admin)
    say("scimhub-bench --console: \(o.people) people, reference policy (EHR), release hub")
    let c = try RawHTTPClient(port: hub.port, timeout: 600)
    let loaded = try bulkLoad(o, count: o.people, client: c, token: hr)
    let start = Date()
    while Date().timeIntervalSince(start) < 900 {
        let r = c.request("GET", "/admin/targets", headers: [("Authorization", "Bearer \(admin)")])
        if r?.object["targets"]?.arrayValue?.first?.objectValue?["queueDepth"]?.numberValue?.int64 == 0 { break }
        Thread.sleep(forTimeInterval: 0.2)
    }
    say(String(format: "  loaded in %.1f s, provisioned %.1f s later", loaded, Date().timeIntervalSince(start)))
    let run = try finishedRun(c, admin)
    let cookie = try signIn(c, binary: o.binary, data: ref.dir.path)
    let someone =
        c.request(
            "GET", "/admin/people?q=a&count=1", headers: [("Authorization", "Bearer \(admin)")]
        )?.object["people"]?.arrayValue?.first?.objectValue?["id"]?.stringValue ?? ""
    let pages = [
        ("dashboard", "/console"), ("people search", "/console/people?q=mar"),
        ("search: family name", "/console/people?q=silva"),
        ("search: 3 words", "/console/people?q=juliana%20nurse%20cln-bot"), ("person", "/console/people/\(someone)"),
        ("requests", "/console/requests"), ("reviews", "/console/reviews"),
        ("reconciliations", "/console/reconciliations"), ("reconciliation report", "/console/reconciliations/\(run)"),
    ]
    // The Prometheus scrape and the dashboard's slowest API, with a bearer token.
    let api = [("metrics scrape", "/metrics"), ("expiring licences", "/admin/credentials/expiring?count=0")]
    for (name, path, header) in pages.map({ ($0.0, $0.1, ("Cookie", cookie)) })
        + api.map({ ($0.0, $0.1, ("Authorization", "Bearer \(admin)")) })
    {
        var times: [Double] = []
        for _ in 0..<20 {
            let t0 = Date()
            guard let r = c.request("GET", path, headers: [header]), r.status == 200 else {
                throw TestError("\(path) did not answer 200")
            }
            times.append(Date().timeIntervalSince(t0) * 1000)
        }
        times.sort()
        let label = name.padding(toLength: 22, withPad: " ", startingAt: 0)
        say("  \(label)" + String(format: "median %6.1f ms, p95 %6.1f ms", times[10], times[18]))
    }
}

/// A report-mode run over every target, finished.
private func finishedRun(_ c: RawHTTPClient, _ admin: String) throws -> String {
    guard
        let id = c.request(
            "POST", "/admin/reconciliations",
            headers: [("Authorization", "Bearer \(admin)"), ("Content-Type", "application/json")],
            body: Array("{}".utf8)
        )?.object["id"]?.stringValue
    else { throw TestError("the reconciliation did not start") }
    let start = Date()
    while Date().timeIntervalSince(start) < 900 {
        let state = c.request("GET", "/admin/reconciliations/\(id)", headers: [("Authorization", "Bearer \(admin)")])?
            .object["state"]?.stringValue
        if state == "done" { return id }
        Thread.sleep(forTimeInterval: 0.5)
    }
    throw TestError("the reconciliation did not finish")
}

/// Emergency sign-in with a new local account: its password and a current TOTP code.
private func signIn(_ c: RawHTTPClient, binary: String, data: String) throws -> String {
    let out = try HubProcess.run(
        binary, ["console", "local-account", "add", "--data", data, "--name", "bench.console"])
    guard let password = out.split(separator: "\n").first(where: { $0.hasPrefix("password: ") })?.dropFirst(10),
        let uri = out.split(separator: "\n").first(where: { $0.hasPrefix("otpauth://") }),
        let range = uri.range(of: "secret="),
        let secret = TOTP.base32Decode(String(uri[range.upperBound...].prefix { $0 != "&" }))
    else { throw TestError("the local account was not created: \(out)") }
    guard let page = c.request("GET", "/console/login"),
        let login = page.header("Set-Cookie")?.split(separator: ";").first,
        let token = page.text.firstMatch(of: /name="_login" value="([^"]+)"/)?.1
    else { throw TestError("no sign-in page") }
    let code = TOTP.code(secret: secret, step: TOTP.step(at: Date().timeIntervalSince1970))
    let form = "_login=\(token)&name=bench.console&password=\(password)&code=\(code)"
    guard
        let r = c.request(
            "POST", "/console/login/local",
            headers: [("Cookie", String(login)), ("Content-Type", "application/x-www-form-urlencoded")],
            body: Array(form.utf8)), r.status == 303, let session = r.header("Set-Cookie")?.split(separator: ";").first
    else { throw TestError("emergency sign-in failed") }
    return String(session)
}
