// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import ConnectorKit
import CurlHTTP
import HTTPServer
import HubBase
import HubCrypto
import JSONCore
import OIDC
import Provisioning
import SCIM
import Store

/// The OpenID Connect relying party (OpenID Connect Core 1.0 §3.1, authorization code flow,
/// with PKCE, RFC 7636): discovery, the redirect with `state`, `nonce` and the code
/// challenge, the code exchanged at the token endpoint, the ID token checked against the
/// provider's key set (`OIDC` module), and the person matched to a SCIM User.
final class OIDCClient: Sendable {
    let settings: OIDCSettings
    private let curl: CurlClient
    /// The discovery document, fetched once it is needed (and again after a failure).
    private let discovered = Mutex<Discovery?>(nil)
    let keys: JWKSCache

    struct Discovery: Sendable {
        let authorization: String
        let token: String
        let jwks: String
    }

    init(settings: OIDCSettings, curl: CurlClient = CurlClient(options: .init(connectTimeout: 5, totalTimeout: 15))) {
        self.settings = settings
        self.curl = curl
        let box = Box()
        keys = JWKSCache { try box.client?.fetchJSON(try box.client?.discovery().jwks ?? "") ?? .null }
        box.client = self
    }

    /// Breaks the init-time cycle between the client and its key cache's fetch closure.
    private final class Box: @unchecked Sendable {
        // @unchecked Sendable: set once in init, before anything can fetch; read only after.
        weak var client: OIDCClient?
    }

    /// The provider's endpoints (OpenID Connect Discovery 1.0 §4); its `issuer` must be the configured one.
    func discovery() throws -> Discovery {
        if let d = discovered.withLock({ $0 }) { return d }
        let base = settings.issuer.hasSuffix("/") ? String(settings.issuer.dropLast()) : settings.issuer
        let doc = try fetchJSON(base + "/.well-known/openid-configuration").objectValue ?? JSONObject()
        guard doc["issuer"]?.stringValue == settings.issuer, let a = doc["authorization_endpoint"]?.stringValue,
            let t = doc["token_endpoint"]?.stringValue, let j = doc["jwks_uri"]?.stringValue
        else {
            throw SignInError("the identity provider's discovery document does not match the configured issuer")
        }
        let d = Discovery(authorization: a, token: t, jwks: j)
        discovered.withLock { $0 = d }
        return d
    }

    func fetchJSON(_ url: String) throws -> JSONValue {
        do {
            let r = try curl.perform(
                method: "GET", url: url, headers: ["Accept: application/json"], body: nil,
                maxResponseBytes: 1 << 20)
            guard r.status == 200 else { throw SignInError("the identity provider answered \(r.status)") }
            return try JSONParser().parse(r.body)
        } catch let e as SignInError { throw e } catch {
            throw SignInError("the identity provider cannot be reached")
        }
    }

    /// Exchanges the code (with the PKCE verifier) for tokens; returns the ID token.
    func exchange(code: String, verifier: String, redirectURI: String) throws -> String {
        let d = try discovery()
        var fields = [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
            ("client_id", settings.clientID), ("code_verifier", verifier),
        ]
        if let secret = settings.clientSecret { fields.append(("client_secret", secret)) }
        let body = fields.map { "\($0.0)=\(HTTPForm.escape($0.1))" }.joined(separator: "&")
        let response: CurlResponse
        do {
            response = try curl.perform(
                method: "POST", url: d.token,
                headers: ["Content-Type: application/x-www-form-urlencoded", "Accept: application/json"],
                body: Array(body.utf8), maxResponseBytes: 1 << 20)
        } catch {
            throw SignInError("the identity provider cannot be reached")
        }
        let json = (try? JSONParser().parse(response.body))?.objectValue
        guard response.status == 200, let idToken = json?["id_token"]?.stringValue else {
            throw SignInError("the identity provider refused the sign-in code (\(response.status))")
        }
        return idToken
    }
}

/// A refused sign-in: the page says why, in words that never contain a token.
struct SignInError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

extension ConsoleEndpoints {
    static let signInCookie = "scimhub-signin"

    /// Where the provider sends the browser back.
    func redirectURI(_ request: HTTPRequest) -> String { expectedOrigin(request) + "/console/callback" }

