// SPDX-License-Identifier: Apache-2.0

/// Why a token, key or key set was refused. `code` is a stable identifier for audit entries
/// and metrics; `reason` is one sentence for the audit log and the sign-in error page.
/// Neither ever holds the token, a claim value or key material: a refused token is
/// attacker-controlled text and may carry personal data.
public struct OIDCError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: String, Sendable {
        case malformedToken = "malformed_token"
        case unsupportedAlgorithm = "unsupported_algorithm"
        case unsupportedCriticalHeader = "unsupported_critical_header"
        case algorithmMismatch = "algorithm_mismatch"
        case unknownSigningKey = "unknown_signing_key"
        case signatureInvalid = "signature_invalid"
        case wrongIssuer = "wrong_issuer"
        case wrongAudience = "wrong_audience"
        case wrongAuthorizedParty = "wrong_authorized_party"
        case expired = "expired"
        case notYetValid = "not_yet_valid"
        case issuedInFuture = "issued_in_future"
        case nonceMismatch = "nonce_mismatch"
        case missingSubject = "missing_subject"
        case missingExpiry = "missing_expiry"
        case missingIssuedAt = "missing_issued_at"
        case missingNonce = "missing_nonce"
        case malformedClaim = "malformed_claim"
        case malformedKey = "malformed_key"
        case weakKey = "weak_key"
        case unsupportedKey = "unsupported_key"
        case keyNotForSigning = "key_not_for_signing"
        case malformedKeySet = "malformed_key_set"
        case keySetUnavailable = "key_set_unavailable"
    }

    private let kind: Code

    private init(_ kind: Code) { self.kind = kind }

    /// A stable snake_case identifier, e.g. `signature_invalid`.
    public var code: String { kind.rawValue }

    /// One sentence naming the problem, safe to show a user and to store in an audit entry.
    public var reason: String {
        switch kind {
        case .malformedToken: "the ID token is not a well-formed signed JWT"
        case .unsupportedAlgorithm: "the ID token is signed with an algorithm that is not accepted"
        case .unsupportedCriticalHeader: "the ID token requires a header extension that is not supported"
        case .algorithmMismatch: "the ID token's algorithm does not match its signing key"
        case .unknownSigningKey: "the ID token names an unknown signing key"
        case .signatureInvalid: "the ID token's signature does not verify"
        case .wrongIssuer: "the ID token comes from the wrong issuer"
        case .wrongAudience: "the ID token is for the wrong audience"
        case .wrongAuthorizedParty: "the ID token is for the wrong authorized party"
        case .expired: "the ID token has expired"
        case .notYetValid: "the ID token is not yet valid"
        case .issuedInFuture: "the ID token is issued in the future"
        case .nonceMismatch: "the ID token's nonce does not match the sign-in request"
        case .missingSubject: "the ID token has no subject"
        case .missingExpiry: "the ID token has no expiry time"
        case .missingIssuedAt: "the ID token has no issue time"
        case .missingNonce: "the ID token has no nonce"
        case .malformedClaim: "the ID token has a claim of the wrong type"
        case .malformedKey: "a signing key of the identity provider is malformed"
        case .weakKey: "a signing key of the identity provider is too short"
        case .unsupportedKey: "a signing key of the identity provider has an unsupported type or curve"
        case .keyNotForSigning: "a key of the identity provider is not meant for signatures"
        case .malformedKeySet: "the identity provider's key set is malformed"
        case .keySetUnavailable: "the identity provider's key set could not be fetched"
        }
    }

    public var description: String { reason }

    // MARK: - Token structure and signature (RFC 7515, RFC 7519)

    /// Not three base64url segments of a JSON header and JSON claims (RFC 7515 §7.1), or a
    /// duplicate member name (RFC 7515 §5.2, RFC 7519 §4), or longer than the limit.
    public static let malformedToken = OIDCError(.malformedToken)
    /// `alg` is not RS256 or ES256: `none`, HMAC and everything else are refused.
    public static let unsupportedAlgorithm = OIDCError(.unsupportedAlgorithm)
    /// The header lists `crit` extensions (RFC 7515 §4.1.11); none are implemented.
    public static let unsupportedCriticalHeader = OIDCError(.unsupportedCriticalHeader)
    /// The selected key is of another type than `alg` needs, or states another `alg`.
    public static let algorithmMismatch = OIDCError(.algorithmMismatch)
    /// No key in the provider's set has the header's `kid`, or no `kid` and no single candidate.
    public static let unknownSigningKey = OIDCError(.unknownSigningKey)
    /// The signature does not verify with the selected key.
    public static let signatureInvalid = OIDCError(.signatureInvalid)

    // MARK: - Claims (OpenID Connect Core 1.0 §3.1.3.7)

    /// `iss` is not exactly the configured issuer (step 2).
    public static let wrongIssuer = OIDCError(.wrongIssuer)
    /// `aud` does not contain the client ID (step 3).
    public static let wrongAudience = OIDCError(.wrongAudience)
    /// Several audiences without `azp`, or an `azp` other than the client ID (steps 4-5).
    public static let wrongAuthorizedParty = OIDCError(.wrongAuthorizedParty)
    /// `exp` has passed, leeway included (step 9).
    public static let expired = OIDCError(.expired)
    /// `nbf` lies ahead, leeway included (RFC 7519 §4.1.5).
    public static let notYetValid = OIDCError(.notYetValid)
    /// `iat` lies ahead, leeway included (step 10).
    public static let issuedInFuture = OIDCError(.issuedInFuture)
    /// `nonce` differs from the one sent in the authentication request (step 11).
    public static let nonceMismatch = OIDCError(.nonceMismatch)
    /// No `sub`, or not a non-empty string (§2: REQUIRED).
    public static let missingSubject = OIDCError(.missingSubject)
    /// No `exp` (§2: REQUIRED).
    public static let missingExpiry = OIDCError(.missingExpiry)
    /// No `iat` (§2: REQUIRED).
    public static let missingIssuedAt = OIDCError(.missingIssuedAt)
    /// No `nonce` although the request sent one (step 11).
    public static let missingNonce = OIDCError(.missingNonce)
    /// A registered claim of the wrong JSON type, e.g. `exp` as a string.
    public static let malformedClaim = OIDCError(.malformedClaim)

    // MARK: - Keys (RFC 7517, RFC 7518 §6)

    /// Missing or undecodable key parameters, or parameters OpenSSL refuses (e.g. a point
    /// not on the curve).
    public static let malformedKey = OIDCError(.malformedKey)
    /// An RSA modulus under 2048 bits (RFC 7518 §3.3).
    public static let weakKey = OIDCError(.weakKey)
    /// A `kty` other than RSA and EC, a curve other than P-256, an `alg` not accepted, or an
    /// RSA modulus over `JWK.maximumRSABits`.
    public static let unsupportedKey = OIDCError(.unsupportedKey)
    /// `use` is present and not `sig` (RFC 7517 §4.2).
    public static let keyNotForSigning = OIDCError(.keyNotForSigning)
    /// Not an object with a `keys` array (RFC 7517 §5).
    public static let malformedKeySet = OIDCError(.malformedKeySet)
    /// The fetch of the provider's `jwks_uri` failed, and there is no earlier set.
    public static let keySetUnavailable = OIDCError(.keySetUnavailable)
}
