// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// A JWS algorithm identifier (RFC 7518 §3.1). Only `RS256` and `ES256` are ever accepted;
/// the type is open so that a refused header can still be named in code.
public struct JWSAlgorithm: RawRepresentable, Sendable, Hashable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), OpenID Connect's default.
    public static let rs256 = JWSAlgorithm(rawValue: "RS256")
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    public static let es256 = JWSAlgorithm(rawValue: "ES256")

    /// The algorithms a signature is checked with. `none` (RFC 7518 §3.6) and the HMAC
    /// family are absent on purpose: with HS256 an attacker who knows the provider's public
    /// key could use it as the shared secret.
    public static let accepted: Set<JWSAlgorithm> = [.rs256, .es256]

    /// The key type the algorithm needs.
    var keyType: JWK.KeyType? {
        switch self {
        case .rs256: .rsa
        case .es256: .ec
        default: nil
        }
    }
}

/// A public signing key of the identity provider (RFC 7517 §4): RSA (RFC 7518 §6.3) or EC
/// on P-256 (RFC 7518 §6.2), held as an OpenSSL key. Private members are ignored.
public struct JWK: Sendable {
    /// A `kty` value (RFC 7518 §6.1).
    public struct KeyType: RawRepresentable, Sendable, Hashable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public static let rsa = KeyType(rawValue: "RSA")
        public static let ec = KeyType(rawValue: "EC")
    }

    /// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
    public static let minimumRSABits = 2048
    /// Upper bound on the RSA modulus, so a hostile key set cannot make each check slow.
    public static let maximumRSABits = 8192

    public let keyType: KeyType
    /// `kid` (RFC 7517 §4.5), matched exactly against the JWS header's `kid`.
    public let keyID: String?
    /// `use` (RFC 7517 §4.2): nil or `sig`, the only values accepted for a signing key.
    public let use: String?
    /// `alg` (RFC 7517 §4.4) when the key states one; always RS256 or ES256.
    public let algorithm: JWSAlgorithm?
    /// Key size in bits: the RSA modulus, or 256 for P-256.
    public var bits: Int { publicKey.bits }

    let publicKey: PublicKey

    /// Reads one JWK. Throws `unsupportedKey` for another `kty`, curve or `alg`, or an RSA
    /// modulus over `maximumRSABits`; `keyNotForSigning` for a `use` other than `sig`;
    /// `weakKey` for RSA under 2048 bits; `malformedKey` for missing or undecodable parameters.
    public init(json: JSONValue) throws(OIDCError) {
        guard let object = json.objectValue else { throw .malformedKey }
        keyType = KeyType(rawValue: try Self.optionalString(object, "kty") ?? "")
        keyID = try Self.optionalString(object, "kid")
        use = try Self.optionalString(object, "use")
        algorithm = try Self.optionalString(object, "alg").map(JWSAlgorithm.init(rawValue:))
        if let use, use != "sig" { throw .keyNotForSigning }
        // RFC 7517 §4.3: `key_ops`, when present, must allow "verify".
        if let ops = object["key_ops"], !(ops.arrayValue ?? []).contains(.string("verify")) {
            throw .keyNotForSigning
        }
        if let algorithm, algorithm.keyType != keyType { throw .unsupportedKey }
        switch keyType {
        case .rsa: publicKey = try Self.rsaKey(object)
        case .ec: publicKey = try Self.ecKey(object)
        default: throw .unsupportedKey
        }
    }

    /// True when this key may check a signature made with `algorithm`: the key type fits and
    /// a stated `alg` is the same (RFC 7517 §4.4, RFC 8725 §3.1).
    public func canVerify(_ algorithm: JWSAlgorithm) -> Bool {
        algorithm.keyType == keyType && (self.algorithm == nil || self.algorithm == algorithm)
    }

    // MARK: - Parameters

    /// RFC 7518 §6.3.1: `n` and `e` as base64urlUInt.
    private static func rsaKey(_ object: JSONObject) throws(OIDCError) -> PublicKey {
        let n = try bytes(object, "n")
        let e = try bytes(object, "e")
        // A usable modulus is odd; a usable exponent odd, at least 3 and at most 64 bits
        // (e = 1 would make every message its own signature).
        let exponent = Array(e.drop { $0 == 0 })
        guard let nLast = n.last, nLast & 1 == 1, let eLast = exponent.last, eLast & 1 == 1,
            exponent.count <= 8, exponent != [1]
        else { throw .malformedKey }
        let key = try PublicKey.rsa(modulus: n, exponent: e)
        guard key.bits >= minimumRSABits else { throw .weakKey }
        guard key.bits <= maximumRSABits else { throw .unsupportedKey }
        return key
    }

    /// RFC 7518 §6.2.1: `crv` P-256, `x` and `y` each exactly 32 bytes (§6.2.1.2-3).
    private static func ecKey(_ object: JSONObject) throws(OIDCError) -> PublicKey {
        guard try optionalString(object, "crv") == "P-256" else { throw .unsupportedKey }
        let x = try bytes(object, "x")
        let y = try bytes(object, "y")
        guard x.count == 32, y.count == 32 else { throw .malformedKey }
        return try PublicKey.p256(x: x, y: y)
    }

    private static func optionalString(_ object: JSONObject, _ name: String) throws(OIDCError) -> String? {
        guard let value = object[name] else { return nil }
        guard let text = value.stringValue else { throw .malformedKey }
        return text
    }

    private static func bytes(_ object: JSONObject, _ name: String) throws(OIDCError) -> [UInt8] {
        guard let text = try optionalString(object, name), let decoded = Base64URL.decode(text), !decoded.isEmpty
        else { throw .malformedKey }
        return decoded
    }
}

