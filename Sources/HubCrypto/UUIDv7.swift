// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Time-ordered UUIDs (RFC 9562 §5.7): 48 bits of Unix milliseconds, then 74 random bits.
/// New resources land at the end of the id index instead of at random places, which keeps
/// inserts into a large database fast; the random part keeps ids unguessable.
public enum UUIDv7 {
    /// A new lower-case UUIDv7 string.
    public static func make(now: Date = Date()) -> String {
        var b = Crypto.randomBytes(16)
        let ms = UInt64(max(0, now.timeIntervalSince1970 * 1000))
        for i in 0..<6 { b[i] = UInt8(truncatingIfNeeded: ms >> (8 * (5 - i))) }
        b[6] = 0x70 | (b[6] & 0x0F)  // version 7
        b[8] = 0x80 | (b[8] & 0x3F)  // variant 10
        let h = hexString(b)
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }
}
