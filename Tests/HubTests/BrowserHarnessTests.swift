// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import HTTPServer
import HubCrypto
import HubLog
import JSONCore
import Synchronization
import Testing
import TestSupport

/// The harness the web console's end-to-end tests use: a real OpenID provider
/// (oidc-provider-mock) and a real headless Chromium over WebDriver, each started on a free
/// loopback port in a temporary folder and stopped afterwards. Serialized: each test starts
/// a browser, and the machines have two cores.
@Suite(.serialized) struct BrowserHarnessTests {
    // MARK: - The provider alone

    @Test func provider_starts_discoveryHasIssuerEndpointsAndKeys_setUserReachesTheIDToken() throws {
        let provider = try OIDCProvider()
        defer { provider.stop() }
        #expect(provider.issuer == "http://127.0.0.1:\(provider.port)")
        for endpoint in [provider.authorizationEndpoint, provider.tokenEndpoint, provider.jwksURI] {
            #expect(endpoint.hasPrefix(provider.issuer + "/"), "\(endpoint)")
        }
        #expect(provider.discovery["id_token_signing_alg_values_supported"] == .array([.string("RS256")]))
        let jwks = try #require(try get(provider, provider.jwksURI))
        #expect(jwks.status == 200)
        let key = try #require(jwks.object["keys"]?.arrayValue?.first?.objectValue)
        #expect(key["kty"]?.stringValue == "RSA")

        try provider.setUser(
            sub: "nurse.jane",
            claims: JSONObject(["email": .string("jane@example.org"), "groups": .array([.string("ward-3")])]))
        let redirectURI = "http://127.0.0.1:9/callback"  // never visited: the code is read from Location
        let code = try authorizeWithoutBrowser(provider, sub: "nurse.jane", redirectURI: redirectURI, nonce: "n-1")
        let token = try #require(try exchange(provider, code: code, redirectURI: redirectURI))
        #expect(token.status == 200, "\(token.text)")
        let claims = try idTokenClaims(token)
        #expect(claims["sub"]?.stringValue == "nurse.jane")
        #expect(claims["email"]?.stringValue == "jane@example.org")
        #expect(claims["groups"] == .array([.string("ward-3")]))
        #expect(claims["iss"]?.stringValue == provider.issuer)
        #expect(
            claims["aud"]?.stringValue == "scimhub-console" || claims["aud"] == .array([.string("scimhub-console")]))
        #expect(claims["nonce"]?.stringValue == "n-1")
    }

    /// What the provider's comment promises the console's tests, pinned: a foreign
    /// redirect_uri, a missing nonce, a reused code and an unauthenticated client are refused.
    @Test func provider_refuses_aForeignRedirectURI_aMissingNonce_aReusedCode_andNoClientSecret() throws {
        let provider = try OIDCProvider()
        defer { provider.stop() }
        let redirectURI = "http://127.0.0.1:9/callback"

        let noNonce = try #require(
            try RawHTTPClient(port: UInt16(provider.port)).request(
                "GET", path(provider.authorizationEndpoint) + "?" + form(authorizationQuery(redirectURI, nonce: nil)),
                headers: [("Host", "127.0.0.1:\(provider.port)")]))
        #expect(noNonce.status == 302 && noNonce.header("Location")?.contains("error=invalid_request") == true)

        let code = try authorizeWithoutBrowser(provider, sub: "x", redirectURI: redirectURI, nonce: "n-2")
        let foreign = try #require(try exchange(provider, code: code, redirectURI: "http://127.0.0.1:9/elsewhere"))
        #expect(foreign.status == 400 && foreign.object["error"]?.stringValue == "invalid_grant")
        let anonymous = try #require(try exchange(provider, code: code, redirectURI: redirectURI, secret: nil))
        #expect(anonymous.status == 401 && anonymous.object["error"]?.stringValue == "invalid_client")
        let first = try #require(try exchange(provider, code: code, redirectURI: redirectURI))
        #expect(first.status == 200)
        let again = try #require(try exchange(provider, code: code, redirectURI: redirectURI))
        #expect(again.status == 400 && again.object["error"]?.stringValue == "invalid_grant")
    }

    // MARK: - Browser and provider together

    @Test func browser_signsInAtTheProvider_endsOnTheRedirectURIWithCodeAndState_andTheCodeBuysAnIDToken() throws {
        let provider = try OIDCProvider()
        defer { provider.stop() }
        let receiver = try Receiver()
        defer { receiver.stop() }
        let browser = try Browser.start()
        defer { browser.stop() }

        let redirectURI = "http://127.0.0.1:\(receiver.port)/callback"
        let (verifier, challenge) = pkcePair()
        let state = "state-\(UInt64.random(in: 1...UInt64.max))"
        let nonce = "nonce-\(UInt64.random(in: 1...UInt64.max))"
        var query = authorizationQuery(redirectURI, nonce: nonce)
        query += [("state", state), ("code_challenge", challenge), ("code_challenge_method", "S256")]
        try browser.open(provider.authorizationEndpoint + "?" + form(query))

        let subject = try browser.find(css: "input[name=sub]")
        try browser.type(subject, "dr.grey")
        try browser.click(try browser.find(css: "button[type=submit]:not([name=action])"))
        try browser.waitUntil("the redirect to \(redirectURI)") { try browser.currentURL.hasPrefix(redirectURI + "?") }

        let landed = try #require(URLComponents(string: try browser.currentURL))
        let code = try #require(landed.queryItems?.first { $0.name == "code" }?.value)
        #expect(!code.isEmpty)
        #expect(landed.queryItems?.first { $0.name == "state" }?.value == state)
        #expect(try browser.title == "Callback page")
        #expect(receiver.paths.contains { $0.hasPrefix("/callback?") && $0.contains("code=") })

        let token = try #require(try exchange(provider, code: code, redirectURI: redirectURI, verifier: verifier))
        #expect(token.status == 200, "\(token.text)")
        let claims = try idTokenClaims(token)
        #expect(claims["sub"]?.stringValue == "dr.grey")
        #expect(claims["nonce"]?.stringValue == nonce)
        #expect(claims["iss"]?.stringValue == provider.issuer)
    }

    @Test func axe_onTheProviderPage_returnsAList_andOnAnImageWithoutAltText_reportsIt() throws {
        let provider = try OIDCProvider()
        defer { provider.stop() }
        let receiver = try Receiver()
        defer { receiver.stop() }
        let browser = try Browser.start()
        defer { browser.stop() }

        let redirectURI = "http://127.0.0.1:\(receiver.port)/callback"
        try browser.open(provider.authorizationEndpoint + "?" + form(authorizationQuery(redirectURI, nonce: "n")))
        let onProvider = try browser.axe()
        // A third-party page: only that a list came back, every line of the asked impacts.
        for line in onProvider {
            #expect(line.contains(" (serious): ") || line.contains(" (critical): "), "\(line)")
        }
        // axe really ran: the pinned axe-core is in the page.
        #expect(try browser.execute("return window.axe.version;").stringValue?.hasPrefix("4.") == true)

        try browser.open("http://127.0.0.1:\(receiver.port)/inaccessible")
        let found = try browser.axe()
        #expect(found.contains { $0.hasPrefix("image-alt (critical): ") && $0.contains("[img]") }, "\(found)")
        #expect(try browser.axe(violationsOf: ["minor"]).allSatisfy { $0.contains(" (minor): ") })
    }

    // MARK: - The browser's commands

    @Test func screenshot_isAPNG_andPageCommandsWork() throws {
        let receiver = try Receiver()
        defer { receiver.stop() }
        let browser = try Browser.start()
        defer { browser.stop() }
        let folder = TemporaryDirectory()
        defer { folder.remove() }

        try browser.open("http://127.0.0.1:\(receiver.port)/")
        let png = try browser.screenshot(to: folder.path + "/page.png")
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        let saved = try #require(FileManager.default.contents(atPath: folder.path + "/page.png"))
        #expect([UInt8](saved) == png)

        #expect(try browser.title == "Callback page")
        #expect(try browser.pageSource.contains("<h1>Callback</h1>"))
        #expect(try browser.findAll(css: "li").map { try browser.text($0) } == ["one", "two"])
        #expect(try browser.findAll(css: "table").isEmpty)
        let input = try browser.find(css: "#q")
        #expect(try browser.attribute(input, "name") == "q")
        #expect(try browser.attribute(input, "data-absent") == nil)
        try browser.clear(input)
        try browser.type(input, "typed")
        #expect(try browser.execute("return arguments[0].value;", [input.json]) == .string("typed"))

        do {
            _ = try browser.find(css: "#absent")
            Issue.record("find(css:) of a missing element did not throw")
        } catch let error as WebDriverError {
            #expect(error.code == .noSuchElement)
            #expect(error.message.contains("#absent"), "\(error)")
        }

        try browser.setWindowSize(width: 800, height: 600)
        #expect(try browser.execute("return window.outerWidth;") == .int(800))

        try browser.addCookie(
            BrowserCookie(name: "session", value: "s-1", path: "/", httpOnly: true, sameSite: "Strict"))
        let cookie = try #require(try browser.cookies.first { $0.name == "session" })
        #expect(cookie.value == "s-1" && cookie.httpOnly && cookie.sameSite == "Strict" && !cookie.secure)
        try browser.deleteAllCookies()
        #expect(try browser.cookies.isEmpty)
    }

    @Test func stop_endsChromedriverAndChromium_removesItsFolder_andIsSafeTwice() throws {
        let browser = try Browser.start()
        let driver = browser.driver
        let chromium = try #require(browser.browserPID)
        let folder = browser.directory.path
        #expect(isAlive(chromium) && driver.isRunning)
        browser.stop()
        browser.stop()
        #expect(!driver.isRunning)
        eventually("Chromium has exited") { !isAlive(chromium) }
        eventually("no process names the browser's folder") { processesNaming(folder).isEmpty }
        #expect(!FileManager.default.fileExists(atPath: folder))
    }
}

