// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import Postgres

extension PostgresSession {
    static let columns = "seq, id, type, version, created, modified, doc"

    private func decode(_ row: PostgresRow) throws -> StoredResource {
        let bytes = row.bytes(6)
        guard case .object(let doc) = try JSONParser().parse(bytes) else {
            throw StoreError("stored document is not an object")
        }
        return StoredResource(
            seq: row.int64(0), id: row.text(1) ?? "", type: ResourceKind(row.text(2) ?? ""), version: row.int64(3),
            created: row.double(4), modified: row.double(5), doc: doc)
    }

    private func resources(_ sql: String, _ params: [PostgresValue]) throws -> [StoredResource] {
        var out: [StoredResource] = []
        try db.query(sql, params) { out.append(try decode($0)) }
        return out
    }

    public func users(userNamePrefix prefix: String, limit: Int) throws -> [StoredResource] {
        // The half-open range [prefix, prefix + U+10FFFF) is every user name with the prefix.
        // Only Users have a user name; a `type` term would tempt the planner to the type index
        // and a sort of every User (seen: 68 ms at 100,000 people instead of well under one).
        try resources(
            "SELECT \(Self.columns) FROM resources WHERE user_name >= ? AND user_name < ? ORDER BY user_name LIMIT ?",
            [.text(prefix), .text(prefix + "\u{10FFFF}"), .integer(Int64(limit))]
        ).filter { $0.type == .user }
    }

    public func personSearchSeqs(termPrefix prefix: String, limit: Int) throws -> (seqs: [Int64], complete: Bool) {
        var seen = Set<Int64>(), out: [Int64] = [], rows = 0
        try db.query(
            "SELECT seq FROM person_search_terms WHERE term >= ? AND term < ? ORDER BY term, seq LIMIT ?",
            [.text(prefix), .text(prefix + "\u{10FFFF}"), .integer(Int64(limit))]
        ) { r in
            rows += 1
            let s = r.int64(0)
            if seen.insert(s).inserted { out.append(s) }
        }
        return (out, rows < limit)
    }

    /// Keeps a User's search words in step with its attributes: only the words that changed
    /// are written, so a PATCH of a phone number costs no index write.
    private func reindexSearchTerms(seq: Int64, old: JSONObject?, new: JSONObject?) throws {
        let before = old.map(PeopleSearch.terms) ?? [], after = new.map(PeopleSearch.terms) ?? []
        // One statement, whatever the number of words (a round trip per word was a third of
        // a create's statements).
        let gone = before.subtracting(after), added = after.subtracting(before)
        if !gone.isEmpty && !added.isEmpty {
            try db.run(
                """
                WITH gone AS (DELETE FROM person_search_terms WHERE seq = ?1 AND term = ANY(?2::text[]))
                INSERT INTO person_search_terms(term, seq) SELECT t, ?1 FROM unnest(?3::text[]) AS t
                ON CONFLICT DO NOTHING
                """, [.integer(seq), .textArray(gone.sorted()), .textArray(added.sorted())])
        } else if !gone.isEmpty {
            try db.run(
                "DELETE FROM person_search_terms WHERE seq = ? AND term = ANY(?::text[])",
                [.integer(seq), .textArray(gone.sorted())])
        } else if !added.isEmpty {
            try db.run(
                "INSERT INTO person_search_terms(term, seq) SELECT t, ? FROM unnest(?::text[]) AS t "
                    + "ON CONFLICT DO NOTHING",
                [.integer(seq), .textArray(added.sorted())])
        }
    }

    /// The resource of `type` with `id`, or nil.
    public func fetch(type: ResourceKind, id: String) throws -> StoredResource? {
        try resources(
            "SELECT \(Self.columns) FROM resources WHERE id = ? AND type = ?" + lockClause,
            [.text(id), .text(type.rawValue)]
        ).first
    }

    /// In a write, what it reads by id it holds until commit (see `locksResources`).
    private var lockClause: String { locksResources ? " FOR UPDATE" : "" }

    /// The resource with listing position `seq`, or nil.
    public func fetch(seq: Int64) throws -> StoredResource? {
        try resources("SELECT \(Self.columns) FROM resources WHERE seq = ?" + lockClause, [.integer(seq)]).first
    }

