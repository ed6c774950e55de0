// SPDX-License-Identifier: Apache-2.0
import JSONCore
import OIDC
import Testing

/// One change to the claims of an otherwise valid ID token, and what the verifier says.
struct ClaimCase: Sendable, CustomTestStringConvertible {
    let name: String
    let expected: OIDCError?
    let change: @Sendable (inout JSONObject) -> Void

    init(_ name: String, _ expected: OIDCError?, _ change: @escaping @Sendable (inout JSONObject) -> Void) {
        self.name = name
        self.expected = expected
        self.change = change
    }

    var testDescription: String { name }
}

private let now = Int(TokenFactory.now)
private let client = TokenFactory.clientID

/// OpenID Connect Core 1.0 §3.1.3.7, step by step; `nil` means the token is accepted.
private let claimCases: [ClaimCase] = [
    // Step 2: iss exactly.
    ClaimCase("wrong issuer", .wrongIssuer) { $0["iss"] = .string("https://evil.example.org") },
    ClaimCase("issuer with trailing slash", .wrongIssuer) { $0["iss"] = .string(TokenFactory.issuer + "/") },
    ClaimCase("issuer in other case", .wrongIssuer) { $0["iss"] = .string("https://IDP.example.org") },
    ClaimCase("no issuer", .wrongIssuer) { $0["iss"] = nil },
    ClaimCase("issuer not a string", .wrongIssuer) { $0["iss"] = .array([.string(TokenFactory.issuer)]) },
    // Step 3: aud contains the client.
    ClaimCase("wrong audience", .wrongAudience) { $0["aud"] = .string("another-app") },
    ClaimCase("audiences without the client", .wrongAudience) {
        $0["aud"] = .array([.string("a"), .string("b")])
    },
    ClaimCase("no audience", .wrongAudience) { $0["aud"] = nil },
    ClaimCase("audience of the wrong type", .malformedClaim) { $0["aud"] = .array([.string(client), .int(1)]) },
    ClaimCase("one audience in an array", nil) { $0["aud"] = .array([.string(client)]) },
    // Steps 4-5: azp with several audiences, and whenever present.
    ClaimCase("several audiences, no azp", .wrongAuthorizedParty) {
        $0["aud"] = .array([.string(client), .string("another-app")])
    },
    ClaimCase("several audiences, wrong azp", .wrongAuthorizedParty) {
        $0["aud"] = .array([.string(client), .string("another-app")])
        $0["azp"] = .string("another-app")
    },
    ClaimCase("several audiences, azp is the client", nil) {
        $0["aud"] = .array([.string(client), .string("another-app")])
        $0["azp"] = .string(client)
    },
    ClaimCase("one audience, wrong azp", .wrongAuthorizedParty) { $0["azp"] = .string("another-app") },
    // Step 9: exp, with 60 s leeway.
    ClaimCase("expired", .expired) { $0["exp"] = .int(now - 61) },
    ClaimCase("expired within the leeway", nil) { $0["exp"] = .int(now - 30) },
    ClaimCase("no expiry", .missingExpiry) { $0["exp"] = nil },
    ClaimCase("expiry as a string", .malformedClaim) { $0["exp"] = .string("\(now + 300)") },
    ClaimCase("fractional expiry", nil) { $0["exp"] = .number(JSONNumber(TokenFactory.now + 300.5)) },
    // RFC 7519 §4.1.5: nbf.
    ClaimCase("not yet valid", .notYetValid) { $0["nbf"] = .int(now + 61) },
    ClaimCase("valid within the leeway", nil) { $0["nbf"] = .int(now + 30) },
    ClaimCase("nbf as a string", .malformedClaim) { $0["nbf"] = .string("0") },
    // Step 10: iat.
    ClaimCase("issued far in the future", .issuedInFuture) { $0["iat"] = .int(now + 3600) },
    ClaimCase("issued just ahead, within the leeway", nil) { $0["iat"] = .int(now + 30) },
    ClaimCase("no iat", .missingIssuedAt) { $0["iat"] = nil },
    // Step 11: nonce.
    ClaimCase("nonce mismatch", .nonceMismatch) { $0["nonce"] = .string("n-0S6_WzA2Mk") },
    ClaimCase("nonce prefix", .nonceMismatch) { $0["nonce"] = .string("n-0S6") },
    ClaimCase("nonce not a string", .nonceMismatch) { $0["nonce"] = .int(7) },
    ClaimCase("no nonce", .missingNonce) { $0["nonce"] = nil },
    // §2: sub.
    ClaimCase("no subject", .missingSubject) { $0["sub"] = nil },
    ClaimCase("empty subject", .missingSubject) { $0["sub"] = .string("") },
    ClaimCase("subject not a string", .missingSubject) { $0["sub"] = .int(248_289_761_001) },
]