/// The provider's published keys (RFC 7517 §5), as fetched from its `jwks_uri`.
public struct JWKSet: Sendable {
    /// Keys usable for RS256 or ES256 signatures, in document order.
    public let keys: [JWK]
    /// Why each ignored key was ignored, in document order. RFC 7517 §5: keys of a type not
    /// understood, missing members or values out of range SHOULD be ignored, not fatal, so
    /// one odd key (an encryption key, a new key type) does not stop every sign-in.
    public let ignored: [OIDCError]

    /// A set of already read keys.
    public init(keys: [JWK]) {
        self.keys = keys
        ignored = []
    }

    /// Reads `{"keys": [...]}`. Throws `malformedKeySet` only when that shape is missing.
    public init(json: JSONValue) throws(OIDCError) {
        guard let list = json.objectValue?["keys"]?.arrayValue else { throw .malformedKeySet }
        var keys: [JWK] = []
        var ignored: [OIDCError] = []
        for item in list {
            do throws(OIDCError) {
                keys.append(try JWK(json: item))
            } catch {
                ignored.append(error)
            }
        }
        self.keys = keys
        self.ignored = ignored
    }

    /// True when a usable key has this `kid`.
    public func contains(keyID: String) -> Bool { keys.contains { $0.keyID == keyID } }

    /// The key to check a signature made with `algorithm` under the header's `kid`
    /// (RFC 7515 §4.1.4). Without a `kid`, the only key that fits `algorithm`, if exactly one
    /// does (OpenID Connect Core §10.1 requires a `kid` when there are several).
    public func key(for keyID: String?, algorithm: JWSAlgorithm) throws(OIDCError) -> JWK {
        guard let keyID else {
            let fitting = keys.filter { $0.canVerify(algorithm) }
            guard fitting.count == 1, let only = fitting.first else { throw .unknownSigningKey }
            return only
        }
        let named = keys.filter { $0.keyID == keyID }
        guard !named.isEmpty else { throw .unknownSigningKey }
        guard let key = named.first(where: { $0.canVerify(algorithm) }) else { throw .algorithmMismatch }
        return key
    }
}
