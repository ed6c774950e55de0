// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import HubCrypto
import JSONCore
import Provisioning
import SCIM
import Store

/// Signing in and out. People sign in through the group's identity provider
/// (`ConsoleOIDC.swift`); a few local accounts (password and TOTP) can sign in when the
/// provider is down, each use audited and announced.
extension ConsoleEndpoints {
    static let loginCookie = "scimhub-login"

    /// `GET /console/login`: the provider's button and the emergency form. The form carries a
    /// value also set as a cookie (double submit), so another site cannot sign a browser in.
    func loginPage(_ ctx: RequestContext, error: String? = nil, status: Int = 200) throws -> HTTPResponse {
        try checkTransport(ctx.request)
        if try sessions.current(ctx.request) != nil, error == nil { return redirect(nextPath(ctx.request)) }
        let token = base64URLString(Crypto.randomBytes(24))
        let next = nextPath(ctx.request)
        let provider: HTML =
            sessions.settings.oidc.map { o in
                """
                <p><a class="button" href="/console/login/oidc?next=\(HTTPForm.escape(next))">Sign in with \
                \(o.displayName)</a></p>
                """
            } ?? "<p class=\"notice\">No identity provider is configured: only emergency sign-in is available.</p>"
        let problem: HTML = error.map { "<p class=\"error\" role=\"alert\">\($0)</p>" } ?? .empty
        let content: HTML = """
            \(problem)\(provider)
            <details\(sessions.settings.oidc == nil || error != nil ? " open" : "")>
            <summary>Emergency sign-in (when the identity provider is down)</summary>
            <form method="post" action="/console/login/local" class="stack">
            <input type="hidden" name="_login" value="\(token)">
            <input type="hidden" name="next" value="\(next)">
            <label for="name">Account</label><input id="name" name="name" type="text" autocomplete="username" required>
            <label for="password">Password</label>
            <input id="password" name="password" type="password" autocomplete="current-password" required>
            <label for="code">Authenticator code</label>
            <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
            <p><button type="submit">Sign in</button></p>
            <p class="muted">Every emergency sign-in is recorded in the audit log and announced.</p>
            </form></details>
            """
        let cookie =
            "\(Self.loginCookie)=\(token); Path=/console/login; Max-Age=900; HttpOnly; SameSite=Strict"
            + (sessions.settings.secure ? "; Secure" : "")
        return html(status, Self.document("Sign in", nil, content), headers: [("Set-Cookie", cookie)])
    }

    /// Where to go after signing in: a console path, never another site.
    func nextPath(_ request: HTTPRequest, form: [String: String]? = nil) -> String {
        let next = form?["next"] ?? request.queryValue("next") ?? "/console"
        guard next.hasPrefix("/console"), !next.hasPrefix("//"), !next.contains("\\"), next.utf8.count <= 512,
            !next.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { return "/console" }
        return next
    }

    /// `POST /console/login/local`: an emergency sign-in with an account's password and TOTP code.
    func localSignIn(_ ctx: RequestContext) throws -> HTTPResponse {
        try checkTransport(ctx.request)
        let f = try form(ctx.request)
        let cookie = ConsoleSessions.cookie(named: Self.loginCookie, in: ctx.request) ?? ""
        guard let token = f["_login"], !token.isEmpty, Crypto.constantTimeEquals(Array(token.utf8), Array(cookie.utf8))
        else {
            return try loginPage(
                ctx, error: "The sign-in form expired or came from another site. Try again.", status: 403)
        }
        let name = f["name"] ?? "", now = clock.now()
        let keys = ["local:" + Identifier.canonical(name), "addr:" + clientAddresses.clientAddress(ctx.request)]
        if try signInThrottle.retryAfter(keys, now: now) != nil {
            return try loginPage(ctx, error: "Too many failed sign-ins. Wait a few minutes.", status: 429)
        }
        let account = try store.read { try $0.localAccount(name: name) }
        let passwordOK = account.map {
            !$0.disabled && PasswordHash.verify(f["password"] ?? "", against: $0.passwordHash)
        }
        var codeOK = false
        if passwordOK == true {
            // A wrong, used or throttled code refuses the sign-in; a storage failure stays one (503).
            do {
                try requireTOTP(
                    principal: name, code: f["code"] ?? "", action: "emergency sign-in", requestID: ctx.requestID,
                    where: "")
                codeOK = true
            } catch is SCIMError {}
        }
        guard let account, passwordOK == true, codeOK else {
            // Counted for every node; if storage fails the audit entry below fails too (503).
            try? signInThrottle.recordFailure(keys, now: now)
            try audit("console.sign-in", principal: name.isEmpty ? "anonymous" : name, ["local"], ctx, "refused")
            return try loginPage(ctx, error: "The account, password or code is not right.", status: 401)
        }
        let (setCookie, _) = try sessions.start(
            userName: account.name, personID: nil, roles: ["admin"], method: "local")
        let requestID = ctx.requestID
        try store.write { w in
            try AuditLog.append(
                w,
                .now(
                    principal: account.name, action: "console.sign-in", resourceType: "Principal",
                    resourceID: account.name, attributes: ["local", "emergency"], requestID: requestID))
            try self.engine?.notifier?.announce(
                w, .emergencySignIn, ["account": account.name, "time": Timestamp.format(now)])
        }
        engine?.notifier?.wake()
        return redirect(nextPath(ctx.request, form: f), headers: [("Set-Cookie", setCookie)])
    }

    /// `POST /console/logout`: this session; `POST /console/logout/everywhere`: all of the person's.
    func signOut(_ ctx: RequestContext, everywhere: Bool) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let now = clock.now(), user = s.record.userName, hash = s.record.idHash
            let n = try store.write { w -> Int in
                everywhere
                    ? try w.connection.endConsoleSessions(userName: user, now: now)
                    : (try w.connection.endConsoleSession(idHash: hash, now: now) ? 1 : 0)
            }
            try audit(
                "console.sign-out", principal: user, [everywhere ? "everywhere" : "this session", "\(n) sessions"], ctx)
            return redirect("/console/login", headers: [("Set-Cookie", sessions.clearingCookie)])
        }
    }

    var clock: any WallClock { sessions.clock }

    func audit(
        _ action: String, principal: String, _ attributes: [String], _ ctx: RequestContext,
        _ outcome: String = "success"
    ) throws {
        let requestID = ctx.requestID
        try store.write { w in
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: action, resourceType: "Principal", resourceID: principal,
                    attributes: attributes, requestID: requestID, outcome: outcome))
        }
    }
}
