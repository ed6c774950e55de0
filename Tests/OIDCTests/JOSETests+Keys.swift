// SPDX-License-Identifier: Apache-2.0
import Dispatch
import JSONCore
import OIDC
import Synchronization
import Testing

/// A JWKS endpoint stand-in that counts fetches and can rotate its keys or fail.
final class FakeJWKSEndpoint: Sendable {
    private struct State {
        var document: JSONValue?
        var calls = 0
    }
    private let state: Mutex<State>

    init(_ keys: JSONValue...) { state = Mutex(State(document: FakeJWKSEndpoint.document(keys))) }

    var calls: Int { state.withLock { $0.calls } }

    /// Publishes a new set; nil makes the next fetches fail.
    func publish(_ keys: JSONValue...) { state.withLock { $0.document = FakeJWKSEndpoint.document(keys) } }
    func fail() { state.withLock { $0.document = nil } }

    @Sendable func fetch() throws -> JSONValue {
        let document = state.withLock { state -> JSONValue? in
            state.calls += 1
            return state.document
        }
        guard let document else { throw FetchFailed() }
        return document
    }

    private static func document(_ keys: [JSONValue]) -> JSONValue {
        .object(JSONObject(["keys": .array(keys)]))
    }

    struct FetchFailed: Error {}
}

/// One JWK and what reading it says.
struct KeyCase: Sendable, CustomTestStringConvertible {
    let name: String
    let json: JSONValue
    let expected: OIDCError

    var testDescription: String { name }
}

private func jwk(_ base: JSONValue, _ changes: KeyValuePairs<String, JSONValue?>) -> JSONValue {
    var object = base.objectValue ?? JSONObject()
    for (key, value) in changes { object[key] = value }
    return .object(object)
}

private let keyCases: [KeyCase] = {
    let rsa = Keys.rsa.jwk(kid: "r")
    let ec = Keys.ec.jwk(kid: "e")
    let xBytes = Base64URL.decode(ec.objectValue?["x"]?.stringValue ?? "") ?? []
    let y = ec.objectValue?["y"]?.stringValue ?? ""
    // Flipping the low bit of y moves the point off the curve.
    var yBytes = Base64URL.decode(y) ?? []
    yBytes[31] ^= 1
    return [
        KeyCase(name: "RSA-1024", json: Keys.rsa1024.jwk(kid: "weak"), expected: .weakKey),
        KeyCase(
            name: "RSA over 8192 bits",
            json: jwk(rsa, ["n": .string(Base64URL.encode([UInt8](repeating: 0xC5, count: 1100)))]),
            expected: .unsupportedKey),
        KeyCase(name: "RSA without n", json: jwk(rsa, ["n": nil]), expected: .malformedKey),
        KeyCase(name: "RSA n not base64url", json: jwk(rsa, ["n": .string("AQAB=")]), expected: .malformedKey),
        KeyCase(name: "RSA n a number", json: jwk(rsa, ["n": .int(65537)]), expected: .malformedKey),
        KeyCase(name: "RSA e = 1", json: jwk(rsa, ["e": .string("AQ")]), expected: .malformedKey),
        KeyCase(name: "RSA e = 1 with a zero byte", json: jwk(rsa, ["e": .string("AAE")]), expected: .malformedKey),
        KeyCase(name: "RSA e even", json: jwk(rsa, ["e": .string("AQAC")]), expected: .malformedKey),
        KeyCase(
            name: "RSA n even",
            json: jwk(rsa, ["n": .string(Base64URL.encode([0x80] + [UInt8](repeating: 0, count: 255)))]),
            expected: .malformedKey),
        KeyCase(
            name: "EC point not on the curve", json: jwk(ec, ["y": .string(Base64URL.encode(yBytes))]),
            expected: .malformedKey),
        KeyCase(
            name: "EC x of 31 bytes", json: jwk(ec, ["x": .string(Base64URL.encode(Array(xBytes.prefix(31))))]),
            expected: .malformedKey),
        KeyCase(name: "EC without y", json: jwk(ec, ["y": nil]), expected: .malformedKey),
        KeyCase(name: "EC on P-384", json: jwk(ec, ["crv": .string("P-384")]), expected: .unsupportedKey),
        KeyCase(name: "EC without crv", json: jwk(ec, ["crv": nil]), expected: .unsupportedKey),
        KeyCase(
            name: "octet key", json: jwk(rsa, ["kty": .string("oct"), "k": .string("c2VjcmV0")]),
            expected: .unsupportedKey),
        KeyCase(
            name: "OKP key", json: jwk(ec, ["kty": .string("OKP"), "crv": .string("Ed25519")]),
            expected: .unsupportedKey),
        KeyCase(name: "no kty", json: jwk(rsa, ["kty": nil]), expected: .unsupportedKey),
        KeyCase(name: "encryption key", json: jwk(rsa, ["use": .string("enc")]), expected: .keyNotForSigning),
        KeyCase(
            name: "key_ops without verify", json: jwk(rsa, ["key_ops": .array([.string("encrypt")])]),
            expected: .keyNotForSigning),
        KeyCase(name: "RSA key stating ES256", json: jwk(rsa, ["alg": .string("ES256")]), expected: .unsupportedKey),
        KeyCase(name: "kid a number", json: jwk(rsa, ["kid": .int(1)]), expected: .malformedKey),
        KeyCase(name: "not an object", json: .array([rsa]), expected: .malformedKey),
    ]
}()

