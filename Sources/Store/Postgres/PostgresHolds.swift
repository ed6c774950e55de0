// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession: HoldStore {
    private static let holdColumns = "id, feed, feed_token, created, reason, state, decided_by, decided"

    private func holdRecord(_ r: PostgresRow) -> HoldRecord {
        HoldRecord(
            id: r.text(0) ?? "", feed: r.text(1) ?? "", feedToken: r.text(2), created: r.double(3),
            reason: r.text(4) ?? "", state: HoldState(rawValue: r.text(5) ?? ""), decidedBy: r.text(6),
            decided: r.isNull(7) ? nil : r.double(7))
    }

    public func recordFeedRemoval(feed: String, personID: String, now: Double) throws {
        try db.run(
            "INSERT INTO feed_removals(feed, person_id, time) VALUES (?, ?, ?)",
            [.text(feed), .text(personID), .real(now)])
    }

    public func pruneFeedRemovals(feed: String, before: Double) throws {
        try db.run("DELETE FROM feed_removals WHERE feed = ? AND time <= ?", [.text(feed), .real(before)])
    }

    public func feedRemovals(feed: String, since: Double) throws -> Int {
        var n = 0
        try db.query(
            "SELECT COUNT(DISTINCT person_id) FROM feed_removals WHERE feed = ? AND time > ?",
            [.text(feed), .real(since)]
        ) { n = Int($0.int64(0)) }
        return n
    }

    public func openHold(feed: String) throws -> HoldRecord? {
        var out: HoldRecord?
        // The feed guard reads the open hold, counts the feed's removals and may open a hold,
        // in one write. SQLite's single writer made that atomic; across nodes a lock per feed
        // (until commit) does, so two nodes neither open two holds nor each count without the
        // other's removal.
        if locksResources {
            try db.query(
                "SELECT pg_advisory_xact_lock(hashtextextended(?, ?))",
                [.text("hold:" + feed), .integer(PostgresMigrations.lockKey)]
            ) { _ in }
        }
        try db.query("SELECT \(Self.holdColumns) FROM holds WHERE feed = ? AND state = 'open'", [.text(feed)]) {
            out = holdRecord($0)
        }
        return out
    }

    public func insertHold(_ h: HoldRecord) throws {
        try db.run(
            "INSERT INTO holds(\(Self.holdColumns)) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
            [
                .text(h.id), .text(h.feed), h.feedToken.map { .text($0) } ?? .null, .real(h.created), .text(h.reason),
                .text(h.state.rawValue),
            ])
    }

    public func hold(id: String) throws -> HoldRecord? {
        var out: HoldRecord?
        try db.query("SELECT \(Self.holdColumns) FROM holds WHERE id = ?", [.text(id)]) { out = holdRecord($0) }
        return out
    }

    public func holds(limit: Int) throws -> [HoldRecord] {
        var out: [HoldRecord] = []
        try db.query("SELECT \(Self.holdColumns) FROM holds ORDER BY created DESC LIMIT ?", [.integer(Int64(limit))]) {
            out.append(holdRecord($0))
        }
        return out
    }

    public func holdJob(personID: String, target: String, priority: Int, holdID: String, now: Double) throws {
        try db.run(
            """
            INSERT INTO provisioning_jobs(person_id, target, priority, state, generation, attempts, not_before,
            enqueued, hold_id)
            VALUES (?, ?, ?, 'held', 1, 0, ?, ?, ?)
            ON CONFLICT(person_id, target) DO UPDATE SET
                priority = LEAST(provisioning_jobs.priority, excluded.priority),
                generation = provisioning_jobs.generation + 1, attempts = 0,
                not_before = excluded.not_before, state = 'held', hold_id = excluded.hold_id,
                lease_owner = NULL, lease_until = NULL
            """,
            [.text(personID), .text(target), .integer(Int64(priority)), .real(now), .real(now), .text(holdID)])
    }

    public func heldPeople(holdID: String) throws -> [String] {
        var out: [String] = []
        try db.query(
            "SELECT DISTINCT person_id FROM provisioning_jobs WHERE hold_id = ? AND state = 'held' ORDER BY person_id",
            [.text(holdID)]
        ) { out.append($0.text(0) ?? "") }
        return out
    }

    public func decideHold(id: String, state: HoldState, by: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE holds SET state = ?, decided_by = ?, decided = ? WHERE id = ? AND state = 'open'",
            [.text(state.rawValue), .text(by), .real(now), .text(id)]) == 1
    }

    public func releaseHeldJobs(holdID: String, now: Double) throws -> Int {
        try db.run(
            "UPDATE provisioning_jobs SET state = 'pending', hold_id = NULL, not_before = ? "
                + "WHERE hold_id = ? AND state = 'held'",
            [.real(now), .text(holdID)])
    }

    public func dropHeldJobs(holdID: String) throws -> [String] {
        let people = try heldPeople(holdID: holdID)
        try db.run("DELETE FROM provisioning_jobs WHERE hold_id = ? AND state = 'held'", [.text(holdID)])
        return people
    }
}