// MARK: - Helpers

/// A tiny HTTP server that answers 200 to anything: the redirect_uri of the sign-in, and
/// pages of our own (`/inaccessible` has an image without alternative text).
private final class Receiver: Sendable {
    private final class Log: Sendable {
        let targets = Mutex<[String]>([])
    }
    private let server: HTTPServer
    private let log = Log()
    var port: UInt16 { server.port }
    /// The request targets received, in order.
    var paths: [String] { log.targets.withLock { $0 } }

    init() throws {
        let log = self.log
        server = try HTTPServer(address: ListenAddress("127.0.0.1:0")!, logger: Logger(label: "receiver", silent: true))
        {
            request in
            log.targets.withLock { $0.append(request.target) }
            let body =
                request.path == "/inaccessible"
                ? #"<!doctype html><html lang="en"><head><title>Pictures</title></head><body><main>"#
                    + #"<h1>Pictures</h1><img src="/nothing.png"></main></body></html>"#
                : #"<!doctype html><html lang="en"><head><title>Callback page</title></head><body><main>"#
                    + #"<h1>Callback</h1><ul><li>one</li><li>two</li></ul>"#
                    + #"<label for="q">Query</label><input id="q" name="q" value="preset"></main></body></html>"#
            return HTTPResponse(
                status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Array(body.utf8))
        }
        let server = self.server
        Thread { server.run() }.start()
    }