    /// The type of the resource with `id`, or nil.
    public func typeOf(id: String) throws -> ResourceKind? {
        var t: String?
        try db.query("SELECT type FROM resources WHERE id = ?", [.text(id)]) { t = $0.text(0) }
        return t.map(ResourceKind.init(rawValue:))
    }

    /// Candidates for an indexed lookup, in listing order.
    public func candidates(type: ResourceKind, hint: IndexHint) throws -> [StoredResource] {
        let cols = "r.seq, r.id, r.type, r.version, r.created, r.modified, r.doc"
        switch hint {
        case .id(let v):
            return try resources(
                "SELECT \(Self.columns) FROM resources WHERE id = ? AND type = ?", [.text(v), .text(type.rawValue)])
        case .userName(let v):
            return try resources(
                "SELECT \(Self.columns) FROM resources WHERE user_name = ? AND type = ?",
                [.text(v), .text(type.rawValue)])
        case .externalId(let v):
            return try resources(
                "SELECT \(Self.columns) FROM resources WHERE type = ? AND external_id = ? ORDER BY seq",
                [.text(type.rawValue), .text(v)])
        case .displayName(let v):
            return try resources(
                "SELECT \(Self.columns) FROM resources WHERE type = ? AND display_name_lower = ? ORDER BY seq",
                [.text(type.rawValue), .text(v)])
        case .email(let v):
            return try resources(
                """
                SELECT DISTINCT \(cols) FROM resource_emails e JOIN resources r ON r.seq = e.seq
                WHERE e.value = ? AND r.type = ? ORDER BY r.seq
                """, [.text(v), .text(type.rawValue)])
        }
    }

    /// Calls `body` for every resource of `type` in listing order, in pages, until it returns false.
    public func modifiedIDs(type: ResourceKind, since: Double) throws -> [String] {
        var out: [String] = []
        try db.query("SELECT id FROM resources WHERE type = ? AND modified >= ?", [.text(type.rawValue), .real(since)])
        {
            out.append($0.text(0) ?? "")
        }
        return out
    }

    public func modifiedGroups(since: Double) throws -> [Int64] {
        var out: [Int64] = []
        try db.query("SELECT seq FROM resources WHERE type = 'Group' AND modified >= ?", [.real(since)]) {
            out.append($0.int64(0))
        }
        return out
    }

    public func scan(type: ResourceKind, _ body: (StoredResource) throws -> Bool) throws {
        var after: Int64 = 0
        while true {
            let page = try resources(
                "SELECT \(Self.columns) FROM resources WHERE type = ? AND seq > ? ORDER BY seq LIMIT 500",
                [.text(type.rawValue), .integer(after)])
            for r in page { if try !body(r) { return } }
            guard let last = page.last, page.count == 500 else { return }
            after = last.seq
        }
    }

    /// Number of resources of `type`.
    public func count(type: ResourceKind) throws -> Int {
        var n = 0
        try db.query("SELECT COUNT(*) FROM resources WHERE type = ?", [.text(type.rawValue)]) { n = Int($0.int64(0)) }
        return n
    }

    /// One page of resources of `type` in listing order (`offset` is 0-based).
    public func page(type: ResourceKind, offset: Int, limit: Int) throws -> [StoredResource] {
        try resources(
            "SELECT \(Self.columns) FROM resources WHERE type = ? ORDER BY seq LIMIT ? OFFSET ?",
            [.text(type.rawValue), .integer(Int64(limit)), .integer(Int64(offset))])
    }

    /// The groups `memberID` belongs to directly.
    public func groups(ofMember memberID: String) throws -> [GroupRef] {
        var out: [GroupRef] = []
        try db.query(
            """
            SELECT g.id, g.display_name FROM group_members m JOIN resources g ON g.seq = m.group_seq
            WHERE m.member_id = ? ORDER BY g.seq
            """, [.text(memberID)]
        ) { out.append(GroupRef(id: $0.text(0) ?? "", display: $0.text(1))) }
        return out
    }