extension JOSETests {
    // MARK: - JWK (RFC 7517, RFC 7518 §6)

    @Test func jwk_generatedKeys_read() throws {
        let rsa = try JWK(json: Keys.rsa.jwk(kid: "r", extra: ["use": .string("sig"), "alg": .string("RS256")]))
        #expect(rsa.keyType == .rsa && rsa.bits == 2048 && rsa.keyID == "r" && rsa.use == "sig")
        #expect(rsa.canVerify(.rs256) && !rsa.canVerify(.es256))
        let ec = try JWK(json: Keys.ec.jwk(kid: nil, extra: ["key_ops": .array([.string("verify")])]))
        #expect(ec.keyType == .ec && ec.bits == 256 && ec.keyID == nil && ec.algorithm == nil)
        #expect(ec.canVerify(.es256) && !ec.canVerify(.rs256))
    }

    @Test(arguments: keyCases)
    func jwk_unusableKey_refusedWithReason(_ keyCase: KeyCase) throws {
        #expect(throws: keyCase.expected) { try JWK(json: keyCase.json) }
        // In a set the same key is ignored, not fatal (RFC 7517 §5), and the others stay usable.
        let set = try Keys.set(keyCase.json, Keys.rsa.jwk(kid: "rsa-1"))
        #expect(set.keys.count == 1)
        #expect(set.ignored == [keyCase.expected])
    }

