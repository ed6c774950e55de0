// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import JSONCore
import Store
import TestSupport

/// Access reviews end to end: campaigns, manager and named reviewers, decisions through the
/// engine, default decisions at the due date (across a restart), reports and bad requests.
@Suite struct AccessReviewTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "description": "Front desk: appointments only", "#
                + #""rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "billing", "rule": "title eq \"Billing Specialist\"", "#
                + #""grants": {"ehr": ["billing"]}}"#
        )
    }

    func create(_ hub: LiveHub, _ userName: String, title: String, manager: String? = nil) throws -> String {
        var body = person(userName, title: title)
        if let m = manager {
            body = body.replacingOccurrences(
                of: #""schemas":["#,
                with:
                    #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"\#(m)"}},"#
                    + #""schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","#
            )
        }
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("create: \(r.status) \(r.text)")
        }
        return id
    }

    /// boss manages ana and bruno; carla has no manager.
    func staff(_ hub: LiveHub) throws -> (boss: String, ana: String, bruno: String, carla: String) {
        let boss = try create(hub, "boss@x.org", title: "Clinic Administrator")
        let ana = try create(hub, "ana@x.org", title: "Receptionist", manager: boss)
        let bruno = try create(hub, "bruno@x.org", title: "Receptionist", manager: boss)
        let carla = try create(hub, "carla@x.org", title: "Receptionist")
        eventually("provisioned") {
            ["ana", "bruno", "carla"].allSatisfy { ehr.snapshot()["\($0)@x.org"]?.roles == ["scheduling"] }
        }
        return (boss, ana, bruno, carla)
    }

    func campaign(_ hub: LiveHub, _ body: String) throws -> JSONObject {
        let r = try hub.call("POST", "/admin/reviews", token: hub.admin, body: body)
        #expect(r.status == 201, "\(r.text)")
        return r.object
    }

    func decide(
        _ hub: LiveHub, _ token: String, _ id: String, _ seq: Int, _ decision: String,
        reason: String = "checked with the rota"
    ) throws -> RawResponse {
        try hub.call(
            "POST", "/reviews/\(id)/items/\(seq)/decision", token: token,
            body: #"{"decision": "\#(decision)", "reason": "\#(reason)"}"#)
    }

    func items(_ hub: LiveHub, _ token: String, _ id: String) throws -> [JSONObject] {
        try hub.call("GET", "/reviews/\(id)/items", token: token).object["items"]?.arrayValue?.compactMap(\.objectValue)
            ?? []
    }

    func seq(_ items: [JSONObject], _ userName: String) throws -> Int {
        Int(try #require(items.first { $0["userName"]?.stringValue == userName }?["seq"]?.numberValue?.int64))
    }

    @Test func managerReview_revokeTakesAccessAwayThroughTheEngine() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let s = try staff(hub)
        let c = try campaign(hub, #"{"name": "Q4 front desk", "target": "ehr", "defaultDecision": "approve"}"#)
        #expect(c["items"] == .int(3))
        let id = try #require(c["id"]?.stringValue)
        let boss = try hub.makeToken("boss@x.org", [.review])
        let mine = try items(hub, boss, id)
        // carla has no manager
        #expect(Set(mine.compactMap { $0["userName"]?.stringValue }) == ["ana@x.org", "bruno@x.org"])
        let all = try items(hub, hub.admin, id)
        // The manager may not decide carla's item; administrators decide items without a reviewer.
        #expect(try decide(hub, boss, id, try seq(all, "carla@x.org"), "revoke").status == 403)
        #expect(try decide(hub, boss, id, try seq(mine, "ana@x.org"), "revoke", reason: " ").status == 400)
        #expect(try decide(hub, boss, id, try seq(mine, "ana@x.org"), "maybe").status == 400)
        let r = try decide(hub, boss, id, try seq(mine, "ana@x.org"), "revoke", reason: "moved to the lab in October")
        #expect(r.status == 200, "\(r.text)")
        #expect(try decide(hub, boss, id, try seq(mine, "ana@x.org"), "approve").status == 409)
        #expect(try decide(hub, boss, id, try seq(mine, "bruno@x.org"), "approve").status == 200)
        #expect(try decide(hub, hub.admin, id, try seq(all, "carla@x.org"), "approve").status == 200)
        eventually("ana loses the package downstream") {
            ehr.snapshot()["ana@x.org"]?.roles == [] && ehr.snapshot()["ana@x.org"]?.active == false
        }
        #expect(ehr.snapshot()["bruno@x.org"]?.roles == ["scheduling"])
        // The revocation stands across later HR changes, and shows in the person's access view.
        let patch = try hub.call(
            "PATCH", "/scim/v2/Users/\(s.ana)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"displayName","value":"Ana R."}]}"#
        )
        #expect(patch.status == 200)
        let access = try hub.call("GET", "/admin/people/\(s.ana)/access", token: hub.admin).object
        #expect(access["revokedByReview"] == .array([.string("receptionist")]))
        #expect(access["packages"] == .array([]))
        // The campaign report has every decision, its reason and who decided.
        let csv = try hub.call("GET", "/admin/reviews/\(id)/report?format=csv", token: hub.admin).text
        #expect(
            csv.contains("ana@x.org,,boss@x.org,revoke,moved to the lab in October,boss@x.org")
                || csv.contains("revoke,moved to the lab in October,boss@x.org"))
        #expect(csv.split(separator: "\r\n").count == 4)
        #expect(
            try hub.call("GET", "/admin/audit?resourceId=\(s.ana)", token: hub.admin).text.contains("review.decide"))
        // Ana, were she an administrator, may not lift her own revocation (nor with a token she minted).
        let anaAdmin = try hub.makeToken("ana@x.org", [.admin])
        #expect(
            try hub.call("DELETE", "/admin/people/\(s.ana)/revocations/receptionist", token: anaAdmin).status == 403)
        let puppet = try hub.server.store.write {
            try Tokens.create($0, principal: "ops-helper", scopes: [.admin], now: 0, mintedBy: "ana@x.org").token
        }
        #expect(try hub.call("DELETE", "/admin/people/\(s.ana)/revocations/receptionist", token: puppet).status == 403)
        // An administrator lifts the revocation: access returns through the engine.
        #expect(
            try hub.call("DELETE", "/admin/people/\(s.ana)/revocations/receptionist", token: hub.admin).status == 204)
        eventually("ana's access is back") {
            ehr.snapshot()["ana@x.org"]?.roles == ["scheduling"] && ehr.snapshot()["ana@x.org"]?.active == true
        }
        #expect(
            try hub.call("DELETE", "/admin/people/\(s.ana)/revocations/receptionist", token: hub.admin).status == 404)
    }

    @Test func namedReviewers_onlyInTheirCampaign_andNeverTheirOwnAccess() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let a = try #require(
            try campaign(
                hub,
                #"{"name": "A", "package": "receptionist", "reviewers": ["rita", "ana@x.org"], "#
                    + #""defaultDecision": "approve"}"#
            )["id"]?.stringValue)
        let b = try #require(
            try campaign(
                hub, #"{"name": "B", "package": "receptionist", "reviewers": ["sam"], "defaultDecision": "approve"}"#)[
                    "id"]?.stringValue)
        let rita = try hub.makeToken("rita", [.review]), ana = try hub.makeToken("ana@x.org", [.review])
        let itemsB = try items(hub, hub.admin, b)
        // outside her campaign
        #expect(try decide(hub, rita, b, try seq(itemsB, "bruno@x.org"), "revoke").status == 403)
        let itemsA = try items(hub, rita, a)
        #expect(itemsA.count == 3)
        #expect(try decide(hub, ana, a, try seq(itemsA, "ana@x.org"), "approve").status == 403)  // her own access
        #expect(try decide(hub, ana, a, try seq(itemsA, "bruno@x.org"), "approve").status == 200)
        #expect(try hub.call("GET", "/reviews/\(a)/items", token: hub.writer).status == 403)  // a feed token
        #expect(try decide(hub, rita, a, 999, "approve").status == 404)
        #expect(try decide(hub, rita, "nope", 1, "approve").status == 404)
    }

    @Test func items_showWhatAReviewerNeedsToDecide() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let id = try #require(try campaign(hub, #"{"name": "Context", "target": "ehr"}"#)["id"]?.stringValue)
        let mine = try items(hub, try hub.makeToken("boss@x.org", [.review]), id)
        let ana = try #require(mine.first { $0["userName"]?.stringValue == "ana@x.org" }?["context"]?.objectValue)
        #expect(ana["packageDescription"]?.stringValue == "Front desk: appointments only")
        #expect(ana["title"]?.stringValue == "Receptionist" && ana["site"]?.stringValue == "CLN-CEN")
        #expect(ana["manager"]?.stringValue == "boss@x.org" && ana["credentialStatus"]?.stringValue == "active")
        // All three receptionists at CLN-CEN hold the package: a revoke would make ana the odd one out.
        #expect(
            ana["peers"]
                == .object(JSONObject(["people": .int(3), "holding": .int(3), "share": .number(JSONNumber(1.0))])))
    }

    @Test func bulkDecisions_oneReasonForManyItems_eachWithItsResult() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let id = try #require(try campaign(hub, #"{"name": "Bulk", "target": "ehr"}"#)["id"]?.stringValue)
        let boss = try hub.makeToken("boss@x.org", [.review])
        let all = try items(hub, hub.admin, id)
        let (ana, bruno, carla) = (try seq(all, "ana@x.org"), try seq(all, "bruno@x.org"), try seq(all, "carla@x.org"))
        func bulk(_ seqs: [Int], _ decision: String) throws -> RawResponse {
            try hub.call(
                "POST", "/reviews/\(id)/decisions", token: boss,
                body: #"{"items": \#(seqs), "decision": "\#(decision)", "reason": "still on the front desk"}"#)
        }
        // A bad decision is refused before anything is decided.
        #expect(try bulk([ana, bruno], "maybe").status == 400)
        #expect(try items(hub, hub.admin, id).allSatisfy { $0["decision"] == .null })
        let r = try bulk([ana, bruno, carla], "approve")
        #expect(r.status == 200 && r.object["decided"] == .int(2), "\(r.text)")
        let results = r.object["results"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(results.map { $0["status"] } == [.int(200), .int(200), .int(403)])  // carla is not boss's
        #expect(try bulk([ana], "approve").object["results"]?.arrayValue?.first?.objectValue?["status"] == .int(409))
    }

    @Test func administrators_reassignExtendAndCancel() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let c = try campaign(hub, #"{"name": "Handover", "target": "ehr", "dueDays": 1}"#)
        let id = try #require(c["id"]?.stringValue)
        let ana = try seq(try items(hub, hub.admin, id), "ana@x.org")
        // The manager left: the item goes to her deputy, who may decide it; the manager no longer may.
        let reassign = try hub.call(
            "POST", "/admin/reviews/\(id)/items/\(ana)/reassign", token: hub.admin,
            body: #"{"reviewer": "deputy@x.org"}"#)
        #expect(
            reassign.status == 200 && reassign.object["reviewer"]?.stringValue == "deputy@x.org", "\(reassign.text)")
        let selfReview = try hub.call(
            "POST", "/admin/reviews/\(id)/items/\(ana)/reassign", token: hub.admin, body: #"{"reviewer": "ana@x.org"}"#)
        #expect(selfReview.status == 403)
        #expect(try decide(hub, try hub.makeToken("boss@x.org", [.review]), id, ana, "approve").status == 403)
        #expect(try decide(hub, try hub.makeToken("deputy@x.org", [.review]), id, ana, "approve").status == 200)
        // More time: the due date moves, so the day passing closes nothing.
        let extended = try hub.call("POST", "/admin/reviews/\(id)/extend", token: hub.admin, body: #"{"dueDays": 7}"#)
        #expect(extended.status == 200, "\(extended.text)")
        #expect(
            try hub.call("POST", "/admin/reviews/\(id)/extend", token: hub.admin, body: #"{"dueDays": 0}"#).status
                == 400)
        clock.advance(by: 2 * 86400)
        #expect(try hub.server.reviews?.closeOverdue() == 0)
        // Cancelled: nothing more is decided or applied.
        #expect(try hub.call("POST", "/admin/reviews/\(id)/cancel", token: hub.admin).status == 200)
        #expect(
            try hub.call("GET", "/admin/reviews/\(id)", token: hub.admin).object["state"]?.stringValue == "cancelled")
        let carla = try seq(try items(hub, hub.admin, id), "carla@x.org")  // no manager: administrators decide
        #expect(try decide(hub, hub.admin, id, carla, "revoke").status == 409)
        #expect(try hub.call("POST", "/admin/reviews/\(id)/cancel", token: hub.admin).status == 409)
    }

    @Test func dueDate_byDefault_keepsAccess_andFlagsTheUndecidedItems() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let id = try #require(
            try campaign(hub, #"{"name": "Quiet", "target": "ehr", "dueDays": 1}"#)["id"]?.stringValue)
        clock.advance(by: 86401)
        #expect(try hub.server.reviews?.closeOverdue() == 1)
        let c = try hub.call("GET", "/admin/reviews/\(id)", token: hub.admin).object
        #expect(c["state"]?.stringValue == "closed" && c["flagged"] == .int(3) && c["revoked"] == .int(0))
        #expect(c["defaultDecision"]?.stringValue == "keep-and-flag")
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(["ana", "bruno", "carla"].allSatisfy { ehr.snapshot()["\($0)@x.org"]?.roles != [] })
    }

    @Test func dueDate_appliesTheDefaultDecision_evenAcrossARestart() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { ehr.stop() }
        _ = try staff(hub)
        let id = try #require(
            try campaign(hub, #"{"name": "Short", "target": "ehr", "dueDays": 1, "defaultDecision": "revoke"}"#)["id"]?
                .stringValue)
        let dir = hub.directory.path
        hub.server.shutdown()
        clock.advance(by: 86401)  // the due date passes while the hub is down
        let again = try LiveHub(policy: policy) {
            $0.dataDirectory = dir; $0.clock = clock
        }
        defer { again.stop(); hub.directory.remove() }
        // Revoking would leave all three with no EHR access: nothing is taken unattended.
        #expect(again.server.engine?.waitUntilIdle() == true)
        #expect(["ana", "bruno", "carla"].allSatisfy { ehr.snapshot()["\($0)@x.org"]?.roles != [] })
        let held = try again.call("GET", "/admin/reviews/\(id)", token: again.admin).object
        #expect(held["state"]?.stringValue == "awaiting-confirmation" && held["revoked"] == .int(0))
        #expect(try again.call("POST", "/admin/reviews/\(id)/confirm", token: again.admin).status == 403)  // step-up
        let secret = try again.enrolTOTP(again.admin)
        let confirmed = try again.call(
            "POST", "/admin/reviews/\(id)/confirm", token: again.admin,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(confirmed.status == 200 && confirmed.object["revoked"] == .int(3), "\(confirmed.text)")
        let c = try again.call("GET", "/admin/reviews/\(id)", token: again.admin).object
        #expect(c["state"]?.stringValue == "closed")
        #expect(c["revoked"] == .int(3))
        #expect(
            c["itemList"]?.arrayValue?.allSatisfy { $0.objectValue?["decidedBy"]?.stringValue == "auditor" }
                == true)
        eventually("everyone's package revoked downstream") {
            ["ana", "bruno", "carla"].allSatisfy { ehr.snapshot()["\($0)@x.org"]?.roles == [] }
        }
    }

    @Test func schedule_createsOneCampaignPerTarget_everyPeriod() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        _ = try staff(hub)
        let reviews = try #require(hub.server.reviews)
        let now = Date().timeIntervalSince1970
        try reviews.scheduleIfDue(everyDays: 182, dueDays: 14, defaultDecision: "approve", now: now)
        // not due yet: counted from installation
        #expect(try hub.server.store.read { try $0.campaigns(limit: 10) }.isEmpty)
        try reviews.scheduleIfDue(everyDays: 182, dueDays: 14, defaultDecision: "approve", now: now + 183 * 86400)
        try reviews.scheduleIfDue(everyDays: 182, dueDays: 14, defaultDecision: "approve", now: now + 184 * 86400)
        let campaigns = try hub.server.store.read { try $0.campaigns(limit: 10) }
        #expect(campaigns.map(\.scopeValue) == ["ehr"])
        #expect(campaigns.first?.createdBy == "scheduler")
    }

    @Test(arguments: [
        (#"{"target": "ehr", "defaultDecision": "approve"}"#, "'name' is required"),
        (#"{"name": "x", "target": "ehr", "package": "billing", "defaultDecision": "approve"}"#, "exactly one of"),
        (#"{"name": "x", "target": "nope", "defaultDecision": "approve"}"#, "no enabled target named 'nope'"),
        (#"{"name": "x", "package": "nope", "defaultDecision": "approve"}"#, "no package named 'nope'"),
        (#"{"name": "x", "target": "ehr", "dueDays": 0, "defaultDecision": "approve"}"#, "'dueDays'"),
        (#"{"name": "x", "target": "ehr", "defaultDecision": "shrug"}"#, "'defaultDecision'"),
        (#"{"name": "x", "target": "ehr", "reviewers": [], "defaultDecision": "approve"}"#, "'reviewers'"),
        (#"{"name": "x", "target": "ehr", "defaultDecision": "approve", "colour": 1}"#, "unknown key 'colour'"),
    ])
    func badCampaigns_areRefused(body: String, fragment: String) throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let r = try hub.call("POST", "/admin/reviews", token: hub.admin, body: body)
        #expect(r.status == 400, "\(r.text)")
        #expect(r.object["detail"]?.stringValue?.contains(fragment) == true, "\(r.text)")
        #expect(
            try hub.call("GET", "/admin/reviews", token: hub.admin).object["campaigns"]?.arrayValue?.isEmpty == true)
    }
}
