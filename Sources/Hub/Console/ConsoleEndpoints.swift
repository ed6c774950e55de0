// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import HubCrypto
import JSONCore
import Provisioning
import SCIM
import Store

/// The web console: server-rendered pages for the people who run, review and audit access.
/// Each page family lives in its own file (`Console*Pages.swift`) and renders what the JSON
/// admin API it is built on returns. Pages authenticate with the session cookie, not a
/// bearer token (their routes are `open` in the route table and check the session here);
/// every state-changing request carries the session's CSRF token.
struct ConsoleEndpoints: FeatureEndpoints {
    let hub: HubContext
    let sessions: ConsoleSessions
    /// Every other feature's endpoints, called as the signed-in person.
    let api: ConsoleAPI
    /// The group's identity provider, when configured.
    let oidc: OIDCClient?
    /// Failed sign-ins per account name and per client address: 5 in 5 minutes, then refused.
    let signInThrottle: AuthThrottle
    let clientAddresses: ClientAddressResolver

    /// The console's pages allow scripts and styles from the hub only: no inline script.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'"
}

// MARK: - Responses

extension ConsoleEndpoints {
    func html(_ status: Int, _ page: HTML, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [
                ("Content-Type", "text/html; charset=utf-8"), ("Content-Security-Policy", Self.contentSecurityPolicy),
                // Same-origin: the browser then sends its real Origin with forms (with no-referrer it
                // sends `null`), which the CSRF check compares; nothing leaves for other sites.
                ("Referrer-Policy", "same-origin"),
            ] + headers,
            body: Array(page.text.utf8))
    }

    /// 303 See Other: after a form, the browser GETs the next page.
    func redirect(_ location: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: 303, headers: [("Location", location)] + headers, body: [])
    }

    /// A whole page: header with the navigation the person's roles allow, the content, and
    /// the sign-out form.
    func page(_ title: String, _ session: ConsoleSessions.Current?, _ content: HTML, status: Int = 200) -> HTTPResponse
    {
        html(status, Self.document(title, session, content))
    }

    static func document(_ title: String, _ session: ConsoleSessions.Current?, _ content: HTML) -> HTML {
        var nav: [HTML] = []
        if let s = session {
            var links = [("Dashboard", "/console"), ("Reviews", "/console/reviews"), ("Requests", "/console/requests")]
            if s.has("admin") || s.has("auditor") || s.has("helpdesk") {
                links.insert(("People", "/console/people"), at: 2)
                links.insert(("Targets", "/console/targets"), at: 3)
            }
            if s.has("admin") || s.has("auditor") {
                links += [
                    ("Who has what", "/console/access"), ("Reconciliation", "/console/reconciliations"),
                    ("Audit", "/console/audit"),
                    ("Campaigns", "/console/campaigns"), ("Policy", "/console/policy"), ("Tokens", "/console/tokens"),
                ]
            }
            if s.has("admin") || s.has("break-glass") { links.append(("Break-glass", "/console/break-glass")) }
            nav = links.map { "<li><a href=\"\($0.1)\">\($0.0)</a></li>" }
        }
        let signOut: HTML =
            session.map { s in
                """
                <form method="post" action="/console/logout" class="inline">
                <input type="hidden" name="_csrf" value="\(s.record.csrf)">
                <span>\(s.record.userName)</span> <button type="submit" class="secondary">Sign out</button></form>
                """
            } ?? .empty
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title) · ScimHub</title>
            <link rel="stylesheet" href="/console/static/console.css">
            <script src="/console/static/console.js" defer></script></head>
            <body><header class="top"><a class="brand" href="/console">ScimHub</a>
            <nav aria-label="Main"><ul>\(nav)</ul></nav>\(signOut)</header>
            <main id="main"><h1>\(title)</h1>
            \(content)
            </main></body></html>
            """
    }

    /// Tables scroll sideways on a phone; a scrollable region must take keyboard focus (WCAG
    /// 2.1.1, axe `scrollable-region-focusable`).
    static let tableOpen: HTML = "<div class=\"table-wrap\" tabindex=\"0\"><table>"

    /// A form's hidden CSRF field.
    static func csrfField(_ s: ConsoleSessions.Current) -> HTML {
        "<input type=\"hidden\" name=\"_csrf\" value=\"\(s.record.csrf)\">"
    }
}

// MARK: - Sessions, forms and errors

extension ConsoleEndpoints {
    /// The console answers on loopback over plain HTTP (the demo), or behind its https `publicURL`.
    func checkTransport(_ request: HTTPRequest) throws {
        guard !sessions.settings.secure else { return }
        let host = (request.headers["Host"] ?? "").lowercased()
        let name = host.hasPrefix("[") ? String(host.prefix { $0 != "]" }) + "]" : String(host.prefix { $0 != ":" })
        guard ["127.0.0.1", "localhost", "[::1]"].contains(name) else {
            throw SCIMError(
                status: 403, detail: "the console needs https: set console.publicURL (plain HTTP only on loopback)")
        }
    }

    /// Runs a page that needs a signed-in person; anyone else goes to the sign-in page.
    /// Refusals become an error page with the same status.
    func signedIn(
        _ ctx: RequestContext, _ body: (ConsoleSessions.Current) throws -> HTTPResponse
    ) throws -> HTTPResponse {
        try checkTransport(ctx.request)
        guard let s = try sessions.current(ctx.request) else {
            let back = ctx.request.method == .get ? ctx.request.path : "/console"
            return redirect("/console/login?next=" + HTTPForm.escape(back))
        }
        do {
            if ctx.request.method != .get && ctx.request.method != .head { try checkCSRF(ctx.request, s) }
            return try body(s)
        } catch let e as GovernanceError {
            return errorPage(scimError(e), s)
        } catch let e as SCIMError {
            return errorPage(e, s)
        }
    }

    func errorPage(_ e: SCIMError, _ s: ConsoleSessions.Current?) -> HTTPResponse {
        page(
            e.status == 404 ? "Not found" : e.status == 403 ? "Not allowed" : "That did not work", s,
            """
            <p class="error" role="alert">\(e.detail)</p>
            <p><a href="/console">Back to the dashboard</a></p>
            """, status: e.status)
    }

    /// The CSRF token of the session in the form (or `X-CSRF-Token`), compared in constant
    /// time; and, when the browser says where the request comes from, the console's own origin.
    func checkCSRF(_ request: HTTPRequest, _ s: ConsoleSessions.Current) throws {
        if let origin = request.headers["Origin"], origin != expectedOrigin(request) {
            throw SCIMError(status: 403, detail: "this form was sent from another site; nothing was changed")
        }
        let sent = request.headers["X-CSRF-Token"] ?? (try? form(request))?["_csrf"] ?? ""
        guard Crypto.constantTimeEquals(Array(sent.utf8), Array(s.record.csrf.utf8)) else {
            throw SCIMError(
                status: 403, detail: "the form has expired or was not sent by this console; reload the page")
        }
    }

    func expectedOrigin(_ request: HTTPRequest) -> String {
        sessions.settings.publicURL ?? "http://" + (request.headers["Host"] ?? "")
    }

    /// The form's fields (the last of a name wins); bodies over 64 KiB or malformed are refused.
    func form(_ request: HTTPRequest) throws -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in try formFields(request) { out[k] = v }
        return out
    }

    /// Every field in order (checkbox lists repeat a name).
    func formFields(_ request: HTTPRequest) throws -> [(name: String, value: String)] {
        guard request.body.count <= 64 * 1024, let fields = HTTPForm.parse(request.body) else {
            throw SCIMError.invalidValue("the form could not be read")
        }
        return fields
    }
}

// MARK: - Routes

extension ConsoleEndpoints {
    /// The console's pages. They are `open` to the route table (no bearer token): each checks
    /// the session cookie and, for changes, the CSRF token itself.
    var routes: [Route] {
        [
            Route.make("GET", "/console", .open) { ctx, _ in try self.dashboard(ctx) },
            Route.make("GET", "/console/login", .open, query: ["next"]) { ctx, _ in try self.loginPage(ctx) },
            Route.make("POST", "/console/login/local", .open) { ctx, _ in try self.localSignIn(ctx) },
            Route.make("GET", "/console/login/oidc", .open, query: ["next"]) { ctx, _ in try self.startOIDC(ctx) },
            // The provider adds what it likes (session_state, iss): not checked here.
            Route.make("GET", "/console/callback", .open, query: nil) { ctx, _ in try self.finishOIDC(ctx) },
            Route.make("POST", "/console/logout", .open) { ctx, _ in try self.signOut(ctx, everywhere: false) },
            Route.make("POST", "/console/logout/everywhere", .open) { ctx, _ in
                try self.signOut(ctx, everywhere: true)
            },
            Route.make("GET", "/console/people", .open, query: ["q"]) { ctx, _ in try self.peoplePage(ctx) },
            Route.make("GET", "/console/people/{id}", .open, query: ["done"]) { ctx, p in
                try self.personPage(p[0], ctx)
            },
            Route.make("POST", "/console/people/{id}/reconverge", .open) { ctx, p in
                try self.reconvergePerson(p[0], ctx)
            },
            Route.make("GET", "/console/reviews", .open) { ctx, _ in try self.reviewsPage(ctx) },
            Route.make("GET", "/console/reviews/{id}", .open, query: ["done"]) { ctx, p in
                try self.reviewPage(p[0], ctx)
            },
            Route.make("POST", "/console/reviews/{id}/decide", .open) { ctx, p in try self.decideReview(p[0], ctx) },
            Route.make("GET", "/console/reconciliations", .open) { ctx, _ in try self.reconciliationsPage(ctx) },
            Route.make("POST", "/console/reconciliations", .open) { ctx, _ in
                try self.startReconciliationFromPage(ctx)
            },
            Route.make("GET", "/console/reconciliations/{id}", .open) { ctx, p in
                try self.reconciliationPage(p[0], ctx)
            },
            Route.make("POST", "/console/reconciliations/{id}/sign-off", .open) { ctx, p in
                try self.signOffFromPage(p[0], ctx)
            },
            Route.make("GET", "/console/audit", .open, query: ["principal", "resourceId", "action", "since", "until"]) {
                ctx, _ in try self.auditPage(ctx)
            },
            Route.make(
                "GET", "/console/audit.csv", .open, query: ["principal", "resourceId", "action", "since", "until"]
            ) {
                ctx, _ in try self.auditCSV(ctx)
            },
            Route.make("GET", "/console/audit/verify", .open) { ctx, _ in try self.auditVerifyPage(ctx) },
            Route.make("GET", "/console/targets", .open, query: ["done"]) { ctx, _ in try self.targetsPage(ctx) },
            Route.make("POST", "/console/targets/retry", .open) { ctx, _ in try self.retryJobs(ctx) },
            Route.make("POST", "/console/targets/probe", .open) { ctx, _ in try self.probeTargets(ctx) },
            Route.make("GET", "/console/break-glass", .open, query: ["done"]) { ctx, _ in try self.breakGlassPage(ctx)
            },
            Route.make("POST", "/console/break-glass", .open) { ctx, _ in try self.grantBreakGlassFromPage(ctx) },
            Route.make("POST", "/console/break-glass/{id}/end", .open) { ctx, p in
                try self.endBreakGlassFromPage(p[0], ctx)
            },
            Route.make("POST", "/console/break-glass/{id}/review", .open) { ctx, p in
                try self.reviewBreakGlassFromPage(p[0], ctx)
            },
            Route.make("GET", "/console/mfa", .open) { ctx, _ in try self.mfaPage(ctx) },
            Route.make("POST", "/console/mfa", .open) { ctx, _ in try self.mfaPage(ctx) },
            Route.make("GET", "/console/policy", .open) { ctx, _ in try self.policyPage(ctx) },
            Route.make("POST", "/console/policy/preview", .open) { ctx, _ in try self.previewPolicyFromPage(ctx) },
            Route.make("POST", "/console/policy/apply", .open) { ctx, _ in try self.applyPolicyFromPage(ctx) },
            Route.make("GET", "/console/tokens", .open) { ctx, _ in try self.tokensPage(ctx) },
            Route.make("POST", "/console/tokens", .open) { ctx, _ in try self.createTokenFromPage(ctx) },
            Route.make("POST", "/console/tokens/{id}/revoke", .open) { ctx, p in
                try self.revokeTokenFromPage(p[0], ctx)
            },
            Route.make("GET", "/console/campaigns", .open, query: ["done"]) { ctx, _ in try self.campaignsPage(ctx) },
            Route.make("POST", "/console/campaigns", .open) { ctx, _ in try self.createCampaign(ctx) },
            Route.make("POST", "/console/campaigns/{id}/extend", .open) { ctx, p in
                try self.changeCampaign(p[0], "extend", ctx)
            },
            Route.make("POST", "/console/campaigns/{id}/cancel", .open) { ctx, p in
                try self.changeCampaign(p[0], "cancel", ctx)
            },
            Route.make("POST", "/console/campaigns/{id}/reassign", .open) { ctx, p in
                try self.changeCampaign(p[0], "reassign", ctx)
            },
            Route.make("GET", "/console/access", .open) { ctx, _ in try self.accessPage(ctx) },
            Route.make("GET", "/console/access/{package}", .open) { ctx, p in try self.accessPackagePage(p[0], ctx) },
            Route.make("GET", "/console/requests", .open, query: ["done"]) { ctx, _ in try self.requestsPage(ctx) },
            Route.make("POST", "/console/requests", .open) { ctx, _ in try self.submitRequest(ctx) },
            Route.make("POST", "/console/requests/{id}/decide", .open) { ctx, p in try self.decideRequest(p[0], ctx) },
            Route.make("GET", "/console/static/console.css", .open) { _, _ in
                Self.asset(ConsoleAssets.css, "text/css; charset=utf-8")
            },
            Route.make("GET", "/console/static/console.js", .open) { _, _ in
                Self.asset(ConsoleAssets.js, "text/javascript; charset=utf-8")
            },
        ]
    }

    static func asset(_ text: String, _ type: String) -> HTTPResponse {
        HTTPResponse(
            status: 200, headers: [("Content-Type", type), ("Cache-Control", "public, max-age=3600")],
            body: Array(text.utf8))
    }
}
