// SPDX-License-Identifier: Apache-2.0
private import CCrypto

/// Time-based one-time passwords (RFC 6238) over HOTP (RFC 4226): HMAC-SHA-1, 30-second
/// steps, 6 digits, as authenticator apps expect by default.
public enum TOTP {
    public static let period = 30.0
    public static let digits = 6

    /// The time step for a Unix time (RFC 6238 §4.2: T = floor((now - T0) / X), T0 = 0).
    public static func step(at time: Double) -> Int64 { Int64((time / period).rounded(.down)) }

    /// The code for `step` (RFC 4226 §5.3 dynamic truncation), zero-padded.
    public static func code(secret: [UInt8], step: Int64, digits: Int = digits) -> String {
        var counter = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { counter[i] = UInt8(truncatingIfNeeded: UInt64(bitPattern: step) >> (8 * (7 - i))) }
        let mac = hmacSHA1(key: secret, data: counter)
        let offset = Int(mac[19] & 0x0F)
        let binary =
            (UInt32(mac[offset] & 0x7F) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(binary % modulus)
        return String(repeating: "0", count: max(0, digits - value.count)) + value
    }

    /// HMAC-SHA-1 (RFC 2104) via OpenSSL.
    public static func hmacSHA1(key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 20
        key.withUnsafeBufferPointer { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    _ = HMAC(EVP_sha1(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, o.baseAddress, &length)
                }
            }
        }
        return out
    }

    /// RFC 4648 base32 without padding (the `secret` of an otpauth:// URI).
    public static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var out = ""
        var buffer: UInt32 = 0, bits = 0
        for b in bytes {
            buffer = (buffer << 8) | UInt32(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return out
    }

    /// Decodes RFC 4648 base32 (case-insensitive, padding ignored); nil on a bad character.
    public static func base32Decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0, bits = 0
        for ch in text.uppercased() where ch != "=" {
            guard
                let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".firstIndex(of: ch).map({
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".distance(
                        from: "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".startIndex, to: $0)
                })
            else { return nil }
            buffer = (buffer << 5) | UInt32(v)
            bits += 5
            if bits >= 8 {
                out.append(UInt8((buffer >> UInt32(bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return out
    }
}
