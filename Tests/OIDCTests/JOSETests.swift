// SPDX-License-Identifier: Apache-2.0
import HubCrypto
import JSONCore
import OIDC
import Testing

/// Keys made once per test run: RSA key generation takes a noticeable fraction of a second.
enum Keys {
    static let rsa = TestKey.rsa(bits: 2048)
    static let rsaOther = TestKey.rsa(bits: 2048)
    static let ec = TestKey.p256()
    static let ecOther = TestKey.p256()
    static let rsa1024 = TestKey.rsa(bits: 1024)

    /// The provider's set: one RSA key `rsa-1`, one P-256 key `ec-1`.
    static func set(_ jwks: JSONValue...) throws -> JWKSet {
        let keys = jwks.isEmpty ? [rsa.jwk(kid: "rsa-1"), ec.jwk(kid: "ec-1")] : jwks
        return try JWKSet(json: .object(JSONObject(["keys": .array(keys)])))
    }
}

/// Verifies with the factory's issuer, client and nonce at its `now`.
func verify(_ token: String, keys: JWKSet, now: Double = TokenFactory.now) throws(OIDCError) -> IDTokenClaims {
    try IDTokenVerifier.verify(
        token, keys: keys, issuer: TokenFactory.issuer, clientID: TokenFactory.clientID, nonce: TokenFactory.nonce,
        now: now)
}

/// Concatenates the lines of a long literal, as the RFCs print them.
func joined(_ lines: String...) -> String { lines.joined() }

@Suite struct JOSETests {
    // MARK: - Base64URL (RFC 7515 §2, RFC 4648 §5)

    @Test func base64URL_rfc7515AppendixC_roundTrips() {
        #expect(Base64URL.encode([3, 236, 255, 224, 193]) == "A-z_4ME")
        #expect(Base64URL.decode("A-z_4ME") == [3, 236, 255, 224, 193])
        #expect(Base64URL.decode("") == [])
        #expect(Base64URL.decode("AA") == [0])
        #expect(Base64URL.decode("AAA") == [0, 0])
    }

    @Test(arguments: [
        "A-z_4ME=",  // padding (RFC 7515 §2)
        "A+z/4ME",  // the standard alphabet
        "A-z_ 4ME",  // whitespace
        "A-z_4ME\n",  // line break
        "A",  // one character cannot hold a byte
        "A-z_4MF",  // non-zero unused bits (RFC 4648 §3.5)
        "AB",  // the same for one byte
        "é",
    ])
    func base64URL_invalid_refused(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }

    // MARK: - RFC examples

    /// RFC 7515 Appendix A.2: RS256 over the JWT of RFC 7519 §3.1.
    @Test func jws_rfc7515AppendixA2RS256_verifies() throws {
        let n = joined(
            "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-",
            "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-",
            "UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2et",
            "hFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ")
        let token = joined(
            "eyJhbGciOiJSUzI1NiJ9.",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
            "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdb",
            "F9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383",
            "LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWy",
            "wlVmtVrBp0igcN_IoypGlUPQGe77Rw")
        let keys = try Keys.set(.object(JSONObject(["kty": .string("RSA"), "n": .string(n), "e": .string("AQAB")])))
        let verified = try JWS.verify(token, keys: keys)
        #expect(verified.header.algorithm == .rs256)
        #expect(String(decoding: verified.payload, as: UTF8.self).hasPrefix("{\"iss\":\"joe\",\r\n"))
        // The first signature character changed ("cC4h" to "cD4h"); the last carries unused
        // bits, where a change is refused as malformed instead.
        var parts = token.split(separator: ".").map(String.init)
        parts[2] = "cD" + parts[2].dropFirst(2)
        let tampered = parts.joined(separator: ".")
        #expect(throws: OIDCError.signatureInvalid) { try JWS.verify(tampered, keys: keys) }
        #expect(throws: OIDCError.malformedToken) { try JWS.verify(String(token.dropLast()) + "x", keys: keys) }
    }