    /// The members of a group, in the order they joined the hub.
    public func members(ofGroup seq: Int64) throws -> [MemberRef] {
        var out: [MemberRef] = []
        try db.query(
            """
            SELECT m.member_id, m.member_type, m.display FROM group_members m
            LEFT JOIN resources r ON r.id = m.member_id
            WHERE m.group_seq = ? ORDER BY r.seq NULLS FIRST
            """, [.integer(seq)]
        ) { out.append(MemberRef(id: $0.text(0) ?? "", type: $0.text(1) ?? "User", display: $0.text(2))) }
        return out
    }
}

// MARK: - Mutations

extension PostgresSession {
    private struct IndexColumns {
        var userName: PostgresValue = .null
        var externalId: PostgresValue = .null
        var displayName: PostgresValue = .null
        var displayNameLower: PostgresValue = .null
        var emails: [String] = []
    }

    private func indexColumns(type: ResourceKind, doc: JSONObject) -> IndexColumns {
        var c = IndexColumns()
        if type == .user, let u = doc["userName"]?.stringValue { c.userName = .text(Identifier.canonical(u)) }
        if let x = doc["externalId"]?.stringValue { c.externalId = .text(x) }
        if let d = doc["displayName"]?.stringValue {
            c.displayName = .text(d)
            // Only group lookups by displayName use the index; users need no entry in it.
            if type != .user { c.displayNameLower = .text(Identifier.canonical(d)) }
        } else if type == .user, let u = doc["userName"]?.stringValue {
            c.displayName = .text(u)
        }
        if type == .user {
            c.emails = (doc["emails"]?.arrayValue ?? []).compactMap {
                $0.objectValue?["value"]?.stringValue.map(Identifier.canonical)
            }
        }
        return c
    }

    @discardableResult
    private func mapUnique<T>(_ type: ResourceKind, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as PostgresError where e.isUniqueViolation {
            throw StoreError(
                type == .user ? "userName is already in use" : "a resource with this id already exists",
                kind: .uniqueness)
        }
    }

    /// Inserts a new resource; `members` only for groups. Duplicate `userName` answers 409.
    @discardableResult
    public func insert(type: ResourceKind, id: String, doc: JSONObject, members: [MemberRef], now: Double) throws
        -> StoredResource
    {
        let c = indexColumns(type: type, doc: doc)
        let body = JSONWriter().write(.object(doc))
        var seq: Int64 = 0
        // The resource, its search words and its emails in one statement (one round trip): the
        // index rows take the new row's seq from the first INSERT.
        let terms = type == .user ? PeopleSearch.terms(of: doc).sorted() : []
        try mapUnique(type) {
            try db.query(
                """
                WITH r AS (
                    INSERT INTO resources(id, type, user_name, external_id, display_name, display_name_lower, version,
                    created, modified, doc)
                    VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?) RETURNING seq),
                t AS (INSERT INTO person_search_terms(term, seq) SELECT w, r.seq FROM r, unnest(?::text[]) AS w
                    ON CONFLICT DO NOTHING),
                e AS (INSERT INTO resource_emails(seq, value) SELECT r.seq, v FROM r, unnest(?::text[]) AS v)
                SELECT seq FROM r
                """,
                [
                    .text(id), .text(type.rawValue), c.userName, c.externalId, c.displayName, c.displayNameLower,
                    .real(now), .real(now), .bytes(body), .textArray(terms), .textArray(Set(c.emails).sorted()),
                ]
            ) { seq = $0.int64(0) }
        }
        // A new resource has no members yet: only a group given some needs them checked.
        if !members.isEmpty { try replaceMembers(groupSeq: seq, groupID: id, members) }
        return StoredResource(seq: seq, id: id, type: type, version: 1, created: now, modified: now, doc: doc)
    }

    /// The email index rows of resource `seq`, in one statement.
    private func insertEmails(seq: Int64, _ emails: [String]) throws {
        guard !emails.isEmpty else { return }
        try db.run(
            "INSERT INTO resource_emails(seq, value) SELECT ?, v FROM unnest(?::text[]) AS v",
            [.integer(seq), .textArray(Set(emails).sorted())])
    }

