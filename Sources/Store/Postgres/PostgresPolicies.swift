// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession: PolicyStore {
    private static let policyColumns = "version, hash, author, created, state, held_reason, confirmed_by, rolled_out"

    private func policyVersion(_ r: PostgresRow, text: [UInt8]) -> PolicyVersion {
        PolicyVersion(
            version: r.int64(0), hash: r.text(1) ?? "", text: text, author: r.text(2) ?? "", created: r.double(3),
            state: PolicyState(rawValue: r.text(4) ?? ""), heldReason: r.text(5), confirmedBy: r.text(6),
            rolledOut: r.isNull(7) ? nil : r.double(7))
    }

    public func insertPolicyVersion(
        hash: String, text: [UInt8], author: String, now: Double, state: PolicyState, heldReason: String?
    ) throws -> PolicyVersion {
        var next: Int64 = 1
        // Versions are numbered 1, 2, 3 as on SQLite; two nodes numbering at once would both
        // take MAX + 1, so numbering waits for the other's commit (policies change rarely).
        try db.query("SELECT pg_advisory_xact_lock(?)", [.integer(PostgresMigrations.policyVersionLockKey)]) { _ in }
        try db.query("SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions") { next = $0.int64(0) }
        try db.run(
            """
            INSERT INTO policy_versions(version, hash, text, author, created, state, held_reason)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(next), .text(hash), .bytes(text), .text(author), .real(now), .text(state.rawValue),
                heldReason.map { .text($0) } ?? .null,
            ])
        if state == .active { try markInForce(next) }
        return PolicyVersion(
            version: next, hash: hash, text: text, author: author, created: now, state: state, heldReason: heldReason)
    }

    public func latestPolicyVersion() throws -> PolicyVersion? {
        var out: PolicyVersion?
        try db.query("SELECT \(Self.policyColumns), text FROM policy_versions ORDER BY version DESC LIMIT 1") {
            out = policyVersion($0, text: $0.bytes(8))
        }
        return out
    }

    public func newestActivePolicyVersion() throws -> Int64? {
        var out: Int64?
        try db.query("SELECT max(version) FROM policy_versions WHERE state = 'active'", []) {
            out = $0.isNull(0) ? nil : $0.int64(0)
        }
        return out
    }

    public func policyVersion(_ version: Int64) throws -> PolicyVersion? {
        var out: PolicyVersion?
        try db.query("SELECT \(Self.policyColumns), text FROM policy_versions WHERE version = ?", [.integer(version)]) {
            out = policyVersion($0, text: $0.bytes(8))
        }
        return out
    }

    public func policyVersions(limit: Int) throws -> [PolicyVersion] {
        var out: [PolicyVersion] = []
        try db.query(
            "SELECT \(Self.policyColumns) FROM policy_versions ORDER BY version DESC LIMIT ?", [.integer(Int64(limit))]
        ) { out.append(policyVersion($0, text: [])) }
        return out
    }

    public func markPolicyRolledOut(_ version: Int64, now: Double) throws {
        try db.run("UPDATE policy_versions SET rolled_out = ? WHERE version = ?", [.real(now), .integer(version)])
    }

    public func confirmPolicyVersion(_ version: Int64, by: String) throws -> Bool {
        guard
            try db.run(
                "UPDATE policy_versions SET state = 'active', confirmed_by = ? WHERE version = ? AND state = 'held'",
                [.text(by), .integer(version)]) == 1
        else { return false }
        try markInForce(version)
        return true
    }

    /// Puts `version` on the audit chain's head row as the version in force: a write under
    /// way that locks the head before this commits commits first; one that locks it after
    /// reads the version there and, having decided under an older one, runs again.
    private func markInForce(_ version: Int64) throws {
        try db.run(
            "UPDATE audit_chain_head SET policy_version = GREATEST(policy_version, ?) WHERE id = 1",
            [.integer(version)])
    }
}
