// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import JSONCore

/// The words people are found by in the console's search ("Jane", "smith", "nurse",
/// "north-clinic"): each User's display name, given and family names, title, department and sites,
/// split into words and folded like identifiers (NFKC, case folded), kept in an index of
/// their own so a search is a prefix range on it, never a scan of every person.
public enum PeopleSearch {
    /// The healthcare extension that holds a person's sites (`schemas/`; the store does
    /// not load schemas, so its URN is named here).
    static let healthcareExtension = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
    /// RFC 7643 §4.3: the department is found too ("nursing", "radiology").
    static let enterpriseExtension = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    /// A word longer than this is cut: the index holds words, not essays.
    static let maxWordLength = 64
    /// At most this many words per person (a title of 500 words indexes its first ones).
    static let maxTerms = 32

    /// The words a User's attributes are found by.
    public static func terms(of doc: JSONObject) -> Set<String> {
        var texts: [String] = []
        for key in ["displayName", "title", "nickName"] {
            if let v = doc[key]?.stringValue { texts.append(v) }
        }
        if let name = doc["name"]?.objectValue {
            for key in ["givenName", "familyName", "formatted"] {
                if let v = name[key]?.stringValue { texts.append(v) }
            }
        }
        for s in doc[healthcareExtension]?.objectValue?["sites"]?.arrayValue ?? [] {
            if let v = s.stringValue { texts.append(v) }
        }
        if let v = doc[enterpriseExtension]?.objectValue?["department"]?.stringValue { texts.append(v) }
        var out = Set<String>()
        for t in texts {
            for w in words(t) where out.count < maxTerms { out.insert(w) }
        }
        return out
    }

    /// The words of a query or an attribute: split at spaces and punctuation that separates
    /// names (`,;()/"`); a hyphenated or apostrophised word is kept whole and also split
    /// ("smith-jones" finds "jones"; "o'brien" is found by "o'b" and by "brien").
    public static func words(_ text: String) -> [String] {
        var folded = Identifier.canonical(text)
        // People type "jose" for "José" and "muller" for "Müller".
        if !folded.utf8.allSatisfy({ $0 < 0x80 }) {
            folded = folded.folding(options: .diacriticInsensitive, locale: nil)
        }
        var out: [String] = []
        for part in folded.split(whereSeparator: { " \t\n\r,;()/\"".contains($0) }) {
            let word = String(part.prefix(maxWordLength))
            out.append(word)
            let pieces = word.split(whereSeparator: { "-'.".contains($0) })
            if pieces.count > 1 { out.append(contentsOf: pieces.map(String.init)) }
        }
        return out
    }

    /// Whether every query word is a prefix of some word of `terms`.
    public static func matches(_ queryWords: [String], _ terms: Set<String>) -> Bool {
        queryWords.allSatisfy { q in terms.contains { $0.hasPrefix(q) } }
    }
}
