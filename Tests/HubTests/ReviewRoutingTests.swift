// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import Hub
import Provisioning
import JSONCore
import Store
import TestSupport

/// Reviews people can finish: each reviewer is told their items, people without a usable
/// manager go to the fallback group, undecided items go up before the due date (once, across
/// restarts), reviewers delegate, and each item says how long the package has been held.
@Suite struct ReviewRoutingTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#)
    }

    static let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    static let healthcare = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"

    /// A User document; `manager`: their manager's id; `email`: their address when the user
    /// name is not one.
    static func userBody(
        _ userName: String, title: String, manager: String? = nil, email: String? = nil, active: Bool = true
    ) -> String {
        var o = JSONObject([
            "schemas": .array([
                .string("urn:ietf:params:scim:schemas:core:2.0:User"), .string(enterprise), .string(healthcare),
            ]),
            "userName": .string(userName), "displayName": .string(userName), "title": .string(title),
            "active": .bool(active),
            healthcare: .object(
                JSONObject(["sites": .array([.string("CLN-CEN")]), "credentialStatus": .string("active")])),
        ])
        if let address = email ?? (userName.contains("@") ? userName : nil) {
            o["emails"] = .array([
                .object(JSONObject(["value": .string(address), "type": .string("work"), "primary": .bool(true)]))
            ])
        }
        if let manager {
            o[enterprise] = .object(JSONObject(["manager": .object(JSONObject(["value": .string(manager)]))]))
        }
        return String(decoding: JSONWriter().write(.object(o)), as: UTF8.self)
    }

    func user(
        _ hub: LiveHub, _ userName: String, title: String = "Receptionist", manager: String? = nil,
        email: String? = nil, active: Bool = true
    ) throws -> String {
        let r = try hub.call(
            "POST", "/scim/v2/Users",
            body: Self.userBody(userName, title: title, manager: manager, email: email, active: active))
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("user: \(r.status) \(r.text)")
        }
        return id
    }

    func group(_ hub: LiveHub, _ name: String, members: [String]) throws {
        let list = members.map { #"{"value": "\#($0)"}"# }.joined(separator: ",")
        let r = try hub.call(
            "POST", "/scim/v2/Groups",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"\#(name)","#
                + #""members":[\#(list)]}"#)
        guard r.status == 201 else { throw TestError("group: \(r.status) \(r.text)") }
    }

    func campaign(_ hub: LiveHub, dueDays: Double = 7) throws -> String {
        let r = try hub.call(
            "POST", "/admin/reviews", token: hub.admin,
            body: #"{"name": "Front desk", "target": "ehr", "dueDays": \#(dueDays)}"#)
        guard r.status == 201, let id = r.object["id"]?.stringValue else { throw TestError("campaign: \(r.text)") }
        return id
    }

    /// Every item of the campaign, by the reviewed person's user name.
    func items(_ hub: LiveHub, _ id: String, token: String? = nil) throws -> [String: JSONObject] {
        let list = try hub.call("GET", "/reviews/\(id)/items", token: token ?? hub.admin).object["items"]?.arrayValue
        var out: [String: JSONObject] = [:]
        for o in (list ?? []).compactMap(\.objectValue) { out[o["userName"]?.stringValue ?? ""] = o }
        return out
    }

    func seq(_ item: JSONObject?) -> Int { Int(item?["seq"]?.numberValue?.int64 ?? 0) }

    func decide(_ hub: LiveHub, _ token: String, _ id: String, _ seq: Int) throws -> Int {
        try hub.call(
            "POST", "/reviews/\(id)/items/\(seq)/decision", token: token,
            body: #"{"decision": "approve", "reason": "still on the front desk"}"#
        ).status
    }

    func delegate(_ hub: LiveHub, _ token: String, _ id: String, _ seq: Int, _ body: String) throws -> RawResponse {
        try hub.call("POST", "/reviews/\(id)/items/\(seq)/delegate", token: token, body: body)
    }

    func audit(_ hub: LiveHub, _ resourceID: String, action: String) throws -> [JSONObject] {
        let entries = try hub.call("GET", "/admin/audit?resourceId=\(resourceID)", token: hub.admin).object["entries"]
        return (entries?.arrayValue ?? []).compactMap(\.objectValue).filter { $0["action"]?.stringValue == action }
    }

    func outbox(_ hub: LiveHub, _ event: String) throws -> [NotificationRecord] {
        try hub.server.store.read { try $0.notifications(limit: 1000) }.filter { $0.event == event }
    }

    /// Messages queued (the outbox is written with the event, so nothing arrives later);
    /// the SMTP server on a closed port: nothing needs delivering here.
    static func queueOnly(_ recipients: String) throws -> NotificationSettings {
        try HubConfig.notificationSettings(
            try JSONParser().parse(
                Array(
                    (#"{"email": {"url": "smtp://127.0.0.1:9", "from": "hub@clinic.example", "tls": "none"},"#
                        + #""recipients": \#(recipients)}"#).utf8)))
    }

    // MARK: - Assigned

    @Test func creation_tellsEachReviewerTheirCount_atTheirAddress_withoutWhoIsReviewed() throws {
        let smtp = try SMTPServer()
        let settings = try HubConfig.notificationSettings(
            try JSONParser().parse(
                Array(
                    (#"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                        + #""recipients": {"review.assigned": ["identity@clinic.example"]}}"#).utf8)))
        let hub = try LiveHub(policy: policy) { $0.notifications = settings }
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        let boss = try user(hub, "boss@x.org", title: "Manager")
        // dora's principal is no address: her User's primary e-mail is used.
        let dora = try user(hub, "dora", title: "Manager", email: "dora.m@clinic.example")
        for name in ["ana", "bruno"] { _ = try user(hub, "\(name)@x.org", manager: boss) }
        _ = try user(hub, "eve@x.org", manager: dora)
        _ = try user(hub, "carla@x.org")  // no manager, no fallback group: administrators
        let id = try campaign(hub)
        let queued = try outbox(hub, "review.assigned")
        let to = queued.map(\.recipient).sorted()
        #expect(
            to == [
                "boss@x.org", "dora.m@clinic.example", "identity@clinic.example", "identity@clinic.example",
                "identity@clinic.example",
            ])
        let toBoss = try #require(queued.first { $0.recipient == "boss@x.org" })
        #expect(toBoss.body.contains("boss@x.org, you have 2 item(s) to review") && toBoss.body.contains("Front desk"))
        #expect(toBoss.body.contains("Packages: receptionist 2") && toBoss.body.contains("/reviews/\(id)/items"))
        #expect(queued.contains { $0.recipient == "dora.m@clinic.example" && $0.body.contains("1 item(s)") })
        #expect(queued.contains { $0.body.contains("administrators decide them") })
        // Names of reviewers, packages, counts: never who is reviewed, nor where they work.
        for person in ["ana@x.org", "bruno@x.org", "eve@x.org", "carla@x.org", "CLN-CEN"] {
            #expect(!queued.contains { $0.body.contains(person) || $0.subject.contains(person) }, "\(person)")
        }
        eventually("delivered over SMTP") { smtp.messages().contains { $0.contains("To: <dora.m@clinic.example>") } }
    }

    // MARK: - Fallback at creation

    @Test func peopleWithoutAUsableManager_goToTheFallbackGroup_neverToAdministratorsSilently() throws {
        let hub = try LiveHub(policy: policy) { $0.reviewFallbackGroup = "Access Reviewers" }
        defer { hub.stop(); ehr.stop() }
        let rita = try user(hub, "rita@x.org", title: "Auditor")
        let sam = try user(hub, "sam@x.org", title: "Auditor")
        let ina = try user(hub, "ina@x.org", title: "Auditor", active: false)
        let carla = try user(hub, "carla@x.org")  // no manager, and in the group herself
        let gone = try user(hub, "gone@x.org", title: "Manager", active: false)
        _ = try user(hub, "dan@x.org", manager: gone)  // a manager who left
        try group(hub, "Access Reviewers", members: [rita, sam, ina, carla])
        let id = try campaign(hub)
        let all = try items(hub, id)
        #expect(all["carla@x.org"]?["reviewers"] == .array([.string("rita@x.org"), .string("sam@x.org")]))
        #expect(
            all["dan@x.org"]?["reviewers"]
                == .array([.string("carla@x.org"), .string("rita@x.org"), .string("sam@x.org")]))
        #expect(all.values.allSatisfy { $0["assignment"]?.stringValue == "fallback" })
        let carlaToken = try hub.makeToken("carla@x.org", [.review])
        #expect(try items(hub, id, token: carlaToken).keys.sorted() == ["dan@x.org"])
        #expect(try decide(hub, carlaToken, id, seq(all["carla@x.org"])) == 403)  // her own access
        #expect(try decide(hub, hub.admin, id, seq(all["dan@x.org"])) == 403)  // not the administrators'
        #expect(try decide(hub, try hub.makeToken("sam@x.org", [.review]), id, seq(all["carla@x.org"])) == 200)
        #expect(try decide(hub, try hub.makeToken("rita@x.org", [.review]), id, seq(all["carla@x.org"])) == 409)
        #expect(try decide(hub, carlaToken, id, seq(all["dan@x.org"])) == 200)
        let created = try #require(try audit(hub, id, action: "review.create").first)
        #expect(created["attributes"]?.arrayValue?.contains(.string("fallback:2")) == true, "\(created)")
    }

    // MARK: - Escalation

    @Test func undecidedItems_goToTheManagersManager_once_drivenByTheScheduleAcrossRestarts() throws {
        let clock = ManualClock()
        let settings = try Self.queueOnly("{}")
        let configure: (inout HubConfig) -> Void = {
            $0.clock = clock
            $0.notifications = settings
        }
        let hub = try LiveHub(policy: policy, configure: configure)
        defer { ehr.stop() }
        let chief = try user(hub, "chief@x.org", title: "Director")
        let boss = try user(hub, "boss@x.org", title: "Manager", manager: chief)
        let ana = try user(hub, "ana@x.org", manager: boss)
        _ = try user(hub, "bruno@x.org", manager: boss)
        _ = try user(hub, "deputy@x.org", title: "Manager")
        let id = try campaign(hub, dueDays: 7)
        #expect(try hub.server.reviews?.escalateDue(days: 2) == 0)  // a week to go
        let before = try items(hub, id)
        let bossToken = try hub.makeToken("boss@x.org", [.review])
        // Handed on by its reviewer: no longer with its original reviewer, so not escalated.
        let handed = try delegate(
            hub, bossToken, id, seq(before["bruno@x.org"]), #"{"to": "deputy@x.org", "reason": "I am on leave"}"#)
        #expect(handed.status == 200, "\(handed.text)")
        let dir = hub.directory.path
        hub.server.shutdown()
        clock.advance(by: 5 * 86400 + 60)  // two days before the due date, while the hub is down
        let again = try LiveHub(policy: policy) {
            configure(&$0)
            $0.dataDirectory = dir
        }
        // The schedule's first pass, at start-up, escalates from the stored items.
        eventually("escalated by the schedule") {
            try items(again, id)["ana@x.org"]?["reviewer"]?.stringValue == "chief@x.org"
        }
        let after = try items(again, id)
        let escalated = try #require(after["ana@x.org"])
        #expect(escalated["escalated"] == .bool(true) && escalated["originalReviewer"]?.stringValue == "boss@x.org")
        #expect(escalated["assignment"]?.stringValue == "escalated")
        #expect(after["bruno@x.org"]?["reviewer"]?.stringValue == "deputy@x.org")
        #expect(after["bruno@x.org"]?["escalated"] == .bool(false))
        #expect(try again.server.reviews?.escalateDue(days: 2) == 0)  // once
        let note = try #require(try outbox(again, "review.escalated").first)
        #expect(note.body.contains("boss@x.org went to chief@x.org (manager's manager)"), "\(note.body)")
        #expect(try outbox(again, "review.escalated").map(\.recipient).sorted() == ["boss@x.org", "chief@x.org"])
        again.server.shutdown()
        // Another restart neither repeats the escalation nor undoes it.
        let third = try LiveHub(policy: policy) {
            configure(&$0)
            $0.dataDirectory = dir
        }
        defer { third.stop(); hub.directory.remove() }
        #expect(try third.server.reviews?.escalateDue(days: 2) == 0)
        #expect(try audit(third, ana, action: "review.escalate").count == 1)
        #expect(try decide(third, try third.makeToken("boss@x.org", [.review]), id, seq(escalated)) == 403)
        #expect(try decide(third, try third.makeToken("chief@x.org", [.review]), id, seq(escalated)) == 200)
    }

    @Test func escalation_isOffAtZeroDays_andSparesCampaignsShorterThanItsWindow() throws {
        let clock = ManualClock()
        // The schedule does not escalate here (0 days): the test does, by hand.
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.reviewEscalationDays = 0
        }
        defer { hub.stop(); ehr.stop() }
        let chief = try user(hub, "chief@x.org", title: "Director")
        let boss = try user(hub, "boss@x.org", title: "Manager", manager: chief)
        _ = try user(hub, "ana@x.org", manager: boss)
        let reviews = try #require(hub.server.reviews)
        let short = try campaign(hub, dueDays: 1)
        clock.advance(by: 43200)  // within two days of its due date, but it never ran longer than that
        #expect(try reviews.escalateDue(days: 2) == 0)
        #expect(try items(hub, short)["ana@x.org"]?["reviewer"]?.stringValue == "boss@x.org")
        let long = try campaign(hub, dueDays: 7)
        clock.advance(by: 6 * 86400)  // a day before the long one's due date
        #expect(try reviews.escalateDue(days: 0) == 0)
        #expect(try items(hub, long)["ana@x.org"]?["reviewer"]?.stringValue == "boss@x.org")
        #expect(try reviews.escalateDue(days: 2) == 1)
        #expect(try items(hub, long)["ana@x.org"]?["reviewer"]?.stringValue == "chief@x.org")
    }

    @Test func escalation_neverToThePersonReviewed_goesToTheFallbackGroupInstead() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.reviewFallbackGroup = "Access Reviewers"
            $0.reviewEscalationDays = 0  // the test escalates by hand
        }
        defer { hub.stop(); ehr.stop() }
        let rita = try user(hub, "rita@x.org", title: "Auditor")
        try group(hub, "Access Reviewers", members: [rita])
        let boss = try user(hub, "boss@x.org", title: "Manager")
        let ana = try user(hub, "ana@x.org", manager: boss)
        _ = try user(hub, "bruno@x.org", manager: boss)
        // ana manages her own manager: she must not become the reviewer of her own access.
        let put = try hub.call(
            "PUT", "/scim/v2/Users/\(boss)", body: Self.userBody("boss@x.org", title: "Manager", manager: ana))
        #expect(put.status == 200, "\(put.text)")
        let id = try campaign(hub)
        clock.advance(by: 5 * 86400 + 1)
        #expect(try hub.server.reviews?.escalateDue(days: 2) == 2)
        let all = try items(hub, id)
        #expect(all["ana@x.org"]?["reviewers"] == .array([.string("rita@x.org")]))
        #expect(all["bruno@x.org"]?["reviewers"] == .array([.string("ana@x.org")]))
        let entry = try #require(try audit(hub, ana, action: "review.escalate").first)
        #expect(
            entry["attributes"]?.arrayValue?.contains(.string("to the fallback group 'Access Reviewers' (1 member(s))"))
                == true)
    }

    @Test func escalation_toAdministrators_isTheLastResort_andSaysSo() throws {
        let clock = ManualClock()
        let settings = try Self.queueOnly(#"{"review.escalated": ["identity@clinic.example"]}"#)
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.notifications = settings
            $0.reviewEscalationDays = 0  // the test escalates by hand
        }
        defer { hub.stop(); ehr.stop() }
        let boss = try user(hub, "boss@x.org", title: "Manager")  // no manager, no fallback group
        let ana = try user(hub, "ana@x.org", manager: boss)
        let id = try campaign(hub)
        clock.advance(by: 5 * 86400 + 1)
        #expect(try hub.server.reviews?.escalateDue(days: 2) == 1)
        let item = try #require(try items(hub, id)["ana@x.org"])
        #expect(item["reviewers"] == .array([]) && item["escalated"] == .bool(true))
        #expect(try decide(hub, try hub.makeToken("boss@x.org", [.review]), id, seq(item)) == 403)
        let entry = try #require(try audit(hub, ana, action: "review.escalate").first)
        let said = "to administrators (no manager's manager, no fallback reviewer)"
        #expect(entry["attributes"]?.arrayValue?.contains(.string(said)) == true, "\(entry)")
        let notes = try outbox(hub, "review.escalated")
        #expect(notes.map(\.recipient).sorted() == ["boss@x.org", "identity@clinic.example"])
        #expect(notes.allSatisfy { $0.body.contains(said) && !$0.body.contains("ana@x.org") })
        #expect(try decide(hub, hub.admin, id, seq(item)) == 200)
    }

    // MARK: - Delegation

    @Test func aReviewer_delegatesAnItem_auditedAndAnnounced() throws {
        let settings = try Self.queueOnly("{}")
        let hub = try LiveHub(policy: policy) { $0.notifications = settings }
        defer { hub.stop(); ehr.stop() }
        let boss = try user(hub, "boss@x.org", title: "Manager")
        let ana = try user(hub, "ana@x.org", manager: boss)
        _ = try user(hub, "bruno@x.org", manager: boss)
        _ = try user(hub, "deputy@x.org", title: "Manager")
        let id = try campaign(hub)
        let all = try items(hub, id)
        let boss1 = try hub.makeToken("boss@x.org", [.review])
        let r = try delegate(
            hub, boss1, id, seq(all["ana@x.org"]), #"{"to": "deputy@x.org", "reason": "she works for him now"}"#)
        #expect(r.status == 200, "\(r.text)")
        #expect(
            r.object["reviewer"]?.stringValue == "deputy@x.org" && r.object["delegatedBy"]?.stringValue == "boss@x.org")
        #expect(r.object["assignment"]?.stringValue == "delegated")
        #expect(r.object["delegationReason"]?.stringValue == "she works for him now")
        #expect(try decide(hub, boss1, id, seq(all["ana@x.org"])) == 403)
        // A token holder who is no User may be a delegate too.
        let rita = try hub.makeToken("rita", [.review])
        let on = try delegate(
            hub, try hub.makeToken("deputy@x.org", [.review]), id, seq(all["ana@x.org"]),
            #"{"to": "rita", "reason": "the auditor checks this one"}"#)
        #expect(on.status == 200, "\(on.text)")
        #expect(try decide(hub, rita, id, seq(all["ana@x.org"])) == 200)
        #expect(try audit(hub, ana, action: "review.delegate").count == 2)
        let note = try #require(try outbox(hub, "review.delegated").first { $0.recipient == "deputy@x.org" })
        #expect(note.body.contains("boss@x.org handed 1 item to deputy@x.org") && note.body.contains("Front desk"))
        #expect(!note.body.contains("ana@x.org") && !note.body.contains("works for him"))
    }

    @Test func badDelegations_areRefusedNamingTheProblem_andChangeNothing() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let boss = try user(hub, "boss@x.org", title: "Manager")
        let ana = try user(hub, "ana@x.org", manager: boss)
        _ = try user(hub, "bruno@x.org", manager: boss)
        _ = try user(hub, "deputy@x.org", title: "Manager")
        _ = try user(hub, "left@x.org", title: "Manager", active: false)
        let id = try campaign(hub)
        let all = try items(hub, id)
        let (a, b) = (seq(all["ana@x.org"]), seq(all["bruno@x.org"]))
        let bossToken = try hub.makeToken("boss@x.org", [.review])
        let deputy = try hub.makeToken("deputy@x.org", [.review])
        #expect(try decide(hub, bossToken, id, b) == 200)
        let reason = #""reason": "on leave""#
        let cases: [(String, Int, String, Int, String)] = [
            (bossToken, a, #"{"to": "ana@x.org", \#(reason)}"#, 403, "the person under review"),
            (bossToken, a, #"{"to": "BOSS@x.org", \#(reason)}"#, 400, "'to' is you"),
            (bossToken, a, #"{"to": "nobody@x.org", \#(reason)}"#, 400, "no active User and no token holder"),
            (bossToken, a, #"{"to": "left@x.org", \#(reason)}"#, 400, "no active User and no token holder"),
            (bossToken, a, #"{"to": "hr", \#(reason)}"#, 400, "no active User and no token holder"),  // a feed
            (bossToken, a, #"{"to": "not a name", \#(reason)}"#, 400, "'to' may hold only"),
            (bossToken, a, #"{"to": "scheduler", \#(reason)}"#, 400, "a name the hub keeps"),
            (bossToken, a, #"{"to": "deputy@x.org", "reason": "  "}"#, 400, "'reason' is required"),
            (bossToken, a, #"{\#(reason)}"#, 400, "'to' is required"),
            (bossToken, a, #"{"to": "deputy@x.org", \#(reason), "until": 3}"#, 400, "unknown key 'until'"),
            (deputy, a, #"{"to": "deputy@x.org", \#(reason)}"#, 403, "not yours"),
            (hub.admin, a, #"{"to": "deputy@x.org", \#(reason)}"#, 403, "not yours"),
            (bossToken, 99, #"{"to": "deputy@x.org", \#(reason)}"#, 404, "no item 99"),
            (bossToken, b, #"{"to": "deputy@x.org", \#(reason)}"#, 409, "decided already"),
        ]
        for (token, item, body, status, fragment) in cases {
            let r = try delegate(hub, token, id, item, body)
            #expect(r.status == status, "\(body): \(r.text)")
            #expect(r.object["detail"]?.stringValue?.contains(fragment) == true, "\(body): \(r.text)")
        }
        #expect(try hub.call("POST", "/admin/reviews/\(id)/cancel", token: hub.admin).status == 200)
        let closed = try delegate(hub, bossToken, id, a, #"{"to": "deputy@x.org", \#(reason)}"#)
        #expect(closed.status == 409 && closed.object["detail"]?.stringValue == "the campaign is cancelled")
        #expect(try items(hub, id)["ana@x.org"]?["reviewer"]?.stringValue == "boss@x.org")
        #expect(try audit(hub, ana, action: "review.delegate").isEmpty)
    }

    // MARK: - Tenure

    @Test func items_sayHowLongThePackageHasBeenHeld() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        let start = clock.now()
        _ = try user(hub, "ana@x.org")
        let bruno = try user(hub, "bruno@x.org")
        let carla = try user(hub, "carla@x.org")
        func title(_ t: String) throws {
            let r = try hub.call(
                "PATCH", "/scim/v2/Users/\(bruno)",
                body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
                    + #""Operations":[{"op":"replace","path":"title","value":"\#(t)"}]}"#)
            #expect(r.status == 200, "\(r.text)")
        }
        clock.advance(by: 10 * 86400)
        try title("Billing Specialist")  // bruno gives the package up ...
        clock.advance(by: 10 * 86400)
        try title("Receptionist")  // ... and holds it again from here
        // carla's holding predates the record: first observed when the campaign lists her.
        try hub.server.store.write { try $0.connection.removeHolding(personID: carla, package: "receptionist") }
        clock.advance(by: 20 * 86400 + 3600)
        let id = try campaign(hub)
        let all = try items(hub, id)
        func context(_ name: String) -> JSONObject? { all[name]?["context"]?.objectValue }
        #expect(context("ana@x.org")?["heldDays"] == .int(40))
        #expect(context("ana@x.org")?["heldSince"]?.stringValue == Timestamp.format(start))
        #expect(context("bruno@x.org")?["heldDays"] == .int(20))
        #expect(context("carla@x.org")?["heldDays"] == .int(0))
        #expect(context("carla@x.org")?["heldSince"]?.stringValue == Timestamp.format(clock.now()))
    }

    // MARK: - Configuration

    @Test func escalationSettings_areReadFromTheConfig_andBadOnesRefusedByName() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func load(_ text: String) throws -> HubConfig {
            let path = dir.path + "/config.json"
            _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
            return try HubConfig.load(path: path)
        }
        #expect(HubConfig().reviewEscalationDays == 2 && HubConfig().reviewFallbackGroup == nil)
        let c = try load(#"{"reviewEscalationDays": 0, "reviewFallbackGroup": "Access Reviewers"}"#)
        #expect(c.reviewEscalationDays == 0 && c.reviewFallbackGroup == "Access Reviewers")
        for (text, fragment) in [
            (#"{"reviewEscalationDays": -1}"#, "reviewEscalationDays must be a number of days in 0...366"),
            (#"{"reviewEscalationDays": "2"}"#, "reviewEscalationDays must be"),
            (#"{"reviewFallbackGroup": ""}"#, "reviewFallbackGroup must be a Group's displayName"),
            (#"{"reviewFallbackGroup": " Reviewers"}"#, "reviewFallbackGroup must be"),
            (#"{"reviewFallbackGroup": ["Reviewers"]}"#, "reviewFallbackGroup must be"),
        ] {
            let error = #expect(throws: ConfigError.self) { _ = try load(text) }
            #expect(error?.description.contains(fragment) == true, "\(text): \(error?.description ?? "")")
        }
        for event in ["review.assigned", "review.escalated", "review.delegated"] {
            _ = try load(#"{"notifications": {"recipients": {"\#(event)": ["identity@clinic.example"]}}}"#)
        }
    }
}