    func stop() {
        server.shutdown()
        server.waitUntilStopped()
    }
}

private let clientID = "scimhub-console"

/// The authorization request's parameters (OpenID Connect Core §3.1.2.1).
private func authorizationQuery(_ redirectURI: String, nonce: String?) -> [(String, String)] {
    [("client_id", clientID), ("redirect_uri", redirectURI), ("response_type", "code"), ("scope", "openid email")]
        + (nonce.map { [("nonce", $0)] } ?? [])
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
private func pkcePair() -> (verifier: String, challenge: String) {
    var g = SystemRandomNumberGenerator()
    let verifier = base64URLString((0..<32).map { _ in UInt8.random(in: 0...255, using: &g) })
    return (verifier, base64URLString(Crypto.sha256(verifier)))
}

/// application/x-www-form-urlencoded, every byte but the unreserved ones escaped.
private func form(_ pairs: [(String, String)]) -> String {
    let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    func e(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: unreserved) ?? s }
    return pairs.map { "\(e($0.0))=\(e($0.1))" }.joined(separator: "&")
}

private func path(_ url: String) -> String { URLComponents(string: url)?.path ?? url }

private func get(_ provider: OIDCProvider, _ url: String) throws -> RawResponse? {
    try RawHTTPClient(port: UInt16(provider.port)).request(
        "GET", path(url), headers: [("Host", "127.0.0.1:\(provider.port)")])
}

/// Signs `sub` in by posting the provider's login form directly; returns the code from the redirect.
private func authorizeWithoutBrowser(_ provider: OIDCProvider, sub: String, redirectURI: String, nonce: String)
    throws -> String
{
    let response = try #require(
        try RawHTTPClient(port: UInt16(provider.port)).request(
            "POST", path(provider.authorizationEndpoint) + "?" + form(authorizationQuery(redirectURI, nonce: nonce)),
            headers: [("Host", "127.0.0.1:\(provider.port)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: Array(form([("sub", sub)]).utf8)))
    #expect(response.status == 302, "\(response.text)")
    let location = try #require(response.header("Location").flatMap { URLComponents(string: $0) })
    #expect(location.string?.hasPrefix(redirectURI + "?") == true)
    return try #require(location.queryItems?.first { $0.name == "code" }?.value)
}

/// The token request (RFC 6749 §4.1.3) with client_secret_basic, or no client authentication
/// when `secret` is nil.
private func exchange(
    _ provider: OIDCProvider, code: String, redirectURI: String, verifier: String? = nil, secret: String? = "any"
) throws -> RawResponse? {
    var fields = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI)]
    if let v = verifier { fields.append(("code_verifier", v)) }
    var headers = [("Host", "127.0.0.1:\(provider.port)"), ("Content-Type", "application/x-www-form-urlencoded")]
    if let s = secret {
        headers.append(("Authorization", "Basic " + Data("\(clientID):\(s)".utf8).base64EncodedString()))
    } else {
        fields.append(("client_id", clientID))
    }
    return try RawHTTPClient(port: UInt16(provider.port)).request(
        "POST", path(provider.tokenEndpoint), headers: headers, body: Array(form(fields).utf8))
}

/// The claims of the token response's ID token (its payload; the signature is the console's to check).
private func idTokenClaims(_ token: RawResponse) throws -> JSONObject {
    let idToken = try #require(token.object["id_token"]?.stringValue)
    let parts = idToken.split(separator: ".")
    try #require(parts.count == 3)
    var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while payload.count % 4 != 0 { payload += "=" }
    let data = try #require(Data(base64Encoded: payload))
    return try #require(try JSONParser().parse([UInt8](data)).objectValue)
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for init).
private func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(close, offsetBy: 2)] != "Z"
}

/// The live processes whose command line contains `text`.
private func processesNaming(_ text: String) -> [Int32] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { entry in
        guard let pid = Int32(entry), pid != getpid(), isAlive(pid),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { return nil }
        return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text) ? pid : nil
    }
}
