// SPDX-License-Identifier: Apache-2.0
import JSONCore
import OIDC
import Testing

/// SplitMix64: a seeded generator, so a failing random input can be reproduced.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private func b64(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }

/// Malformed compact tokens (RFC 7515 §7.1) and the error each gets.
private let malformedTokens: [(String, OIDCError)] = [
    ("", .malformedToken),
    ("abc", .malformedToken),
    ("a.b", .malformedToken),
    ("..", .malformedToken),
    ("a.b.c.d", .malformedToken),
    ("a.b.c.d.e", .malformedToken),  // a JWE (RFC 7516 §7.1)
    ("!!.e30.AA", .malformedToken),
    (b64(#"{"alg":"RS256"}"#) + "=.e30.AA", .malformedToken),  // padding
    (b64(#"{"alg":"RS256"}"#) + ".e30 .AA", .malformedToken),  // whitespace
    ("e30.e30.AA", .malformedToken),  // {} has no alg
    ("W10.e30.AA", .malformedToken),  // [] is not an object
    (b64(#"{"alg":"RS256""#) + ".e30.AA", .malformedToken),
    (b64(#"{"alg":256}"#) + ".e30.AA", .malformedToken),
    (b64(#"{"alg":"RS256","kid":7}"#) + ".e30.AA", .malformedToken),
    (b64(#"{"alg":"RS256","alg":"none"}"#) + ".e30.AA", .malformedToken),  // RFC 7515 §5.2 duplicates
    (b64(#"{"alg":"none","alg":"RS256"}"#) + ".e30.AA", .malformedToken),
    (b64(#"{"alg":"RS256"}"#) + "." + String(repeating: "A", count: 70_000) + ".AA", .malformedToken),
    (b64(#"{"alg":"none"}"#) + ".e30.", .unsupportedAlgorithm),
    (b64(#"{"alg":"RS256","crit":["exp"],"exp":1}"#) + ".e30.AA", .unsupportedCriticalHeader),
]

extension JOSETests {
    // MARK: - Malformed input

    @Test(arguments: malformedTokens.indices)
    func verify_malformedToken_refusedWithReason(index: Int) throws {
        let (token, expected) = malformedTokens[index]
        #expect(throws: expected) { try verify(token, keys: Keys.set()) }
        #expect(throws: expected) { try JWS.header(of: token) }
    }

    /// Every one-character change to a valid token is refused: strict base64url leaves no
    /// second spelling of the same bytes, and any other bytes break the signature.
    @Test(arguments: ["rsa-1", "ec-1"])
    func verify_anySingleCharacterChange_refused(kid: String) throws {
        let token = Array(TokenFactory.token(key: kid == "rsa-1" ? Keys.rsa : Keys.ec, kid: kid))
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ")
        var random = SeededGenerator(state: 13)
        let keys = try Keys.set()
        for _ in 0..<300 {
            var changed = token
            let i = Int.random(in: 0..<token.count, using: &random)
            let replacement = alphabet.filter { $0 != token[i] }.randomElement(using: &random) ?? "."
            changed[i] = replacement
            #expect(throws: OIDCError.self) { try verify(String(changed), keys: keys) }
        }
    }

    /// Hundreds of random byte strings through every parser: refused, never a crash.
    @Test func parsers_randomBytes_refusedWithoutCrashing() throws {
        var random = SeededGenerator(state: 7)
        let keys = try Keys.set()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        for round in 0..<400 {
            let count = Int.random(in: 0...300, using: &random)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Every other round stays within the token alphabet, to reach past the first check.
            if round % 2 == 1 { bytes = bytes.map { alphabet[Int($0) % alphabet.count] } }
            let text = String(decoding: bytes, as: UTF8.self)
            _ = Base64URL.decode(text)
            #expect(throws: OIDCError.self) { try verify(text, keys: keys) }
            #expect(throws: OIDCError.self) { try JWS.verify(text, keys: keys) }
            // Random segments behind a valid header reach the signature check.
            let token = b64(#"{"alg":"ES256","kid":"ec-1"}"#) + "." + text + "." + Base64URL.encode(bytes)
            #expect(throws: OIDCError.self) { try verify(token, keys: keys) }
            if let json = try? JSONParser().parse(bytes) {
                _ = try? JWKSet(json: json)
                _ = try? JWK(json: json)
            }
        }
    }

    /// Random key parameters reach OpenSSL: refused or built, never a crash.
    @Test func jwk_randomParameters_neverCrash() throws {
        var random = SeededGenerator(state: 11)
        func randomField(_ count: Int) -> JSONValue {
            .string(Base64URL.encode((0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }))
        }
        for _ in 0..<200 {
            let ec = JSONObject([
                "kty": .string("EC"), "crv": .string("P-256"), "x": randomField(32), "y": randomField(32),
            ])
            #expect(throws: OIDCError.malformedKey) { try JWK(json: .object(ec)) }
            let n = randomField(Int.random(in: 1...600, using: &random))
            let rsa = JSONObject([
                "kty": .string("RSA"), "n": n, "e": randomField(Int.random(in: 1...9, using: &random)),
            ])
            _ = try? JWK(json: .object(rsa))
        }
    }

    // MARK: - PKCE (RFC 7636)

    @Test func pkce_rfc7636AppendixB_challengeMatches() {
        // The verifier of RFC 7636 Appendix B ("...FWFOEjXk", capital O).
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        #expect(PKCE.challenge(for: verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        // One character off gives another challenge.
        #expect(PKCE.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFIEjXk") != PKCE.challenge(for: verifier))
        #expect(PKCE.method == "S256")
    }

    @Test func pkce_verifier_isRFC7636Shaped() {
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        var seen = Set<String>()
        for _ in 0..<50 {
            let verifier = PKCE.verifier()
            // RFC 7636 §4.1: 43 to 128 unreserved characters.
            #expect((43...128).contains(verifier.count))
            #expect(verifier.allSatisfy { unreserved.contains($0) })
            #expect(Base64URL.decode(verifier)?.count == 32)
            #expect(PKCE.challenge(for: verifier).count == 43)
            seen.insert(verifier)
            seen.insert(PKCE.randomToken())
        }
        #expect(seen.count == 100)
    }
}
