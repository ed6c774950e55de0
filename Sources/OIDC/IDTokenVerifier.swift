// SPDX-License-Identifier: Apache-2.0
import HubCrypto
import JSONCore

/// The claims of an ID token that passed every check of `IDTokenVerifier`.
public struct IDTokenClaims: Sendable {
    /// Every claim (RFC 7519 §4), member names unique.
    public let claims: JSONObject
    /// The protected header the token was verified with.
    public let header: JWSHeader

    /// `sub` (OpenID Connect Core §2): the provider's stable identifier of the person.
    public var sub: String { claims["sub"]?.stringValue ?? "" }

    /// A claim that is a string, or nil.
    public func string(_ name: String) -> String? { claims[name]?.stringValue }

    /// A claim that is a string (as a one-element list) or an array of strings, or nil, e.g.
    /// `aud` (RFC 7519 §4.1.3) or a `groups` claim.
    public func strings(_ name: String) -> [String]? {
        guard let value = claims[name] else { return nil }
        if let one = value.stringValue { return [one] }
        guard let list = value.arrayValue else { return nil }
        var out: [String] = []
        for item in list {
            guard let text = item.stringValue else { return nil }
            out.append(text)
        }
        return out
    }

    /// A NumericDate claim (RFC 7519 §2: seconds since the epoch), or nil.
    public func date(_ name: String) -> Double? { claims[name]?.numberValue?.double }
}

/// The relying party's checks of an ID token from the token endpoint, in the order of
/// OpenID Connect Core 1.0 §3.1.3.7. The signature is checked first, always (the TLS
/// exemption of step 6 is not used), so no claim is read from an unverified token.
public enum IDTokenVerifier {
    /// Verifies `token` against `keys` and returns its claims.
    /// - Parameters:
    ///   - issuer: the provider's issuer identifier, compared exactly (step 2).
    ///   - clientID: this relying party's `client_id` (steps 3-5).
    ///   - nonce: the value sent in the authentication request (step 11).
    ///   - now: the current time in seconds since the epoch.
    ///   - leeway: clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    public static func verify(
        _ token: String, keys: JWKSet, issuer: String, clientID: String, nonce: String, now: Double,
        leeway: Double = 60
    ) throws(OIDCError) -> IDTokenClaims {
        let jws = try JWS.verify(token, keys: keys)
        let claims = try JOSEJSON.object(jws.payload)
        try checkIssuerAndAudience(claims, issuer: issuer, clientID: clientID)
        try checkTimes(claims, now: now, leeway: leeway)
        try checkNonce(claims, nonce: nonce)
        guard let sub = claims["sub"]?.stringValue, !sub.isEmpty else { throw .missingSubject }
        return IDTokenClaims(claims: claims, header: jws.header)
    }

    /// Like `verify(_:keys:...)`, with the key set from `cache`: a `kid` the cached set lacks
    /// makes the cache refetch the provider's keys (rotation), at most once per its interval.
    public static func verify(
        _ token: String, keys cache: JWKSCache, issuer: String, clientID: String, nonce: String, now: Double,
        leeway: Double = 60
    ) throws(OIDCError) -> IDTokenClaims {
        let header = try JWS.header(of: token)
        let keys = try cache.keySet(for: header.keyID, now: now)
        return try verify(
            token, keys: keys, issuer: issuer, clientID: clientID, nonce: nonce, now: now, leeway: leeway)
    }

    // MARK: - Steps of §3.1.3.7

    /// Steps 2-5: `iss` exact; `aud` holds the client; with several audiences, or whenever
    /// present, `azp` is the client.
    private static func checkIssuerAndAudience(
        _ claims: JSONObject, issuer: String, clientID: String
    ) throws(OIDCError) {
        guard let iss = claims["iss"] else { throw .wrongIssuer }
        guard iss.stringValue == issuer else { throw .wrongIssuer }
        let audiences = try audienceList(claims["aud"])
        guard audiences.contains(clientID) else { throw .wrongAudience }
        let azp = claims["azp"]
        if azp != nil || audiences.count > 1 {
            guard azp?.stringValue == clientID else { throw .wrongAuthorizedParty }
        }
    }

    /// RFC 7519 §4.1.3: `aud` is one string or an array of strings.
    private static func audienceList(_ value: JSONValue?) throws(OIDCError) -> [String] {
        guard let value else { throw .wrongAudience }
        if let one = value.stringValue { return [one] }
        guard let list = value.arrayValue else { throw .malformedClaim }
        var out: [String] = []
        for item in list {
            guard let text = item.stringValue else { throw .malformedClaim }
            out.append(text)
        }
        return out
    }

    /// Step 9 (`exp`), step 10 (`iat`) and RFC 7519 §4.1.5 (`nbf`), each with `leeway`.
    private static func checkTimes(_ claims: JSONObject, now: Double, leeway: Double) throws(OIDCError) {
        guard let exp = try numericDate(claims, "exp") else { throw .missingExpiry }
        guard now - leeway < exp else { throw .expired }
        guard let iat = try numericDate(claims, "iat") else { throw .missingIssuedAt }
        guard iat <= now + leeway else { throw .issuedInFuture }
        if let nbf = try numericDate(claims, "nbf"), nbf > now + leeway { throw .notYetValid }
    }

    /// RFC 7519 §2: a JSON number of seconds; any other type is refused, not ignored.
    private static func numericDate(_ claims: JSONObject, _ name: String) throws(OIDCError) -> Double? {
        guard let value = claims[name] else { return nil }
        guard let seconds = value.numberValue?.double else { throw .malformedClaim }
        return seconds
    }

    /// Step 11, compared in constant time so the nonce cannot be found byte by byte.
    private static func checkNonce(_ claims: JSONObject, nonce: String) throws(OIDCError) {
        // An empty expected nonce would accept a token replayed without one from elsewhere.
        guard !nonce.isEmpty else { throw .nonceMismatch }
        guard let value = claims["nonce"] else { throw .missingNonce }
        guard let claimed = value.stringValue,
            Crypto.constantTimeEquals(Array(claimed.utf8), Array(nonce.utf8))
        else { throw .nonceMismatch }
    }
}