    /// Replaces a resource's attributes (and a group's members), bumping its version.
    @discardableResult
    public func update(_ old: StoredResource, doc: JSONObject, members: [MemberRef]?, now: Double) throws
        -> StoredResource
    {
        let c = indexColumns(type: old.type, doc: doc)
        let body = JSONWriter().write(.object(doc))
        try mapUnique(old.type) {
            try db.run(
                """
                UPDATE resources SET user_name = ?, external_id = ?, display_name = ?, display_name_lower = ?,
                version = version + 1,
                modified = ?, doc = ? WHERE seq = ?
                """,
                [
                    c.userName, c.externalId, c.displayName, c.displayNameLower, .real(now), .bytes(body),
                    .integer(old.seq),
                ])
        }
        if old.type == .user { try reindexSearchTerms(seq: old.seq, old: old.doc, new: doc) }
        // Most updates leave the emails as they were: then their index rows stay too.
        if Set(c.emails) != Set(indexColumns(type: old.type, doc: old.doc).emails) {
            try db.run("DELETE FROM resource_emails WHERE seq = ?", [.integer(old.seq)])
            try insertEmails(seq: old.seq, c.emails)
        }
        if let m = members { try replaceMembers(groupSeq: old.seq, groupID: old.id, m) }
        return StoredResource(
            seq: old.seq, id: old.id, type: old.type, version: old.version + 1, created: old.created, modified: now,
            doc: doc)
    }

    /// Deletes a resource and every membership that names it; groups that lose a member get a new version.
    public func delete(_ r: StoredResource, now: Double) throws {
        try db.run(
            """
            UPDATE resources SET version = version + 1, modified = ?
            WHERE seq IN (SELECT group_seq FROM group_members WHERE member_id = ?)
            """, [.real(now), .text(r.id)])
        try db.run("DELETE FROM group_members WHERE member_id = ?", [.text(r.id)])
        try db.run("DELETE FROM group_members WHERE group_seq = ?", [.integer(r.seq)])
        try db.run("DELETE FROM resource_emails WHERE seq = ?", [.integer(r.seq)])
        if r.type == .user { try reindexSearchTerms(seq: r.seq, old: r.doc, new: nil) }
        try db.run("DELETE FROM resources WHERE seq = ?", [.integer(r.seq)])
    }

    /// Sets a group's member list, checking that every member exists (RFC 7643 §4.2).
    private func replaceMembers(groupSeq: Int64, groupID: String, _ members: [MemberRef]) throws {
        var existing: [String: MemberRef] = [:]
        try db.query(
            "SELECT member_id, member_type, display FROM group_members WHERE group_seq = ?", [.integer(groupSeq)]
        ) {
            let m = MemberRef(id: $0.text(0) ?? "", type: $0.text(1) ?? "User", display: $0.text(2))
            existing[m.id] = m
        }
        var wanted: [String: MemberRef] = [:]
        for m in members {
            guard m.id != groupID else {
                throw StoreError("a group cannot be a member of itself", kind: .invalidReference)
            }
            if wanted[m.id] != nil { continue }
            if let old = existing[m.id] {
                wanted[m.id] = MemberRef(id: m.id, type: old.type, display: m.display); continue
            }
            guard let actual = try typeOf(id: m.id) else {
                throw StoreError("members: no User or Group has the given value", kind: .invalidReference)
            }
            if !m.type.isEmpty, m.type != actual.rawValue {
                throw StoreError("members: 'type' does not match the member's resource type", kind: .invalidReference)
            }
            wanted[m.id] = MemberRef(id: m.id, type: actual.rawValue, display: m.display)
        }
        for (id, _) in existing where wanted[id] == nil {
            try db.run(
                "DELETE FROM group_members WHERE group_seq = ? AND member_id = ?", [.integer(groupSeq), .text(id)])
        }
        for (id, m) in wanted where existing[id] != m {
            try db.run(
                "INSERT INTO group_members(group_seq, member_id, member_type, display) VALUES (?, ?, ?, ?) "
                    + "ON CONFLICT (group_seq, member_id) DO UPDATE SET member_type = excluded.member_type, "
                    + "display = excluded.display",
                [.integer(groupSeq), .text(id), .text(m.type), m.display.map { .text($0) } ?? .null])
        }
    }
}
