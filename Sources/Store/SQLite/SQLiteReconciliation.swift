// SPDX-License-Identifier: Apache-2.0
import JSONCore
import SQLite

extension SQLiteSession {
    public func signOffRun(id: String, by: String, at: Double, comment: String) throws -> Bool {
        try db.run(
            "INSERT INTO reconciliation_sign_offs(run_id, signed_by, signed_at, comment) VALUES (?, ?, ?, ?) "
                + "ON CONFLICT(run_id) DO NOTHING", [.text(id), .text(by), .real(at), .text(comment)]) == 1
    }

    public func runSignOff(id: String) throws -> (by: String, at: Double, comment: String)? {
        var out: (String, Double, String)?
        try db.query(
            "SELECT signed_by, signed_at, comment FROM reconciliation_sign_offs WHERE run_id = ?", [.text(id)]
        ) { r in out = (r.text(0) ?? "", r.value(1).double, r.text(2) ?? "") }
        return out
    }

    private static let runColumns =
        "id, state, mode, targets, categories, requested_by, created, finished, summary, policy_version"

    private func run(_ r: SQLiteRow) -> ReconciliationRunRecord {
        ReconciliationRunRecord(
            id: r.text(0) ?? "", state: RunState(rawValue: r.text(1) ?? ""), mode: r.text(2) ?? "",
            targets: r.text(3) ?? "[]",
            categories: r.text(4) ?? "[]", requestedBy: r.text(5) ?? "", created: r.value(6).double,
            finished: r.isNull(7) ? nil : r.value(7).double, summary: r.text(8) ?? "{}",
            policyVersion: r.isNull(9) ? nil : r.int64(9))
    }

