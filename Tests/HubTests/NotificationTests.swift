// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import EHRTestServer
import HTTPServer
import HubBase
import Hub
import HubCrypto
import HubLog
import JSONCore
import Provisioning
import Store
import TestSupport

/// Notifications: a durable outbox, e-mail to a real SMTP server (aiosmtpd), signed
/// webhooks; nothing lost while a server is down.
@Suite struct NotificationTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr, packages: #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#)
    }

    /// A hub whose feed guard trips after 3 leavers, announcing to `notifications`.
    func hub(_ notifications: String) throws -> LiveHub {
        let settings = try HubConfig.notificationSettings(try JSONParser().parse(Array(notifications.utf8)))
        return try LiveHub(policy: policy) {
            $0.engine.feedGuard.limit = PolicyChangeLimit(people: 3, share: 0)
            $0.notifications = settings
        }
    }

    /// Six provisioned receptionists made inactive by the feed: the last three are held.
    func tripTheGuard(_ hub: LiveHub) throws {
        var ids: [String] = []
        for i in 1...6 {
            let r = try hub.call("POST", "/scim/v2/Users", body: person("desk\(i)@x.org", title: "Receptionist"))
            ids.append(try #require(r.object["id"]?.stringValue))
        }
        eventually("provisioned") { (1...6).allSatisfy { ehr.snapshot()["desk\($0)@x.org"]?.active == true } }
        let leave =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"active","value":false}]}"#
        for id in ids { #expect(try hub.call("PATCH", "/scim/v2/Users/\(id)", body: leave).status == 200) }
    }

    func outbox(_ hub: LiveHub) throws -> [JSONObject] {
        (try hub.call("GET", "/admin/notifications", token: hub.admin).object["notifications"]?.arrayValue ?? [])
            .compactMap(\.objectValue)
    }

    @Test func aFeedHold_isMailedToItsRecipients_overSMTP() throws {
        let smtp = try SMTPServer()
        let hub = try hub(
            #"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                + #""recipients": {"feed.hold": ["security@clinic.example"]}}"#)
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        try tripTheGuard(hub)
        eventually("the hold was mailed") { smtp.messages().count == 1 }
        let mail = try #require(smtp.messages().first)
        #expect(mail.contains("Subject: ScimHub: access removals held for feed hr"))
        #expect(mail.contains("To: <security@clinic.example>") && mail.contains("From: ScimHub <hub@clinic.example>"))
        #expect(mail.contains("/admin/holds/") && mail.contains("lost access"))
        eventually("recorded as sent") { try outbox(hub).first?["state"]?.stringValue == "sent" }
    }

    @Test func nothingIsLost_whileTheSMTPServerIsDown() throws {
        let smtp = try SMTPServer()
        smtp.stop()
        let hub = try hub(
            #"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                + #""recipients": {"*": ["identity@clinic.example"]}, "backoffBaseSeconds": 0.2}"#)
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        try tripTheGuard(hub)
        eventually("a failed attempt is recorded") {
            try outbox(hub).contains {
                ($0["attempts"]?.numberValue?.int64 ?? 0) > 0 && $0["state"]?.stringValue == "pending"
            }
        }
        #expect(smtp.messages().isEmpty)
        try smtp.start()
        eventually("delivered once the server is back", timeout: 20) { smtp.messages().count == 1 }
        eventually("recorded as sent") { try outbox(hub).allSatisfy { $0["state"]?.stringValue == "sent" } }
    }

    @Test func webhooks_carryAnHMACSignature_overTheTimestampAndBody() throws {
        let secretDir = TemporaryDirectory()
        defer { secretDir.remove() }
        let secret = "webhook-secret-0123456789"
        _ = FileManager.default.createFile(atPath: secretDir.path + "/hook", contents: Data(secret.utf8))
        let received = Mutex<[HTTPRequest]>([])
        let receiver = try HTTPServer(
            address: ListenAddress("127.0.0.1:0")!, logger: Logger(label: "hook", silent: true)
        ) { request in
            received.withLock { $0.append(request) }
            return HTTPResponse(status: 204)
        }
        Thread { receiver.run() }.start()
        defer {
            receiver.shutdown()
            receiver.waitUntilStopped()
        }
        let hub = try hub(
            #"{"webhooks": [{"url": "http://127.0.0.1:\#(receiver.port)/hooks", "#
                + #""secretFile": "\#(secretDir.path)/hook","#
                + #""events": ["feed.hold"]}]}"#)
        defer { hub.stop(); ehr.stop() }
        try tripTheGuard(hub)
        eventually("the webhook was called") { received.withLock { $0.count } == 1 }
        let request = try #require(received.withLock { $0.first })
        #expect(request.method == .post && request.path == "/hooks")
        #expect(request.headers["X-ScimHub-Event"] == "feed.hold")
        let timestamp = try #require(request.headers["X-ScimHub-Timestamp"])
        let expected =
            "sha256="
            + hexString(
                Crypto.hmacSHA256(key: Array(secret.utf8), data: Array((timestamp + ".").utf8) + request.body))
        #expect(request.headers["X-ScimHub-Signature"] == expected)
        let body = try JSONParser().parse(request.body).objectValue
        #expect(body?["event"]?.stringValue == "feed.hold" && body?["subject"]?.stringValue?.contains("hr") == true)
    }

    @Test func reviewers_areRemindedBeforeTheDueDate_once() throws {
        let smtp = try SMTPServer()
        let clock = ManualClock()
        let settings = try HubConfig.notificationSettings(
            try JSONParser().parse(
                Array(
                    (#"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                        + #""recipients": {"review.reminder": ["identity@clinic.example"]}}"#).utf8)))
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.notifications = settings
        }
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        let boss = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("boss@x.org", title: "Manager")).object["id"]?
                .stringValue)
        let ana = person("ana@x.org", title: "Receptionist").replacingOccurrences(
            of: #""schemas":["#,
            with: #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"\#(boss)"}},"#
                + #""schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","#)
        #expect(try hub.call("POST", "/scim/v2/Users", body: ana).status == 201)
        eventually("provisioned") { ehr.snapshot()["ana@x.org"]?.roles == ["scheduling"] }
        let review = try hub.call(
            "POST", "/admin/reviews", token: hub.admin, body: #"{"name": "Front desk", "target": "ehr", "dueDays": 7}"#)
        #expect(review.status == 201, "\(review.text)")
        #expect(try hub.server.reviews?.remindDue(days: 3) == 0)  // a week away
        clock.advance(by: 5 * 86400)
        #expect(try hub.server.reviews?.remindDue(days: 3) == 1)
        #expect(try hub.server.reviews?.remindDue(days: 3) == 0)  // once
        // The manager was also told of the item when the campaign opened (review.assigned).
        eventually("the manager and the identity team were reminded") { smtp.messages().count == 3 }
        let mails = smtp.messages().filter { $0.contains("X-ScimHub-Event: review.reminder") }
        #expect(mails.count == 2)
        #expect(mails.contains { $0.contains("To: <boss@x.org>") && $0.contains("1 item(s) for boss@x.org") })
        #expect(mails.contains { $0.contains("To: <identity@clinic.example>") })
        #expect(mails.allSatisfy { $0.contains("Subject: ScimHub: 1 access review items due") })
    }

    @Test func aBurstOfDeadLetters_isOneMessage_notOnePerPerson() throws {
        ehr.setFault(.reject)  // every change refused: each person's job goes to the dead letter
        let hub = try hub(
            #"{"email": {"url": "smtp://127.0.0.1:9", "from": "hub@clinic.example", "tls": "none"},"#
                + #""recipients": {"job.dead-letter": ["identity@clinic.example"]}}"#)
        defer { hub.stop(); ehr.stop() }
        for i in 1...3 {
            #expect(
                try hub.call("POST", "/scim/v2/Users", body: person("desk\(i)@x.org", title: "Receptionist")).status
                    == 201)
        }
        eventually("three dead letters") {
            try hub.server.store.read { try $0.jobs(target: "ehr", state: .dead, limit: 10) }.count == 3
        }
        #expect(try outbox(hub).filter { $0["subject"]?.stringValue?.contains("needs attention") == true }.count == 1)
    }

    /// A hub whose circuit opens after two failures, announcing everything to one address
    /// (an unreachable mail server: the outbox is what is checked).
    func outageHub(noticeSeconds: Double) throws -> LiveHub {
        let settings = try HubConfig.notificationSettings(
            try JSONParser().parse(
                Array(
                    (#"{"email": {"url": "smtp://127.0.0.1:9", "from": "hub@clinic.example", "tls": "none"},"#
                        + #""recipients": {"*": ["identity@clinic.example"]}}"#).utf8)))
        return try LiveHub(policy: policy) {
            $0.notifications = settings
            $0.engine.breakerThreshold = 2
            $0.engine.unavailableNoticeSeconds = noticeSeconds
        }
    }

    @Test func anOutage_isAnnouncedOnceItLastsTheNoticeTime_andItsEnd() throws {
        ehr.setFault(.error5xx)
        let hub = try outageHub(noticeSeconds: 1)
        defer { hub.stop(); ehr.stop() }
        #expect(
            try hub.call("POST", "/scim/v2/Users", body: person("desk1@x.org", title: "Receptionist")).status == 201)
        eventually("announced after a second of outage") {
            try outbox(hub).contains { $0["event"]?.stringValue == "target.unavailable" }
        }
        ehr.setFault(.none)
        eventually("provisioned once back") { ehr.snapshot()["desk1@x.org"]?.active == true }
        eventually("its end announced") { try outbox(hub).contains { $0["event"]?.stringValue == "target.recovered" } }
        #expect(try outbox(hub).filter { $0["event"]?.stringValue == "target.unavailable" }.count == 1)
    }

    @Test func aBlipShorterThanTheNoticeTime_isNotAnnounced() throws {
        ehr.setFault(.error5xx)
        let hub = try outageHub(noticeSeconds: 300)
        defer { hub.stop(); ehr.stop() }
        #expect(
            try hub.call("POST", "/scim/v2/Users", body: person("desk1@x.org", title: "Receptionist")).status == 201)
        eventually("the circuit opens") {
            try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.first?
                .objectValue?["circuit"]?.stringValue.map { $0 != "closed" } == true
        }
        ehr.setFault(.none)
        eventually("provisioned once back") { ehr.snapshot()["desk1@x.org"]?.active == true }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(try outbox(hub).allSatisfy { !($0["event"]?.stringValue ?? "").hasPrefix("target.") })
    }

    @Test func templateFiles_replaceTheWording() throws {
        let smtp = try SMTPServer()
        let dir = TemporaryDirectory()
        _ = FileManager.default.createFile(
            atPath: dir.path + "/feed.hold.txt",
            contents: Data("Subject: HOLD: feed {{feed}}\n\nHeld because {{reason}}.\nSee hold {{holdId}}.\n".utf8))
        let hub = try hub(
            #"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                + #""recipients": {"feed.hold": ["security@clinic.example"]}, "templates": "\#(dir.path)"}"#)
        defer { hub.stop(); ehr.stop(); smtp.stop(); dir.remove() }
        try tripTheGuard(hub)
        eventually("mailed") { smtp.messages().count == 1 }
        let mail = try #require(smtp.messages().first)
        #expect(mail.contains("Subject: HOLD: feed hr") && mail.contains("Held because hr: "), "\(mail)")
        #expect(!mail.contains("{{"), "every placeholder filled")
    }

    @Test func badTemplateFiles_areRefusedNamingTheFile() throws {
        for (name, text, fragment) in [
            ("feed.hold.txt", "Subject: {{nmae}}\n\nbody\n", "feed.hold.txt uses {{nmae}}"),
            ("feed.hold.txt", "no subject line\n", "must start with 'Subject: …'"),
            ("holiday.txt", "Subject: x\n\ny\n", "holiday.txt is not <event>.txt"),
        ] {
            let dir = TemporaryDirectory()
            defer { dir.remove() }
            _ = FileManager.default.createFile(atPath: dir.path + "/" + name, contents: Data(text.utf8))
            let error = #expect(throws: ConfigError.self) {
                _ = try HubConfig.notificationSettings(
                    try JSONParser().parse(Array(#"{"templates": "\#(dir.path)"}"#.utf8)))
            }
            #expect(error?.description.contains(fragment) == true, "\(name): \(error?.description ?? "")")
        }
        // The built-in templates, written out, load back unchanged.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let written = try NotificationTemplates.writeDefaults(to: dir.path)
        #expect(written.count == NotificationTemplates.defaults.count)
        #expect(try NotificationTemplates.load(directory: dir.path).byEvent == NotificationTemplates.defaults)
        #expect(
            Set(NotificationTemplates.defaults.keys).isSuperset(of: NotificationEvent.all.map(\.rawValue)),
            "every event has a default template")
    }

    @Test func badSettings_areRefusedNamingTheKey() throws {
        for (text, fragment) in [
            (#"{"email": {"url": "http://x", "from": "a@b"}}"#, "notifications.email"),
            (#"{"recipients": {"nonsense": ["a@b"]}}"#, "unknown event 'nonsense'"),
            (#"{"recipients": {"*": ["not an address"]}}"#, "notifications.recipients.*"),
            (#"{"webhooks": [{"url": "https://x"}]}"#, "secretEnv or secretFile"),
            (#"{"webhooks": [{"url": "https://x", "secretEnv": "NO_SUCH_VARIABLE_Q"}]}"#, "NO_SUCH_VARIABLE_Q"),
            (#"{"sms": {}}"#, "unknown config key notifications.sms"),
            (#"{"email": {"url": "smtp://mail.example:25", "from": "a@b", "tls": "none"}}"#, "only for a relay"),
        ] {
            let error = #expect(throws: ConfigError.self) {
                _ = try HubConfig.notificationSettings(try JSONParser().parse(Array(text.utf8)))
            }
            #expect(error?.description.contains(fragment) == true, "\(text): \(error?.description ?? "")")
        }
    }
}
