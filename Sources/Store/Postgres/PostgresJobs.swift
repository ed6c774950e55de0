// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    static let jobColumns = "person_id, target, priority, state, generation, attempts, not_before, enqueued, last_error"

    private func job(_ r: PostgresRow) -> ProvisioningJob {
        ProvisioningJob(
            personID: r.text(0) ?? "", target: r.text(1) ?? "", priority: Int(r.int64(2)),
            state: JobState(rawValue: r.text(3) ?? ""),
            generation: r.int64(4), attempts: Int(r.int64(5)), notBefore: r.double(6),
            enqueued: r.double(7),
            lastError: r.text(8))
    }

    /// Marks (person, target) dirty. One row per pair: a second change before the first
    /// ran only bumps the generation and keeps the higher priority (lower number).
    /// A dead-lettered pair comes back to life: the change may be what fixes it.
    public func enqueue(personID: String, target: String, priority: Int, now: Double) throws {
        try enqueue(personID: personID, jobs: [(target, priority)], now: now)
    }

    /// All of a person's new jobs in one statement (`enqueue`'s rules, row by row).
    public func enqueue(personID: String, jobs: [(target: String, priority: Int)], now: Double) throws {
        guard !jobs.isEmpty else { return }
        try db.run(
            """
            INSERT INTO provisioning_jobs(person_id, target, priority, state, generation, attempts, not_before,
            enqueued)
            SELECT ?, j.target, j.priority, 'pending', 1, 0, ?, ?
            FROM unnest(?::text[], ?::bigint[]) AS j(target, priority)
            ON CONFLICT(person_id, target) DO UPDATE SET
                priority = LEAST(provisioning_jobs.priority, excluded.priority),
                generation = provisioning_jobs.generation + 1,
                attempts = CASE WHEN provisioning_jobs.state = 'dead' THEN 0 ELSE provisioning_jobs.attempts END,
                not_before = CASE WHEN provisioning_jobs.state = 'dead' THEN excluded.not_before
                    ELSE provisioning_jobs.not_before END,
                state = CASE WHEN provisioning_jobs.state = 'held' THEN 'held' ELSE 'pending' END
            """,
            [
                .text(personID), .real(now), .real(now), .textArray(jobs.map(\.target)),
                .textArray(jobs.map { String($0.priority) }),
            ])
    }

    public func touchJob(personID: String, target: String) throws {
        try db.run(
            "UPDATE provisioning_jobs SET generation = generation + 1, "
                + "state = CASE WHEN state = 'held' THEN 'held' ELSE 'pending' END "
                + "WHERE person_id = ? AND target = ? AND state != 'dead'",
            [.text(personID), .text(target)])
    }

    /// Runs a pair's job before everything else, now (break-glass: an emergency does not wait out a backoff).
    public func expedite(personID: String, target: String, now: Double) throws {
        try db.run(
            "UPDATE provisioning_jobs SET priority = -1, not_before = ? "
                + "WHERE person_id = ? AND target = ? AND state = 'pending'",
            [.real(now), .text(personID), .text(target)])
    }

    /// Jobs of `target` due at `now` and not leased by a running worker, leavers first.
    public func readyJobs(target: String, now: Double, limit: Int) throws -> [ProvisioningJob] {
        var out: [ProvisioningJob] = []
        try db.query(
            """
            SELECT \(Self.jobColumns) FROM provisioning_jobs
            WHERE target = ? AND state = 'pending' AND not_before <= ? AND (lease_until IS NULL OR lease_until <= ?)
            ORDER BY priority, not_before LIMIT ?
            """, [.text(target), .real(now), .real(now), .integer(Int64(limit))]
        ) { out.append(job($0)) }
        return out
    }

    /// Claims up to `limit` due jobs of `target` for `owner` until `leaseUntil`, leavers
    /// first. A job leased by someone else is skipped until its lease runs out (its worker
    /// died). `FOR UPDATE SKIP LOCKED`: nodes claiming at once each take other rows instead
    /// of waiting for each other; the lease columns keep the claim after the commit.
    public func claimJobs(target: String, limit: Int, owner: String, leaseUntil: Double, now: Double) throws
        -> [ProvisioningJob]
    {
        var out: [ProvisioningJob] = []
        try db.query(
            """
            UPDATE provisioning_jobs SET lease_owner = ?, lease_until = ?
            WHERE (person_id, target) IN (
                SELECT person_id, target FROM provisioning_jobs
                WHERE target = ? AND state = 'pending' AND not_before <= ? AND (lease_until IS NULL OR lease_until <= ?)
                ORDER BY priority, not_before LIMIT ?
                FOR UPDATE SKIP LOCKED)
            RETURNING \(Self.jobColumns)
            """, [.text(owner), .real(leaseUntil), .text(target), .real(now), .real(now), .integer(Int64(limit))]
        ) { out.append(job($0)) }
        return out.sorted { ($0.priority, $0.notBefore) < ($1.priority, $1.notBefore) }
    }

    /// Keeps `owner`'s lease on a job until `until` without running it (the hub's own storage
    /// failed during the run: the job cools down instead of retrying in a tight loop).
    public func extendLease(personID: String, target: String, owner: String, until: Double) throws {
        try db.run(
            "UPDATE provisioning_jobs SET lease_until = ? WHERE person_id = ? AND target = ? AND lease_owner = ?",
            [.real(until), .text(personID), .text(target), .text(owner)])
    }

    /// Drops every lease not held by `owner`. Only for a node that knows it is alone on the
    /// store (`Coordination.isSoleNode`); where several nodes share the database, another
    /// node's lease is live until it runs out, and this must not be called.
    @discardableResult
    public func releaseLeases(notHeldBy owner: String) throws -> Int {
        try db.run(
            "UPDATE provisioning_jobs SET lease_owner = NULL, lease_until = NULL "
                + "WHERE lease_until IS NOT NULL AND lease_owner IS DISTINCT FROM ?",
            [.text(owner)])
    }

    /// Jobs leased now, by anyone (a gauge, and for tests).
    public func leasedJobs(now: Double) throws -> Int {
        var n = 0
        try db.query("SELECT COUNT(*) FROM provisioning_jobs WHERE lease_until > ?", [.real(now)]) {
            n = Int($0.int64(0))
        }
        return n
    }

    /// Jobs leased now, counted per lease owner (a node id), for `/admin/nodes`.
    public func leasedJobsByOwner(now: Double) throws -> [String: Int] {
        var out: [String: Int] = [:]
        try db.query(
            "SELECT lease_owner, COUNT(*) FROM provisioning_jobs WHERE lease_until > ? AND lease_owner IS NOT NULL "
                + "GROUP BY lease_owner", [.real(now)]
        ) { out[$0.text(0) ?? "", default: 0] += Int($0.int64(1)) }
        return out
    }

    /// The earliest future time a pending job falls due or a lease runs out, for the
    /// dispatcher's sleep.
    public func nextDue(after now: Double) throws -> Double? {
        var t: Double?
        try db.query(
            "SELECT MIN(not_before) FROM provisioning_jobs WHERE state = 'pending' AND not_before > ?", [.real(now)]
        ) {
            if !$0.isNull(0) { t = $0.double(0) }
        }
        try db.query("SELECT MIN(lease_until) FROM provisioning_jobs WHERE lease_until > ?", [.real(now)]) {
            if !$0.isNull(0) { t = min(t ?? .infinity, $0.double(0)) }
        }
        return t
    }

    /// One job, or nil.
    public func job(personID: String, target: String) throws -> ProvisioningJob? {
        var out: ProvisioningJob?
        try db.query(
            "SELECT \(Self.jobColumns) FROM provisioning_jobs WHERE person_id = ? AND target = ?",
            [.text(personID), .text(target)]
        ) { out = job($0) }
        return out
    }

    /// Jobs for the admin API, filtered by target and state.
    public func jobs(target: String?, state: JobState?, limit: Int) throws -> [ProvisioningJob] {
        var sql = "SELECT \(Self.jobColumns) FROM provisioning_jobs WHERE 1 = 1"
        var params: [PostgresValue] = []
        if let t = target { sql += " AND target = ?"; params.append(.text(t)) }
        if let s = state { sql += " AND state = ?"; params.append(.text(s.rawValue)) }
        sql += " ORDER BY priority, not_before LIMIT ?"
        params.append(.integer(Int64(limit)))
        var out: [ProvisioningJob] = []
        try db.query(sql, params) { out.append(job($0)) }
        return out
    }

    /// Done with `generation`: removes the job unless a newer change arrived meanwhile,
    /// in which case it runs again at once. Returns true when the job is gone.
    @discardableResult
    public func finishJob(personID: String, target: String, generation: Int64, now: Double) throws -> Bool {
        if try db.run(
            "DELETE FROM provisioning_jobs WHERE person_id = ? AND target = ? AND generation = ?",
            [.text(personID), .text(target), .integer(generation)]) == 1
        {
            return true
        }
        try db.run(
            """
            UPDATE provisioning_jobs SET attempts = 0, not_before = ?, last_error = NULL, lease_owner = NULL,
            lease_until = NULL
            WHERE person_id = ? AND target = ?
            """, [.real(now), .text(personID), .text(target)])
        return false
    }

    /// Keeps the job for later (retention period, or a retry after a retryable failure).
    public func deferJob(personID: String, target: String, until: Double, attempts: Int?, error: String?) throws {
        try db.run(
            """
            UPDATE provisioning_jobs SET not_before = ?, attempts = COALESCE(?, attempts), last_error = ?,
            lease_owner = NULL, lease_until = NULL
            WHERE person_id = ? AND target = ?
            """,
            [
                .real(until), attempts.map { .integer(Int64($0)) } ?? .null, error.map { .text($0) } ?? .null,
                .text(personID), .text(target),
            ])
    }

    /// A target is back: jobs waiting out a retry after a failure become due now (jobs
    /// deferred for other reasons, such as retention, keep their time). Returns how many.
    @discardableResult
    public func releaseBackoff(target: String, now: Double) throws -> Int {
        try db.run(
            "UPDATE provisioning_jobs SET not_before = ? "
                + "WHERE target = ? AND state = 'pending' AND attempts > 0 AND not_before > ?",
            [.real(now), .text(target), .real(now)])
    }

    /// Moves a job to the dead letter with the target's reason.
    @discardableResult
    public func deadLetter(
        personID: String, target: String, attempts: Int, error: String, generation: Int64, now: Double
    ) throws -> Bool {
        if try db.run(
            "UPDATE provisioning_jobs SET state = 'dead', attempts = ?, last_error = ?, lease_owner = NULL, "
                + "lease_until = NULL WHERE person_id = ? AND target = ? AND generation = ?",
            [.integer(Int64(attempts)), .text(error), .text(personID), .text(target), .integer(generation)]) == 1
        {
            return true
        }
        try db.run(
            "UPDATE provisioning_jobs SET attempts = 0, not_before = ?, last_error = ?, lease_owner = NULL, "
                + "lease_until = NULL WHERE person_id = ? AND target = ? AND state = 'pending'",
            [.real(now), .text(error), .text(personID), .text(target)])
        return false
    }

    /// Admin re-drive: a dead job runs again now. False when there is no dead job.
    public func redrive(personID: String, target: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE provisioning_jobs SET state = 'pending', attempts = 0, not_before = ? "
                + "WHERE person_id = ? AND target = ? AND state = 'dead'",
            [.real(now), .text(personID), .text(target)]) == 1
    }

    public func queueStats(target: String, now: Double) throws -> QueueStats {
        var pending = 0, dead = 0, held = 0
        var oldest: Double?
        try db.query(
            "SELECT state, COUNT(*), MIN(enqueued) FROM provisioning_jobs WHERE target = ? GROUP BY state",
            [.text(target)]
        ) { r in
            if r.text(0) == "dead" {
                dead = Int(r.int64(1))
            } else if r.text(0) == "held" {
                held = Int(r.int64(1))
            } else {
                pending = Int(r.int64(1)); oldest = r.double(2)
            }
        }
        return QueueStats(pending: pending, dead: dead, held: held, oldestPending: oldest.map { now - $0 })
    }

    // MARK: - Applied state

    private func applied(_ r: PostgresRow) -> AppliedRecord {
        AppliedRecord(
            personID: r.text(0) ?? "", target: r.text(1) ?? "", accountID: r.text(2), state: r.bytes(3),
            applied: r.double(4),
            personDeleted: r.isNull(5) ? nil : r.double(5), lastResult: r.text(6))
    }

    /// Everything applied for a person, by target.
    public func applied(personID: String) throws -> [AppliedRecord] {
        var out: [AppliedRecord] = []
        try db.query(
            "SELECT person_id, target, account_id, state, applied, person_deleted, last_result "
                + "FROM provisioning_applied WHERE person_id = ?",
            [.text(personID)]
        ) { out.append(applied($0)) }
        return out
    }

    public func recordApplied(
        personID: String, target: String, accountID: String?, state: [UInt8], now: Double, result: String
    ) throws {
        try db.run(
            """
            INSERT INTO provisioning_applied(person_id, target, account_id, state, applied, last_result)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(person_id, target) DO UPDATE SET account_id = excluded.account_id, state = excluded.state,
                applied = excluded.applied, last_result = excluded.last_result
            """,
            [
                .text(personID), .text(target), accountID.map { .text($0) } ?? .null, .bytes(state), .real(now),
                .text(result),
            ])
    }

    public func recordResult(personID: String, target: String, result: String) throws {
        try db.run(
            "UPDATE provisioning_applied SET last_result = ? WHERE person_id = ? AND target = ?",
            [.text(result), .text(personID), .text(target)])
    }

    public func forgetApplied(personID: String, target: String) throws {
        try db.run(
            "DELETE FROM provisioning_applied WHERE person_id = ? AND target = ?", [.text(personID), .text(target)])
    }

    /// Starts the retention clock for every account of a deleted person.
    public func markPersonDeleted(personID: String, now: Double) throws {
        try db.run(
            "UPDATE provisioning_applied SET person_deleted = ? WHERE person_id = ? AND person_deleted IS NULL",
            [.real(now), .text(personID)])
    }
}
