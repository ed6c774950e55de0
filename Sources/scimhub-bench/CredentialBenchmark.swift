// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import HubLog
import Store
import HubHarness

/// `scimhub-bench --credentials [--people 100000]`: the release hub with the reference policy
/// (EHR only) loaded with `--people` people from the roster, most holding a licence with an
/// expiry date; then restarted: start-up time (process start → listening, which includes
/// processing licences that lapsed) and resident memory, and the size of the schedule.
func runCredentialBenchmark(_ o: Options) throws {
    let ehr = try startBenchEHR()
    defer { ehr.stop() }
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let policyFile = dir.path + "/policy.json"
    try ehrOnlyReferencePolicy(ehr).write(toFile: policyFile, atomically: true, encoding: .utf8)
    let hr = try HubProcess.createToken(o.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
    say(
        "scimhub-bench --credentials: \(o.people) people, reference policy (EHR), release hub, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    var hub = try HubProcess(
        binary: o.binary, data: dir.path, extraArguments: ["--policy", policyFile, "--log-level", "error"])
    let c = try RawHTTPClient(port: hub.port, timeout: 300)
    let loaded = try bulkLoad(o, count: o.people, client: c, token: hr)
    let before = hub.memoryKiB()
    _ = hub.stop()
    let store = try SQLiteStore(directory: dir.path, logger: Logger(label: "bench", minimumLevel: .error, silent: true))
    let scheduled = try store.read { try $0.credentialScheduleSize() }
    store.close()
    say(
        String(
            format: "  loaded in %.1f s; %d licence expiries scheduled; hub RSS after the load %.1f MB", loaded,
            scheduled, Double(before.rss) / 1024))
    var startups: [Double] = [], rss: [Double] = []
    for _ in 0..<3 {
        let t0 = Date()
        hub = try HubProcess(
            binary: o.binary, data: dir.path, extraArguments: ["--policy", policyFile, "--log-level", "error"])
        startups.append(Date().timeIntervalSince(t0))
        Thread.sleep(forTimeInterval: 1)
        rss.append(Double(hub.memoryKiB().rss) / 1024)
        _ = hub.stop()
    }
    say(
        String(
            format:
                "  restart with %d people and the schedule: start-up %.2f / %.2f / %.2f s, "
                + "RSS after start %.1f / %.1f / %.1f MB",
            o.people, startups[0], startups[1], startups[2], rss[0], rss[1], rss[2]))
}
