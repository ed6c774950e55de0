// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import HubCrypto
import JSONCore
import HubHarness

/// A feed burst: `--leavers` people made inactive in one Bulk request against a hub holding
/// `--people` (provisioned, queue drained), with the feed guard at its defaults (50 people,
/// or 2 % when that is more). Figures: time from sending the Bulk to the hold being visible,
/// removals downstream before the release (only those under the limit), and the drain after it.
func runFeedGuardBenchmark(_ o: Options) throws {
    let ref = try ReferenceHub(o, config: #"{"bulkMaxOperations": 10000, "bulkMaxPayloadBytes": 33554432}"#)
    defer { ref.stop() }
    let (ehr, hub, hr, admin) = (ref.ehr, ref.hub, ref.hr, ref.admin)
    say("scimhub-bench --feed-guard: \(o.people) people, \(o.leavers) leavers in one Bulk, guard defaults, release hub")
    let c = try RawHTTPClient(port: hub.port, timeout: 600)
    let auth = [("Authorization", "Bearer \(admin)")]
    func queueDepth() -> Int64 {
        let r = c.request("GET", "/admin/targets", headers: auth)
        return r?.object["targets"]?.arrayValue?.first?.objectValue?["queueDepth"]?.numberValue?.int64 ?? -1
    }
    func drain() -> Double {
        let t0 = Date()
        while queueDepth() != 0 && Date().timeIntervalSince(t0) < 900 { Thread.sleep(forTimeInterval: 0.05) }
        return Date().timeIntervalSince(t0)
    }
    _ = try bulkLoad(o, count: o.people, client: c, token: hr)
    _ = drain()
    // The active people with an EHR account, by user name → id.
    var ids: [String] = []
    var start = 1
    while ids.count < o.leavers {
        guard
            let r = c.request(
                "GET", "/scim/v2/Users?attributes=active&filter=active%20eq%20true&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(hr)")])
        else { break }
        let page = r.object["Resources"]?.arrayValue ?? []
        ids += page.compactMap { $0.objectValue?["id"]?.stringValue }
        if page.count < 1000 { break }
        start += 1000
    }
    let leavers = Array(ids.prefix(o.leavers))
    let before = ehr.snapshot().values.filter { !$0.active }.count
    let ops = leavers.enumerated().map { i, id in
        #"{"method":"PATCH","path":"/Users/\#(id)","bulkId":"b\#(i)","#
            + #""data":{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"active","value":false}]}}"#
    }
    let body =
        #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":["#
        + ops.joined(separator: ",") + "]}"
    let sent = Date()
    guard
        let bulk = c.request(
            "POST", "/scim/v2/Bulk",
            headers: [("Authorization", "Bearer \(hr)"), ("Content-Type", "application/scim+json")],
            body: Array(body.utf8)),
        bulk.status == 200
    else { throw TestError("the Bulk request failed") }
    let acknowledged = Date().timeIntervalSince(sent)
    var hold: JSONObject?
    while hold == nil && Date().timeIntervalSince(sent) < 60 {
        hold = c.request("GET", "/admin/holds", headers: auth)?.object["holds"]?.arrayValue?.first?.objectValue
        if hold == nil { Thread.sleep(forTimeInterval: 0.01) }
    }
    let toHold = Date().timeIntervalSince(sent)
    guard let hold, let holdID = hold["id"]?.stringValue else { throw TestError("no hold appeared") }
    _ = drain()
    let removedBeforeRelease = ehr.snapshot().values.filter { !$0.active }.count - before
    say(
        String(
            format: "Bulk of %d leavers acknowledged in %.2f s; hold visible %.2f s after sending (%@ held)",
            leavers.count, acknowledged, toHold, String(describing: hold["people"]?.numberValue?.int64 ?? 0)))
    say("  removed downstream before the release: \(removedBeforeRelease) (the guard's allowance)")
    // Release with step-up, then the held removals drain.
    guard let enrol = c.request("POST", "/mfa/enrol", headers: auth), let uri = enrol.object["otpauth"]?.stringValue,
        let range = uri.range(of: "secret="),
        let secret = TOTP.base32Decode(String(uri[range.upperBound...].prefix { $0 != "&" }))
    else { throw TestError("step-up enrolment failed") }
    let code = TOTP.code(secret: secret, step: TOTP.step(at: Date().timeIntervalSince1970))
    let t0 = Date()
    guard
        let released = c.request(
            "POST", "/admin/holds/\(holdID)/release", headers: auth + [("X-ScimHub-TOTP", code)]),
        released.status == 200
    else { throw TestError("the release failed") }
    _ = drain()
    let drained = Date().timeIntervalSince(t0)
    let removed = ehr.snapshot().values.filter { !$0.active }.count - before
    say(String(format: "  released: %d removals downstream %.1f s after the release", removed, drained))
}
