// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    /// Records that `principal` set these attributes of a person now.
    public func recordAttributeSources(personID: String, attributes: [String], principal: String, now: Double) throws {
        guard !attributes.isEmpty else { return }
        // One statement for all of them; each attribute once (an upsert may not touch a row twice).
        try db.run(
            """
            INSERT INTO attribute_sources(person_id, attribute, principal, time)
            SELECT ?, a, ?, ? FROM unnest(?::text[]) AS a
            ON CONFLICT(person_id, attribute) DO UPDATE SET principal = excluded.principal, time = excluded.time
            """, [.text(personID), .text(principal), .real(now), .textArray(Set(attributes).sorted())])
    }

    /// Attribute → (principal, time) for a person.
    public func attributeSources(personID: String) throws -> [(attribute: String, principal: String, time: Double)] {
        var out: [(String, String, Double)] = []
        try db.query(
            "SELECT attribute, principal, time FROM attribute_sources WHERE person_id = ? ORDER BY attribute",
            [.text(personID)]
        ) { r in
            out.append((r.text(0) ?? "", r.text(1) ?? "", r.double(2)))
        }
        return out
    }

    public func forgetAttributeSources(personID: String) throws {
        try db.run("DELETE FROM attribute_sources WHERE person_id = ?", [.text(personID)])
    }
}
