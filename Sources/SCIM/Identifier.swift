// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation

/// Which identifiers SCIM accepts at all. Their canonical form for comparisons is
/// `Identifier.canonical` (module HubBase), shared with the store and the policy.
public enum SCIMIdentifier {
    /// Why `s` cannot be an identifier, as a phrase that follows the attribute's name
    /// ("has leading or trailing white space"), or nil when it is acceptable. Never
    /// quotes the value.
    public static func problem(_ s: String) -> String? {
        // printable ASCII without spaces: the common case
        if s.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) { return nil }
        let scalars = s.unicodeScalars
        if let first = scalars.first, let last = scalars.last,
            first.properties.isWhitespace || last.properties.isWhitespace
        {
            return "has leading or trailing white space"
        }
        for u in scalars {
            switch u.properties.generalCategory {
            case .control: return "contains a control character (U+\(hex(u)))"
            case .format, .lineSeparator, .paragraphSeparator:
                return "contains an invisible character (U+\(hex(u)))"
            case .unassigned, .privateUse, .surrogate:
                return "contains an unassigned or private-use code point (U+\(hex(u)))"
            default:
                // Default-ignorable code points (Hangul fillers, variation selectors) render as nothing.
                if u.properties.isDefaultIgnorableCodePoint { return "contains an invisible character (U+\(hex(u)))" }
                if u.properties.isWhitespace && u != " " {
                    return "contains white space other than a plain space (U+\(hex(u)))"
                }
            }
        }
        return nil
    }

    private static func hex(_ u: Unicode.Scalar) -> String {
        let h = String(u.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - h.count)) + h
    }
}
