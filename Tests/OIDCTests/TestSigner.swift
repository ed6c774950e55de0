// SPDX-License-Identifier: Apache-2.0
import CCrypto
import HubCrypto
import JSONCore
import OIDC

// Test support only: the hub verifies tokens and never signs them, so the signing side of
// RS256 and ES256 lives here, not in the OIDC module.

/// A private key made with libcrypto for one test run, standing in for the identity provider.
final class TestKey: @unchecked Sendable {
    // @unchecked Sendable: the EVP_PKEY is never modified after generation; each signature
    // uses its own EVP_MD_CTX.
    let pkey: OpaquePointer
    let isEC: Bool

    private init(pkey: OpaquePointer, isEC: Bool) {
        self.pkey = pkey
        self.isEC = isEC
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A new RSA key of `bits` bits, exponent 65537.
    static func rsa(bits: Int32) -> TestKey {
        generate(type: "RSA", isEC: false) { EVP_PKEY_CTX_set_rsa_keygen_bits($0, bits) == 1 }
    }

    /// A new EC key on P-256.
    static func p256() -> TestKey {
        generate(type: "EC", isEC: true) { EVP_PKEY_CTX_set_group_name($0, "P-256") == 1 }
    }

    /// `type` is a StaticString because the context keeps the name pointer (a temporary C
    /// string made from a Swift String would dangle).
    private static func generate(type: StaticString, isEC: Bool, configure: (OpaquePointer) -> Bool) -> TestKey {
        let name = UnsafeRawPointer(type.utf8Start).assumingMemoryBound(to: CChar.self)
        let ctx = EVP_PKEY_CTX_new_from_name(nil, name, nil)
        defer { EVP_PKEY_CTX_free(ctx) }
        var pkey: OpaquePointer? = nil
        guard let ctx, EVP_PKEY_keygen_init(ctx) == 1, configure(ctx), EVP_PKEY_generate(ctx, &pkey) == 1,
            let made = pkey
        else { fatalError("test key generation failed") }
        return TestKey(pkey: made, isEC: isEC)
    }

    /// The algorithm this key signs with.
    var algorithm: String { isEC ? "ES256" : "RS256" }

    // MARK: - Public JWK

    /// The public key as a JWK (RFC 7517 §4, RFC 7518 §6.2.1 / §6.3.1).
    func jwk(kid: String?, extra: KeyValuePairs<String, JSONValue> = [:]) -> JSONValue {
        var object = JSONObject()
        if isEC {
            let point = publicPoint()
            object["kty"] = .string("EC")
            object["crv"] = .string("P-256")
            object["x"] = .string(Base64URL.encode(Array(point[1..<33])))
            object["y"] = .string(Base64URL.encode(Array(point[33..<65])))
        } else {
            object["kty"] = .string("RSA")
            object["n"] = .string(Base64URL.encode(modulus()))
            object["e"] = .string(Base64URL.encode(bigNumber(OSSL_PKEY_PARAM_RSA_E)))
        }
        if let kid { object["kid"] = .string(kid) }
        for (key, value) in extra { object[key] = value }
        return .object(object)
    }

    /// The RSA modulus, big-endian without leading zeros (the JWK `n`).
    func modulus() -> [UInt8] { bigNumber(OSSL_PKEY_PARAM_RSA_N) }

    private func bigNumber(_ name: String) -> [UInt8] {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(pkey, name, &bn) == 1, let bn else { fatalError("no \(name)") }
        defer { BN_free(bn) }
        var out = [UInt8](repeating: 0, count: Int((BN_num_bits(bn) + 7) / 8))
        _ = out.withUnsafeMutableBufferPointer { BN_bn2bin(bn, $0.baseAddress) }
        return out
    }

    /// The uncompressed point 0x04 || x || y.
    private func publicPoint() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 65)
        var length = 0
        let ok = out.withUnsafeMutableBufferPointer {
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, $0.baseAddress, 65, &length)
        }
        guard ok == 1, length == 65, out[0] == 0x04 else { fatalError("no uncompressed point") }
        return out
    }

    // MARK: - Signing

    /// The JWS signature of `message`: PKCS#1 v1.5 bytes for RSA, raw `R || S` for P-256.
    func sign(_ message: [UInt8]) -> [UInt8] {
        let der = digestSign(message)
        return isEC ? rawECDSA(der) : der
    }

    private func digestSign(_ message: [UInt8]) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { fatalError("no digest context") }
        defer { EVP_MD_CTX_free(ctx) }
        var length = 0
        guard EVP_DigestSignInit(ctx, nil, EVP_sha256(), nil, pkey) == 1,
            EVP_DigestSign(ctx, nil, &length, message, message.count) == 1
        else { fatalError("signing failed") }
        var out = [UInt8](repeating: 0, count: length)
        let ok = out.withUnsafeMutableBufferPointer {
            EVP_DigestSign(ctx, $0.baseAddress, &length, message, message.count)
        }
        guard ok == 1 else { fatalError("signing failed") }
        return Array(out.prefix(length))
    }

    /// DER `ECDSA-Sig-Value` to the fixed-width `R || S` of RFC 7518 §3.4.
    private func rawECDSA(_ der: [UInt8]) -> [UInt8] {
        let sig: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor = buffer.baseAddress
            return d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let sig else { fatalError("bad DER signature") }
        defer { ECDSA_SIG_free(sig) }
        var r: OpaquePointer? = nil
        var s: OpaquePointer? = nil
        ECDSA_SIG_get0(sig, &r, &s)
        var out = [UInt8](repeating: 0, count: 64)
        out.withUnsafeMutableBufferPointer { buffer in
            _ = BN_bn2binpad(r, buffer.baseAddress, 32)
            _ = BN_bn2binpad(s, buffer.baseAddress.map { $0 + 32 }, 32)
        }
        return out
    }
}

// MARK: - Tokens

/// Builds compact JWS tokens for the tests.
enum TokenFactory {
    static let issuer = "https://idp.example.org"
    static let clientID = "scimhub"
    static let nonce = "n-0S6_WzA2Mj"
    static let now = 1_700_000_000.0

    /// The claims of a valid ID token at `now`.
    static func claims() -> JSONObject {
        JSONObject([
            "iss": .string(issuer), "sub": .string("248289761001"), "aud": .string(clientID),
            "nonce": .string(nonce), "iat": .int(Int(now)), "exp": .int(Int(now) + 300),
            "email": .string("jane.doe@example.org"),
        ])
    }

    /// `header.payload.signature`, signed by `key` with its algorithm unless `header` says otherwise.
    static func token(key: TestKey, kid: String?, claims: JSONObject = claims(), header: JSONObject? = nil) -> String {
        var h = header ?? JSONObject(["alg": .string(key.algorithm)])
        if header == nil, let kid { h["kid"] = .string(kid) }
        let input = signingInput(header: h, claims: claims)
        return input + "." + Base64URL.encode(key.sign(Array(input.utf8)))
    }

    /// `BASE64URL(header) . BASE64URL(claims)`.
    static func signingInput(header: JSONObject, claims: JSONObject) -> String {
        Base64URL.encode(JSONWriter().write(.object(header))) + "."
            + Base64URL.encode(JSONWriter().write(.object(claims)))
    }
}
