// SPDX-License-Identifier: Apache-2.0
import HubCrypto

/// Base64url without padding, as JOSE writes every binary value (RFC 7515 §2, RFC 4648 §5).
public enum Base64URL {
    /// Unpadded base64url text of `bytes`.
    public static func encode(_ bytes: [UInt8]) -> String { base64URLString(bytes) }

    /// The bytes of unpadded base64url text, or nil. Strict: RFC 7515 §2 forbids padding,
    /// line breaks and whitespace, and non-zero unused bits in the last character are refused
    /// (RFC 4648 §3.5), so every byte string has exactly one accepted encoding and a signature
    /// cannot be altered without the change showing.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? { decode(utf8: text.utf8) }

    /// `decode(_:)` of text given as its UTF-8 bytes, e.g. a segment of a compact JWS.
    static func decode(utf8 chars: some Collection<UInt8>) -> [UInt8]? {
        // RFC 4648 §4: a single character left over cannot encode a whole byte.
        guard chars.count % 4 != 1 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count * 3 / 4)
        var buffer: UInt32 = 0
        var bits = 0
        for c in chars {
            guard let v = sextet(c) else { return nil }
            buffer = (buffer << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bits)))
                buffer &= (1 << UInt32(bits)) - 1
            }
        }
        return buffer == 0 ? out : nil
    }

    /// The 6-bit value of one base64url character (RFC 4648 §5, table 2).
    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }
}
