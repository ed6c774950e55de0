// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import Store
import TestSupport

/// The failed-authentication throttle slows guessing without locking anyone out: a valid
/// token is never throttled, failures count per client address and per token id, and a
/// trusted proxy's X-Forwarded-For names the client.
@Suite struct AuthThrottleTests {
    let users = "/scim/v2/Users"

    @Test func validTokens_areNeverThrottled_byOtherRequestsFailures() throws {
        let hub = try LiveHub()
        defer { hub.stop() }
        for _ in 0..<15 { _ = try hub.call("GET", users, token: "shub_0000000000000000_guess") }
        #expect(try hub.call("GET", users, token: "shub_0000000000000000_guess").status == 429)
        // Same address, valid tokens: served.
        #expect(try hub.call("GET", users).status == 200)
        #expect(try hub.call("GET", "/admin/audit", token: hub.admin).status == 200)
        // Guessing another id's secret from anywhere is counted against that id too.
        let id = try #require(Tokens.publicID(hub.writer))
        for _ in 0..<10 { _ = try hub.call("GET", users, token: "shub_\(id)_wrongsecret") }
        #expect(try hub.call("GET", users, token: "shub_\(id)_wrongsecret").status == 429)
        #expect(try hub.call("GET", users).status == 200)  // the real token still works
    }

    @Test func behindATrustedProxy_eachClientIsThrottledAlone() throws {
        let hub = try LiveHub { $0.trustedProxies = ["127.0.0.0/8"] }
        defer { hub.stop() }
        func call(_ token: String, from client: String) throws -> Int {
            try hub.call("GET", users, token: token, headers: [("X-Forwarded-For", "\(client), 127.0.0.1")]).status
        }
        for _ in 0..<12 { _ = try call("shub_0000000000000000_guess", from: "203.0.113.7") }
        #expect(try call("shub_0000000000000000_guess", from: "203.0.113.7") == 429)
        // Another client behind the same proxy is not affected, even with a bad token.
        #expect(try call("shub_1111111111111111_typo", from: "198.51.100.20") == 401)
        // A forged left-most entry does not escape: the right-most untrusted hop is the client.
        #expect(
            try hub.call(
                "GET", users, token: "shub_2222222222222222_x", headers: [("X-Forwarded-For", "10.9.9.9, 203.0.113.7")]
            ).status == 429)
        // And a valid token from the throttled client is served.
        #expect(try call(hub.writer, from: "203.0.113.7") == 200)
    }

    @Test func forwardedFor_isIgnoredFromUntrustedPeers() throws {
        let hub = try LiveHub()  // no trusted proxies: the header is the client's to forge
        defer { hub.stop() }
        for i in 0..<12 {
            _ = try hub.call(
                "GET", users, token: "shub_0000000000000000_guess", headers: [("X-Forwarded-For", "192.0.2.\(i)")])
        }
        #expect(
            try hub.call(
                "GET", users, token: "shub_3333333333333333_guess", headers: [("X-Forwarded-For", "192.0.2.99")]
            ).status == 429)
    }
}