    @Test func verify_tokenFromRSA1024Key_refused() throws {
        let keys = try Keys.set(Keys.rsa1024.jwk(kid: "weak"), Keys.rsa.jwk(kid: "rsa-1"))
        #expect(throws: OIDCError.unknownSigningKey) {
            try verify(TokenFactory.token(key: Keys.rsa1024, kid: "weak"), keys: keys)
        }
        // Without a kid the one RSA key left is the 2048-bit one, which did not sign it.
        #expect(throws: OIDCError.signatureInvalid) {
            try verify(TokenFactory.token(key: Keys.rsa1024, kid: nil), keys: keys)
        }
    }

    @Test(arguments: [
        JSONValue.null, .array([]), .object(JSONObject()), .object(JSONObject(["keys": .string("x")])),
        .object(JSONObject(["Keys": .array([])])),
    ])
    func jwkSet_notAKeySet_refused(json: JSONValue) {
        #expect(throws: OIDCError.malformedKeySet) { try JWKSet(json: json) }
    }

    // MARK: - JWKS cache (key rotation, OpenID Connect Core §10.1.1)

    @Test func cache_unknownKid_refetchesOnceThenVerifies() throws {
        let endpoint = FakeJWKSEndpoint(Keys.rsa.jwk(kid: "rsa-1"))
        let cache = JWKSCache(fetch: endpoint.fetch)
        let t0 = TokenFactory.now
        #expect(try cacheVerify(TokenFactory.token(key: Keys.rsa, kid: "rsa-1"), cache, now: t0).sub != "")
        #expect(endpoint.calls == 1)
        #expect(try cacheVerify(TokenFactory.token(key: Keys.rsa, kid: "rsa-1"), cache, now: t0 + 1).sub != "")
        #expect(endpoint.calls == 1)

        // The provider rotates; a token signed with the new key arrives two minutes later.
        endpoint.publish(Keys.rsa.jwk(kid: "rsa-1"), Keys.rsaOther.jwk(kid: "rsa-2"))
        let rotated = TokenFactory.token(key: Keys.rsaOther, kid: "rsa-2")
        #expect(try cacheVerify(rotated, cache, now: t0 + 120).sub != "")
        #expect(endpoint.calls == 2)

        // A made-up kid within the minute costs no fetch.
        let forged = TokenFactory.token(key: Keys.rsaOther, kid: "forged-1")
        #expect(throws: OIDCError.unknownSigningKey) { try cacheVerify(forged, cache, now: t0 + 130) }
        #expect(endpoint.calls == 2)
        #expect(try cacheVerify(rotated, cache, now: t0 + 131).sub != "")
        #expect(endpoint.calls == 2)

        // A minute after the last fetch, an unknown kid may fetch again.
        #expect(throws: OIDCError.unknownSigningKey) { try cacheVerify(forged, cache, now: t0 + 180) }
        #expect(endpoint.calls == 3)
    }

    @Test func cache_floodOfForgedKids_fetchesAtMostOncePerInterval() throws {
        let endpoint = FakeJWKSEndpoint(Keys.rsa.jwk(kid: "rsa-1"))
        let cache = JWKSCache(minimumRefetchInterval: 60, fetch: endpoint.fetch)
        let t0 = TokenFactory.now
        _ = try cache.keySet(for: "rsa-1", now: t0)
        // 200 concurrent forged kids over 50 seconds.
        let refused = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            let token = TokenFactory.token(key: Keys.rsaOther, kid: "forged-\(i)")
            do throws(OIDCError) {
                _ = try cacheVerify(token, cache, now: t0 + 70 + Double(i % 50))
            } catch {
                refused.withLock { $0 += error == .unknownSigningKey ? 1 : 0 }
            }
        }
        #expect(refused.withLock { $0 } == 200)
        #expect(endpoint.calls == 2)
    }

    @Test func cache_fetchFails_keepsOldKeysAndWaits() throws {
        let endpoint = FakeJWKSEndpoint()
        endpoint.fail()
        let cache = JWKSCache(fetch: endpoint.fetch)
        let t0 = TokenFactory.now
        let token = TokenFactory.token(key: Keys.rsa, kid: "rsa-1")
        #expect(throws: OIDCError.keySetUnavailable) { try cacheVerify(token, cache, now: t0) }
        #expect(throws: OIDCError.keySetUnavailable) { try cacheVerify(token, cache, now: t0 + 10) }
        #expect(endpoint.calls == 1)
        #expect(cache.current == nil)

        endpoint.publish(Keys.rsa.jwk(kid: "rsa-1"))
        #expect(try cacheVerify(token, cache, now: t0 + 60).sub != "")
        #expect(endpoint.calls == 2)

        // A failed refresh keeps the set already held.
        endpoint.fail()
        let other = TokenFactory.token(key: Keys.rsaOther, kid: "rsa-2")
        #expect(throws: OIDCError.unknownSigningKey) { try cacheVerify(other, cache, now: t0 + 200) }
        #expect(endpoint.calls == 3)
        #expect(try cacheVerify(token, cache, now: t0 + 201).sub != "")
        #expect(try cache.key(for: "rsa-1", algorithm: .rs256, now: t0 + 202).keyID == "rsa-1")
    }
}

/// Verifies through the cache with the factory's issuer, client and nonce.
private func cacheVerify(_ token: String, _ cache: JWKSCache, now: Double) throws(OIDCError) -> IDTokenClaims {
    try IDTokenVerifier.verify(
        token, keys: cache, issuer: TokenFactory.issuer, clientID: TokenFactory.clientID, nonce: TokenFactory.nonce,
        now: now)
}
