// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import HTTPServer
import Hub
import HubLog
import JSONCore
import Store
import TestSupport

/// The console in a real browser (headless Chromium over WebDriver), signed in through a real
/// OpenID provider process: a staff member requests a package and the manager approves it,
/// an auditor reads and cannot change, a form from another site is refused, an idle session
/// ends, refused sign-ins say why. Every page is checked with axe-core; the screenshots in
/// the README come from here.
@Suite(.serialized) struct ConsoleBrowserTests {
    let ehr: EHRTestServer
    let provider: OIDCProvider
    let clock = ManualClock()

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
        provider = try OIDCProvider()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "desk", "description": "Front desk: appointments", "rule": "title eq \"Receptionist\"", "#
                + #""grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "clinic-reports", "description": "Clinic activity reports", "#
                + #""grants": {"ehr": ["clinic-reporting"]}, "requestable": {"approval": ["manager"], "maxDays": 30}}"#)
    }

    /// A hub that signs people in through the provider; the ward: Boss manages Rosa; Audrey audits.
    func hub() throws -> LiveHub {
        var oidc = OIDCSettings(issuer: provider.issuer, clientID: "scimhub")
        oidc.clientSecret = "console-secret"
        oidc.displayName = "Clinic ID"
        oidc.roles = ["admin": ["iam-admins"], "auditor": ["compliance"], "approver": ["managers"]]
        let hub = try LiveHub(policy: policy) {
            $0.clock = clock
            $0.console.oidc = oidc
        }
        let boss = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("boss@x.org", title: "Manager")).object["id"]?
                .stringValue)
        let rosa = person("rosa@x.org", title: "Receptionist").replacingOccurrences(
            of: #""schemas":["#,
            with: #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"\#(boss)"}},"#
                + #""schemas":["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","#)
        #expect(try hub.call("POST", "/scim/v2/Users", body: rosa).status == 201)
        #expect(try hub.call("POST", "/scim/v2/Users", body: person("audrey@x.org", title: "Auditor")).status == 201)
        #expect(try hub.call("POST", "/scim/v2/Users", body: person("ada@x.org", title: "IAM Engineer")).status == 201)
        for (sub, user, groups) in [
            ("rosa", "rosa@x.org", [String]()), ("boss", "boss@x.org", ["managers"]),
            ("audrey", "audrey@x.org", ["compliance"]), ("ghost", "ghost@x.org", []),
            ("ada", "ada@x.org", ["iam-admins"]),
        ] {
            try provider.setUser(
                sub: sub,
                claims: JSONObject([
                    "preferred_username": .string(user), "groups": .array(groups.map { .string($0) }),
                ]))
        }
        eventually("rosa provisioned") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        return hub
    }

    func url(_ hub: LiveHub, _ path: String) -> String { "http://127.0.0.1:\(hub.port)\(path)" }

    /// Signs in as the provider's subject `sub`, from a fresh browser state.
    func signIn(_ browser: Browser, _ hub: LiveHub, as sub: String) throws {
        try browser.deleteAllCookies()
        try browser.open(url(hub, "/console"))
        try browser.waitUntil(timeout: 10, "the sign-in page") { try browser.currentURL.contains("/console/login") }
        try checkAccessibility(browser, "sign-in page")
        try browser.click(try browser.find(css: "a[href^='/console/login/oidc']"))
        try browser.waitUntil(timeout: 10, "the provider's form") { (try? browser.find(css: "input[name=sub]")) != nil }
        try browser.type(try browser.find(css: "input[name=sub]"), sub)
        try browser.click(try browser.find(css: "button[type=submit]:not([name=action])"))
        try browser.waitUntil(timeout: 10, "back at the console") {
            try browser.currentURL.hasPrefix(url(hub, "/console"))
                && !(try browser.currentURL.contains("/console/login"))
        }
    }

    func checkAccessibility(_ browser: Browser, _ page: String) throws {
        let violations = try browser.axe()
        #expect(violations.isEmpty, "\(page): \(violations.joined(separator: "; "))")
    }

    func screenshot(_ browser: Browser, _ name: String) throws {
        let dir = repoRoot + "/docs/screenshots"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try browser.screenshot(to: dir + "/\(name).png")
    }

    @Test func staffRequestAPackage_andTheManagerApprovesIt_inTheBrowser() throws {
        let hub = try hub()
        let browser = try Browser.start()
        defer { browser.stop(); hub.stop(); ehr.stop(); provider.stop() }
        try signIn(browser, hub, as: "rosa")
        #expect(try browser.text(try browser.find(css: "h1")) == "Dashboard")
        try checkAccessibility(browser, "dashboard (staff)")
        try browser.open(url(hub, "/console/requests"))
        try checkAccessibility(browser, "requests")
        try browser.type(try browser.find(css: "#justification"), "Covering the weekly report while Ana is away")
        try browser.clear(try browser.find(css: "#days"))
        try browser.type(try browser.find(css: "#days"), "14")
        try browser.click(try browser.find(css: "form[action='/console/requests'] button[type=submit]"))
        do {
            try browser.waitUntil(timeout: 10, "the notice") { try browser.pageSource.contains("sent for approval") }
        } catch {
            Issue.record("page: \((try? browser.currentURL) ?? "") \((try? browser.pageSource) ?? "")")
            throw error
        }
        #expect(try browser.pageSource.contains("awaiting the manager, boss@x.org"))
        try screenshot(browser, "requests")
        // The manager signs in and approves from the inbox.
        try signIn(browser, hub, as: "boss")
        try browser.open(url(hub, "/console/requests"))
        try browser.type(try browser.find(css: "input[id^=reason-]"), "Cover agreed for two weeks")
        try browser.click(try browser.find(css: "button[value=approve]"))
        try browser.waitUntil(timeout: 10, "granted") { try browser.pageSource.contains("The request is now granted") }
        eventually("the EHR role") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "clinic-reporting"] }
        try browser.open(url(hub, "/console"))
        try screenshot(browser, "dashboard")
    }

    @Test func anAdminStartsAReconciliation_andTheComplianceOfficerSignsItOff() throws {
        let hub = try hub()
        let browser = try Browser.start()
        defer { browser.stop(); hub.stop(); ehr.stop(); provider.stop() }
        try signIn(browser, hub, as: "ada")
        try browser.open(url(hub, "/console/reconciliations"))
        try checkAccessibility(browser, "reconciliations")
        try browser.click(try browser.find(css: "form[action='/console/reconciliations'] button"))
        try browser.waitUntil(timeout: 20, "the report") {
            if try browser.pageSource.contains("Reload") { try browser.open(try browser.currentURL) }
            return try browser.pageSource.contains("Findings")
        }
        let report = try browser.currentURL
        #expect(try browser.pageSource.contains("policy version 1"))
        try signIn(browser, hub, as: "audrey")
        try browser.open(report)
        try checkAccessibility(browser, "reconciliation report")
        try browser.type(try browser.find(css: "#comment"), "Read in full; no critical finding. <b>ok</b>")
        try browser.click(try browser.find(css: "form[action$='/sign-off'] button"))
        try browser.waitUntil(timeout: 10, "the sign-off") { try browser.pageSource.contains("Signed off by") }
        #expect(try browser.pageSource.contains("audrey@x.org") && browser.pageSource.contains("&lt;b&gt;ok&lt;/b&gt;"))
        try screenshot(browser, "reconciliation")
        let audit = try hub.call("GET", "/admin/audit?count=100", token: hub.admin).text
        #expect(audit.contains("reconcile.sign-off"))
    }

    @Test func aManagerReviewsTheirStaff_selectsAll_andKeepsWithOneReason() throws {
        let hub = try hub()
        let browser = try Browser.start()
        defer { browser.stop(); hub.stop(); ehr.stop(); provider.stop() }
        let campaign = try hub.call(
            "POST", "/admin/reviews", token: hub.admin,
            body: #"{"name": "Front desk, spring", "target": "ehr", "dueDays": 14}"#)
        #expect(campaign.status == 201, "\(campaign.text)")
        try signIn(browser, hub, as: "boss")
        try browser.open(url(hub, "/console/reviews"))
        try checkAccessibility(browser, "reviews")
        try browser.click(try browser.find(css: "a[href^='/console/reviews/']"))
        try browser.waitUntil(timeout: 10, "the items") { try browser.pageSource.contains("Front desk: appointments") }
        try checkAccessibility(browser, "review items")
        try screenshot(browser, "review")
        try browser.click(try browser.find(css: "#all"))
        try browser.type(try browser.find(css: "#reason"), "Works the front desk every day")
        try browser.click(try browser.find(css: "button[value=approve]"))
        try browser.waitUntil(timeout: 10, "decided") { try browser.pageSource.contains("1 of 1 decided") }
        let items = try hub.call("GET", "/reviews/\(campaign.object["id"]?.stringValue ?? "")/items", token: hub.admin)
        #expect(items.object["items"]?.arrayValue?.first?.objectValue?["decision"]?.stringValue == "approve")
    }

    @Test func anAuditorReadsEverything_andChangesNothing() throws {
        let hub = try hub()
        let browser = try Browser.start()
        defer { browser.stop(); hub.stop(); ehr.stop(); provider.stop() }
        try signIn(browser, hub, as: "audrey")
        #expect(try browser.pageSource.contains("Targets"), "the auditor sees the admin dashboard")
        try checkAccessibility(browser, "dashboard (auditor)")
        try browser.open(url(hub, "/console/audit?action=create"))
        try checkAccessibility(browser, "audit")
        try browser.open(url(hub, "/console/audit/verify"))
        #expect(try browser.pageSource.contains("The chain is intact"))
        try browser.open(url(hub, "/console/people?q=rosa"))
        try checkAccessibility(browser, "people")
        try browser.click(try browser.find(css: "a[href^='/console/people/']"))
        try browser.waitUntil(timeout: 10, "the person") { try browser.pageSource.contains("Packages and why") }
        try checkAccessibility(browser, "person")
        try screenshot(browser, "person")
        #expect(!(try browser.pageSource.contains("Re-converge now")), "no action offered to an auditor")
        // Even a hand-made form with the page's own CSRF token is refused. (The page's policy
        // forbids script connections outright: `fetch` from it fails before reaching the hub.)
        let csrf = try #require(try browser.attribute(try browser.find(css: "input[name=_csrf]"), "value"))
        let path = try browser.currentURL.replacingOccurrences(of: url(hub, ""), with: "") + "/reconverge"
        try browser.execute(
            """
            const f = document.createElement("form"); f.method = "post"; f.action = arguments[0];
            const i = document.createElement("input"); i.type = "hidden"; i.name = "_csrf"; i.value = arguments[1];
            f.appendChild(i); document.body.appendChild(f); f.submit();
            """, [.string(path), .string(csrf)])
        try browser.waitUntil(timeout: 10, "the refusal") { try browser.pageSource.contains("Not allowed") }
        #expect(try browser.pageSource.contains("lacks the 'admin' scope"))
    }

    @Test func aFormFromAnotherSite_isRefused_andAnIdleSessionEnds() throws {
        let hub = try hub()
        let browser = try Browser.start()
        // Another origin serving a form that posts to the console (no script needed to submit it).
        let evil = try HTTPServer(
            address: ListenAddress("127.0.0.1:0")!, logger: Logger(label: "evil", silent: true)
        ) { _ in
            HTTPResponse(
                status: 200, headers: [("Content-Type", "text/html")],
                body: Array(
                    """
                    <!doctype html><html lang="en"><title>prize</title><form method="post" \
                    action="http://127.0.0.1:\(hub.port)/console/logout/everywhere">\
                    <button id="win" type="submit">Claim your prize</button></form></html>
                    """.utf8))
        }
        Thread { evil.run() }.start()
        defer {
            evil.shutdown()
            evil.waitUntilStopped()
            browser.stop(); hub.stop(); ehr.stop(); provider.stop()
        }
        try signIn(browser, hub, as: "boss")
        try browser.open("http://127.0.0.1:\(evil.port)/")
        try browser.click(try browser.find(css: "#win"))
        try browser.waitUntil(timeout: 10, "the refusal") { try browser.pageSource.contains("Not allowed") }
        try browser.open(url(hub, "/console"))
        #expect(try browser.text(try browser.find(css: "h1")) == "Dashboard", "still signed in")
        // Sixteen minutes without a request: the session is over.
        clock.advance(by: 16 * 60)
        try browser.open(url(hub, "/console"))
        #expect(try browser.currentURL.contains("/console/login"))
    }

    @Test func refusedSignIns_sayWhy_andOpenNoSession() throws {
        let hub = try hub()
        let browser = try Browser.start()
        defer { browser.stop(); hub.stop(); ehr.stop(); provider.stop() }
        // A forged callback: no sign-in was started in this browser.
        try browser.open(url(hub, "/console/callback?code=stolen&state=forged"))
        #expect(try browser.pageSource.contains("state mismatch"))
        #expect(try browser.cookies.allSatisfy { !$0.name.contains("session") })
        // The provider knows Ghost; the hub does not.
        try browser.deleteAllCookies()
        try browser.open(url(hub, "/console/login"))
        try browser.click(try browser.find(css: "a[href^='/console/login/oidc']"))
        try browser.waitUntil(timeout: 10, "the provider's form") { (try? browser.find(css: "input[name=sub]")) != nil }
        try browser.type(try browser.find(css: "input[name=sub]"), "ghost")
        try browser.click(try browser.find(css: "button[type=submit]:not([name=action])"))
        try browser.waitUntil(timeout: 10, "the refusal") { try browser.pageSource.contains("Not provisioned") }
        #expect(try browser.pageSource.contains("ghost@x.org"))
        try checkAccessibility(browser, "not provisioned")
        let audit = try hub.call("GET", "/admin/audit?count=100", token: hub.admin).text
        #expect(audit.contains("not provisioned") && audit.contains("state mismatch"))
    }
}
