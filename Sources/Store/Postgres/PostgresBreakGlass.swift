// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    private static let breakGlassColumns =
        "id, person_id, user_name, package, reason, granted_by, created, expires, ended, review_decision, "
        + "review_reason, reviewed_by, reviewed, granted_by_token"

    private func breakGlass(_ r: PostgresRow) -> BreakGlassRecord {
        var g = BreakGlassRecord(
            id: r.text(0) ?? "", personID: r.text(1) ?? "", userName: r.text(2) ?? "", package: r.text(3) ?? "",
            reason: r.text(4) ?? "",
            grantedBy: r.text(5) ?? "", created: r.double(6), expires: r.double(7))
        g.ended = r.isNull(8) ? nil : r.double(8)
        g.reviewDecision = r.text(9)
        g.reviewReason = r.text(10)
        g.reviewedBy = r.text(11)
        g.reviewed = r.isNull(12) ? nil : r.double(12)
        g.grantedByToken = r.text(13)
        return g
    }

    private func breakGlassList(_ whereClause: String, _ params: [PostgresValue]) throws -> [BreakGlassRecord] {
        var out: [BreakGlassRecord] = []
        try db.query("SELECT \(Self.breakGlassColumns) FROM break_glass_grants WHERE \(whereClause)", params) {
            out.append(breakGlass($0))
        }
        return out
    }

    public func insertBreakGlass(_ g: BreakGlassRecord) throws {
        try db.run(
            """
            INSERT INTO break_glass_grants(id, person_id, user_name, package, reason, granted_by, created, expires,
            granted_by_token)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(g.id), .text(g.personID), .text(g.userName), .text(g.package), .text(g.reason),
                .text(g.grantedBy), .real(g.created),
                .real(g.expires), g.grantedByToken.map { .text($0) } ?? .null,
            ])
    }

    /// Grants in force for a person at `now`.
    public func activeBreakGlass(personID: String, now: Double) throws -> [BreakGlassRecord] {
        try breakGlassList(
            "person_id = ? AND ended IS NULL AND expires > ? ORDER BY expires", [.text(personID), .real(now)])
    }

    /// Grants whose time is up but whose access has not been taken back yet.
    public func expiredBreakGlass(now: Double) throws -> [BreakGlassRecord] {
        try breakGlassList("ended IS NULL AND expires <= ? ORDER BY expires", [.real(now)])
    }

    /// The earliest expiry still to process.
    public func nextBreakGlassExpiry() throws -> Double? {
        var out: Double?
        try db.query("SELECT MIN(expires) FROM break_glass_grants WHERE ended IS NULL") { r in
            out = r.isNull(0) ? nil : r.double(0)
        }
        return out
    }

    public func endBreakGlass(id: String, now: Double) throws -> Bool {
        try db.run("UPDATE break_glass_grants SET ended = ? WHERE id = ? AND ended IS NULL", [.real(now), .text(id)])
            == 1
    }

    public func breakGlass(id: String) throws -> BreakGlassRecord? {
        try breakGlassList("id = ?", [.text(id)]).first
    }

    /// `state`: active, pending-review (ended, not reviewed), reviewed, or nil for all; newest first.
    public func breakGlassGrants(state: String?, limit: Int) throws -> [BreakGlassRecord] {
        let clause: String
        switch state {
        case "active": clause = "ended IS NULL"
        case "pending-review": clause = "review_decision IS NULL"
        case "reviewed": clause = "review_decision IS NOT NULL"
        default: clause = "1 = 1"
        }
        return try breakGlassList("\(clause) ORDER BY created DESC LIMIT ?", [.integer(Int64(limit))])
    }

    public func reviewBreakGlass(id: String, decision: String, reason: String, by: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE break_glass_grants SET review_decision = ?, review_reason = ?, reviewed_by = ?, reviewed = ? "
                + "WHERE id = ? AND review_decision IS NULL",
            [.text(decision), .text(reason), .text(by), .real(now), .text(id)]) == 1
    }
}
