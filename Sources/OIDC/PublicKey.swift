// SPDX-License-Identifier: Apache-2.0
private import CCrypto

/// Owns one OpenSSL `EVP_PKEY` holding a public key and frees it when released.
final class PublicKey: @unchecked Sendable {
    // @unchecked Sendable: the EVP_PKEY is never modified after init, and every verification
    // uses its own EVP_MD_CTX; openssl-threads(7) allows concurrent read-only use of a key.
    let pkey: OpaquePointer

    private init(taking pkey: OpaquePointer) { self.pkey = pkey }

    deinit { EVP_PKEY_free(pkey) }

    /// Size of the key in bits (the RSA modulus, or 256 for P-256).
    var bits: Int { Int(EVP_PKEY_get_bits(pkey)) }

    /// Largest signature the key produces, in bytes (RSA: the modulus length k).
    var maxSignatureSize: Int { Int(EVP_PKEY_get_size(pkey)) }

    // MARK: - Building keys from JWK parameters

    /// An RSA public key from the big-endian modulus and exponent (RFC 7518 §6.3.1).
    static func rsa(modulus n: [UInt8], exponent e: [UInt8]) throws(OIDCError) -> PublicKey {
        guard n.count <= 2048, e.count <= 2048 else { throw .malformedKey }
        let pkey = n.withUnsafeBufferPointer { nb in
            e.withUnsafeBufferPointer { eb in
                scimhub_rsa_public_key(nb.baseAddress, Int32(nb.count), eb.baseAddress, Int32(eb.count))
            }
        }
        guard let pkey else { throw .malformedKey }
        return PublicKey(taking: pkey)
    }

    /// A P-256 public key from its affine coordinates (RFC 7518 §6.2.1), checked to lie on
    /// the curve: the uncompressed point 0x04 || x || y of SEC 1 §2.3.3.
    static func p256(x: [UInt8], y: [UInt8]) throws(OIDCError) -> PublicKey {
        let point: [UInt8] = [0x04] + x + y
        let pkey = point.withUnsafeBufferPointer { scimhub_p256_public_key($0.baseAddress, $0.count) }
        guard let pkey else { throw .malformedKey }
        let key = PublicKey(taking: pkey)
        try key.checkPublic()
        return key
    }

    /// OpenSSL's public-key validation: for EC, the point is on the curve, not at infinity,
    /// and of the group's order (SP 800-56A §5.6.2.3.3).
    private func checkPublic() throws(OIDCError) {
        guard let ctx = EVP_PKEY_CTX_new_from_pkey(nil, pkey, nil) else { throw .malformedKey }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_public_check(ctx) == 1 else { throw .malformedKey }
    }

    // MARK: - Verification

    /// Verifies `signature` over `message` with SHA-256: RSASSA-PKCS1-v1_5 for an RSA key
    /// (RFC 7518 §3.3), or ECDSA over a DER `ECDSA-Sig-Value` for an EC key.
    func verifySHA256(signature: [UInt8], message: [UInt8]) -> Bool {
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        return message.withUnsafeBufferPointer { m in
            signature.withUnsafeBufferPointer { s in
                EVP_DigestVerifyInit(ctx, nil, EVP_sha256(), nil, pkey) == 1
                    && EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count) == 1
            }
        }
    }
}

// MARK: - Helpers

/// Owns one OpenSSL `BIGNUM` made from big-endian bytes.
final class BigNumber {
    private(set) var pointer: OpaquePointer?

    init?(_ bytes: [UInt8]) {
        guard !bytes.isEmpty, bytes.count <= 2048 else { return nil }
        pointer = bytes.withUnsafeBufferPointer { BN_bin2bn($0.baseAddress, Int32($0.count), nil) }
        if pointer == nil { return nil }
    }

    /// Hands the BIGNUM to a C function that takes ownership (`ECDSA_SIG_set0`).
    func release() -> OpaquePointer? {
        defer { pointer = nil }
        return pointer
    }

    deinit { BN_free(pointer) }
}

/// ES256 signatures (RFC 7518 §3.4): JWS carries the 64-byte `R || S`, each a 32-byte
/// big-endian integer; OpenSSL verifies the DER `ECDSA-Sig-Value` of RFC 3279 §2.2.3.
enum ECDSASignature {
    /// The DER form of a raw P-256 signature, or nil when it is not exactly 64 bytes.
    static func der(fromRaw raw: [UInt8]) -> [UInt8]? {
        guard raw.count == 64, let r = BigNumber(Array(raw[0..<32])), let s = BigNumber(Array(raw[32..<64])),
            let sig = ECDSA_SIG_new()
        else { return nil }
        defer { ECDSA_SIG_free(sig) }
        guard ECDSA_SIG_set0(sig, r.pointer, s.pointer) == 1 else { return nil }
        // ECDSA_SIG_set0 took ownership of both BIGNUMs.
        _ = r.release()
        _ = s.release()
        let length = i2d_ECDSA_SIG(sig, nil)
        guard length > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(length))
        let written = out.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor = buffer.baseAddress
            return i2d_ECDSA_SIG(sig, &cursor)
        }
        return written == length ? out : nil
    }
}
