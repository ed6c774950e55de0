// SPDX-License-Identifier: Apache-2.0
import HubCrypto

/// Proof Key for Code Exchange (RFC 7636) with the S256 method, and the random `state` and
/// `nonce` values of the authentication request (OpenID Connect Core §3.1.2.1).
public enum PKCE {
    /// The `code_challenge_method` sent with the challenge (RFC 7636 §4.3).
    public static let method = "S256"

    /// A new `code_verifier`: 32 random bytes as 43 base64url characters, the construction
    /// RFC 7636 §4.1 recommends (256 bits of entropy, within the 43-128 character range).
    public static func verifier() -> String { randomToken() }

    /// The `code_challenge` for `verifier`: BASE64URL(SHA256(ASCII(code_verifier)))
    /// (RFC 7636 §4.2, S256).
    public static func challenge(for verifier: String) -> String {
        Base64URL.encode(Crypto.sha256(Array(verifier.utf8)))
    }

    /// 32 random bytes as 43 base64url characters, for `state` (CSRF protection, RFC 6749
    /// §10.12) and `nonce` (replay protection, OpenID Connect Core §15.5.2).
    public static func randomToken() -> String { Base64URL.encode(Crypto.randomBytes(32)) }
}
