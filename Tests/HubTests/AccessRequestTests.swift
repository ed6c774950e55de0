// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Synchronization
import Testing
import EHRTestServer
import Hub
import JSONCore
import Store
import TestSupport

/// Access requests end to end against a live hub and the EHR test server: approval stages,
/// the grant downstream, the notice before the end, extension, expiry by the stored
/// deadline, separation of duties at request time, exceptions, and every refusal.
@Suite struct AccessRequestTests {
    let ehr: EHRTestServer
    let clock = ManualClock()

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    static let packages =
        #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
        + #"{"name": "prescriber", "rule": "title eq \"Physician\"", "grants": {"ehr": ["physician"]}}, "#
        + #"{"name": "clinic-reports", "description": "Read the clinic activity reports", "#
        + #""grants": {"ehr": ["clinic-reporting"]}, "requestable": {"requesters": "title eq \"Receptionist\" or "#
        + #"title eq \"Manager\"", "approval": ["manager"], "maxDays": 30, "extension": true, "noticeDays": 7}}, "#
        + #"{"name": "billing", "groups": ["Billing Office"], "grants": {"ehr": ["billing"]}, "#
        + #""requestable": {"approval": ["manager", "group:Finance Approvers"], "maxDays": 90}}, "#
        + #"{"name": "lab-cover", "grants": {"ehr": ["lab-results"]}, "requiresCredential": true, "#
        + #""requestable": {"approval": ["manager"], "maxDays": 7}}"#

    /// `enforce`: nobody prescribes and bills; `record`: reports with billing is reported.
    static let sod =
        #", "separationOfDuties": [{"name": "billing-vs-prescribing", "packages": ["prescriber", "billing"], "#
        + #""mode": "enforce", "severity": "critical"}, {"name": "reports-vs-billing", "#
        + #""packages": ["clinic-reports", "billing"], "mode": "record", "severity": "medium"}]"#

    var policy: String {
        let base = singleEHRPolicy(ehr, packages: Self.packages)
        return String(base.dropLast(1)) + Self.sod + "}"
    }

    func hub(notifications: String? = nil) throws -> LiveHub {
        let settings = try notifications.map {
            try HubConfig.notificationSettings(try JSONParser().parse(Array($0.utf8)))
        }
        return try LiveHub(policy: policy) {
            $0.clock = clock
            if let s = settings { $0.notifications = s }
        }
    }

