// SPDX-License-Identifier: Apache-2.0
private import CCrypto

/// Ed25519 signatures (RFC 8032) through OpenSSL's EVP interface, with keys in PEM files
/// (PKCS#8 private keys, SubjectPublicKeyInfo public keys) as `openssl genpkey -algorithm
/// ed25519` writes them.
public enum Ed25519 {
    /// A new key pair as PEM text: (private, public).
    public static func generate() throws(Ed25519Error) -> (privatePEM: String, publicPEM: String) {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else {
            throw Ed25519Error("cannot create a key context")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_keygen(ctx, &key) == 1, let k = key else {
            throw Ed25519Error("key generation failed")
        }
        defer { EVP_PKEY_free(k) }
        let priv = try pem { bio in PEM_write_bio_PrivateKey(bio, k, nil, nil, 0, nil, nil) }
        let pub = try pem { bio in PEM_write_bio_PUBKEY(bio, k) }
        return (priv, pub)
    }

    private static func pem(_ write: (OpaquePointer) -> Int32) throws(Ed25519Error) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw Ed25519Error("cannot allocate a buffer") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw Ed25519Error("cannot write PEM") }
        var data: UnsafeMutablePointer<CChar>? = nil
        let n = scimhub_BIO_get_mem_data(bio, &data)
        guard n > 0, let d = data else { throw Ed25519Error("cannot write PEM") }
        return String(decoding: UnsafeRawBufferPointer(start: d, count: n), as: UTF8.self)
    }

    static func readKey(_ pem: String, isPrivate: Bool) throws(Ed25519Error) -> OpaquePointer {
        let bytes = Array(pem.utf8)
        let key: OpaquePointer? = bytes.withUnsafeBytes { b in
            guard let bio = BIO_new_mem_buf(b.baseAddress, Int32(b.count)) else { return nil }
            defer { BIO_free(bio) }
            return isPrivate ? PEM_read_bio_PrivateKey(bio, nil, nil, nil) : PEM_read_bio_PUBKEY(bio, nil, nil, nil)
        }
        guard let k = key else { throw Ed25519Error("not a PEM \(isPrivate ? "private" : "public") key") }
        guard EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 else {
            EVP_PKEY_free(k)
            throw Ed25519Error("the key is not an Ed25519 key")
        }
        return k
    }

    static func verify(_ key: OpaquePointer, signature: [UInt8], message: [UInt8]) -> Bool {
        guard signature.count == 64, let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        return message.withUnsafeBufferPointer { m in
            signature.withUnsafeBufferPointer { s in
                EVP_DigestVerifyInit(ctx, nil, nil, nil, key) == 1
                    && EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count) == 1
            }
        }
    }

    static func rawPublicKey(_ k: OpaquePointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var n = 32
        _ = out.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(k, $0.baseAddress, &n) }
        return Array(out.prefix(n))
    }
}

/// A signing key, read once from PEM. Immutable after creation, so it may be shared.
public final class Ed25519PrivateKey: @unchecked Sendable {
    // @unchecked Sendable: the EVP_PKEY is never modified after init; EVP_DigestSign uses a
    // per-call context, and OpenSSL 3 allows concurrent use of a key that way.
    private let key: OpaquePointer
    /// The public key's SHA-256, first 8 bytes in hex: names the key in checkpoints.
    public let keyID: String
    public let publicKeyRaw: [UInt8]

    public init(pem: String) throws(Ed25519Error) {
        key = try Ed25519.readKey(pem, isPrivate: true)
        publicKeyRaw = Ed25519.rawPublicKey(key)
        keyID = hexString(Array(Crypto.sha256(publicKeyRaw).prefix(8)))
    }

    deinit { EVP_PKEY_free(key) }

    /// The 64-byte Ed25519 signature of `message`.
    public func sign(_ message: [UInt8]) throws(Ed25519Error) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { throw Ed25519Error("cannot create a signing context") }
        defer { EVP_MD_CTX_free(ctx) }
        var sig = [UInt8](repeating: 0, count: 64)
        var n = 64
        let ok = message.withUnsafeBufferPointer { m in
            sig.withUnsafeMutableBufferPointer { s in
                EVP_DigestSignInit(ctx, nil, nil, nil, key) == 1
                    && EVP_DigestSign(ctx, s.baseAddress, &n, m.baseAddress, m.count) == 1
            }
        }
        guard ok, n == 64 else { throw Ed25519Error("signing failed") }
        return sig
    }

    /// Checks a signature made with this key pair.
    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        Ed25519.verify(key, signature: signature, message: message)
    }
}

/// A verification key, from PEM.
public final class Ed25519PublicKey: @unchecked Sendable {
    // @unchecked Sendable: immutable after init (see Ed25519PrivateKey).
    private let key: OpaquePointer
    public let keyID: String

    public init(pem: String) throws(Ed25519Error) {
        key = try Ed25519.readKey(pem, isPrivate: false)
        keyID = hexString(Array(Crypto.sha256(Ed25519.rawPublicKey(key)).prefix(8)))
    }

    deinit { EVP_PKEY_free(key) }

    public func verify(signature: [UInt8], message: [UInt8]) -> Bool {
        Ed25519.verify(key, signature: signature, message: message)
    }
}

/// A key that cannot be read or used; the message names the problem, never key material.
public struct Ed25519Error: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}
