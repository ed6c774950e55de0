// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    private static let campaignColumns =
        "id, name, scope_kind, scope_value, reviewers, due, default_decision, state, created_by, created, closed"
    private static let itemColumns =
        "seq, person_id, user_name, display_name, package, reviewer, decision, reason, decided_by, decided, "
        + "assignment, original_reviewer, escalated, delegated_by, delegation_reason"

    /// An item's reviewers are stored unit-separator joined in `reviewer` (principal names and
    /// user names cannot hold U+001F); NULL when there are none.
    private static func reviewerValue(_ names: [String]) -> PostgresValue {
        names.isEmpty ? .null : .text(names.joined(separator: "\u{1F}"))
    }

    private func campaign(_ r: PostgresRow) -> ReviewCampaignRecord {
        let reviewers = (r.text(4) ?? "").split(separator: "\u{1F}").map(String.init)
        return ReviewCampaignRecord(
            id: r.text(0) ?? "", name: r.text(1) ?? "", scopeKind: r.text(2) ?? "", scopeValue: r.text(3) ?? "",
            reviewers: reviewers, due: r.double(5), defaultDecision: r.text(6) ?? "", state: r.text(7) ?? "",
            createdBy: r.text(8) ?? "", created: r.double(9), closed: r.isNull(10) ? nil : r.double(10))
    }

    private func item(_ r: PostgresRow) -> ReviewItemRecord {
        var i = ReviewItemRecord(
            seq: r.int64(0), personID: r.text(1) ?? "", userName: r.text(2) ?? "", displayName: r.text(3),
            package: r.text(4) ?? "", reviewers: (r.text(5) ?? "").split(separator: "\u{1F}").map(String.init),
            assignment: r.text(10).map(ReviewAssignment.init(rawValue:)))
        i.decision = r.text(6); i.reason = r.text(7); i.decidedBy = r.text(8)
        i.decided = r.isNull(9) ? nil : r.double(9)
        i.originalReviewer = r.text(11); i.escalated = r.isNull(12) ? nil : r.double(12)
        i.delegatedBy = r.text(13); i.delegationReason = r.text(14)
        return i
    }

    /// Reviewers are stored unit-separator joined (principal names cannot hold U+001F).
    public func insertCampaign(_ c: ReviewCampaignRecord) throws {
        try db.run(
            "INSERT INTO review_campaigns(\(Self.campaignColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(c.id), .text(c.name), .text(c.scopeKind), .text(c.scopeValue),
                .text(c.reviewers.joined(separator: "\u{1F}")), .real(c.due),
                .text(c.defaultDecision), .text(c.state), .text(c.createdBy), .real(c.created),
                c.closed.map { .real($0) } ?? .null,
            ])
    }

    public func campaign(id: String) throws -> ReviewCampaignRecord? {
        var out: ReviewCampaignRecord?
        try db.query("SELECT \(Self.campaignColumns) FROM review_campaigns WHERE id = ?", [.text(id)]) {
            out = campaign($0)
        }
        return out
    }

    public func campaigns(limit: Int) throws -> [ReviewCampaignRecord] {
        var out: [ReviewCampaignRecord] = []
        try db.query(
            "SELECT \(Self.campaignColumns) FROM review_campaigns ORDER BY created DESC LIMIT ?",
            [.integer(Int64(limit))]
        ) { out.append(campaign($0)) }
        return out
    }

    /// Open campaigns whose due date has passed.
    public func overdueCampaigns(now: Double) throws -> [ReviewCampaignRecord] {
        var out: [ReviewCampaignRecord] = []
        try db.query(
            "SELECT \(Self.campaignColumns) FROM review_campaigns WHERE state = 'open' AND due <= ?", [.real(now)]
        ) { out.append(campaign($0)) }
        return out
    }

    /// When the scheduler last created campaigns; before the first, when this database got
    /// access reviews (migration 1 on PostgreSQL), so the first scheduled review comes one period after
    /// installation, not on an empty roster at the first start.
    public func lastScheduledCampaign() throws -> Double? {
        var out: Double?
        try db.query(
            """
            SELECT COALESCE((SELECT MAX(created) FROM review_campaigns WHERE created_by = 'scheduler'),
                            (SELECT applied FROM schema_migrations WHERE version = 1))
            """
        ) { r in out = r.isNull(0) ? nil : r.double(0) }
        return out
    }

    public func setCampaignState(id: String, state: String) throws {
        try db.run("UPDATE review_campaigns SET state = ? WHERE id = ?", [.text(state), .text(id)])
    }

    public func setCampaignDue(id: String, due: Double) throws {
        try db.run("UPDATE review_campaigns SET due = ?, reminded = NULL WHERE id = ?", [.real(due), .text(id)])
    }

    public func campaignsToRemind(dueBy: Double) throws -> [ReviewCampaignRecord] {
        var out: [ReviewCampaignRecord] = []
        try db.query(
            "SELECT \(Self.campaignColumns) FROM review_campaigns "
                + "WHERE state = 'open' AND reminded IS NULL AND due <= ?",
            [.real(dueBy)]
        ) { out.append(campaign($0)) }
        return out
    }

    public func markCampaignReminded(id: String, now: Double) throws {
        try db.run("UPDATE review_campaigns SET reminded = ? WHERE id = ?", [.real(now), .text(id)])
    }

    public func reassignItem(campaignID: String, seq: Int64, reviewer: String) throws -> Bool {
        try db.run(
            "UPDATE review_items SET reviewer = ?, assignment = 'reassigned' "
                + "WHERE campaign_id = ? AND seq = ? AND decision IS NULL",
            [.text(reviewer), .text(campaignID), .integer(seq)]) == 1
    }

    public func delegateItem(campaignID: String, seq: Int64, from: [String], to: String, by: String, reason: String)
        throws -> Bool
    {
        // `IS NOT DISTINCT FROM` also matches NULL: the item must still be where the delegator found it.
        try db.run(
            "UPDATE review_items SET reviewer = ?, assignment = 'delegated', delegated_by = ?, delegation_reason = ? "
                + "WHERE campaign_id = ? AND seq = ? AND decision IS NULL AND reviewer IS NOT DISTINCT FROM ?",
            [
                .text(to), .text(by), .text(reason), .text(campaignID), .integer(seq), Self.reviewerValue(from),
            ]) == 1
    }

    public func campaignsToEscalate(now: Double, window: Double) throws -> [ReviewCampaignRecord] {
        var out: [ReviewCampaignRecord] = []
        try db.query(
            "SELECT \(Self.campaignColumns) FROM review_campaigns c WHERE state = 'open' AND due > ? AND due <= ? "
                + "AND due - created > ? AND EXISTS (SELECT 1 FROM review_items i WHERE i.campaign_id = c.id "
                + "AND i.assignment = 'manager' AND i.decision IS NULL)",
            [.real(now), .real(now + window), .real(window)]
        ) { out.append(campaign($0)) }
        return out
    }

    public func itemsToEscalate(campaignID: String) throws -> [ReviewItemRecord] {
        var out: [ReviewItemRecord] = []
        try db.query(
            "SELECT \(Self.itemColumns) FROM review_items WHERE campaign_id = ? "
                + "AND assignment = 'manager' AND decision IS NULL ORDER BY seq",
            [.text(campaignID)]
        ) { out.append(item($0)) }
        return out
    }

    public func escalateItem(campaignID: String, seq: Int64, reviewers: [String], now: Double) throws -> Bool {
        try db.run(
            "UPDATE review_items SET original_reviewer = reviewer, reviewer = ?, assignment = 'escalated', "
                + "escalated = ? WHERE campaign_id = ? AND seq = ? AND assignment = 'manager' AND decision IS NULL",
            [Self.reviewerValue(reviewers), .real(now), .text(campaignID), .integer(seq)]) == 1
    }

    public func closeCampaign(id: String, now: Double) throws {
        try db.run("UPDATE review_campaigns SET state = 'closed', closed = ? WHERE id = ?", [.real(now), .text(id)])
    }

    public func insertItem(campaignID: String, _ i: ReviewItemRecord) throws {
        try db.run(
            "INSERT INTO review_items(campaign_id, seq, person_id, user_name, display_name, package, reviewer, "
                + "assignment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(campaignID), .integer(i.seq), .text(i.personID), .text(i.userName),
                i.displayName.map { .text($0) } ?? .null, .text(i.package), Self.reviewerValue(i.reviewers),
                i.assignment.map { .text($0.rawValue) } ?? .null,
            ])
    }

    public func items(campaignID: String) throws -> [ReviewItemRecord] {
        var out: [ReviewItemRecord] = []
        try db.query(
            "SELECT \(Self.itemColumns) FROM review_items WHERE campaign_id = ? ORDER BY seq", [.text(campaignID)]
        ) { out.append(item($0)) }
        return out
    }

    public func item(campaignID: String, seq: Int64) throws -> ReviewItemRecord? {
        var out: ReviewItemRecord?
        try db.query(
            "SELECT \(Self.itemColumns) FROM review_items WHERE campaign_id = ? AND seq = ?",
            [.text(campaignID), .integer(seq)]
        ) { out = item($0) }
        return out
    }

    /// Records a decision on an undecided item; false when it was decided already.
    public func decide(campaignID: String, seq: Int64, decision: String, reason: String, by: String, now: Double) throws
        -> Bool
    {
        try db.run(
            "UPDATE review_items SET decision = ?, reason = ?, decided_by = ?, decided = ? "
                + "WHERE campaign_id = ? AND seq = ? AND decision IS NULL",
            [.text(decision), .text(reason), .text(by), .real(now), .text(campaignID), .integer(seq)]) == 1
    }

    public func revokePackage(personID: String, package: String, campaignID: String, reason: String, now: Double) throws
    {
        try db.run(
            "INSERT INTO access_revocations(person_id, package, campaign_id, reason, created) "
                + "VALUES (?, ?, ?, ?, ?) ON CONFLICT (person_id, package) DO UPDATE SET "
                + "campaign_id = excluded.campaign_id, reason = excluded.reason, created = excluded.created",
            [.text(personID), .text(package), .text(campaignID), .text(reason), .real(now)])
    }

    public func liftRevocation(personID: String, package: String) throws -> Bool {
        try db.run(
            "DELETE FROM access_revocations WHERE person_id = ? AND package = ?", [.text(personID), .text(package)])
            == 1
    }

    public func revokedPackages(personID: String) throws -> Set<String> {
        var out = Set<String>()
        try db.query("SELECT package FROM access_revocations WHERE person_id = ?", [.text(personID)]) {
            if let p = $0.text(0) { out.insert(p) }
        }
        return out
    }
}

