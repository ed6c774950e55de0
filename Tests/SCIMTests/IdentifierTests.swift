// SPDX-License-Identifier: Apache-2.0
import HubBase
import Testing
import SCIM

/// Identifiers are compared in one canonical form (RFC 8265 UsernameCaseMapped-like:
/// width and compatibility mapping, case folding, NFC), and unsafe ones are refused.
@Suite struct IdentifierTests {
    @Test(arguments: [
        ("ana.silva@x.org", "ANA.Silva@X.org"),
        ("ana.silva@x.org", "\u{FF41}na.silva@x.org"),  // fullwidth a
        ("fiona@x.org", "\u{FB01}ona@x.org"),  // ligature fi
        ("jos\u{E9}@x.org", "jose\u{301}@x.org"),  // composed vs decomposed
        ("strasse@x.org", "STRASSE@x.org"),
        ("stra\u{DF}e@x.org", "strasse@x.org"),  // full case folding: ß → ss
        ("\u{1F1}", "dz"),  // compatibility digraph DZ
        ("ana  silva", "ana silva"),  // LDAP insignificant space (RFC 4518)
    ])
    func lookAlikes_shareOneCanonicalForm(a: String, b: String) {
        #expect(Identifier.canonical(a) == Identifier.canonical(b))
    }

    // Cyrillic а stays distinct
    @Test(arguments: [("ana@x.org", "ana2@x.org"), ("jos\u{E9}", "jose"), ("ana", "an\u{430}")])
    func distinctNames_stayDistinct(a: String, b: String) {
        #expect(Identifier.canonical(a) != Identifier.canonical(b))
    }

    @Test(arguments: [
        (" ana@x.org", "leading or trailing white space"),
        ("ana@x.org ", "leading or trailing white space"),
        ("ana\u{0009}@x.org", "control character (U+0009)"),
        ("ana\u{200B}@x.org", "invisible character (U+200B)"),  // zero-width space
        ("ana\u{202E}@x.org", "invisible character (U+202E)"),  // right-to-left override
        ("ana\u{FEFF}@x.org", "invisible character (U+FEFF)"),
        ("ana\u{3164}@x.org", "invisible character (U+3164)"),  // Hangul filler
        ("ana\u{00A0}silva", "white space other than a plain space (U+00A0)"),
        ("ana\u{E000}", "unassigned or private-use code point (U+E000)"),
    ])
    func unsafeIdentifiers_areRefusedNamingTheProblem(value: String, problem: String) {
        #expect(
            SCIMIdentifier.problem(value)?.contains(problem) == true, "\(SCIMIdentifier.problem(value) ?? "accepted")")
    }

    @Test(arguments: ["ana.silva@x.org", "jos\u{E9}@x.org", "Ana Silva", "\u{5F20}\u{4F1F}", "o'brien+ward3@x.org"])
    func ordinaryIdentifiers_areAccepted(value: String) {
        #expect(SCIMIdentifier.problem(value) == nil)
    }
}