    /// A person with a manager (enterprise `manager.value`); returns their id.
    @discardableResult
    func staff(_ hub: LiveHub, _ userName: String, title: String, manager: String? = nil) throws -> String {
        var body = person(userName, title: title)
        if let m = manager {
            body =
                String(body.dropLast()) + #","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"#
                + #"{"manager":{"value":"\#(m)"}}}"#
            body = body.replacingOccurrences(
                of: #""schemas":["#, with: #""schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","#)
        }
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        #expect(r.status == 201, "\(r.text)")
        return try #require(r.object["id"]?.stringValue)
    }

    func group(_ hub: LiveHub, _ name: String, members: [String]) throws {
        let list = members.map { #"{"value":"\#($0)"}"# }.joined(separator: ",")
        let r = try hub.call(
            "POST", "/scim/v2/Groups",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"\#(name)","#
                + #""members":[\#(list)]}"#)
        #expect(r.status == 201, "\(r.text)")
    }

    func post(_ hub: LiveHub, _ path: String, _ token: String, _ body: String, headers: [(String, String)] = [])
        throws -> RawResponse
    {
        try hub.call("POST", path, token: token, body: body, headers: headers, contentType: "application/json")
    }

    /// A ward: manager Mike (a Manager), receptionist Rosa reporting to him; tokens for both.
    func ward(_ hub: LiveHub) throws -> (rosa: String, mike: String, rosaID: String, mikeID: String) {
        let mikeID = try staff(hub, "mike@x.org", title: "Manager")
        let rosaID = try staff(hub, "rosa@x.org", title: "Receptionist", manager: mikeID)
        eventually("rosa provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        return (
            try hub.makeToken("rosa@x.org", [.request]), try hub.makeToken("mike@x.org", [.request]), rosaID, mikeID
        )
    }

    @Test func aRequest_approvedByTheManager_isGrantedDownstream_noticed_extended_andTakenBackAtExpiry() throws {
        let smtp = try SMTPServer()
        let hub = try hub(
            notifications: #"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"}}"#)
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        let (rosa, mike, rosaID, _) = try ward(hub)
        let filed = try post(
            hub, "/admin/requests", rosa,
            #"{"package": "clinic-reports", "justification": "covering stock counts on ward 4", "days": 10}"#)
        #expect(filed.status == 201, "\(filed.text)")
        let id = try #require(filed.object["id"]?.stringValue)
        #expect(filed.object["state"]?.stringValue == "pending")
        #expect(filed.object["awaiting"]?.stringValue == "the manager, mike@x.org")
        eventually("the manager is asked by e-mail") {
            smtp.messages().contains { $0.contains("To: <mike@x.org>") && $0.contains("rosa@x.org requests") }
        }
        // Nothing downstream before the approval; the requester cannot approve her own request.
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"])
        let own = try post(hub, "/admin/requests/\(id)/approve", rosa, #"{"reason": "I need it"}"#)
        #expect(own.status == 403 && own.text.contains("nobody approves a request they made"), "\(own.text)")
        let inbox = try hub.call("GET", "/admin/requests?awaiting=me", token: mike).object["requests"]?.arrayValue
        #expect(inbox?.count == 1)
        let approved = try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ward 4 is short"}"#)
        #expect(approved.status == 200, "\(approved.text)")
        #expect(approved.object["state"]?.stringValue == "granted")
        eventually("granted downstream") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"] }
        eventually("rosa is told") {
            smtp.messages().contains { $0.contains("To: <rosa@x.org>") && $0.contains("was granted until") }
        }
        // The access view says why.
        let access = try hub.call("GET", "/admin/people/\(rosaID)/access", token: hub.admin).object
        #expect(
            access["packages"]?.arrayValue?.contains {
                $0.objectValue?["name"]?.stringValue == "clinic-reports"
                    && $0.objectValue?["why"]?.stringValue?.hasPrefix("request: \(id)") == true
            } == true, "\(access)")
        // Seven days before the end (three days in), Rosa and her manager are told.
        clock.advance(by: 3 * 86400 + 60)
        eventually("expiry notice") {
            smtp.messages().contains { $0.contains("To: <mike@x.org>") && $0.contains("ends soon") }
        }
        let extended = try post(
            hub, "/admin/requests/\(id)/extend", rosa, #"{"days": 5, "justification": "counts run late"}"#)
        #expect(extended.status == 201, "\(extended.text)")
        let extID = try #require(extended.object["id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(extID)/approve", mike, #"{"reason": "fine"}"#).status == 200)
        let original = try hub.call("GET", "/admin/requests/\(id)", token: rosa).object
        #expect(original["state"]?.stringValue == "extended")
        // Past the first end the package is still held (the extension continues it)...
        clock.advance(by: 7 * 86400 + 60)
        try hub.server.requests?.processDue()
        hub.server.engine?.waitUntilIdle()
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"])
        // ...and past the extension's end it is taken back, by the stored deadline.
        clock.advance(by: 5 * 86400)
        eventually("taken back at expiry") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        #expect(try hub.call("GET", "/admin/requests/\(extID)", token: rosa).object["state"]?.stringValue == "expired")
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(rosaID)", token: hub.admin).text
        for action in ["request.submit", "request.approve", "request.grant", "request.extend", "request.expire"] {
            #expect(audit.contains(action), "\(action) missing from the audit")
        }
    }

    @Test func twoStages_needTwoDifferentApprovers_andTheGroupStageAnyMember() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, _, mikeID) = try ward(hub)
        let fionaID = try staff(hub, "fiona@x.org", title: "Accountant")
        try group(hub, "Finance Approvers", members: [fionaID, mikeID])
        let fiona = try hub.makeToken("fiona@x.org", [.request])
        let filed = try post(hub, "/admin/requests", rosa, #"{"package": "billing", "justification": "month end"}"#)
        #expect(filed.status == 201, "\(filed.text)")
        let id = try #require(filed.object["id"]?.stringValue)
        #expect(filed.object["days"]?.numberValue?.double == 90, "the package's maximum by default")
        // Fiona is an approver, but not of the first stage: to her it does not exist yet.
        #expect(try post(hub, "/admin/requests/\(id)/approve", fiona, #"{"reason": "ok"}"#).status == 404)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        // Mike is in the group too, but nobody approves two stages.
        let twice = try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "again"}"#)
        #expect(twice.status == 403 && twice.text.contains("earlier stage"), "\(twice.text)")
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"])
        let done = try post(hub, "/admin/requests/\(id)/approve", fiona, #"{"reason": "month end confirmed"}"#)
        #expect(done.status == 200 && done.object["state"]?.stringValue == "granted", "\(done.text)")
        eventually("billing downstream") { ehr.snapshot()["rosa@x.org"]?.roles == ["billing", "scheduling"] }
        let stages = done.object["stages"]?.arrayValue?.compactMap {
            $0.objectValue?["approval"]?.objectValue?["by"]?.stringValue
        }
        #expect(stages == ["mike@x.org", "fiona@x.org"])
    }

    @Test func refusals_areClear_andChangeNothing() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, rosaID, _) = try ward(hub)
        let peterID = try staff(hub, "peter@x.org", title: "Physician")
        let peter = try hub.makeToken("peter@x.org", [.request])
        let stranger = try hub.makeToken("nobody@x.org", [.request])
        let cases: [(String, String, Int, String)] = [
            (rosa, #"{"package": "desk", "justification": "x"}"#, 400, "'desk' is not requestable"),
            (rosa, #"{"package": "nope", "justification": "x"}"#, 400, "no package named 'nope'"),
            (rosa, #"{"package": "clinic-reports", "justification": "x", "days": 31}"#, 400, "at most 30"),
            (rosa, #"{"package": "clinic-reports", "justification": "  "}"#, 400, "'justification' is required"),
            (rosa, #"{"package": "clinic-reports", "justification": "x", "colour": 1}"#, 400, "unknown key 'colour'"),
            (rosa, #"{"package": "clinic-reports", "justification": "x", "days": "ten"}"#, 400, "'days' must be"),
            (peter, #"{"package": "clinic-reports", "justification": "x"}"#, 403, "outside who may request"),
            (stranger, #"{"package": "clinic-reports", "justification": "x"}"#, 403, "no User has the user name"),
            (rosa, #"{"package": "clinic-reports", "justification": "x", "for": "peter@x.org"}"#, 403, "their manager"),
            (peter, #"{"package": "billing", "justification": "x"}"#, 409, "billing-vs-prescribing"),
            (hub.reader, #"{"package": "clinic-reports", "justification": "x"}"#, 403, "scope"),
        ]
        let before = try hub.call("GET", "/admin/requests", token: hub.admin).text
        for (token, body, status, message) in cases {
            let r = try post(hub, "/admin/requests", token, body)
            #expect(r.status == status && r.text.contains(message), "\(body) → \(r.status) \(r.text)")
        }
        #expect(try hub.call("GET", "/admin/requests", token: hub.admin).text == before, "nothing was stored")
        // A duplicate is refused; a decision needs a reason; an unknown id is 404.
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#).object[
                "id"]?.stringValue)
        let again = try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#)
        #expect(again.status == 409 && again.text.contains("already has a pending request"), "\(again.text)")
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": ""}"#).status == 400)
        #expect(try post(hub, "/admin/requests/nope/approve", mike, #"{"reason": "x"}"#).status == 404)
        // Strangers see nothing of it; the manager may deny it; then it is final.
        #expect(try hub.call("GET", "/admin/requests/\(id)", token: peter).status == 404)
        let denied = try post(hub, "/admin/requests/\(id)/deny", mike, #"{"reason": "not needed on this ward"}"#)
        #expect(denied.status == 200 && denied.object["state"]?.stringValue == "denied", "\(denied.text)")
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "x"}"#).status == 409)
        // A manager may ask for a report; Rosa may cancel what was asked for her.
        let forRosa = try post(
            hub, "/admin/requests", mike,
            #"{"package": "clinic-reports", "justification": "cover", "for": "rosa@x.org"}"#)
        #expect(forRosa.status == 201, "\(forRosa.text)")
        let forID = try #require(forRosa.object["id"]?.stringValue)
        #expect(forRosa.object["awaiting"]?.stringValue?.contains("an administrator") == true, "\(forRosa.text)")
        #expect(
            try post(hub, "/admin/requests/\(forID)/cancel", rosa, "{}").object["state"]?.stringValue == "cancelled")
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"])
        _ = (rosaID, peterID)
    }

    @Test func anAccessReviewRevoke_endsAGrantByRequest() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, _, _) = try ward(hub)
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#).object[
                "id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        eventually("granted") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"] }
        let campaign = try post(
            hub, "/admin/reviews", hub.admin,
            #"{"name": "Reports", "package": "clinic-reports", "reviewers": ["vera@x.org"], "dueDays": 7}"#)
        #expect(campaign.status == 201, "\(campaign.text)")
        let cid = try #require(campaign.object["id"]?.stringValue)
        let vera = try hub.makeToken("vera@x.org", [.review])
        let revoke = try post(
            hub, "/reviews/\(cid)/items/1/decision", vera, #"{"decision": "revoke", "reason": "no longer covering"}"#)
        #expect(revoke.status == 200, "\(revoke.text)")
        eventually("taken back") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let r = try hub.call("GET", "/admin/requests/\(id)", token: rosa).object
        #expect(r["state"]?.stringValue == "ended" && r["decisionReason"]?.stringValue == "revoked by access review")
    }

    @Test func endingAGrant_cancelsItsPendingExtension_andExtensionsKeepToTheTerms() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, _, _) = try ward(hub)
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x", "days": 10}"#)
                .object["id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        // Held at most 30 days from now: 10 still run, so at most 20 more.
        let long = try post(hub, "/admin/requests/\(id)/extend", rosa, #"{"days": 21, "justification": "x"}"#)
        #expect(long.status == 400 && long.text.contains("at most 20"), "\(long.text)")
        let ext = try post(hub, "/admin/requests/\(id)/extend", rosa, #"{"days": 5, "justification": "x"}"#)
        #expect(ext.status == 201, "\(ext.text)")
        let extID = try #require(ext.object["id"]?.stringValue)
        let again = try post(hub, "/admin/requests/\(id)/extend", rosa, #"{"days": 5, "justification": "x"}"#)
        #expect(again.status == 409, "one extension waits at a time: \(again.text)")
        // The manager ends the grant: the extension has nothing left to extend.
        let ended = try post(hub, "/admin/requests/\(id)/end", mike, #"{"reason": "cover no longer needed"}"#)
        #expect(ended.status == 200 && ended.object["state"]?.stringValue == "ended", "\(ended.text)")
        eventually("taken back") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        #expect(
            try hub.call("GET", "/admin/requests/\(extID)", token: rosa).object["state"]?.stringValue == "cancelled")
        #expect(try post(hub, "/admin/requests/\(extID)/approve", mike, #"{"reason": "ok"}"#).status == 409)
        #expect(try post(hub, "/admin/requests/\(id)/extend", rosa, #"{"justification": "x"}"#).status == 409)
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"])
        // A package that allows no extension.
        let fionaID = try staff(hub, "fiona@x.org", title: "Accountant")
        try group(hub, "Finance Approvers", members: [fionaID])
        let billing = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "billing", "justification": "x"}"#).object["id"]?
                .stringValue)
        #expect(try post(hub, "/admin/requests/\(billing)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        let fiona = try hub.makeToken("fiona@x.org", [.request])
        #expect(try post(hub, "/admin/requests/\(billing)/approve", fiona, #"{"reason": "ok"}"#).status == 200)
        let noExt = try post(hub, "/admin/requests/\(billing)/extend", rosa, #"{"justification": "x"}"#)
        #expect(noExt.status == 409 && noExt.text.contains("does not allow extensions"), "\(noExt.text)")
    }

    @Test func fourEyes_holdAcrossTokenChains_andManagersAskingForReports() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let directorID = try staff(hub, "dora@x.org", title: "Manager")
        let mikeID = try staff(hub, "mike@x.org", title: "Manager", manager: directorID)
        try staff(hub, "rosa@x.org", title: "Receptionist", manager: mikeID)
        try staff(hub, "nina@x.org", title: "Receptionist")  // no manager: administrators approve
        let mike = try hub.makeToken("mike@x.org", [.request])
        let dora = try hub.makeToken("dora@x.org", [.request])
        // A manager asking for a report: their own manager approves, not they.
        let forRosa = try post(
            hub, "/admin/requests", mike, #"{"package": "clinic-reports", "justification": "x", "for": "rosa@x.org"}"#)
        #expect(forRosa.object["awaiting"]?.stringValue == "the manager, dora@x.org", "\(forRosa.text)")
        let forID = try #require(forRosa.object["id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(forID)/approve", mike, #"{"reason": "mine"}"#).status == 403)
        #expect(try post(hub, "/admin/requests/\(forID)/approve", dora, #"{"reason": "ok"}"#).status == 200)
        // An administrator who minted Nina's token cannot approve what was asked through it.
        let carol = try hub.makeToken("carol", [.admin])
        let carolID = try #require(Tokens.publicID(carol))
        let nina = try hub.server.store.write { w in
            try Tokens.create(
                w, principal: "nina@x.org", scopes: [.request], now: 0, mintedBy: "carol", mintedByToken: carolID
            ).token
        }
        let filed = try post(hub, "/admin/requests", nina, #"{"package": "clinic-reports", "justification": "x"}"#)
        let id = try #require(filed.object["id"]?.stringValue, "\(filed.text)")
        #expect(filed.object["awaiting"]?.stringValue?.contains("no active manager") == true)
        let own = try post(hub, "/admin/requests/\(id)/approve", carol, #"{"reason": "fine"}"#)
        #expect(own.status == 403 && own.text.contains("nobody approves"), "\(own.text)")
        // Two administrators at once: one wins, the other is told it was decided.
        let other = try hub.makeToken("olga", [.admin])
        let results = Mutex<[Int]>([])
        let group = DispatchGroup()
        for token in [hub.admin, other] {
            group.enter()
            Thread {
                defer { group.leave() }
                let status = (try? post(hub, "/admin/requests/\(id)/approve", token, #"{"reason": "ok"}"#))?.status
                results.withLock { $0.append(status ?? 0) }
            }.start()
        }
        group.wait()
        #expect(results.withLock { $0.sorted() } == [200, 409])
    }

    @Test func strangers_cannotSeeOrTouch_someoneElsesRequest() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, _, _) = try ward(hub)
        try staff(hub, "peter@x.org", title: "Physician")
        let peter = try hub.makeToken("peter@x.org", [.request])
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#).object[
                "id"]?.stringValue)
        for action in ["approve", "deny", "cancel", "end", "extend"] {
            let r = try post(hub, "/admin/requests/\(id)/\(action)", peter, #"{"reason": "x"}"#)
            #expect(r.status == 404 || (action == "extend" && r.status == 400), "\(action): \(r.status) \(r.text)")
        }
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        #expect(try post(hub, "/admin/requests/\(id)/end", peter, #"{"reason": "x"}"#).status == 404)
        let list = try hub.call("GET", "/admin/requests", token: peter).object["requests"]?.arrayValue
        #expect(list?.isEmpty == true)
        #expect(try hub.call("GET", "/admin/requests", token: rosa).object["requests"]?.arrayValue?.count == 1)
    }

    @Test func aRequestedPackage_thatNeedsACredential_isHeldOnlyWhileItIsInForce() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let mikeID = try staff(hub, "mike@x.org", title: "Manager")
        var body = person("lia@x.org", title: "Receptionist", status: "suspended")
        body =
            String(body.dropLast()) + #","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":"#
            + #"{"manager":{"value":"\#(mikeID)"}}}"#
        let created = try hub.call("POST", "/scim/v2/Users", body: body)
        let liaID = try #require(created.object["id"]?.stringValue, "\(created.text)")
        eventually("provisioned") { ehr.snapshot()["lia@x.org"]?.roles == ["scheduling"] }
        let lia = try hub.makeToken("lia@x.org", [.request])
        let mike = try hub.makeToken("mike@x.org", [.request])
        let id = try #require(
            try post(hub, "/admin/requests", lia, #"{"package": "lab-cover", "justification": "x"}"#).object["id"]?
                .stringValue)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["lia@x.org"]?.roles == ["scheduling"], "no lab results while suspended")
        let restore =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","#
            + #""path":"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:credentialStatus","#
            + #""value":"active"}]}"#
        #expect(try hub.call("PATCH", "/scim/v2/Users/\(liaID)", body: restore).status == 200)
        eventually("lab results once the credential is in force") {
            ehr.snapshot()["lia@x.org"]?.roles == ["scheduling", "lab-results"]
        }
    }

    @Test func aPendingRequest_lapses_whenNobodyDecides() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, _, _, _) = try ward(hub)
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#).object[
                "id"]?.stringValue)
        clock.advance(by: 14 * 86400 + 1)
        eventually("lapsed") {
            try hub.call("GET", "/admin/requests/\(id)", token: rosa).object["state"]?.stringValue == "lapsed"
        }
    }

    @Test func aRecordedConflict_needsAReason_andAnAdministratorsApproval() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (rosa, mike, _, mikeID) = try ward(hub)
        let fionaID = try staff(hub, "fiona@x.org", title: "Accountant")
        try group(hub, "Finance Approvers", members: [fionaID])
        let fiona = try hub.makeToken("fiona@x.org", [.request])
        let stock = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x"}"#).object[
                "id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(stock)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        let noReason = try post(hub, "/admin/requests", rosa, #"{"package": "billing", "justification": "x"}"#)
        #expect(noReason.status == 400 && noReason.text.contains("'sodReason' is required"), "\(noReason.text)")
        let filed = try post(
            hub, "/admin/requests", rosa,
            #"{"package": "billing", "justification": "x", "sodReason": "two-person count on every order"}"#)
        #expect(filed.status == 201, "\(filed.text)")
        let id = try #require(filed.object["id"]?.stringValue)
        #expect(filed.object["separationOfDuties"]?.arrayValue?.first?.stringValue == "reports-vs-billing")
        #expect(filed.object["stages"]?.arrayValue?.count == 3)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        #expect(try post(hub, "/admin/requests/\(id)/approve", fiona, #"{"reason": "ok"}"#).status == 200)
        let last = try hub.call("GET", "/admin/requests/\(id)", token: hub.admin).object
        #expect(last["awaiting"]?.stringValue?.contains("separation of duties: reports-vs-billing") == true)
        let granted = try post(hub, "/admin/requests/\(id)/approve", hub.admin, #"{"reason": "exception accepted"}"#)
        #expect(granted.object["state"]?.stringValue == "granted", "\(granted.text)")
        eventually("both downstream") {
            ehr.snapshot()["rosa@x.org"]?.roles == ["billing", "clinic-reporting", "scheduling"]
        }
        _ = mikeID
    }

    @Test func anException_liftsAnEnforcedRule_untilItExpires() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let peterID = try staff(hub, "peter@x.org", title: "Physician")
        try group(hub, "Billing Office", members: [peterID])
        // Enforced: the billing package is withheld from a prescriber.
        eventually("prescriber only") { ehr.snapshot()["peter@x.org"]?.roles == ["physician"] }
        let secret = try hub.enrolTOTP(hub.admin)
        let body =
            #"{"rule": "billing-vs-prescribing", "person": "peter@x.org", "owner": "cfo@x.org", "#
            + #""reason": "sole doctor at the satellite clinic also bills", "days": 30}"#
        // Step-up is required; a bad rule or too long is refused before the code is used.
        let noCode = try post(hub, "/admin/sod/exceptions", hub.admin, body)
        #expect(
            noCode.status == 403 && noCode.text.contains("needs a current TOTP code"), "\(noCode.status) \(noCode.text)"
        )
        let bad = try post(
            hub, "/admin/sod/exceptions", hub.admin,
            body.replacingOccurrences(of: "\"days\": 30", with: "\"days\": 400"),
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: -1))])
        #expect(bad.status == 400 && bad.text.contains("at most 366"), "\(bad.text)")
        let made = try post(
            hub, "/admin/sod/exceptions", hub.admin, body, headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(made.status == 201, "\(made.text)")
        eventually("billing while the exception lasts") {
            ehr.snapshot()["peter@x.org"]?.roles == ["billing", "physician"]
        }
        let access = try hub.call("GET", "/admin/people/\(peterID)/access", token: hub.admin).object
        #expect(
            access["sodConflicts"]?.arrayValue?.first?.objectValue?["excepted"]?.boolValue == true, "\(access)")
        clock.advance(by: 30 * 86400 + 1)
        eventually("withheld again at expiry") { ehr.snapshot()["peter@x.org"]?.roles == ["physician"] }
        let listed = try hub.call("GET", "/admin/sod/exceptions", token: hub.admin).object["exceptions"]?.arrayValue
        #expect(listed?.first?.objectValue?["state"]?.stringValue == "ended")
        // Not for oneself, also not through a token named otherwise but minted by the person.
        let peterAdmin = try hub.makeToken("peter@x.org", [.admin])
        let peterSecret = try hub.enrolTOTP(peterAdmin)
        let selfGrant = try post(
            hub, "/admin/sod/exceptions", peterAdmin, body, headers: [("X-ScimHub-TOTP", LiveHub.totp(peterSecret))])
        #expect(selfGrant.status == 403 && selfGrant.text.contains("nobody grants"), "\(selfGrant.text)")
        // Ended early by an administrator: withheld again at once.
        let again = try post(
            hub, "/admin/sod/exceptions", hub.admin, body,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: 1))])
        #expect(again.status == 201, "\(again.text)")
        eventually("billing again") { ehr.snapshot()["peter@x.org"]?.roles == ["billing", "physician"] }
        let exceptionID = try #require(again.object["id"]?.stringValue)
        let end = try post(hub, "/admin/sod/exceptions/\(exceptionID)/end", hub.admin, "{}")
        #expect(end.status == 200 && end.object["state"]?.stringValue == "ended", "\(end.text)")
        eventually("withheld after the early end") { ehr.snapshot()["peter@x.org"]?.roles == ["physician"] }
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(peterID)", token: hub.admin).text
        #expect(audit.contains("sod.exception") && audit.contains("sod.exception-expire"))
    }

    @Test func requestsSurviveARestart_andExpireFromTheStoredDeadline() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove(); ehr.stop() }
        func start() throws -> LiveHub {
            try LiveHub(policy: policy) {
                $0.clock = clock
                $0.dataDirectory = dir.path
            }
        }
        var hub = try start()
        let (rosa, mike, _, _) = try ward(hub)
        let id = try #require(
            try post(hub, "/admin/requests", rosa, #"{"package": "clinic-reports", "justification": "x", "days": 1}"#)
                .object["id"]?.stringValue)
        #expect(try post(hub, "/admin/requests/\(id)/approve", mike, #"{"reason": "ok"}"#).status == 200)
        eventually("granted downstream") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"] }
        hub.server.shutdown()
        clock.advance(by: 86400 + 1)
        hub = try start()
        defer { hub.server.shutdown() }
        eventually("taken back after the restart") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
    }
}