    /// RFC 7515 Appendix A.3: ES256, the raw `R || S` signature form.
    @Test func jws_rfc7515AppendixA3ES256_verifies() throws {
        let token = joined(
            "eyJhbGciOiJFUzI1NiJ9.",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
            "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")
        let keys = try Keys.set(
            .object(
                JSONObject([
                    "kty": .string("EC"), "crv": .string("P-256"),
                    "x": .string("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"),
                    "y": .string("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"),
                ])))
        #expect(try JWS.verify(token, keys: keys).header.algorithm == .es256)
        // Same header and payload, last signature byte changed.
        let tampered = String(token.dropLast()) + "A"
        #expect(throws: OIDCError.signatureInvalid) { try JWS.verify(tampered, keys: keys) }
    }

    /// RFC 7515 Appendix A.1 (HS256) and RFC 7519 §6.1 (unsecured, `alg: none`).
    @Test(arguments: [
        joined(
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        joined(
            "eyJhbGciOiJub25lIn0.",
            "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."),
    ])
    func jws_rfcHMACAndUnsecuredExamples_refused(token: String) throws {
        let keys = try Keys.set()
        #expect(throws: OIDCError.unsupportedAlgorithm) { try JWS.verify(token, keys: keys) }
    }

    /// RFC 7517 Appendix A.1: the EC key is an encryption key (`use: enc`) and is ignored.
    @Test func jwkSet_rfc7517AppendixA1_keepsTheSigningKeyOnly() throws {
        let n = joined(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF",
            "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9",
            "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1",
            "jF44-csFCur-kEgU8awapJzKnqDKgw")
        let document = joined(
            #"{"keys":[{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","#,
            #""y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},"#,
            #"{"kty":"RSA","n":""#, n, #"","e":"AQAB","alg":"RS256","kid":"2011-04-29"}]}"#)
        let set = try JWKSet(json: JSONParser().parse(document))
        #expect(set.keys.count == 1)
        #expect(set.keys.first?.keyID == "2011-04-29")
        #expect(set.keys.first?.keyType == .rsa)
        #expect(set.keys.first?.algorithm == .rs256)
        #expect(set.keys.first?.bits == 2048)
        #expect(set.ignored == [.keyNotForSigning])
    }

    // MARK: - Valid tokens

    @Test func verify_validRS256_returnsClaims() throws {
        let claims = try verify(TokenFactory.token(key: Keys.rsa, kid: "rsa-1"), keys: Keys.set())
        #expect(claims.sub == "248289761001")
        #expect(claims.string("email") == "jane.doe@example.org")
        #expect(claims.strings("aud") == ["scimhub"])
        #expect(claims.date("exp") == TokenFactory.now + 300)
        #expect(claims.header.algorithm == .rs256)
        #expect(claims.header.keyID == "rsa-1")
    }

    @Test func verify_validES256_returnsClaims() throws {
        let claims = try verify(TokenFactory.token(key: Keys.ec, kid: "ec-1"), keys: Keys.set())
        #expect(claims.sub == "248289761001")
        #expect(claims.header.algorithm == .es256)
    }

    @Test func verify_noKidAndOneKeyOfTheType_usesIt() throws {
        // The set holds one RSA and one EC key: each algorithm has exactly one candidate.
        #expect(try verify(TokenFactory.token(key: Keys.rsa, kid: nil), keys: Keys.set()).sub == "248289761001")
        #expect(try verify(TokenFactory.token(key: Keys.ec, kid: nil), keys: Keys.set()).sub == "248289761001")
    }

    @Test func verify_noKidAndTwoKeysOfTheType_refused() throws {
        let keys = try Keys.set(Keys.rsa.jwk(kid: "a"), Keys.rsaOther.jwk(kid: "b"))
        #expect(throws: OIDCError.unknownSigningKey) {
            try verify(TokenFactory.token(key: Keys.rsa, kid: nil), keys: keys)
        }
    }

    @Test func strings_claimOfStringsOrString_readAsList() throws {
        var claims = TokenFactory.claims()
        claims["groups"] = .array([.string("nurses"), .string("ward-7")])
        claims["mixed"] = .array([.string("a"), .int(1)])
        let verified = try verify(TokenFactory.token(key: Keys.rsa, kid: "rsa-1", claims: claims), keys: Keys.set())
        #expect(verified.strings("groups") == ["nurses", "ward-7"])
        #expect(verified.strings("email") == ["jane.doe@example.org"])
        #expect(verified.strings("mixed") == nil)
        #expect(verified.strings("absent") == nil)
        #expect(verified.string("groups") == nil)
    }

    // MARK: - Signatures and algorithms (RFC 7515, RFC 7518, RFC 8725)

    @Test func verify_signedByAnotherKey_refused() throws {
        let keys = try Keys.set()
        #expect(throws: OIDCError.signatureInvalid) {
            try verify(TokenFactory.token(key: Keys.rsaOther, kid: "rsa-1"), keys: keys)
        }
        #expect(throws: OIDCError.signatureInvalid) {
            try verify(TokenFactory.token(key: Keys.ecOther, kid: "ec-1"), keys: keys)
        }
    }

    @Test(arguments: ["rsa-1", "ec-1"])
    func verify_tamperedPayload_refused(kid: String) throws {
        let key = kid == "rsa-1" ? Keys.rsa : Keys.ec
        let genuine = TokenFactory.token(key: key, kid: kid).split(separator: ".")
        var claims = TokenFactory.claims()
        claims["sub"] = .string("someone-else")
        let forged = Base64URL.encode(JSONWriter().write(.object(claims)))
        let token = [String(genuine[0]), forged, String(genuine[2])].joined(separator: ".")
        #expect(throws: OIDCError.signatureInvalid) { try verify(token, keys: Keys.set()) }
    }

    @Test(arguments: ["none", "None", "NONE", "HS256", "HS512", "RS384", "RS512", "PS256", "ES384", "EdDSA", ""])
    func verify_algorithmNotAccepted_refused(alg: String) throws {
        let header = JSONObject(["alg": .string(alg), "kid": .string("rsa-1")])
        let input = TokenFactory.signingInput(header: header, claims: TokenFactory.claims())
        let signature = alg.hasPrefix("RS") || alg.hasPrefix("PS") ? Keys.rsa.sign(Array(input.utf8)) : []
        let token = input + "." + Base64URL.encode(signature)
        #expect(throws: OIDCError.unsupportedAlgorithm) { try verify(token, keys: Keys.set()) }
    }

    /// The classic confusion: HS256 with the provider's public RSA key as the HMAC secret.
    @Test func verify_HS256WithRSAPublicKeyAsSecret_refused() throws {
        let header = JSONObject(["alg": .string("HS256"), "kid": .string("rsa-1")])
        let input = TokenFactory.signingInput(header: header, claims: TokenFactory.claims())
        let secrets = [Keys.rsa.modulus(), JSONWriter().write(Keys.rsa.jwk(kid: "rsa-1"))]
        for secret in secrets {
            let token = input + "." + Base64URL.encode(Crypto.hmacSHA256(key: secret, data: Array(input.utf8)))
            #expect(throws: OIDCError.unsupportedAlgorithm) { try verify(token, keys: Keys.set()) }
        }
    }

    @Test func verify_algorithmOfTheOtherKeyType_refused() throws {
        // ES256 header naming the RSA key, and RS256 naming the EC key.
        let header = JSONObject(["alg": .string("ES256"), "kid": .string("rsa-1")])
        let es = TokenFactory.token(key: Keys.ec, kid: nil, header: header)
        #expect(throws: OIDCError.algorithmMismatch) { try verify(es, keys: Keys.set()) }
        let rs = TokenFactory.token(
            key: Keys.rsa, kid: nil, header: JSONObject(["alg": .string("RS256"), "kid": .string("ec-1")]))
        #expect(throws: OIDCError.algorithmMismatch) { try verify(rs, keys: Keys.set()) }
    }

    @Test func verify_keyStatesAnotherAlgorithm_refused() throws {
        // The key says it is for ES256 only; a token names it with RS256.
        let keys = try Keys.set(Keys.ec.jwk(kid: "k", extra: ["alg": .string("ES256")]), Keys.rsa.jwk(kid: "r"))
        let header = JSONObject(["alg": .string("RS256"), "kid": .string("k")])
        #expect(throws: OIDCError.algorithmMismatch) {
            try verify(TokenFactory.token(key: Keys.rsa, kid: nil, header: header), keys: keys)
        }
        // A key stating an algorithm this verifier does not accept is ignored (RFC 7517 §5).
        let rs512 = try Keys.set(Keys.rsa.jwk(kid: "rsa-1", extra: ["alg": .string("RS512")]))
        #expect(rs512.ignored == [.unsupportedKey])
        #expect(throws: OIDCError.unknownSigningKey) {
            try verify(TokenFactory.token(key: Keys.rsa, kid: "rsa-1"), keys: rs512)
        }
    }

    @Test func verify_unknownKid_refused() throws {
        #expect(throws: OIDCError.unknownSigningKey) {
            try verify(TokenFactory.token(key: Keys.rsa, kid: "rotated-away"), keys: Keys.set())
        }
    }

    /// RFC 8725 §3.10: a key carried in the token itself is never trusted.
    @Test func verify_attackerKeyEmbeddedInHeader_ignored() throws {
        let header = JSONObject(["alg": .string("RS256"), "jwk": Keys.rsaOther.jwk(kid: nil)])
        let token = TokenFactory.token(key: Keys.rsaOther, kid: nil, header: header)
        #expect(throws: OIDCError.signatureInvalid) { try verify(token, keys: Keys.set()) }
    }

    @Test func verify_criticalHeader_refused() throws {
        let header = JSONObject([
            "alg": .string("RS256"), "kid": .string("rsa-1"), "b64": .bool(false), "crit": .array([.string("b64")]),
        ])
        let token = TokenFactory.token(key: Keys.rsa, kid: nil, header: header)
        #expect(throws: OIDCError.unsupportedCriticalHeader) { try verify(token, keys: Keys.set()) }
    }

    @Test(arguments: [0, 1, 32, 63, 65, 96, 128])
    func verify_ES256SignatureOfWrongLength_refused(length: Int) throws {
        let genuine = TokenFactory.token(key: Keys.ec, kid: "ec-1")
        let parts = genuine.split(separator: ".")
        let raw = try #require(Base64URL.decode(parts[2]))
        let resized = Array((raw + raw + raw).prefix(length))
        let token = parts[0] + "." + parts[1] + "." + Base64URL.encode(resized)
        #expect(throws: OIDCError.signatureInvalid) { try verify(token, keys: Keys.set()) }
    }

    @Test func verify_ES256SignatureInDERForm_refused() throws {
        let input = TokenFactory.signingInput(
            header: JSONObject(["alg": .string("ES256"), "kid": .string("ec-1")]), claims: TokenFactory.claims())
        let raw = Keys.ec.sign(Array(input.utf8))
        // A DER SEQUENCE of two INTEGERs, as OpenSSL would emit it: valid ECDSA, wrong JWS form.
        func integer(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
            let body = (bytes.first ?? 0) >= 0x80 ? [0] + Array(bytes) : Array(bytes)
            return [0x02, UInt8(body.count)] + body
        }
        let body = integer(raw[0..<32]) + integer(raw[32..<64])
        let der = [0x30, UInt8(body.count)] + body
        #expect(throws: OIDCError.signatureInvalid) {
            try verify(input + "." + Base64URL.encode(der), keys: Keys.set())
        }
    }

    @Test func verify_RS256SignatureTruncatedOrExtended_refused() throws {
        let parts = TokenFactory.token(key: Keys.rsa, kid: "rsa-1").split(separator: ".")
        let raw = try #require(Base64URL.decode(parts[2]))
        for signature in [Array(raw.dropFirst()), [0] + raw, raw + [0], []] {
            let token = parts[0] + "." + parts[1] + "." + Base64URL.encode(signature)
            #expect(throws: OIDCError.signatureInvalid) { try verify(token, keys: Keys.set()) }
        }
    }
}
