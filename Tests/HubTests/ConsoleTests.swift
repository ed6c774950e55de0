// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import Hub
import HTTPServer
import HubCrypto
import JSONCore
import Store
import TestSupport

/// The web console's server side over HTTP: emergency sign-in, sessions and their limits,
/// CSRF, the auditor's read-only reach, escaping, and a request made and approved in pages.
/// (The browser tests drive the same pages in Chromium.)
@Suite struct ConsoleTests {
    let ehr: EHRTestServer
    let clock = ManualClock()

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "clinic-reports", "description": "Clinic activity reports", "#
                + #""grants": {"ehr": ["clinic-reporting"]}, "requestable": {"approval": ["manager"], "maxDays": 30}}"#)
    }

    func hub() throws -> LiveHub { try LiveHub(policy: policy) { $0.clock = clock } }

    /// A session for `userName` with `roles`, as a sign-in would make it; returns the cookie.
    func session(_ hub: LiveHub, _ userName: String, roles: [String], personID: String? = nil) throws -> (
        cookie: String, csrf: String
    ) {
        let id = base64URLString(Crypto.randomBytes(32)), csrf = base64URLString(Crypto.randomBytes(24))
        let now = clock.now()
        try hub.server.store.write { w in
            try w.connection.insertConsoleSession(
                ConsoleSessionRecord(
                    idHash: hexString(Crypto.sha256(id)), userName: userName, personID: personID, roles: roles,
                    method: "oidc", csrf: csrf, created: now, lastSeen: now, expires: now + 8 * 3600))
        }
        return ("scimhub-session=\(id)", csrf)
    }

    func get(_ hub: LiveHub, _ path: String, cookie: String? = nil) throws -> RawResponse {
        let c = try RawHTTPClient(port: hub.port)
        return try #require(c.request("GET", path, headers: cookie.map { [("Cookie", $0)] } ?? []))
    }

    func post(_ hub: LiveHub, _ path: String, cookie: String?, form: [(String, String)], origin: String? = nil)
        throws -> RawResponse
    {
        let body = form.map { "\(HTTPFormEscape.escape($0.0))=\(HTTPFormEscape.escape($0.1))" }.joined(separator: "&")
        var h = [("Content-Type", "application/x-www-form-urlencoded")]
        if let cookie { h.append(("Cookie", cookie)) }
        if let origin { h.append(("Origin", origin)) }
        let c = try RawHTTPClient(port: hub.port)
        return try #require(c.request("POST", path, headers: h, body: Array(body.utf8)))
    }

    @Test func withoutASession_pagesGoToSignIn_andAssetsAreServedUnderAStrictPolicy() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let r = try get(hub, "/console/requests")
        #expect(r.status == 303 && r.header("Location") == "/console/login?next=%2Fconsole%2Frequests")
        let login = try get(hub, "/console/login")
        #expect(login.status == 200 && login.text.contains("Emergency sign-in"))
        let csp = try #require(login.header("Content-Security-Policy"))
        #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
        #expect(!login.text.contains("<script>"), "no inline script")
        #expect(try get(hub, "/console/static/console.css").status == 200)
        #expect(try get(hub, "/console/static/console.js").header("Content-Type")?.hasPrefix("text/javascript") == true)
    }

    @Test func emergencySignIn_needsPasswordAndCode_isAudited_andThrottled() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let secret = Crypto.randomBytes(20)
        try hub.server.store.write { w in
            try w.connection.insertLocalAccount(
                LocalAccountRecord(name: "break.admin", passwordHash: PasswordHash.make("correct horse"), created: 0))
            _ = try w.connection.enrolMFA(principal: "break.admin", secret: secret, now: 0)
        }
        func attempt(password: String, code: String) throws -> RawResponse {
            let page = try get(hub, "/console/login")
            let token = try #require(page.text.firstMatch(of: /name="_login" value="([^"]+)"/)?.1)
            let cookie = try #require(page.header("Set-Cookie")?.split(separator: ";").first)
            return try post(
                hub, "/console/login/local", cookie: String(cookie),
                form: [("_login", String(token)), ("name", "break.admin"), ("password", password), ("code", code)])
        }
        let wrong = try attempt(password: "wrong", code: LiveHub.totp(secret))
        #expect(wrong.status == 401 && wrong.header("Set-Cookie")?.contains("scimhub-session") != true)
        let ok = try attempt(password: "correct horse", code: LiveHub.totp(secret))
        #expect(ok.status == 303 && ok.header("Location") == "/console", "\(ok.status) \(ok.text)")
        let cookie = try #require(ok.header("Set-Cookie"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"))
        let dashboard = try get(hub, "/console", cookie: String(cookie.split(separator: ";")[0]))
        #expect(dashboard.status == 200 && dashboard.text.contains("Targets"), "\(dashboard.text.prefix(300))")
        let audit = try hub.call("GET", "/admin/audit?count=50", token: hub.admin).text
        #expect(audit.contains("console.sign-in") && audit.contains("emergency"))
        // Five failures from one place, then even the right password waits.
        for _ in 0..<4 { _ = try attempt(password: "nope", code: "000000") }
        let throttled = try attempt(password: "correct horse", code: LiveHub.totp(secret, stepOffset: 1))
        #expect(throttled.status == 429, "\(throttled.status)")
    }

    @Test func withTheIdentityProviderDown_emergencySignInStillWorks() throws {
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.console.oidc = OIDCSettings(issuer: "http://127.0.0.1:9", clientID: "scimhub")
        }
        defer { hub.stop(); ehr.stop() }
        let down = try get(hub, "/console/login/oidc")
        #expect(down.status == 503 && down.text.contains("use emergency sign-in"), "\(down.status)")
        let secret = Crypto.randomBytes(20)
        try hub.server.store.write { w in
            try w.connection.insertLocalAccount(
                LocalAccountRecord(name: "break.admin", passwordHash: PasswordHash.make("correct horse"), created: 0))
            _ = try w.connection.enrolMFA(principal: "break.admin", secret: secret, now: 0)
        }
        let page = try get(hub, "/console/login")
        let token = try #require(page.text.firstMatch(of: /name="_login" value="([^"]+)"/)?.1)
        let cookie = try #require(page.header("Set-Cookie")?.split(separator: ";").first)
        let ok = try post(
            hub, "/console/login/local", cookie: String(cookie),
            form: [
                ("_login", String(token)), ("name", "break.admin"), ("password", "correct horse"),
                ("code", LiveHub.totp(secret)),
            ])
        #expect(ok.status == 303 && ok.header("Set-Cookie")?.contains("scimhub-session") == true)
    }

    @Test func sessions_endWhenIdle_atTheirLimit_andAtSignOut() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let (cookie, csrf) = try session(hub, "ada@x.org", roles: ["admin"])
        #expect(try get(hub, "/console", cookie: cookie).status == 200)
        clock.advance(by: 14 * 60)
        #expect(try get(hub, "/console", cookie: cookie).status == 200, "still active within 15 minutes")
        clock.advance(by: 15 * 60 + 1)
        #expect(try get(hub, "/console", cookie: cookie).status == 303, "idle for more than 15 minutes")
        let (second, csrf2) = try session(hub, "ada@x.org", roles: ["admin"])
        let (third, _) = try session(hub, "ada@x.org", roles: ["admin"])
        // CSRF: a sign-out without the token, or from another origin, is refused.
        #expect(try post(hub, "/console/logout/everywhere", cookie: second, form: []).status == 403)
        let foreign = try post(
            hub, "/console/logout/everywhere", cookie: second, form: [("_csrf", csrf2)], origin: "https://evil.example")
        #expect(foreign.status == 403 && foreign.text.contains("another site"))
        #expect(try get(hub, "/console", cookie: third).status == 200)
        let out = try post(hub, "/console/logout/everywhere", cookie: second, form: [("_csrf", csrf2)])
        #expect(out.status == 303)
        #expect(try get(hub, "/console", cookie: third).status == 303, "signed out everywhere")
        _ = csrf
    }

    /// People are found by the words of their name, title and site, every word of the query
    /// narrowing; a renamed person is found by the new name only, a deleted one not at all.
    @Test func people_areFoundByName_title_andSite_fromTheIndex() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        func create(_ userName: String, _ display: String, title: String, site: String) throws -> String {
            let base = person(userName, title: title, sites: [site])
            var body = try #require(JSONParser().parse(Array(base.utf8)).objectValue)
            body["displayName"] = .string(display)
            let text = String(decoding: JSONWriter().write(.object(body)), as: UTF8.self)
            let r = try hub.call("POST", "/scim/v2/Users", body: text)
            return try #require(r.object["id"]?.stringValue, "\(r.text)")
        }
        let jose = try create("jsm@x.org", "José Smith-Jones", title: "Registered Nurse", site: "CLN-NORTH")
        let ana = try create("alima@x.org", "Ana Lima", title: "Registered Nurse", site: "CLN-CEN")
        _ = try create("bob@x.org", "Bob Stone", title: "Receptionist", site: "CLN-NORTH")
        func found(_ q: String) throws -> Set<String> {
            let r = try hub.call("GET", "/admin/people?q=\(HTTPForm.escape(q))", token: hub.admin)
            #expect(r.status == 200, "\(r.text)")
            return Set((r.object["people"]?.arrayValue ?? []).compactMap { $0.objectValue?["id"]?.stringValue })
        }
        #expect(try found("jones") == [jose])
        #expect(try found("jose sm") == [jose])
        #expect(try found("JOSÉ") == [jose])
        #expect(try found("nurse") == [jose, ana])
        #expect(try found("nurse north") == [jose])
        #expect(try found("north").count == 2)
        #expect(try found("nurse bob").isEmpty)
        #expect(try found("alima") == [ana])  // the user name still finds
        let rename = try hub.call(
            "PATCH", "/scim/v2/Users/\(ana)",
            body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
                + #""Operations":[{"op":"replace","path":"displayName","value":"Ana Souza"}]}"#)
        #expect(rename.status == 200)
        #expect(try found("souza") == [ana] && found("lima").isEmpty)
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(jose)").status == 204)
        #expect(try found("jones").isEmpty && found("nurse") == [ana])
        let (cookie, _) = try session(hub, "desk.help", roles: ["helpdesk"])
        let list = try get(hub, "/console/people?q=souza", cookie: cookie)
        #expect(list.text.contains("/console/people/\(ana)"))
    }

    @Test func aFinishedRun_isSignedOffOnce_withAComment() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let auditor = try hub.makeToken("compliance", [.auditor])
        // An account nobody owns, with a role whose name is markup: listed with what it holds, inert.
        ehr.seed([(userName: "ghost@x.org", attributes: [:], roles: ["<b>root</b>", "billing"])])
        let run = try #require(
            try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}").object["id"]?.stringValue)
        eventually("done") {
            try hub.call("GET", "/admin/reconciliations/\(run)", token: auditor).object["state"]?.stringValue == "done"
        }
        let path = "/admin/reconciliations/\(run)/sign-off"
        #expect(try hub.call("POST", path, token: auditor, body: #"{"comment": " "}"#).status == 400)
        #expect(try hub.call("POST", path, token: hub.reader, body: #"{"comment": "x"}"#).status == 403)
        #expect(
            try hub.call("POST", "/admin/reconciliations/nope/sign-off", token: auditor, body: #"{"comment": "x"}"#)
                .status == 404)
        let signed = try hub.call("POST", path, token: auditor, body: #"{"comment": "read in full"}"#)
        #expect(signed.status == 200 && signed.object["signOff"]?.objectValue?["by"]?.stringValue == "compliance")
        #expect(try hub.call("POST", path, token: hub.admin, body: #"{"comment": "again"}"#).status == 409)
        let report = try hub.call("GET", "/admin/reconciliations/\(run)/report", token: auditor).object
        #expect(report["signOff"]?.objectValue?["comment"]?.stringValue == "read in full")
        let (cookie, _) = try session(hub, "compliance", roles: ["auditor"])
        let page = try get(hub, "/console/reconciliations/\(run)", cookie: cookie).text
        #expect(
            page.contains("holds:<ul class=\"compact\"><li>&lt;b&gt;root&lt;/b&gt;</li><li>billing</li></ul>"),
            "\(page.prefix(3000))")
    }

    @Test func theOnCallDoctor_grantsBreakGlassWithACode_andEndsItEarly() throws {
        let policy = singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "emergency", "description": "Physician access in an emergency", "#
                + #""grants": {"ehr": ["physician"]}, "breakGlass": {"maxHours": 8}}"#)
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("rosa@x.org", title: "Receptionist"))
        _ = try hub.call("POST", "/scim/v2/Users", body: person("dr.on@x.org", title: "Physician"))
        eventually("provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let (cookie, csrf) = try session(hub, "dr.on@x.org", roles: ["break-glass"])
        let enrolled = try post(hub, "/console/mfa", cookie: cookie, form: [("_csrf", csrf)])
        let uri = try #require(enrolled.text.firstMatch(of: /secret=([A-Z2-7]+)/)?.1, "\(enrolled.text.prefix(300))")
        let secret = try #require(TOTP.base32Decode(String(uri)))
        let form: [(String, String)] = [
            ("_csrf", csrf), ("userName", "rosa@x.org"), ("package", "emergency"),
            ("reason", "arrest in bay 3"), ("hours", "1"),
        ]
        let wrong = try post(hub, "/console/break-glass", cookie: cookie, form: form + [("code", "000000")])
        #expect(wrong.status == 403 && wrong.text.contains("TOTP"), "\(wrong.status)")
        let granted = try post(
            hub, "/console/break-glass", cookie: cookie, form: form + [("code", LiveHub.totp(secret))])
        #expect(granted.status == 303, "\(granted.status) \(granted.text.prefix(300))")
        eventually("physician at once") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "physician"] }
        let page = try get(hub, "/console/break-glass", cookie: cookie)
        #expect(page.text.contains("rosa@x.org") && page.text.contains("min"), "\(page.text.prefix(400))")
        let id = try #require(page.text.firstMatch(of: /\/console\/break-glass\/([0-9a-f-]+)\/end/)?.1)
        let ended = try post(hub, "/console/break-glass/\(id)/end", cookie: cookie, form: [("_csrf", csrf)])
        #expect(ended.status == 303)
        eventually("taken back") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let audit = try hub.call("GET", "/admin/audit?action=break-glass.end", token: hub.admin).object["entries"]?
            .arrayValue
        #expect(audit?.count == 1)
        // The post-use review, by an administrator who neither granted nor received it.
        let (admin, adminCSRF) = try session(hub, "ada@x.org", roles: ["admin"])
        let reviewPage = try get(hub, "/console/break-glass", cookie: admin)
        #expect(reviewPage.text.contains("Awaiting review") && reviewPage.text.contains("arrest in bay 3"))
        let reviewed = try post(
            hub, "/console/break-glass/\(id)/review", cookie: admin,
            form: [("_csrf", adminCSRF), ("decision", "justified"), ("reason", "documented in the notes")])
        #expect(reviewed.status == 303, "\(reviewed.status) \(reviewed.text.prefix(300))")
        let listed = try hub.call("GET", "/admin/break-glass?state=reviewed", token: hub.admin).object["grants"]?
            .arrayValue?.first?.objectValue
        #expect(listed?["review"]?.objectValue?["decision"]?.stringValue == "justified")
    }

    @Test func anAdministrator_opensExtendsReassignsAndCancelsAReview() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("rosa@x.org", title: "Receptionist"))
        eventually("provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let (cookie, csrf) = try session(hub, "ada@x.org", roles: ["admin"])
        let opened = try post(
            hub, "/console/campaigns", cookie: cookie,
            form: [
                ("_csrf", csrf), ("name", "Desk <2026>"), ("scope", "target:ehr"), ("reviewers", "vera@x.org"),
                ("dueDays", "14"), ("defaultDecision", "keep-and-flag"),
            ])
        #expect(opened.status == 303 && opened.header("Location")?.contains("1%20item") == true, "\(opened.text)")
        let page = try get(hub, "/console/campaigns", cookie: cookie)
        #expect(page.text.contains("Desk &lt;2026&gt;"))
        let id = try #require(page.text.firstMatch(of: /\/console\/campaigns\/([0-9a-f-]+)\/extend/)?.1)
        #expect(
            try post(
                hub, "/console/campaigns/\(id)/extend", cookie: cookie, form: [("_csrf", csrf), ("dueDays", "21")]
            )
            .status == 303)
        let moved = try post(
            hub, "/console/campaigns/\(id)/reassign", cookie: cookie,
            form: [("_csrf", csrf), ("seq", "1"), ("reviewer", "wanda@x.org")])
        #expect(moved.status == 303, "\(moved.text.prefix(300))")
        let item = try hub.call("GET", "/reviews/\(id)/items", token: hub.admin).object["items"]?.arrayValue?.first?
            .objectValue
        #expect(item?["reviewer"]?.stringValue == "wanda@x.org", "\(String(describing: item))")
        #expect(try post(hub, "/console/campaigns/\(id)/cancel", cookie: cookie, form: [("_csrf", csrf)]).status == 303)
        #expect(
            try hub.call("GET", "/admin/reviews/\(id)", token: hub.admin).object["state"]?.stringValue == "cancelled")
    }

    @Test func aPolicyChange_isPreviewedThenAppliedWithACode() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("rosa@x.org", title: "Receptionist"))
        eventually("provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let secret = Crypto.randomBytes(20)
        _ = try hub.server.store.write { try $0.connection.enrolMFA(principal: "ada@x.org", secret: secret, now: 0) }
        let (cookie, csrf) = try session(hub, "ada@x.org", roles: ["admin"])
        let page = try get(hub, "/console/policy", cookie: cookie)
        #expect(page.text.contains("In force: version 1"), "\(page.text.prefix(400))")
        // The candidate: receptionists no longer get the front desk.
        let candidate = policy.replacingOccurrences(of: #"title eq \"Receptionist\""#, with: #"title eq \"Nobody\""#)
        let preview = try post(
            hub, "/console/policy/preview", cookie: cookie, form: [("_csrf", csrf), ("policy", candidate)])
        #expect(preview.status == 200 && preview.text.contains("1 would lose"), "\(preview.text.prefix(600))")
        #expect(ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"], "a preview changes nothing")
        let applied = try post(
            hub, "/console/policy/apply", cookie: cookie,
            form: [("_csrf", csrf), ("policy", candidate), ("code", LiveHub.totp(secret))])
        #expect(applied.text.contains("Stored as version 2 (active)"), "\(applied.text.prefix(400))")
        eventually("the change reaches the EHR") { ehr.snapshot()["rosa@x.org"]?.active == false }
    }

    @Test func tokens_areCreatedShownOnce_andRevoked_withACode() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let secret = Crypto.randomBytes(20)
        _ = try hub.server.store.write { try $0.connection.enrolMFA(principal: "ada@x.org", secret: secret, now: 0) }
        let (cookie, csrf) = try session(hub, "ada@x.org", roles: ["admin"])
        let made = try post(
            hub, "/console/tokens", cookie: cookie,
            form: [
                ("_csrf", csrf), ("principal", "dashboards"), ("scope", "scim:read"), ("days", "30"),
                ("code", LiveHub.totp(secret, stepOffset: -1)),
            ])
        let token = try #require(
            made.text.firstMatch(of: /<code>(shub_[A-Za-z0-9_-]+)<\/code>/)?.1, "\(made.text.prefix(500))")
        #expect(try hub.call("GET", "/scim/v2/Users?count=1", token: String(token)).status == 200)
        let id = try #require(Tokens.publicID(String(token)))
        let page = try get(hub, "/console/tokens", cookie: cookie)
        #expect(page.text.contains("dashboards") && page.text.contains("/console/tokens/\(id)/revoke"))
        // The API: not without a code, not one's own token, not twice.
        #expect(try hub.call("POST", "/admin/tokens/\(id)/revoke", token: hub.admin).status == 403)
        let own = try #require(Tokens.publicID(hub.admin))
        #expect(try hub.call("POST", "/admin/tokens/\(own)/revoke", token: hub.admin).status == 409)
        let revoked = try post(
            hub, "/console/tokens/\(id)/revoke", cookie: cookie,
            form: [("_csrf", csrf), ("code", LiveHub.totp(secret))])
        #expect(revoked.status == 303, "\(revoked.status) \(revoked.text.prefix(300))")
        #expect(try hub.call("GET", "/scim/v2/Users?count=1", token: String(token)).status == 401)
        let again = try post(
            hub, "/console/tokens/\(id)/revoke", cookie: cookie,
            form: [("_csrf", csrf), ("code", LiveHub.totp(secret, stepOffset: 1))])
        #expect(again.status == 409)
    }

    @Test func whoHasWhat_listsEachPackagesHolders() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        for name in ["rosa@x.org", "<b>ana</b>@x.org"] {
            _ = try hub.call("POST", "/scim/v2/Users", body: person(name, title: "Receptionist"))
        }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("mia@x.org", title: "Nurse"))
        let packages =
            try hub.call("GET", "/admin/access/packages", token: hub.admin).object["packages"]?.arrayValue?
            .compactMap(\.objectValue) ?? []
        let desk = packages.first { $0["name"]?.stringValue == "desk" }
        #expect(desk?["holders"] == .int(2) && desk?["grants"]?.objectValue?["ehr"] != nil, "\(packages)")
        #expect(try hub.call("GET", "/admin/access/packages/nope", token: hub.admin).status == 404)
        let (cookie, _) = try session(hub, "compliance", roles: ["auditor"])
        let page = try get(hub, "/console/access", cookie: cookie)
        #expect(page.status == 200 && page.text.contains("/console/access/desk"))
        let holders = try get(hub, "/console/access/desk", cookie: cookie)
        #expect(holders.text.contains("rosa@x.org") && holders.text.contains("&lt;b&gt;ana&lt;/b&gt;@x.org"))
        #expect(!holders.text.contains("mia@x.org"))
    }

    @Test func deadLetters_showWhoAndWhy_andAreRetriedFromThePage() throws {
        ehr.setFault(.reject)
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.engine.maxAttempts = 1
        }
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("nadia@x.org", title: "Receptionist"))
        eventually("a dead letter") {
            try hub.server.store.read { try $0.jobs(target: "ehr", state: .dead, limit: 10) }.count == 1
        }
        ehr.setFault(.none)
        let (cookie, csrf) = try session(hub, "desk.help", roles: ["helpdesk"])
        let page = try get(hub, "/console/targets", cookie: cookie)
        #expect(page.status == 200 && page.text.contains("nadia@x.org"), "\(page.text.prefix(400))")
        let job = try #require(page.text.firstMatch(of: /name="job" value="([^"]+)"/)?.1)
        let retried = try post(
            hub, "/console/targets/retry", cookie: cookie, form: [("_csrf", csrf), ("job", String(job))])
        #expect(retried.status == 303 && retried.header("Location")?.contains("queued") == true)
        eventually("provisioned after the retry") { ehr.snapshot()["nadia@x.org"]?.roles == ["scheduling"] }
        // "Probe every target now" says what answered; an auditor may not press it.
        ehr.setFault(.error5xx)
        let probed = try post(hub, "/console/targets/probe", cookie: cookie, form: [("_csrf", csrf)])
        #expect(probed.header("Location")?.contains(HTTPForm.escape("Probed: ehr: down.")) == true, "\(probed.text)")
        let (auditor, auditorCSRF) = try session(hub, "compliance", roles: ["auditor"])
        #expect(!(try get(hub, "/console/targets", cookie: auditor).text.contains("Probe every target now")))
        #expect(try post(hub, "/console/targets/probe", cookie: auditor, form: [("_csrf", auditorCSRF)]).status == 403)
        ehr.setFault(.none)
    }

    @Test func theAuditLog_isSearched_exported_andVerified() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        // A value a spreadsheet would run as a formula, in an audited name.
        _ = try hub.call("POST", "/scim/v2/Users", body: person("=cmd@x.org", title: "Receptionist"))
        let creates =
            try hub.call("GET", "/admin/audit?action=create&count=10", token: hub.admin).object["entries"]?
            .arrayValue ?? []
        #expect(!creates.isEmpty && creates.allSatisfy { $0.objectValue?["action"]?.stringValue == "create" })
        let verify = try hub.call("GET", "/admin/audit/verify", token: hub.admin).object
        #expect(verify["intact"]?.boolValue == true && (verify["headSeq"]?.numberValue?.int64 ?? 0) > 0)
        let (cookie, _) = try session(hub, "compliance", roles: ["auditor"])
        let page = try get(hub, "/console/audit?action=create", cookie: cookie)
        #expect(page.status == 200 && page.text.contains(">create<"), "\(page.text.prefix(300))")
        let csv = try get(hub, "/console/audit.csv?action=create", cookie: cookie)
        #expect(csv.status == 200 && csv.header("Content-Type")?.hasPrefix("text/csv") == true)
        #expect(csv.text.hasPrefix("seq,time,principal,action"), "\(csv.text.prefix(200))")
        let checked = try get(hub, "/console/audit/verify", cookie: cookie)
        #expect(checked.text.contains("The chain is intact") && checked.text.contains("<code>"))
        let (staff, _) = try session(hub, "rosa@x.org", roles: [])
        #expect(try get(hub, "/console/audit", cookie: staff).status == 403)
    }

    @Test func anAuditor_readsEverything_andChangesNothing() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let auditor = try hub.makeToken("compliance", [.auditor])
        #expect(try hub.call("GET", "/admin/targets", token: auditor).status == 200)
        #expect(try hub.call("GET", "/admin/audit?count=5", token: auditor).status == 200)
        let start = try hub.call("POST", "/admin/reconciliations", token: auditor, body: "{}")
        #expect(start.status == 403, "\(start.text)")
        let (cookie, _) = try session(hub, "compliance", roles: ["auditor"])
        #expect(try hub.call("POST", "/admin/targets/ehr/probe", token: hub.admin).status == 200)
        let dashboard = try get(hub, "/console", cookie: cookie)
        #expect(dashboard.status == 200 && dashboard.text.contains("Targets"))
        #expect(dashboard.text.contains("Last probe") && dashboard.text.contains("<td>up, "), "from the active probe")
        #expect(
            dashboard.text.contains("Last reconciliation") && dashboard.text.contains("Licences expiring in 30 days"))
        // A staff member's dashboard has their own work only.
        let (staff, _) = try session(hub, "rosa@x.org", roles: [])
        let own = try get(hub, "/console", cookie: staff).text
        #expect(own.contains("Review items waiting for you") && !own.contains("Licences") && !own.contains("Targets"))
    }

    @Test func people_areFoundByUserNameOrEmail_andAPersonsPageSaysWhatTheyHoldAndWhy() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let id = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("rosa.lima@x.org", title: "Receptionist")).object["id"]?
                .stringValue)
        _ = try hub.call("POST", "/scim/v2/Users", body: person("rosana@x.org", title: "Receptionist"))
        eventually("provisioned") { ehr.snapshot()["rosa.lima@x.org"]?.roles == ["scheduling"] }
        // The API an administrator (or helpdesk) looks people up with; a reader cannot.
        let found = try hub.call("GET", "/admin/people?q=ROSA", token: hub.admin).object["people"]?.arrayValue
        #expect(found?.count == 2)
        let helpdesk = try hub.makeToken("desk.help", [.helpdesk])
        #expect(try hub.call("GET", "/admin/people?q=rosa.l", token: helpdesk).object["people"]?.arrayValue?.count == 1)
        #expect(try hub.call("GET", "/admin/people?q=rosa", token: hub.reader).status == 403)
        #expect(try hub.call("GET", "/admin/people?q=rosa&count=0", token: hub.admin).status == 400)
        let (cookie, csrf) = try session(hub, "desk.help", roles: ["helpdesk"])
        let list = try get(hub, "/console/people?q=rosa.l", cookie: cookie)
        #expect(list.status == 200 && list.text.contains("/console/people/\(id)"), "\(list.text.prefix(400))")
        let person = try get(hub, "/console/people/\(id)", cookie: cookie)
        #expect(person.status == 200 && person.text.contains("rule: title eq &quot;Receptionist&quot;"))
        #expect(person.text.contains("Re-converge now"))
        let again = try post(hub, "/console/people/\(id)/reconverge", cookie: cookie, form: [("_csrf", csrf)])
        #expect(again.status == 303, "\(again.status) \(again.text)")
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text
        #expect(audit.contains("person.reconverge"))
        // Someone with no role to look people up gets the API's refusal as a page.
        let (staff, _) = try session(hub, "rosana@x.org", roles: [])
        #expect(try get(hub, "/console/people?q=rosa", cookie: staff).status == 403)
    }

    @Test func aRequest_madeAndApprovedInPages_andEveryValueIsEscaped() throws {
        let hub = try hub()
        defer { hub.stop(); ehr.stop() }
        let boss = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("boss@x.org", title: "Manager")).object["id"]?
                .stringValue)
        let rosa = person("rosa@x.org", title: "Receptionist").replacingOccurrences(
            of: #""schemas":["#,
            with: #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"\#(boss)"}},"#
                + #""schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","#)
        #expect(try hub.call("POST", "/scim/v2/Users", body: rosa).status == 201)
        eventually("provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let (staff, staffCSRF) = try session(hub, "rosa@x.org", roles: [])
        let page = try get(hub, "/console/requests", cookie: staff)
        #expect(page.text.contains("clinic-reports: Clinic activity reports"), "\(page.text.prefix(500))")
        let sent = try post(
            hub, "/console/requests", cookie: staff,
            form: [
                ("_csrf", staffCSRF), ("package", "clinic-reports"), ("days", "10"),
                ("justification", "<script>alert(1)</script> =HYPERLINK(\"x\")"),
            ])
        #expect(sent.status == 303, "\(sent.text)")
        let (manager, managerCSRF) = try session(hub, "boss@x.org", roles: ["approver"])
        let inbox = try get(hub, "/console/requests", cookie: manager)
        #expect(inbox.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !inbox.text.contains("<script>alert"))
        let id = try #require(inbox.text.firstMatch(of: /\/console\/requests\/([0-9a-f-]+)\/decide/)?.1)
        let approved = try post(
            hub, "/console/requests/\(id)/decide", cookie: manager,
            form: [("_csrf", managerCSRF), ("decision", "approve"), ("reason", "ok for a month")])
        #expect(approved.status == 303 && approved.header("Location")?.contains("granted") == true, "\(approved.text)")
        eventually("granted downstream") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"] }
        // Refusals come back as a page, with the API's status and message.
        let again = try post(
            hub, "/console/requests/\(id)/decide", cookie: manager,
            form: [("_csrf", managerCSRF), ("decision", "approve"), ("reason", "again")])
        #expect(again.status == 409 && again.text.contains("role=\"alert\""), "\(again.status)")
    }
}

/// Form encoding for the tests (the hub's own is in HTTPServer).
enum HTTPFormEscape {
    static func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? ""
    }
}
