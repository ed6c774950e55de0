// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// The protected header of a compact JWS (RFC 7515 §4), read but not yet trusted.
public struct JWSHeader: Sendable {
    /// `alg` (RFC 7515 §4.1.1), always one of `JWSAlgorithm.accepted`.
    public let algorithm: JWSAlgorithm
    /// `kid` (RFC 7515 §4.1.4), when present.
    public let keyID: String?
    /// Every header member. `jwk`, `jku`, `x5u` and `x5c` are never used to find a key:
    /// keys come only from the provider's configured key set (RFC 8725 §3.10).
    public let members: JSONObject
}

/// A compact JWS whose signature has been checked against the provider's key set.
public struct VerifiedJWS: Sendable {
    public let header: JWSHeader
    /// The payload bytes (RFC 7515 §7.1: the decoded second segment).
    public let payload: [UInt8]
}

/// Compact JWS verification (RFC 7515 §5.2) for RS256 and ES256 (RFC 7518 §3.3-3.4).
public enum JWS {
    /// Longest token accepted, in bytes. ID tokens are a few KiB even with many claims;
    /// the bound keeps decoding and hashing of hostile input cheap.
    public static let maxCompactLength = 65_536

    /// Reads and vets the header without checking the signature, e.g. to look up its `kid`
    /// before a key set refresh. Refuses what `verify` refuses about the header.
    public static func header(of compact: String) throws(OIDCError) -> JWSHeader {
        try CompactJWS(compact).header
    }

    /// Checks the signature of `compact` with the key `keys` designates and returns the
    /// payload. Refuses algorithms other than RS256 and ES256, `crit` headers, a key whose
    /// type or stated `alg` differs from the header's `alg`, and signatures of the wrong size.
    public static func verify(_ compact: String, keys: JWKSet) throws(OIDCError) -> VerifiedJWS {
        let jws = try CompactJWS(compact)
        let key = try keys.key(for: jws.header.keyID, algorithm: jws.header.algorithm)
        guard verifySignature(jws, key: key) else { throw .signatureInvalid }
        return VerifiedJWS(header: jws.header, payload: jws.payload)
    }

    private static func verifySignature(_ jws: CompactJWS, key: JWK) -> Bool {
        switch jws.header.algorithm {
        case .rs256:
            // RFC 8017 §8.2.2 step 1: the signature is exactly k bytes, k the modulus length.
            guard jws.signature.count == key.publicKey.maxSignatureSize else { return false }
            return key.publicKey.verifySHA256(signature: jws.signature, message: jws.signingInput)
        case .es256:
            // RFC 7518 §3.4: exactly 64 bytes; anything else is refused before OpenSSL sees it.
            guard let der = ECDSASignature.der(fromRaw: jws.signature) else { return false }
            return key.publicKey.verifySHA256(signature: der, message: jws.signingInput)
        default:
            return false
        }
    }
}

/// The three decoded parts of `BASE64URL(header) . BASE64URL(payload) . BASE64URL(signature)`.
struct CompactJWS {
    let header: JWSHeader
    let payload: [UInt8]
    let signature: [UInt8]
    /// RFC 7515 §5.2 step 8: the ASCII of the first two segments with the dot between them.
    let signingInput: [UInt8]

    init(_ compact: String) throws(OIDCError) {
        let text = Array(compact.utf8)
        guard text.count <= JWS.maxCompactLength else { throw .malformedToken }
        // RFC 7515 §7.1: exactly three segments; five would be a JWE (RFC 7516 §7.1).
        let segments = text.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3,
            let headerBytes = Base64URL.decode(utf8: segments[0]),
            let payload = Base64URL.decode(utf8: segments[1]),
            let signature = Base64URL.decode(utf8: segments[2])
        else { throw .malformedToken }
        header = try Self.readHeader(headerBytes)
        self.payload = payload
        self.signature = signature
        signingInput = Array(text[..<segments[1].endIndex])
    }

    private static func readHeader(_ bytes: [UInt8]) throws(OIDCError) -> JWSHeader {
        let members = try JOSEJSON.object(bytes)
        guard let alg = members["alg"]?.stringValue else { throw .malformedToken }
        let algorithm = JWSAlgorithm(rawValue: alg)
        guard JWSAlgorithm.accepted.contains(algorithm) else { throw .unsupportedAlgorithm }
        // RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST
        // reject the JWS; this verifier implements none (e.g. RFC 7797's unencoded payload).
        guard members["crit"] == nil else { throw .unsupportedCriticalHeader }
        let kid = members["kid"]
        guard kid == nil || kid?.stringValue != nil else { throw .malformedToken }
        return JWSHeader(algorithm: algorithm, keyID: kid?.stringValue, members: members)
    }
}

/// JSON objects inside JOSE structures.
enum JOSEJSON {
    /// A JSON object without duplicate member names: RFC 7515 §5.2 step 4 and RFC 7519 §4
    /// let a parser either reject duplicates or take the last one; rejecting is the only
    /// choice that cannot disagree with another parser about which value was signed.
    static func object(_ bytes: [UInt8]) throws(OIDCError) -> JSONObject {
        guard let value = try? JSONParser().parse(bytes), let object = value.objectValue else {
            throw .malformedToken
        }
        guard Set(object.keys).count == object.members.count else { throw .malformedToken }
        return object
    }
}
