// SPDX-License-Identifier: Apache-2.0

/// Salted password hashes for SCIM's writeOnly `password` (RFC 7643 §4.1.1): stored as
/// `$pbkdf2-sha256$ITERATIONS$SALT_HEX$HASH_HEX`, never returned.
public enum PasswordHash {
    /// Iterations for new hashes. High enough to slow offline guessing, low enough that an
    /// HR feed setting initial passwords for a few hundred people is not throttled.
    public static let defaultIterations = 100_000

    /// A new salted hash of `password`.
    public static func make(_ password: String, iterations: Int = defaultIterations) -> String {
        let salt = Crypto.randomBytes(16)
        let hash = Crypto.pbkdf2SHA256(password: Array(password.utf8), salt: salt, iterations: iterations)
        return "$pbkdf2-sha256$\(iterations)$\(hexString(salt))$\(hexString(hash))"
    }

    /// True when `password` matches `stored`, compared in constant time.
    public static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count == 4, parts[0] == "pbkdf2-sha256", let iterations = Int(parts[1]), iterations > 0,
            iterations <= 10_000_000,
            let salt = bytesFromHex(String(parts[2])), let expected = bytesFromHex(String(parts[3]))
        else { return false }
        let actual = Crypto.pbkdf2SHA256(
            password: Array(password.utf8), salt: salt, iterations: iterations, length: expected.count)
        return Crypto.constantTimeEquals(actual, expected)
    }
}
