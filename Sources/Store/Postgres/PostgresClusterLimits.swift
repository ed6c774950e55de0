// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    // MARK: - Slots

    public func sizeTargetSlots(target: String, concurrency: Int) throws {
        try db.run(
            "INSERT INTO target_slots(target, slot, owner, lease_until) SELECT ?, g, NULL, 0 "
                + "FROM generate_series(0, ?::bigint - 1) g ON CONFLICT DO NOTHING",
            [.text(target), .integer(Int64(max(1, concurrency)))])
        try db.run(
            "DELETE FROM target_slots WHERE target = ? AND slot >= ? AND owner IS NULL",
            [.text(target), .integer(Int64(max(1, concurrency)))])
    }

    /// `FOR UPDATE SKIP LOCKED`: nodes taking at once each get other slots instead of
    /// waiting for each other; the owner and lease columns keep the claim after the commit.
    public func takeTargetSlots(
        target: String, concurrency: Int, count: Int, owner: String, leaseUntil: Double, now: Double
    )
        throws -> Int
    {
        guard count > 0 else { return 0 }
        return try db.run(
            """
            UPDATE target_slots SET owner = ?, lease_until = ?
            WHERE (target, slot) IN (
                SELECT target, slot FROM target_slots
                WHERE target = ? AND slot < ? AND (owner IS NULL OR lease_until <= ?) AND owner IS DISTINCT FROM ?
                ORDER BY slot LIMIT ?
                FOR UPDATE SKIP LOCKED)
            """,
            [
                .text(owner), .real(leaseUntil), .text(target), .integer(Int64(concurrency)), .real(now), .text(owner),
                .integer(Int64(count)),
            ])
    }

    public func renewTargetSlots(owner: String, until: Double) throws -> [String: Int] {
        var out: [String: Int] = [:]
        try db.query(
            "UPDATE target_slots SET lease_until = ? WHERE owner = ? RETURNING target",
            [
                .real(until), .text(owner),
            ]
        ) { out[$0.text(0) ?? "", default: 0] += 1 }
        return out
    }

    @discardableResult
    public func releaseTargetSlots(target: String?, owner: String, count: Int?) throws -> Int {
        guard let target else {
            return try db.run("UPDATE target_slots SET owner = NULL, lease_until = 0 WHERE owner = ?", [.text(owner)])
        }
        return try db.run(
            """
            UPDATE target_slots SET owner = NULL, lease_until = 0
            WHERE (target, slot) IN (
                SELECT target, slot FROM target_slots WHERE target = ? AND owner = ? ORDER BY slot DESC LIMIT ?)
            """, [.text(target), .text(owner), .integer(Int64(count ?? Int(Int32.max)))])
    }

    /// Only for a node alone on the store (`Coordination.isSoleNode`), as `releaseLeases`.
    @discardableResult
    public func releaseTargetSlots(notHeldBy owner: String) throws -> Int {
        try db.run(
            "UPDATE target_slots SET owner = NULL, lease_until = 0 "
                + "WHERE owner IS NOT NULL AND owner IS DISTINCT FROM ?", [.text(owner)])
    }

    public func heldTargetSlots(target: String, now: Double) throws -> [String: Int] {
        var out: [String: Int] = [:]
        try db.query(
            "SELECT owner, COUNT(*) FROM target_slots WHERE target = ? AND owner IS NOT NULL AND lease_until > ? "
                + "GROUP BY owner", [.text(target), .real(now)]
        ) { out[$0.text(0) ?? "", default: 0] += Int($0.int64(1)) }
        return out
    }

    public func markSlotWaiter(target: String, owner: String, until: Double) throws {
        try db.run(
            "INSERT INTO target_slot_waiters(target, node, wait_until) VALUES (?, ?, ?) "
                + "ON CONFLICT(target, node) DO UPDATE SET wait_until = excluded.wait_until",
            [.text(target), .text(owner), .real(until)])
        // Marks of nodes that stopped waiting (or died) go with the next mark.
        try db.run(
            "DELETE FROM target_slot_waiters WHERE target = ? AND wait_until <= ?", [.text(target), .real(until - 60)])
    }

    public func slotWaiters(target: String, now: Double) throws -> Set<String> {
        var out = Set<String>()
        try db.query(
            "SELECT node FROM target_slot_waiters WHERE target = ? AND wait_until > ?", [.text(target), .real(now)]
        ) {
            out.insert($0.text(0) ?? "")
        }
        return out
    }

    // MARK: - Circuits

    static let circuitColumns = "target, state, failures, open_until, probe_owner, probe_until, down_since, announced"

    private func circuit(_ r: PostgresRow) -> SharedCircuit {
        SharedCircuit(
            state: SharedCircuit.State(rawValue: r.text(1) ?? "") ?? .closed, failures: Int(r.int64(2)),
            openUntil: r.double(3), probeOwner: r.text(4), probeUntil: r.double(5),
            downSince: r.isNull(6) ? nil : r.double(6), announced: r.int64(7) != 0)
    }

    public func targetCircuits() throws -> [String: SharedCircuit] {
        var out: [String: SharedCircuit] = [:]
        try db.query("SELECT \(Self.circuitColumns) FROM target_circuits") { out[$0.text(0) ?? ""] = circuit($0) }
        return out
    }

    /// The row is created if missing, then locked (`FOR UPDATE`) until the write commits: a
    /// second node's transition waits and then reads this one's result.
    public func lockTargetCircuit(target: String) throws -> SharedCircuit {
        try db.run(
            "INSERT INTO target_circuits(target, state) VALUES (?, 'closed') ON CONFLICT DO NOTHING", [.text(target)])
        var out = SharedCircuit.closed
        try db.query(
            "SELECT \(Self.circuitColumns) FROM target_circuits WHERE target = ? FOR UPDATE", [.text(target)]
        ) { out = circuit($0) }
        return out
    }

    public func saveTargetCircuit(target: String, _ c: SharedCircuit) throws {
        try db.run(
            """
            INSERT INTO target_circuits(\(Self.circuitColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(target) DO UPDATE SET state = excluded.state, failures = excluded.failures,
                open_until = excluded.open_until, probe_owner = excluded.probe_owner,
                probe_until = excluded.probe_until, down_since = excluded.down_since, announced = excluded.announced
            """,
            [
                .text(target), .text(c.state.rawValue), .integer(Int64(c.failures)), .real(c.openUntil),
                c.probeOwner.map { .text($0) } ?? .null, .real(c.probeUntil), c.downSince.map { .real($0) } ?? .null,
                .integer(c.announced ? 1 : 0),
            ])
    }

    /// One conditional update: of nodes asking at once, the first to lock the row wins and
    /// the others find the probe taken when they re-check the condition (READ COMMITTED).
    public func takeCircuitProbe(target: String, owner: String, until: Double, now: Double) throws -> Bool {
        try db.run(
            """
            UPDATE target_circuits SET state = 'half-open', probe_owner = ?, probe_until = ?
            WHERE target = ? AND ((state = 'open' AND open_until <= ?)
                OR (state = 'half-open' AND (probe_owner IS NULL OR probe_until <= ?)))
            """, [.text(owner), .real(until), .text(target), .real(now), .real(now)]) == 1
    }

    public func renewCircuitProbes(owner: String, until: Double) throws {
        try db.run(
            "UPDATE target_circuits SET probe_until = ? WHERE probe_owner = ? AND state = 'half-open'",
            [.real(until), .text(owner)])
    }

    public func releaseCircuitProbe(target: String, owner: String) throws {
        try db.run(
            "UPDATE target_circuits SET probe_owner = NULL, probe_until = 0 WHERE target = ? AND probe_owner = ?",
            [.text(target), .text(owner)])
    }

    public func releaseCircuitProbes(notHeldBy owner: String) throws {
        try db.run(
            "UPDATE target_circuits SET probe_owner = NULL, probe_until = 0 "
                + "WHERE probe_owner IS NOT NULL AND probe_owner IS DISTINCT FROM ?", [.text(owner)])
    }

    // MARK: - Auth failures

    public func authFailures(keys: [String], since: Double) throws -> [String: AuthFailureCount] {
        var out: [String: AuthFailureCount] = [:]
        for k in keys {
            try db.query(
                "SELECT failures, window_start FROM auth_failures WHERE key = ? AND window_start > ?",
                [.text(k), .real(since)]
            ) { out[k] = AuthFailureCount(failures: Int($0.int64(0)), windowStart: $0.double(1)) }
        }
        return out
    }

    /// One upsert: nodes counting the same key at once serialise on its row.
    public func recordAuthFailure(key: String, now: Double, window: Double) throws {
        try db.run(
            """
            INSERT INTO auth_failures(key, window_start, failures) VALUES (?1, ?2, 1)
            ON CONFLICT(key) DO UPDATE SET
                failures = CASE WHEN auth_failures.window_start > ?2 - ?3 THEN auth_failures.failures + 1 ELSE 1 END,
                window_start = CASE WHEN auth_failures.window_start > ?2 - ?3
                    THEN auth_failures.window_start ELSE ?2 END
            """, [.text(key), .real(now), .real(window)])
    }

    @discardableResult
    public func pruneAuthFailures(prefix: String, now: Double, window: Double, cap: Int, limit: Int) throws -> Int {
        let end = AuthFailureKeys.upperBound(prefix)
        try db.run(
            "DELETE FROM auth_failures WHERE key >= ? AND key < ? AND window_start <= ?",
            [.text(prefix), .text(end), .real(now - window)])
        var rows = 0
        try db.query("SELECT COUNT(*) FROM auth_failures") { rows = Int($0.int64(0)) }
        guard rows > cap else { return rows }
        rows -= try db.run(
            "DELETE FROM auth_failures WHERE key >= ? AND key < ? AND failures < ?",
            [.text(prefix), .text(end), .integer(Int64(limit))])
        return rows
    }
}
