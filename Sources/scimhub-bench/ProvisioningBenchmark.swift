// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import EHRTestServer
import JSONCore
import HubHarness

/// Onboarding, leaver latency and an outage, against the EHR test server (in this process)
/// and the real hub binary with the reference policy.
func runProvisioningBenchmark(_ o: Options) throws {
    // The leaver phase is a burst by design: the feed guard (measured on its own) is off here.
    let ref = try ReferenceHub(o, config: #"{"feedGuard": {"enabled": false}}"#)
    defer { ref.stop() }
    let (ehr, hub, hr, admin) = (ref.ehr, ref.hub, ref.hr, ref.admin)
    token = hr
    say(
        "scimhub-bench --provisioning: reference policy, EHR test server on loopback, "
            + "durability=full, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )

    func queueDepth() -> Int {
        guard let c = try? RawHTTPClient(port: hub.port),
            let r = c.request("GET", "/admin/targets", headers: [("Authorization", "Bearer \(admin)")])
        else { return -1 }
        let t = r.object["targets"]?.arrayValue?.first { $0.objectValue?["name"]?.stringValue == "ehr" }?.objectValue
        return Int(t?["queueDepth"]?.numberValue?.int64 ?? -1)
    }
    func waitForDrain(timeout: Double) -> Double? {
        let start = Date()
        while Date().timeIntervalSince(start) < timeout {
            if queueDepth() == 0 { return Date().timeIntervalSince(start) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return nil
    }

    // MARK: Onboarding
    let c = try RawHTTPClient(port: hub.port, timeout: 120)
    let t0 = Date()
    let loaded = try bulkLoad(o, count: o.people, client: c, token: hr)
    guard waitForDrain(timeout: 600) != nil else { throw TestError("onboarding did not drain") }
    let onboarding = Date().timeIntervalSince(t0)
    let accounts = ehr.snapshot()
    say(
        String(
            format:
                "onboarding %d people: %.1f s to the last EHR account (Bulk accepted in %.1f s); "
                + "%d EHR accounts, %.0f accounts/s",
            o.people, onboarding, loaded, accounts.count, Double(accounts.count) / onboarding))

    // MARK: Leaver latency: 200 of PATCH active=false → the EHR shows the account disabled.
    var ids: [String: String] = [:]  // userName → id
    var start = 1
    while true {
        guard
            let r = c.request(
                "GET", "/scim/v2/Users?attributes=userName&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(hr)")])
        else { break }
        let page = r.object["Resources"]?.arrayValue ?? []
        for p in page {
            if let u = p.objectValue?["userName"]?.stringValue, let id = p.objectValue?["id"]?.stringValue {
                ids[u] = id
            }
        }
        if page.count < 1000 { break }
        start += 1000
    }
    let idByName = ids
    let leavers = Array(accounts.filter { $0.value.active }.keys.sorted().prefix(o.leavers))
    let latencies = Mutex<[Double]>([])
    let group = DispatchGroup()
    let streams = 8
    for s in 0..<streams {
        group.enter()
        let mine = stride(from: s, to: leavers.count, by: streams).map { leavers[$0] }
        Thread {
            defer { group.leave() }
            guard let client = try? RawHTTPClient(port: hub.port) else { return }
            for name in mine {
                guard let id = idByName[name] else { continue }
                let body =
                    #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                    + #"[{"op":"replace","path":"active","value":false}]}"#
                guard
                    let r = client.request(
                        "PATCH", "/scim/v2/Users/\(id)",
                        headers: [("Authorization", "Bearer \(hr)"), ("Content-Type", "application/scim+json")],
                        body: Array(body.utf8)), r.status == 200
                else { continue }
                let acknowledged = DispatchTime.now().uptimeNanoseconds
                while ehr.account(userName: name)?.active != false { usleep(500) }
                latencies.withLock { $0.append(Double(DispatchTime.now().uptimeNanoseconds - acknowledged) / 1e6) }
            }
        }.start()
    }
    group.wait()
    let l = latencies.withLock { $0 }.sorted()
    if !l.isEmpty {
        say(
            String(
                format:
                    "leaver latency (200 of PATCH → EHR disabled), %d leavers: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                l.count, l[l.count / 2], l[min(l.count - 1, Int(Double(l.count) * 0.99))], l.last!))
    }

    // MARK: Outage: the EHR answers 503 while HR keeps changing people; then it recovers.
    let changed = Mutex<[String: String]>([:])  // userName → displayName expected
    let stop = Atomic<Bool>(false)
    ehr.setFault(.error5xx)
    let outageStart = Date()
    let movers = Array(accounts.filter { $0.value.active }.keys.sorted().dropFirst(o.leavers))
    let writers = DispatchGroup()
    for s in 0..<4 {
        writers.enter()
        Thread {
            defer { writers.leave() }
            guard let client = try? RawHTTPClient(port: hub.port) else { return }
            var i = s
            while !stop.load(ordering: .relaxed), !movers.isEmpty {
                let name = movers[i % movers.count]
                i += 4
                guard let id = idByName[name] else { continue }
                let display = "Renamed \(i)"
                let body =
                    #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                    + #"[{"op":"replace","path":"displayName","value":"\#(display)"}]}"#
                if let r = client.request(
                    "PATCH", "/scim/v2/Users/\(id)",
                    headers: [("Authorization", "Bearer \(hr)"), ("Content-Type", "application/scim+json")],
                    body: Array(body.utf8)), r.status == 200
                {
                    changed.withLock { $0[name] = display }
                }
                usleep(20_000)
            }
        }.start()
    }
    while Date().timeIntervalSince(outageStart) < o.outageSeconds { Thread.sleep(forTimeInterval: 0.5) }
    stop.store(true, ordering: .relaxed)
    writers.wait()
    let depthAtRecovery = queueDepth()
    ehr.setFault(.none)
    let drain = waitForDrain(timeout: 600)
    let expected = changed.withLock { $0 }
    let now = ehr.snapshot()
    let lost = expected.filter { now[$0.key]?.attributes["displayName"] != $0.value }.count
    say(
        String(
            format:
                "outage %.0f s with %d people changed (queue %d at recovery): jobs lost %d, drained %@ after recovery",
            o.outageSeconds, expected.count, depthAtRecovery, lost,
            drain.map { String(format: "%.1f s", $0) } ?? "NOT within 600 s"))
}

/// The release hub with the reference policy (its EHR target only) on an in-process EHR
/// test server, in a temporary data folder, with `config` as its config file and an `hr`
/// feed token and an admin token: where several benchmarks start.
final class ReferenceHub {
    let ehr: EHRTestServer
    let dir = TemporaryDirectory()
    let hub: HubProcess
    let policyText: String
    let hr: String
    let admin: String

    init(_ o: Options, config: String = "{}") throws {
        ehr = try startBenchEHR()  // the policy reads the EHR token from it
        do {
            policyText = try ehrOnlyReferencePolicy(ehr)
            let policyFile = dir.path + "/policy.json", configFile = dir.path + "/config.json"
            _ = FileManager.default.createFile(atPath: policyFile, contents: Data(policyText.utf8))
            _ = FileManager.default.createFile(atPath: configFile, contents: Data(config.utf8))
            hr = try HubProcess.createToken(o.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
            admin = try HubProcess.createToken(o.binary, data: dir.path, principal: "bench-admin", scopes: "admin")
            hub = try HubProcess(
                binary: o.binary, data: dir.path,
                extraArguments: ["--policy", policyFile, "--config", configFile, "--log-level", "error"])
        } catch {
            dir.remove()
            ehr.stop()
            throw error
        }
    }

    func stop() {
        _ = hub.stop()
        dir.remove()
        ehr.stop()
    }
}

/// The reference policy pointed at an in-process EHR test server, with the directory and
/// admin-system targets disabled (these benchmarks measure the engine against the EHR).
func ehrOnlyReferencePolicy(_ ehr: EHRTestServer, extraPackage: String? = nil) throws -> String {
    var text = try String(contentsOfFile: repoRoot + "/scripts/reference-policy.json", encoding: .utf8)
        .replacingOccurrences(of: "http://127.0.0.1:9100", with: ehr.baseURL)
        .replacingOccurrences(of: #""type": "ldap","#, with: #""type": "ldap", "enabled": false,"#)
        .replacingOccurrences(of: #""type": "sql","#, with: #""type": "sql", "enabled": false,"#)
    if let p = extraPackage {
        text = text.replacingOccurrences(of: #""packages": ["#, with: #""packages": [ "# + p + ",")
    }
    return text
}

/// The reference policy with all three targets: the EHR test server, `slapd` (its suffix in
/// place of the demo's) and an SQLite admin database at `adminPath`.
func threeTargetReferencePolicy(
    _ ehr: EHRTestServer, _ slapd: SlapdServer, adminPath: String, extraPackage: String? = nil
) throws -> String {
    setenv("SCIMHUB_LDAP_PASSWORD", slapd.rootPassword, 1)
    var text = try String(contentsOfFile: repoRoot + "/scripts/reference-policy.json", encoding: .utf8)
        .replacingOccurrences(of: "http://127.0.0.1:9100", with: ehr.baseURL)
        .replacingOccurrences(of: "ldap://127.0.0.1:9389", with: slapd.url)
        .replacingOccurrences(of: "dc=clinic,dc=example", with: slapd.suffix)
        .replacingOccurrences(of: "demo-data/admin.db", with: adminPath)
    if let p = extraPackage {
        text = text.replacingOccurrences(of: #""packages": ["#, with: #""packages": [ "# + p + ",")
    }
    return text
}

/// The EHR test server for a benchmark, started, with its token where the policy reads it.
func startBenchEHR() throws -> EHRTestServer {
    let ehr = try EHRTestServer(staticToken: "bench-ehr-token")
    ehr.start()
    setenv("SCIMHUB_EHR_TOKEN", "bench-ehr-token", 1)
    return ehr
}