extension PostgresSession {
    public func holdings(personID: String) throws -> [String: Double] {
        var out: [String: Double] = [:]
        try db.query("SELECT package, since FROM package_holdings WHERE person_id = ?", [.text(personID)]) {
            out[$0.text(0) ?? ""] = $0.double(1)
        }
        return out
    }

    public func holdingSince(personID: String, package: String) throws -> Double? {
        var out: Double?
        try db.query(
            "SELECT since FROM package_holdings WHERE person_id = ? AND package = ?", [.text(personID), .text(package)]
        ) { out = $0.double(0) }
        return out
    }

    public func recordHolding(personID: String, package: String, since: Double) throws {
        try db.run(
            "INSERT INTO package_holdings(person_id, package, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [.text(personID), .text(package), .real(since)])
    }

    public func removeHolding(personID: String, package: String) throws {
        try db.run(
            "DELETE FROM package_holdings WHERE person_id = ? AND package = ?", [.text(personID), .text(package)])
    }

    public func holdingCounts() throws -> [String: Int] {
        var out: [String: Int] = [:]
        try db.query("SELECT package, COUNT(*) FROM package_holdings GROUP BY package") {
            out[$0.text(0) ?? ""] = Int($0.int64(1))
        }
        return out
    }

    public func holders(package: String, limit: Int) throws -> [(personID: String, since: Double)] {
        var out: [(String, Double)] = []
        try db.query(
            "SELECT person_id, since FROM package_holdings WHERE package = ? ORDER BY since, person_id LIMIT ?",
            [.text(package), .integer(Int64(limit))]
        ) { out.append(($0.text(0) ?? "", $0.double(1))) }
        return out
    }
}
