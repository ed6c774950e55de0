// SPDX-License-Identifier: Apache-2.0

/// Escaping for user data that enters a DN or a search filter. Every value from a person
/// (user names, group names) goes through one of these; nothing is spliced raw.
public enum LDAPEscaping {
    /// An attribute value inside a DN (RFC 4514 §2.4): `"+,;<>\=` with a backslash, a
    /// leading `#` or space and a trailing space likewise, NUL and other control bytes as
    /// `\XX`. Non-ASCII UTF-8 is legal as is.
    public static func dnValue(_ s: String) -> String {
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 8)
        for (i, b) in bytes.enumerated() {
            switch b {
            case 0x22, 0x2B, 0x2C, 0x3B, 0x3C, 0x3E, 0x5C, 0x3D:  // " + , ; < > \ =
                out.append(0x5C); out.append(b)
            case 0x23 where i == 0, 0x20 where i == 0 || i == bytes.count - 1:  // leading #, leading/trailing space
                out.append(0x5C); out.append(b)
            case 0x00..<0x20, 0x7F:
                out.append(contentsOf: hex(b))
            default:
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// An assertion value inside a search filter (RFC 4515 §3): `*`, `(`, `)`, `\` and NUL
    /// as `\XX`, so no value can add a wildcard or a clause.
    public static func filterValue(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        for b in s.utf8 {
            switch b {
            case 0x2A, 0x28, 0x29, 0x5C, 0x00: out.append(contentsOf: hex(b))
            default: out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex(_ b: UInt8) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        return [0x5C, digits[Int(b >> 4)], digits[Int(b & 0xF)]]
    }
}
