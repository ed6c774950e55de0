// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubHarness
import JSONCore
import Synchronization

/// `scimhub-bench --soak --minutes 10` (`scripts/soak`): a release hub with the reference
/// policy and the EHR test server, `--people` people loaded, then 64 keep-alive connections
/// of mixed SCIM work for the whole time: reads by id, filters, pages, leavers and returners
/// (PATCH active, which provisions to the EHR; the feed guard is off), creates and deletes. Every answer must be
/// the expected one: 0 errors. Resident memory and open file descriptors of the hub are
/// sampled every 10 s and reported at the start, the middle and the end; at the end the
/// provisioning queue must drain with no dead letter.
func runSoak(_ o: Options) throws {
    // The feed guard would (rightly) hold the soak's thousands of leavers within minutes; the
    // soak measures the hub and the engine under load, so the guard is off here.
    let ref = try ReferenceHub(o, config: #"{"feedGuard": {"enabled": false}}"#)
    defer { ref.stop() }
    let (hub, hr, admin) = (ref.hub, ref.hr, ref.admin)
    let c = try RawHTTPClient(port: hub.port, timeout: 600)
    say("scimhub-bench --soak: \(o.minutes) min, \(o.connections) connections, \(o.people) people, hub \(o.binary)")
    _ = try bulkLoad(o, count: o.people, client: c, token: hr)
    let ids = try allIDs(c, hr)
    guard ids.count == o.people else { throw TestError("loaded \(ids.count) of \(o.people) people") }
    let seconds = o.minutes * 60
    let start = Date()
    let tally = SoakTally()
    let group = DispatchGroup()
    for t in 0..<o.connections {
        group.enter()
        Thread {
            defer { group.leave() }
            do {
                try soakConnection(t, hub.port, hr, ids, until: start.addingTimeInterval(seconds), tally)
            } catch {
                tally.failures.withLock { $0.append("connection \(t): \(error)") }
            }
        }.start()
    }
    var samples: [(t: Double, rss: Int, fds: Int, requests: Int)] = []
    while Date().timeIntervalSince(start) < seconds {
        let total = tally.counts.withLock { $0.values.reduce(0, +) }
        samples.append((Date().timeIntervalSince(start), hub.memoryKiB().rss, openFDs(hub.pid), total))
        Thread.sleep(forTimeInterval: min(10, max(0.1, seconds - Date().timeIntervalSince(start))))
    }
    group.wait()
    let total = tally.counts.withLock { $0.values.reduce(0, +) }
    samples.append((Date().timeIntervalSince(start), hub.memoryKiB().rss, openFDs(hub.pid), total))
    // The queue drains and nothing is dead: provisioning kept up.
    var drained = false
    let drainStart = Date()
    while Date().timeIntervalSince(drainStart) < 300 {
        let t = c.request("GET", "/admin/targets", headers: [("Authorization", "Bearer \(admin)")])?.object
        let ehr = t?["targets"]?.arrayValue?.first { $0.objectValue?["name"]?.stringValue == "ehr" }?.objectValue
        if Date().timeIntervalSince(drainStart) > 290 {
            say("  targets: \(JSONWriter().string(.object(t ?? JSONObject())).prefix(600))")
            let holds = c.request("GET", "/admin/holds", headers: [("Authorization", "Bearer \(admin)")])?.text ?? ""
            say("  holds: \(holds.prefix(300))")
        }
        if ehr?["queueDepth"] == .int(0) {
            drained = ehr?["deadLetters"] == .int(0)
            if !drained { tally.failures.withLock { $0.append("dead letters: \(ehr?["deadLetters"] ?? .null)") } }
            break
        }
        Thread.sleep(forTimeInterval: 0.5)
    }
    let errs = tally.failures.withLock { $0 }
    for (k, v) in tally.counts.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
        say("  \(k.padding(toLength: 22, withPad: " ", startingAt: 0)) \(v)")
    }
    say(
        String(
            format: "  %d requests in %.0f s: %.0f req/s; errors %d; queue drained %.1f s after the load%@", total,
            seconds, Double(total) / seconds, errs.count, Date().timeIntervalSince(drainStart),
            drained ? "" : " (NOT drained)"))
    let mid = samples[samples.count / 2], first = samples[min(1, samples.count - 1)], last = samples[samples.count - 1]
    for (label, s) in [("start (10 s)", first), ("middle", mid), ("end", last)] {
        say(
            "  " + label.padding(toLength: 13, withPad: " ", startingAt: 0)
                + String(format: " t=%4.0f s  RSS %7.1f MiB  open fds %4d", s.t, Double(s.rss) / 1024, s.fds))
    }
    for e in errs.prefix(10) { say("  error: \(e)") }
    guard errs.isEmpty, drained else { throw TestError("the soak found \(errs.count) error(s)") }
}

