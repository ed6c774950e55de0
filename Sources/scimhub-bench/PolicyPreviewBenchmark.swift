// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import JSONCore
import HubHarness

/// A policy preview against a hub holding `--people` people (provisioned, the queue
/// drained): `POST /admin/policy/preview` with the reference policy minus the receptionist
/// package, three times; the median is the figure (target ≤ 10 s at 100,000 people).
func runPolicyPreviewBenchmark(_ o: Options) throws {
    let ref = try ReferenceHub(o)
    defer { ref.stop() }
    let (hub, hr, admin, policyText) = (ref.hub, ref.hr, ref.admin, ref.policyText)
    say(
        "scimhub-bench --policy-preview: \(o.people) people, reference policy (EHR), release hub, "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
    let c = try RawHTTPClient(port: hub.port, timeout: 600)
    let loaded = try bulkLoad(o, count: o.people, client: c, token: hr)
    // Steady state: everyone provisioned, nothing queued, before the preview is timed.
    let start = Date()
    while Date().timeIntervalSince(start) < 900 {
        let r = c.request("GET", "/admin/targets", headers: [("Authorization", "Bearer \(admin)")])
        let depth = r?.object["targets"]?.arrayValue?.first?.objectValue?["queueDepth"]?.numberValue?.int64
        if depth == 0 { break }
        Thread.sleep(forTimeInterval: 0.2)
    }
    say(String(format: "  loaded in %.1f s, provisioned %.1f s later", loaded, Date().timeIntervalSince(start)))
    // The candidate: the receptionist package removed.
    guard let from = policyText.range(of: #"{ "name": "receptionist""#),
        let to = policyText.range(
            of: #"{ "name": "administrative-coordinator""#, range: from.upperBound..<policyText.endIndex)
    else { throw TestError("the reference policy has no receptionist package") }
    let candidate = policyText.replacingOccurrences(of: String(policyText[from.lowerBound..<to.lowerBound]), with: "")
    var times: [Double] = []
    var summary = ""
    for _ in 0..<3 {
        let t0 = Date()
        guard
            let r = c.request(
                "POST", "/admin/policy/preview",
                headers: [("Authorization", "Bearer \(admin)"), ("Content-Type", "application/json")],
                body: Array(candidate.utf8)), r.status == 200
        else { throw TestError("the preview failed") }
        times.append(Date().timeIntervalSince(t0))
        let o = r.object
        summary =
            "\(o["people"]?.numberValue?.int64 ?? 0) people, "
            + "\(o["losingAccess"]?.numberValue?.int64 ?? 0) losing access, "
            + "guard would hold: \(o["guard"]?.objectValue?["wouldHold"]?.boolValue ?? false)"
    }
    times.sort()
    say(
        String(
            format: "policy preview (receptionist package removed): median %.2f s [%.2f–%.2f]; %@",
            times[1], times[0], times[2], summary))
}
