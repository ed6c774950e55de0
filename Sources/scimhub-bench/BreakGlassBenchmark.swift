// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import LDAPConnector
import SQLConnector
import HubCrypto
import JSONCore
import Synchronization
import HubHarness

/// `scimhub-bench --break-glass [--people 1000] [--leavers 200]`: the release hub with the
/// reference policy plus a break-glass package granting on all three targets: the EHR test
/// server (in this process), a real slapd and the SQLite admin database.
/// Each grant carries a step-up TOTP code (measured inside the latency). Grant → all three
/// targets show the entitlement (per grant, the client's view), and expiry → none shows it
/// (lag after the stored expiry), for `--leavers` grants over 4 streams.
func runBreakGlassBenchmark(_ o: Options) throws {
    let ehr = try startBenchEHR()
    defer { ehr.stop() }
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    // The package grants on all three targets; a grant counts as usable when all three show it.
    let package =
        #"{"name": "emergency-physician", "groups": ["Emergency Roster"], "grants": {"ehr": ["physician"], "#
        + #""imaging": ["imaging-emergency"], "admin": ["emergency-access"]}, "#
        + #""breakGlass": {"maxHours": 8}}"#
    let slapd = try SlapdServer()
    defer { slapd.stop() }
    let adminPath = dir.path + "/admin.db"
    let policyFile = dir.path + "/policy.json"
    try threeTargetReferencePolicy(ehr, slapd, adminPath: adminPath, extraPackage: package).write(
        toFile: policyFile, atomically: true, encoding: .utf8)
    var ldapConfig = LDAPConfig(
        url: slapd.url, bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, usersBase: slapd.usersBase,
        groupsBase: slapd.groupsBase)
    ldapConfig.attributes = ["cn"]
    let ldap = LDAPConnector(config: ldapConfig)
    var sqlConfig = SQLConfig(database: .sqlite(path: adminPath), statements: AdminSchema.statements)
    sqlConfig.attributes = AdminSchema.attributes
    let admin = try SQLConnector(config: sqlConfig)
    /// True when every target shows (or, `false`, no longer shows) the emergency entitlements.
    @Sendable func holds(_ userName: String) -> (all: Bool, none: Bool) {
        let e = ehr.account(userName: userName)?.roles.contains("physician") == true
        let l = (try? ldap.find(userName: userName))??.entitlements.contains("imaging-emergency") == true
        let a = (try? admin.find(userName: userName))??.entitlements.contains("emergency-access") == true
        return (e && l && a, !e && !l && !a)
    }
    let hr = try HubProcess.createToken(o.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
    // One on-call principal per grant: step-up accepts each TOTP code once, and a person
    // has one code per 30 s, so a load of grants comes from many people, as it would.
    var granters: [String] = []
    for i in 0..<o.leavers {
        granters.append(
            try HubProcess.createToken(o.binary, data: dir.path, principal: "dr.oncall\(i)", scopes: "break-glass"))
    }
    let hub = try HubProcess(
        binary: o.binary, data: dir.path, extraArguments: ["--policy", policyFile, "--log-level", "error"])
    defer { hub.stop() }
    say(
        "scimhub-bench --break-glass: \(o.people) people, \(o.leavers) grants over 4 streams, "
            + "EHR test server on loopback, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    let c = try RawHTTPClient(port: hub.port, timeout: 120)
    _ = try bulkLoad(o, count: o.people, client: c, token: hr)
    // People with an active EHR account and no physician role yet.
    var candidates: [(id: String, userName: String)] = []
    var start = 1
    while candidates.count < o.leavers {
        guard
            let r = c.request(
                "GET", "/scim/v2/Users?attributes=userName,active&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(hr)")]),
            let page = r.object["Resources"]?.arrayValue, !page.isEmpty
        else { break }
        for p in page {
            guard let o = p.objectValue, let id = o["id"]?.stringValue, let u = o["userName"]?.stringValue,
                o["active"]?.boolValue != false
            else { continue }
            candidates.append((id, u))
        }
        start += page.count
    }
    let picked = Array(candidates.prefix(o.leavers))
    var secrets: [[UInt8]] = []
    for t in granters {
        guard let r = c.request("POST", "/mfa/enrol", headers: [("Authorization", "Bearer \(t)")]),
            let uri = r.object["otpauth"]?.stringValue,
            let s = uri.split(separator: "=").dropFirst().first.flatMap({
                TOTP.base32Decode(String($0.prefix { $0 != "&" }))
            })
        else { throw TestError("enrol failed") }
        secrets.append(s)
    }
    let enrolled = Array(zip(granters, secrets))
    Thread.sleep(forTimeInterval: 2)  // let onboarding settle
    let hours = 0.0025  // 9 s: every grant expires during the run
    let grantLatency = Mutex<[Double]>([]), expiryLag = Mutex<[Double]>([])
    let group = DispatchGroup()
    for s in 0..<4 {
        group.enter()
        let mine = stride(from: s, to: picked.count, by: 4).map { (picked[$0], enrolled[$0]) }
        Thread {
            defer { group.leave() }
            guard let client = try? RawHTTPClient(port: hub.port, timeout: 30) else { return }
            var pending: [(userName: String, expires: Double)] = []
            for (p, (granter, secret)) in mine {
                let body =
                    #"{"personId": "\#(p.id)", "package": "emergency-physician", "#
                    + #""reason": "benchmark emergency", "hours": \#(hours)}"#
                let sent = Date().timeIntervalSince1970
                let code = TOTP.code(secret: secret, step: TOTP.step(at: sent))
                guard
                    let r = client.request(
                        "POST", "/admin/break-glass",
                        headers: [
                            ("Authorization", "Bearer \(granter)"), ("Content-Type", "application/json"),
                            ("X-ScimHub-TOTP", code),
                        ],
                        body: Array(body.utf8)), r.status == 201
                else { continue }
                while !holds(p.userName).all { usleep(1000) }
                grantLatency.withLock { $0.append((Date().timeIntervalSince1970 - sent) * 1000) }
                pending.append((p.userName, sent + hours * 3600))
            }
            for p in pending {
                while !holds(p.userName).none { usleep(2000) }
                expiryLag.withLock { $0.append(max(0, Date().timeIntervalSince1970 - p.expires) * 1000) }
            }
        }.start()
    }
    group.wait()
    func pct(_ v: [Double], _ p: Double) -> Double {
        let s = v.sorted(); return s.isEmpty ? .nan : s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }
    let g = grantLatency.withLock { $0 }, e = expiryLag.withLock { $0 }
    say(
        String(
            format:
                "grant → usable in all three targets "
                + "(request sent → EHR role, directory group and admin role visible), "
                + "%d grants: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            g.count, pct(g, 0.5), pct(g, 0.99), g.max() ?? Double.nan))
    say(
        String(
            format:
                "expiry → gone from all three targets (after the stored expiry), %d grants: "
                + "p50 %.0f ms, p99 %.0f ms, max %.0f ms",
            e.count, pct(e, 0.5), pct(e, 0.99), e.max() ?? Double.nan))
}
