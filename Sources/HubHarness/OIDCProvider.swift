// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import JSONCore
import Synchronization

/// A real OpenID Connect provider for the web console's tests: PyPI's `oidc-provider-mock`
/// (pinned in `scripts/test`, run from `.venv`) as a child process on a free loopback port,
/// logging to a temporary folder. Every client id is accepted without registration; the
/// login page asks only for a subject (`sub`) and issues a code for it.
///
/// What it checks, and what it does not (oidc-provider-mock 0.3.4 on Authlib; read in its source):
/// - Signing: ID tokens are RS256 only (`id_token_signing_alg_values_supported`), with one
///   RSA key generated at start-up and published at `jwks_uri`; `iss` is the issuer below,
///   `aud` the client id, `exp` one hour.
/// - nonce: required when `requireNonce` (the default here: a request without one is sent back
///   to the redirect_uri with `error=invalid_request`), and echoed in the ID token's
///   `nonce` claim. A repeated nonce is NOT refused (the mock never records nonces): the
///   console must compare the echoed nonce with the one it sent.
/// - redirect_uri: any URI is accepted at the authorization endpoint (no client is
///   registered), but the token request must carry exactly the same `redirect_uri`, or it
///   is refused with `invalid_grant`. A code is single-use and bound to its client id.
/// - state: sent back unchanged on the redirect. Only `response_type=code` (query response mode).
/// - PKCE: NOT verified. `code_challenge` is ignored and so is `code_verifier` (a wrong one
///   gets tokens; tried by hand): a console test cannot prove its PKCE against this provider.
/// - Client authentication at the token endpoint: `client_secret_basic` or
///   `client_secret_post` with any secret; none at all (`"none"`) is refused (401 `invalid_client`).
/// - The issuer and every URL in the discovery document are built from the request's
///   `Host` header: address the provider as `127.0.0.1:PORT` everywhere (browser and
///   server-side token request alike), never `localhost`, or `iss` will not match.
public final class OIDCProvider: Sendable {
    /// The provider's port on 127.0.0.1.
    public let port: Int
    /// The issuer exactly as the discovery document states it (`http://127.0.0.1:PORT`).
    public let issuer: String
    /// The discovery document (`/.well-known/openid-configuration`).
    public let discovery: JSONObject
    /// The provider's log and nothing else; removed by `stop()`.
    public let directory: TemporaryDirectory
    private let process: ChildProcess
    private let stopped = Mutex(false)

    /// The virtualenv's Python, which runs `oidc_provider_mock`.
    public static var python: String { repoRoot + "/.venv/bin/python" }

    /// The discovery document's `authorization_endpoint`.
    public var authorizationEndpoint: String { discovery["authorization_endpoint"]?.stringValue ?? "" }
    /// The discovery document's `token_endpoint`.
    public var tokenEndpoint: String { discovery["token_endpoint"]?.stringValue ?? "" }
    /// The discovery document's `jwks_uri`.
    public var jwksURI: String { discovery["jwks_uri"]?.stringValue ?? "" }
    /// The discovery document's `userinfo_endpoint`.
    public var userinfoEndpoint: String { discovery["userinfo_endpoint"]?.stringValue ?? "" }

    /// Starts the provider and waits for its discovery document. `requireNonce: false` lets
    /// authorization requests without a `nonce` through.
    public init(requireNonce: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw TestError(
                "the test virtualenv is missing (.venv): run scripts/test, which installs oidc-provider-mock")
        }
        port = try freeLoopbackPort()
        directory = TemporaryDirectory()
        let log = directory.path + "/oidc-provider.log"
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process = try ChildProcess(
            [
                Self.python, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", String(port),
                "--require-nonce=\(requireNonce)",
            ], outputPath: log, environment: environment)
        var found: JSONObject? = nil
        let deadline = Date().addingTimeInterval(30)
        while found == nil && Date() < deadline && process.isRunning {
            if let r = try? RawHTTPClient(port: UInt16(port), timeout: 5).request(
                "GET", "/.well-known/openid-configuration", headers: [("Host", "127.0.0.1:\(port)")]),
                r.status == 200
            {
                found = r.json?.objectValue
            } else {
                usleep(50_000)
            }
        }
        guard let document = found, let issuer = document["issuer"]?.stringValue else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            process.terminate()
            directory.remove()
            throw TestError(
                "oidc-provider-mock did not start on port \(port) (run scripts/test, which installs it in .venv): "
                    + String(text.suffix(1500)))
        }
        discovery = document
        self.issuer = issuer
    }

    deinit { stop() }

    /// Sets the claims of user `sub` (its `PUT /users/{sub}` API: the body is the claims as
    /// one JSON object, which replaces the user's). They appear in the ID token and at
    /// `userinfo`: claims outside the standard scopes always, standard ones (`email`,
    /// `name`, ...) when their scope (`email`, `profile`, ...) was granted.
    public func setUser(sub: String, claims: JSONObject) throws {
        let path = "/users/" + (sub.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sub)
        let response = try RawHTTPClient(port: UInt16(port)).request(
            "PUT", path,
            headers: [("Host", "127.0.0.1:\(port)"), ("Content-Type", "application/json")],
            body: JSONWriter().write(.object(claims)))
        guard let r = response, r.status == 204 else {
            throw TestError(
                "PUT \(path) failed: \(response.map { "\($0.status) \($0.text.prefix(300))" } ?? "no answer")")
        }
    }

    /// Stops the provider (SIGTERM, SIGKILL after 5 s) and removes its folder. Safe to call twice.
    public func stop() {
        let first = stopped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        process.terminate()
        directory.remove()
    }
}
