// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import SQLite
@testable import Store

/// Migration 9 re-indexes stored identifiers in canonical form, and refuses, naming both
/// ids, when two stored people collide under it.
@Suite struct MigrationTests {
    func insertLegacy(_ db: SQLiteConnection, id: String, userName: String, email: String) throws {
        let doc = JSONWriter().write(
            .object(
                JSONObject([
                    "userName": .string(userName), "emails": .array([.object(JSONObject(["value": .string(email)]))]),
                ])))
        // As an earlier version indexed it: lower-cased only.
        try db.run(
            "INSERT INTO resources(id, type, user_name, version, created, modified, doc) "
                + "VALUES (?, 'User', ?, 1, 0, 0, ?)",
            [.text(id), .text(userName.lowercased()), .blob(doc)])
    }

    @Test func storedIdentifiers_areReindexedInCanonicalForm() throws {
        let t = try TempStore()
        let db = try SQLiteConnection(path: t.sqlite.path)
        try insertLegacy(db, id: "u1", userName: "\u{FF41}na@x.org", email: "Stra\u{DF}e@x.org")
        try insertLegacy(db, id: "u2", userName: "bea@x.org", email: "bea@x.org")
        try db.run("BEGIN")
        try Migrations.recomputeCanonicalIdentifiers(db)
        try db.run("COMMIT")
        let found = try t.store.read { try $0.candidates(type: .user, hint: .userName("ana@x.org")).map(\.id) }
        #expect(found == ["u1"])
        #expect(try t.store.read { try $0.candidates(type: .user, hint: .email("strasse@x.org")).map(\.id) } == ["u1"])
    }

    @Test func collidingPeople_stopTheMigration_namingBothIds() throws {
        let t = try TempStore()
        let db = try SQLiteConnection(path: t.sqlite.path)
        try insertLegacy(db, id: "u1", userName: "ana@x.org", email: "a@x.org")
        try insertLegacy(db, id: "u2", userName: "\u{FF41}na@x.org", email: "b@x.org")
        try db.run("BEGIN")
        let error = #expect(throws: StoreError.self) { try Migrations.recomputeCanonicalIdentifiers(db) }
        try db.run("ROLLBACK")
        #expect(error?.description.contains("u1 and u2") == true, "\(String(describing: error))")
    }

    /// Migration 25: people stored before the search index are found by their words after it.
    @Test func peopleStoredBefore_areFoundByTheirWordsAfterMigration25() throws {
        let t = try TempStore()
        let db = try SQLiteConnection(path: t.sqlite.path)
        try insertLegacy(db, id: "u1", userName: "jsmith@x.org", email: "j@x.org")
        let doc = JSONWriter().write(
            .object(JSONObject(["userName": .string("jsmith@x.org"), "displayName": .string("Jos\u{E9} Smith-Jones")])))
        try db.run("UPDATE resources SET doc = ? WHERE id = 'u1'", [.blob(doc)])
        #expect(try t.store.read { try $0.personSearchSeqs(termPrefix: "jones", limit: 10) }.seqs.isEmpty)
        try db.run("BEGIN")
        try Migrations.indexPeopleSearch(db)
        try db.run("COMMIT")
        for word in ["jose", "josé", "smith", "jones", "smith-j"] {
            let found = try t.store.read { conn in
                try conn.personSearchSeqs(termPrefix: PeopleSearch.words(word)[0], limit: 10).seqs.compactMap {
                    try conn.fetch(seq: $0)?.id
                }
            }
            #expect(found == ["u1"], "\(word)")
        }
        // Reading stops at the limit and says so; a person found by two words counts once.
        try t.store.write { w in
            for (i, name) in ["Ann Smith Smithson", "Bo Smith", "Cy Smith"].enumerated() {
                try w.connection.insert(
                    type: .user, id: "s\(i)",
                    doc: JSONObject(["userName": .string("s\(i)@x.org"), "displayName": .string(name)]), members: [],
                    now: 1)
            }
        }
        let cut = try t.store.read { try $0.personSearchSeqs(termPrefix: "smith", limit: 2) }
        #expect(cut.seqs.count == 2 && !cut.complete)
        let all = try t.store.read { try $0.personSearchSeqs(termPrefix: "smith", limit: 10) }
        // u1 and s0 have two words each starting "smith": six rows, four people.
        #expect(all.seqs.count == 4 && all.complete)
    }
}

/// The words people are found by.
@Suite struct PeopleSearchTests {
    @Test func words_foldCaseWidthAndAccents_andSplitNamesAtPunctuation() {
        #expect(
            PeopleSearch.words("  Dr. MÜLLER, Anna-Lena (Ward 7) ") == [
                "dr.", "muller", "anna-lena", "anna", "lena", "ward", "7",
            ])
        #expect(PeopleSearch.words("O'Brien") == ["o'brien", "o", "brien"])
        #expect(PeopleSearch.words("") == [])
    }

    @Test func terms_comeFromNamesTitleAndSites_only() {
        let doc = JSONObject([
            "userName": .string("zz9@x.org"), "displayName": .string("Ana Lima"), "title": .string("Registered Nurse"),
            "name": .object(JSONObject(["givenName": .string("Ana"), "familyName": .string("Lima Souza")])),
            "emails": .array([.object(JSONObject(["value": .string("secret@x.org")]))]),
            PeopleSearch.healthcareExtension: .object(JSONObject(["sites": .array([.string("CLN-NORTH")])])),
        ])
        let terms = PeopleSearch.terms(of: doc)
        #expect(terms == ["ana", "lima", "souza", "registered", "nurse", "cln-north", "cln", "north"])
        #expect(PeopleSearch.matches(["nurse", "li"], terms) && !PeopleSearch.matches(["nurse", "x"], terms))
    }
}