    public func insertRun(_ r: ReconciliationRunRecord) throws {
        try db.run(
            "INSERT INTO reconciliation_runs(\(Self.runColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(r.id), .text(r.state.rawValue), .text(r.mode), .text(r.targets), .text(r.categories),
                .text(r.requestedBy), .real(r.created),
                r.finished.map { .real($0) } ?? .null, .text(r.summary), r.policyVersion.map { .integer($0) } ?? .null,
            ])
    }

    @discardableResult
    public func updateRun(id: String, state: RunState, summary: String, finished: Double?) throws -> Bool {
        try db.run(
            "UPDATE reconciliation_runs SET state = ?, summary = ?, finished = ? WHERE id = ? AND state <> 'failed'",
            [.text(state.rawValue), .text(summary), finished.map { .real($0) } ?? .null, .text(id)]) == 1
    }

    public func reconciliationRun(id: String) throws -> ReconciliationRunRecord? {
        var out: ReconciliationRunRecord?
        try db.query("SELECT \(Self.runColumns) FROM reconciliation_runs WHERE id = ?", [.text(id)]) { out = run($0) }
        return out
    }

    /// Most recent first.
    public func reconciliationRuns(limit: Int) throws -> [ReconciliationRunRecord] {
        var out: [ReconciliationRunRecord] = []
        try db.query(
            "SELECT \(Self.runColumns) FROM reconciliation_runs ORDER BY created DESC LIMIT ?", [.integer(Int64(limit))]
        ) { out.append(run($0)) }
        return out
    }

    /// Runs left `running` by a process that stopped: they are failed at start-up.
    public func interruptRuns(now: Double) throws -> Int {
        let n = try db.run(
            """
            UPDATE reconciliation_runs SET state = 'failed', finished = ?,
                summary = json_set(summary, '$.reason', 'interrupted: the hub stopped during the run')
            WHERE state IN ('queued', 'running', 'remediating')
                AND NOT (\(Self.nodeExpr) IS NULL AND EXISTS
                    (SELECT 1 FROM reconciliation_leases l
                     WHERE l.run_id = reconciliation_runs.id AND l.lease_until > ?))
            """, [.real(now), .real(now)])
        try dropLeasesOfEndedRuns()
        return n
    }

    /// Runs not finished yet (queued, running or remediating), oldest first.
    public func unfinishedRuns() throws -> [ReconciliationRunRecord] {
        var out: [ReconciliationRunRecord] = []
        try db.query(
            "SELECT \(Self.runColumns) FROM reconciliation_runs "
                + "WHERE state IN ('queued', 'running', 'remediating') ORDER BY created"
        ) { out.append(run($0)) }
        return out
    }

    /// Fails one run that is still unfinished and still run by `node`.
    public func interruptRun(id: String, node: String, reason: String, now: Double) throws -> Bool {
        let failed =
            try db.run(
                """
                UPDATE reconciliation_runs SET state = 'failed', finished = ?,
                    summary = json_set(summary, '$.reason', ?)
                WHERE id = ? AND state IN ('queued', 'running', 'remediating') AND json_extract(summary, '$.node') = ?
                """, [.real(now), .text(reason), .text(id), .text(node)]) == 1
        if failed { try releaseReconciliationLeases(runID: id) }
        return failed
    }

    public func interruptRunWithoutLease(id: String, reason: String, now: Double) throws -> Bool {
        let failed =
            try db.run(
                """
                UPDATE reconciliation_runs SET state = 'failed', finished = ?,
                    summary = json_set(summary, '$.reason', ?)
                WHERE id = ? AND state IN ('queued', 'running', 'remediating')
                    AND NOT EXISTS (SELECT 1 FROM reconciliation_leases WHERE run_id = ? AND lease_until > ?)
                """, [.real(now), .text(reason), .text(id), .text(id), .real(now)]) == 1
        if failed { try releaseReconciliationLeases(runID: id) }
        return failed
    }

    // MARK: - One run per target

    /// The node a run's summary names (NULL for the command line's runs).
    private static let nodeExpr = "json_extract(summary, '$.node')"

    public func takeReconciliationLeases(targets: [String], runID: String, until: Double, now: Double) throws
        -> String?
    {
        // In one order for every caller: two runs wanting the same targets never deadlock.
        var took: [String] = []
        for target in Set(targets).sorted() {
            // Taken when free or lapsed; a live lease of another run (or of this one) stays.
            let taken = try db.run(
                """
                INSERT INTO reconciliation_leases(target, run_id, lease_until) VALUES (?, ?, ?)
                ON CONFLICT(target) DO UPDATE SET run_id = excluded.run_id, lease_until = excluded.lease_until
                WHERE reconciliation_leases.lease_until <= ?
                """, [.text(target), .text(runID), .real(until), .real(now)])
            if taken == 0 {
                for t in took {
                    try db.run(
                        "DELETE FROM reconciliation_leases WHERE target = ? AND run_id = ?", [.text(t), .text(runID)])
                }
                return target
            }
            took.append(target)
        }
        return nil
    }

    public func renewReconciliationLeases(runID: String, until: Double, now: Double) throws -> Int {
        try db.run(
            "UPDATE reconciliation_leases SET lease_until = ? WHERE run_id = ? AND lease_until > ?",
            [.real(until), .text(runID), .real(now)])
    }

    public func releaseReconciliationLeases(runID: String) throws {
        try db.run("DELETE FROM reconciliation_leases WHERE run_id = ?", [.text(runID)])
    }

    public func reconciliationLeases(now: Double) throws -> [String: String] {
        var out: [String: String] = [:]
        try db.query(
            "SELECT target, run_id FROM reconciliation_leases WHERE lease_until > ?", [.real(now)]
        ) { out[$0.text(0) ?? ""] = $0.text(1) ?? "" }
        return out
    }

    /// The leases of runs that are no longer unfinished (failed at start-up) go with them.
    private func dropLeasesOfEndedRuns() throws {
        try db.run(
            """
            DELETE FROM reconciliation_leases WHERE run_id NOT IN
                (SELECT id FROM reconciliation_runs WHERE state IN ('queued', 'running', 'remediating'))
            """, [])
    }

    public func appendFindings(runID: String, firstSeq: Int64, _ findings: [FindingRecord]) throws {
        for (i, f) in findings.enumerated() {
            try db.run(
                """
                INSERT INTO reconciliation_findings(run_id, seq, target, category, person_id, user_name, display_name,
                account_id, detail, entitlements)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(runID), .integer(firstSeq + Int64(i)), .text(f.target), .text(f.category),
                    f.personID.map { .text($0) } ?? .null,
                    .text(f.userName), f.displayName.map { .text($0) } ?? .null, f.accountID.map { .text($0) } ?? .null,
                    f.detail.map { .text($0) } ?? .null,
                    FindingRecord.encode(f.entitlements).map { .text($0) } ?? .null,
                ])
        }
    }

    /// Findings by target, then category in `categoryOrder` (most urgent first), then as
    /// found; `body` returning false stops (reports stream them).
    public func findings(runID: String, categoryOrder: [String] = [], _ body: (FindingRecord) throws -> Bool) throws {
        struct Stop: Error {}
        // Only placeholders and positions enter the SQL text; the category names are bound.
        let rank =
            categoryOrder.isEmpty
            ? ""
            : "CASE category " + categoryOrder.indices.map { "WHEN ? THEN \($0)" }.joined(separator: " ")
                + " ELSE \(categoryOrder.count) END,"
        do {
            try db.query(
                """
                SELECT target, category, person_id, user_name, display_name, account_id, detail, entitlements
                FROM reconciliation_findings
                WHERE run_id = ? ORDER BY target, \(rank) seq
                """, [.text(runID)] + categoryOrder.map { .text($0) }
            ) { r in
                let f = FindingRecord(
                    target: r.text(0) ?? "", category: r.text(1) ?? "", personID: r.text(2), userName: r.text(3) ?? "",
                    displayName: r.text(4), accountID: r.text(5), detail: r.text(6),
                    entitlements: FindingRecord.decode(r.text(7)))
                if try !body(f) { throw Stop() }
            }
        } catch is Stop {}
    }

    public func markSeen(runID: String, target: String, personIDs: [String]) throws {
        for p in personIDs {
            try db.run(
                "INSERT OR IGNORE INTO reconciliation_seen(run_id, target, person_id) VALUES (?, ?, ?)",
                [.text(runID), .text(target), .text(p)])
        }
    }

    public func wasSeen(runID: String, target: String, personID: String) throws -> Bool {
        var seen = false
        try db.query(
            "SELECT 1 FROM reconciliation_seen WHERE run_id = ? AND target = ? AND person_id = ?",
            [.text(runID), .text(target), .text(personID)]
        ) { _ in seen = true }
        return seen
    }

    public func forgetSeen(runID: String) throws {
        try db.run("DELETE FROM reconciliation_seen WHERE run_id = ?", [.text(runID)])
    }

    /// The user name of a person other than `personID` linked to `accountID` on `target`
    /// (their user name, or their id when deleted), or nil.
    public func otherClaimant(target: String, accountID: String, personID: String) throws -> String? {
        var out: String?
        try db.query(
            """
            SELECT a.person_id, r.doc FROM provisioning_applied a
            LEFT JOIN resources r ON r.id = a.person_id AND r.type = 'User'
            WHERE a.target = ? AND a.account_id = ? AND a.person_id <> ? LIMIT 1
            """, [.text(target), .text(accountID), .text(personID)]
        ) { r in
            let doc = r.isNull(1) ? nil : try? JSONParser().parse(r.blob(1))
            out = doc?.objectValue?["userName"]?.stringValue ?? "person \(r.text(0) ?? "")"
        }
        return out
    }

    /// Every person linked to `accountID` on `target` (more than one: the account is shared).
    public func claimants(target: String, accountID: String) throws -> [String] {
        var out: [String] = []
        try db.query(
            "SELECT person_id FROM provisioning_applied WHERE target = ? AND account_id = ? "
                + "ORDER BY person_id LIMIT 10",
            [.text(target), .text(accountID)]
        ) { out.append($0.text(0) ?? "") }
        return out
    }

    /// The person whose account on `target` has `accountID`, with the applied record.
    public func applied(target: String, accountID: String) throws -> AppliedRecord? {
        var out: AppliedRecord?
        try db.query(
            "SELECT person_id, target, account_id, state, applied, person_deleted, last_result "
                + "FROM provisioning_applied WHERE target = ? AND account_id = ? LIMIT 1",
            [.text(target), .text(accountID)]
        ) { r in
            out = AppliedRecord(
                personID: r.text(0) ?? "", target: r.text(1) ?? "", accountID: r.text(2), state: r.blob(3),
                applied: r.value(4).double,
                personDeleted: r.isNull(5) ? nil : r.value(5).double, lastResult: r.text(6))
        }
        return out
    }
}
