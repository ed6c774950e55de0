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
/// maps ligatures such as `ﬁ`), full case folding, NFC again; and SCIM refuses identifiers
/// that cannot be compared safely at all (`SCIMIdentifier.problem`): leading or trailing white space, control,
/// format (invisible) and unassigned code points. Runs of spaces compare as one space, as
/// LDAP's insignificant-space handling does (RFC 4518 §2.6.1).
public enum Identifier {
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
            return collapsingSpaces(
                String(decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self))
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
}