extension JOSETests {
    // MARK: - ID token claims (OpenID Connect Core 1.0 §3.1.3.7)

    @Test(arguments: claimCases)
    func verify_claims_checkedPerOIDCCore(_ claimCase: ClaimCase) throws {
        var claims = TokenFactory.claims()
        claimCase.change(&claims)
        let keys = try Keys.set()
        for (key, kid) in [(Keys.rsa, "rsa-1"), (Keys.ec, "ec-1")] {
            let token = TokenFactory.token(key: key, kid: kid, claims: claims)
            if let expected = claimCase.expected {
                #expect(throws: expected) { try verify(token, keys: keys) }
            } else {
                #expect(try verify(token, keys: keys).sub == "248289761001")
            }
        }
    }

    @Test func verify_duplicateClaim_refused() throws {
        // RFC 7519 §4: a second "sub" could be read differently by another parser.
        let header = Base64URL.encode(Array(#"{"alg":"RS256","kid":"rsa-1"}"#.utf8))
        let body = JSONWriter().string(.object(TokenFactory.claims())).dropLast() + #","sub":"admin"}"#
        let input = header + "." + Base64URL.encode(Array(body.utf8))
        let token = input + "." + Base64URL.encode(Keys.rsa.sign(Array(input.utf8)))
        #expect(throws: OIDCError.malformedToken) { try verify(token, keys: Keys.set()) }
    }

    @Test(arguments: ["hello", "[1,2]", "\"sub\"", "", "{\"sub\":"])
    func verify_signedPayloadNotAJSONObject_refused(payload: String) throws {
        let header = Base64URL.encode(Array(#"{"alg":"RS256","kid":"rsa-1"}"#.utf8))
        let input = header + "." + Base64URL.encode(Array(payload.utf8))
        let token = input + "." + Base64URL.encode(Keys.rsa.sign(Array(input.utf8)))
        #expect(throws: OIDCError.malformedToken) { try verify(token, keys: Keys.set()) }
    }

    @Test func verify_emptyExpectedNonce_refused() throws {
        var claims = TokenFactory.claims()
        claims["nonce"] = .string("")
        let token = TokenFactory.token(key: Keys.rsa, kid: "rsa-1", claims: claims)
        #expect(throws: OIDCError.nonceMismatch) {
            try IDTokenVerifier.verify(
                token, keys: Keys.set(), issuer: TokenFactory.issuer, clientID: client, nonce: "",
                now: TokenFactory.now)
        }
    }

    @Test func verify_leeway_isConfigurable() throws {
        let token = TokenFactory.token(key: Keys.rsa, kid: "rsa-1")
        let later = TokenFactory.now + 330  // 30 s after exp
        #expect(throws: OIDCError.expired) {
            try IDTokenVerifier.verify(
                token, keys: Keys.set(), issuer: TokenFactory.issuer, clientID: client, nonce: TokenFactory.nonce,
                now: later, leeway: 0)
        }
        #expect(try verify(token, keys: Keys.set(), now: later).sub == "248289761001")
    }

    // MARK: - Errors

    @Test func error_reasons_nameTheProblemNotTheToken() throws {
        #expect(OIDCError.signatureInvalid.reason == "the ID token's signature does not verify")
        #expect(OIDCError.signatureInvalid.code == "signature_invalid")
        #expect(OIDCError.wrongAudience.reason.contains("wrong audience"))
        #expect(OIDCError.expired.reason.contains("expired"))
        #expect(OIDCError.nonceMismatch.reason.contains("nonce"))
        #expect(OIDCError.unknownSigningKey.reason.contains("unknown signing key"))
        // A refused token's text never appears in what is logged or shown.
        let token = TokenFactory.token(key: Keys.rsaOther, kid: "rsa-1")
        let keys = try Keys.set()
        do throws(OIDCError) {
            _ = try verify(token, keys: keys)
            Issue.record("a token signed by another key verified")
        } catch {
            for part in token.split(separator: ".") {
                #expect(!error.reason.contains(part))
                #expect(!"\(error)".contains(part))
            }
            #expect(!error.reason.contains("248289761001"))
        }
    }
}
