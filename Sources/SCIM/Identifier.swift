// SPDX-License-Identifier: Apache-2.0
import Foundation

/// Identifiers that reach downstream systems (`userName`, e-mail addresses, `externalId`,
/// group names) and how they are compared.
///
/// Targets fold names before they compare them: LDAP's caseIgnoreMatch prepares strings
/// with NFKC and case folding (RFC 4518 §2), many REST APIs lower-case. If the hub kept
/// `ａna.silva` (fullwidth) and `ana.silva` apart, a target would see one account for two
/// people, and one person's leaver action would disable the other. So the hub compares
/// identifiers in one canonical form at least as coarse as any target's, close to PRECIS
/// UsernameCaseMapped (RFC 8265 §3.3): compatibility and width mapping (NFKC, which also
/// maps ligatures such as `ﬁ`), full case folding, NFC again; and it refuses identifiers
/// that cannot be compared safely at all: leading or trailing white space, control,
/// format (invisible) and unassigned code points. Runs of spaces compare as one space, as
/// LDAP's insignificant-space handling does (RFC 4518 §2.6.1).
public enum SCIMIdentifier {
    /// The canonical form used for uniqueness and indexed lookups. Stored values keep the
    /// spelling the client sent; only comparisons use this.
    public static func canonical(_ s: String) -> String {
        // Fast path: plain ASCII folds to ASCII lower case.
        var ascii = true, upper = false, space = false
        for b in s.utf8 {
            if b >= 0x80 { ascii = false; break }
            if b >= 0x41 && b <= 0x5A { upper = true } else if b == 0x20 { space = true }
        }
        if ascii {
            if !upper && !space { return s }  // already canonical: no allocation on the hot path
            return collapsingSpaces(String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self))
        }
        // RFC 8265 §3.3.2: width mapping (part of NFKC), case mapping, normalisation.
        let folded = s.precomposedStringWithCompatibilityMapping.folding(options: [.caseInsensitive], locale: nil)
        return collapsingSpaces(folded.precomposedStringWithCompatibilityMapping)
    }

    private static func collapsingSpaces(_ s: String) -> String {
        guard s.utf8.contains(0x20) else { return s }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 where !(b == 0x20 && out.last == 0x20) { out.append(b) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether `name` matches `pattern`, where `*` matches any run of characters, both in
    /// canonical form. Iterative, so a pattern like `*a*a*a*b` cannot blow up on long names.
    public static func matches(pattern: String, _ name: String) -> Bool {
        glob(Array(canonical(pattern).utf8)[...], Array(canonical(name).utf8)[...])
    }

    static func glob(_ pattern: ArraySlice<UInt8>, _ text: ArraySlice<UInt8>) -> Bool {
        var p = pattern.startIndex, t = text.startIndex
        var star: Int? = nil, mark = t
        while t < text.endIndex {
            if p < pattern.endIndex && pattern[p] == 0x2A { star = p; p += 1; mark = t; continue }
            if p < pattern.endIndex && pattern[p] == text[t] { p += 1; t += 1; continue }
            guard let s = star else { return false }
            p = s + 1; mark += 1; t = mark
        }
        while p < pattern.endIndex && pattern[p] == 0x2A { p += 1 }
        return p == pattern.endIndex
    }

    /// Why `s` cannot be an identifier, as a phrase that follows the attribute's name
    /// ("has leading or trailing white space"), or nil when it is acceptable. Never
    /// quotes the value.
    public static func problem(_ s: String) -> String? {
        if s.utf8.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) { return nil }  // printable ASCII without spaces: the common case
        let scalars = s.unicodeScalars
        if let first = scalars.first, let last = scalars.last,
           first.properties.isWhitespace || last.properties.isWhitespace {
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
                if u.properties.isWhitespace && u != " " { return "contains white space other than a plain space (U+\(hex(u)))" }
            }
        }
        return nil
    }

    private static func hex(_ u: Unicode.Scalar) -> String {
        let h = String(u.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - h.count)) + h
    }
}