/// One keep-alive connection's share of the work, until `deadline`.
private func soakConnection(
    _ t: Int, _ port: UInt16, _ token: String, _ ids: [String], until deadline: Date, _ tally: SoakTally
) throws {
    let c = try RawHTTPClient(port: port, timeout: 60)
    var rng = SystemRandomNumberGenerator()
    var mine: [String] = []  // people this connection created and may delete
    var i = 0
    while Date() < deadline {
        i += 1
        let id = ids[Int.random(in: 0..<ids.count, using: &rng)]
        let roll = Int.random(in: 0..<100, using: &rng)
        let (op, method, path, body, expected): (String, String, String, String?, Int)
        switch roll {
        case 0..<45: (op, method, path, body, expected) = ("get", "GET", "/scim/v2/Users/\(id)", nil, 200)
        case 45..<60:
            (op, method, path, body, expected) = (
                "filter", "GET",
                "/scim/v2/Users?filter=" + "id eq \"\(id)\"".addingPercentEncoding(
                    withAllowedCharacters: .alphanumerics)!,
                nil, 200
            )
        case 60..<65:
            (op, method, path, body, expected) = (
                "page", "GET", "/scim/v2/Users?startIndex=\(i % 500 + 1)&count=50", nil, 200
            )
        case 65..<85:
            // A leaver or a returner: the EHR account is disabled or enabled again.
            let active = roll % 2 == 0
            (op, method, path, body, expected) = (
                "patch-active", "PATCH", "/scim/v2/Users/\(id)",
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
                    + #""Operations":[{"op":"replace","path":"active","value":\#(active)}]}"#,
                200
            )
        case 85..<95:
            (op, method, path, body, expected) = (
                "create", "POST", "/scim/v2/Users",
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                    + #""userName":"soak-\#(t)-\#(i)@x.org","displayName":"Soak \#(t) \#(i)"}"#,
                201
            )
        default:
            guard let victim = mine.popLast() else { continue }
            (op, method, path, body, expected) = ("delete", "DELETE", "/scim/v2/Users/\(victim)", nil, 204)
        }
        var headers = [("Authorization", "Bearer \(token)")]
        if body != nil { headers.append(("Content-Type", "application/scim+json")) }
        guard let r = c.request(method, path, headers: headers, body: body.map { Array($0.utf8) }) else {
            tally.failures.withLock { $0.append("\(op): no answer (connection \(t))") }
            return
        }
        tally.counts.withLock { $0["\(op) \(r.status)", default: 0] += 1 }
        if r.status != expected {
            tally.failures.withLock { $0.append("\(op) \(path): \(r.status) \(r.text.prefix(120))") }
        } else if op == "create", let new = r.object["id"]?.stringValue {
            mine.append(new)
        }
    }
}

/// What the connections counted: "op status" → requests, and every unexpected answer.
final class SoakTally: Sendable {
    let counts = Mutex([String: Int]())
    let failures = Mutex([String]())
}

/// Every User id, by pages.
private func allIDs(_ c: RawHTTPClient, _ token: String) throws -> [String] {
    var ids: [String] = []
    var start = 1
    while true {
        guard
            let page = c.request(
                "GET", "/scim/v2/Users?attributes=id&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(token)")])?.object["Resources"]?.arrayValue
        else { throw TestError("cannot list the people") }
        ids += page.compactMap { $0.objectValue?["id"]?.stringValue }
        if page.count < 1000 { return ids }
        start += 1000
    }
}

/// Open file descriptors of process `pid`.
private func openFDs(_ pid: Int32) -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
}