    /// `GET /console/login/oidc`: to the provider, with a fresh `state` (also set as a cookie
    /// for this browser: another browser cannot finish the sign-in), `nonce` and PKCE challenge.
    func startOIDC(_ ctx: RequestContext) throws -> HTTPResponse {
        try checkTransport(ctx.request)
        guard let oidc else { return try loginPage(ctx, error: "No identity provider is configured.", status: 404) }
        let discovery: OIDCClient.Discovery
        do { discovery = try oidc.discovery() } catch {
            return try loginPage(
                ctx, error: "The identity provider cannot be reached: use emergency sign-in.", status: 503)
        }
        let state = PKCE.randomToken(), nonce = PKCE.randomToken(), verifier = PKCE.verifier(), now = clock.now()
        try store.write { w in
            try w.connection.prunePendingSignIns(before: now - 600)
            try w.connection.insertPendingSignIn(
                PendingSignIn(
                    stateHash: hexString(Crypto.sha256(state)), nonce: nonce, verifier: verifier,
                    returnTo: nextPath(ctx.request), created: now))
        }
        let query = [
            ("response_type", "code"), ("client_id", oidc.settings.clientID),
            ("redirect_uri", redirectURI(ctx.request)),
            ("scope", "openid profile email"), ("state", state), ("nonce", nonce),
            ("code_challenge", PKCE.challenge(for: verifier)), ("code_challenge_method", PKCE.method),
        ].map { "\($0.0)=\(HTTPForm.escape($0.1))" }.joined(separator: "&")
        let separator = discovery.authorization.contains("?") ? "&" : "?"
        let cookie =
            "\(Self.signInCookie)=\(state); Path=/console/callback; Max-Age=600; HttpOnly; SameSite=Lax"
            + (sessions.settings.secure ? "; Secure" : "")
        return redirect(discovery.authorization + separator + query, headers: [("Set-Cookie", cookie)])
    }

    /// `GET /console/callback?code=&state=`: the provider sent the browser back. Every check
    /// that fails ends on a page that says why, an audit entry, and no session.
    func finishOIDC(_ ctx: RequestContext) throws -> HTTPResponse {
        try checkTransport(ctx.request)
        guard let oidc else { return try loginPage(ctx, error: "No identity provider is configured.", status: 404) }
        do {
            let (userName, personID, roles, returnTo) = try verifyCallback(ctx, oidc)
            let (cookie, _) = try sessions.start(userName: userName, personID: personID, roles: roles, method: "oidc")
            try audit("console.sign-in", principal: userName, ["oidc"] + roles, ctx)
            let clear = "\(Self.signInCookie)=; Path=/console/callback; Max-Age=0; HttpOnly; SameSite=Lax"
            return redirect(returnTo, headers: [("Set-Cookie", cookie), ("Set-Cookie", clear)])
        } catch let e as SignInError {
            try audit("console.sign-in", principal: "anonymous", ["oidc", e.description], ctx, "refused")
            return try loginPage(ctx, error: "Sign-in refused: \(e.description).", status: 401)
        } catch let e as NotProvisioned {
            try audit("console.sign-in", principal: "anonymous", ["oidc", "not provisioned"], ctx, "refused")
            return html(
                403,
                Self.document(
                    "Not provisioned", nil,
                    """
                    <p class="error" role="alert">The identity provider knows you as \(e.userName), but ScimHub has \
                    no active person with that user name, so you cannot use the console yet.</p>
                    <p>If you should have access, ask the identity team to check that HR has sent your record.</p>
                    """))
        }
    }

    private struct NotProvisioned: Error { let userName: String }

    /// The callback's checks, in order: the provider's error, `state` bound to this browser
    /// and used once, the code exchanged with the PKCE verifier, the ID token (signature,
    /// issuer, audience, expiry, nonce), and a SCIM User for the configured claim.
    private func verifyCallback(_ ctx: RequestContext, _ oidc: OIDCClient) throws -> (
        String, String, [String], String
    ) {
        let q = ctx.request
        if let error = q.queryValue("error") {
            throw SignInError("the identity provider said \(error.prefix(64))")
        }
        guard let state = q.queryValue("state"), let code = q.queryValue("code"), !state.isEmpty, !code.isEmpty else {
            throw SignInError("the provider's answer lacks a code or state")
        }
        let bound = ConsoleSessions.cookie(named: Self.signInCookie, in: q) ?? ""
        guard Crypto.constantTimeEquals(Array(bound.utf8), Array(state.utf8)) else {
            throw SignInError("the sign-in was not started in this browser (state mismatch)")
        }
        let now = clock.now()
        guard
            let pending = try store.write({
                try $0.connection.takePendingSignIn(stateHash: hexString(Crypto.sha256(state)))
            }),
            now - pending.created < 600
        else {
            throw SignInError("the sign-in expired or was used already (unknown state)")
        }
        let idToken = try oidc.exchange(code: code, verifier: pending.verifier, redirectURI: redirectURI(q))
        let claims: IDTokenClaims
        do {
            claims = try IDTokenVerifier.verify(
                idToken, keys: oidc.keys, issuer: oidc.settings.issuer, clientID: oidc.settings.clientID,
                nonce: pending.nonce, now: now)
        } catch {
            throw SignInError("the ID token was refused: \(error.reason)")
        }
        guard let userName = claims.string(oidc.settings.userClaim), !userName.isEmpty else {
            throw SignInError("the ID token has no '\(oidc.settings.userClaim)' claim")
        }
        let person = try store.read { try People.user($0, userName: userName) }
        guard let person, Policy.isActive(person.doc, now: now) else { throw NotProvisioned(userName: userName) }
        let roles = oidc.settings.roles(from: claims.strings(oidc.settings.rolesClaim) ?? [])
        return (person.doc["userName"]?.stringValue ?? userName, person.id, roles, pending.returnTo)
    }
}
