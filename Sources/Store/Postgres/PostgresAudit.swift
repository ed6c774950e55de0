// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession: AuditStore {
    static let auditColumns =
        "seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome, prev_hash, hash"

    static func auditEntry(_ r: PostgresRow) -> AuditEntry {
        var e = AuditEntry(
            time: r.text(1) ?? "", principal: r.text(2) ?? "", action: r.text(3) ?? "", resourceType: r.text(4) ?? "",
            resourceID: r.text(5) ?? "", attributes: AuditLog.decodeAttributes(r.text(6) ?? ""),
            requestID: r.text(7) ?? "", outcome: r.text(8) ?? "")
        e.seq = r.int64(0)
        e.prevHash = r.bytes(9)
        e.hash = r.bytes(10)
        return e
    }

    public func scanAudit(_ body: (AuditEntry) throws -> Void) throws {
        try db.query("SELECT \(Self.auditColumns) FROM audit ORDER BY seq") { try body(Self.auditEntry($0)) }
    }

    public func auditEntries(
        since: String?, until: String?, principal: String?, resourceID: String?, action: String?, afterSeq: Int64,
        limit: Int
    ) throws -> [AuditEntry] {
        var sql = "SELECT \(Self.auditColumns) FROM audit WHERE seq > ?"
        var params: [PostgresValue] = [.integer(afterSeq)]
        if let s = since { sql += " AND time >= ?"; params.append(.text(s)) }
        if let u = until { sql += " AND time < ?"; params.append(.text(u)) }
        if let p = principal { sql += " AND principal = ?"; params.append(.text(p)) }
        if let r = resourceID { sql += " AND resource_id = ?"; params.append(.text(r)) }
        if let a = action { sql += " AND action = ?"; params.append(.text(a)) }
        sql += " ORDER BY seq LIMIT ?"
        params.append(.integer(Int64(limit)))
        var out: [AuditEntry] = []
        try db.query(sql, params) { out.append(Self.auditEntry($0)) }
        return out
    }

    public func auditHash(seq: Int64) throws -> [UInt8]? {
        var h: [UInt8]?
        try db.query("SELECT hash FROM audit WHERE seq = ?", [.integer(seq)]) { h = $0.bytes(0) }
        return h
    }

    public func auditHead() throws -> (seq: Int64, hash: [UInt8]) {
        var h = (seq: Int64(0), hash: AuditLog.genesis)
        try db.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") { h = ($0.int64(0), $0.bytes(1)) }
        return h
    }
}

extension PostgresSession {
    public func auditForwardCursor() throws -> Int64? {
        var seq: Int64?
        try db.query("SELECT seq FROM audit_forward_cursor WHERE id = 1") { seq = $0.int64(0) }
        return seq
    }

    public func setAuditForwardCursor(_ seq: Int64) throws {
        try db.run(
            """
            INSERT INTO audit_forward_cursor(id, seq) VALUES (1, ?)
            ON CONFLICT(id) DO UPDATE SET seq = GREATEST(audit_forward_cursor.seq, excluded.seq)
            """, [.integer(seq)])
    }
}

extension PostgresWriteContext {
    /// Keeps `entry` for the chain; `sealAudit` chains it when the transaction ends.
    func appendAudit(_ entry: AuditEntry) throws {
        pendingAudit.append(entry)
    }

    /// Entries per INSERT: a bounded number of statement shapes per connection.
    static let auditRowsPerStatement = 32

    /// Chains this transaction's entries onto the head of the one chain all nodes share, as
    /// its last step before COMMIT. Locking the head's row (`FOR UPDATE`) until commit makes
    /// another node's seal wait and then read the head this one left, so the chain never
    /// forks and entries commit in chain order. Done last, the lock is held for these two or
    /// three statements and the commit, not for the transaction's other work.
    /// Returns the transaction's id (`pg_current_xact_id`), read in the same statement, so a
    /// COMMIT whose answer is lost can be looked up; nil when there was nothing to chain.
    @discardableResult
    func sealAudit() throws -> String? {
        let db = session.db
        guard !pendingAudit.isEmpty else {
            // No entry to chain, but a decision under the policy: the version in force is read
            // on the head row all the same (shared: sealing writes still take it in turn).
            if decided, let running = policyVersionInForce {
                var inForce: Int64 = 0
                try db.query("SELECT policy_version FROM audit_chain_head WHERE id = 1 FOR SHARE") {
                    inForce = $0.int64(0)
                }
                if inForce > running { throw PolicyVersionChanged(newest: inForce) }
            }
            return nil
        }
        var xid: String?
        var head: (seq: Int64, hash: [UInt8], policy: Int64, ours: Bool)?
        // `ours`: this transaction moved the row itself (it stored the version in force).
        try db.query(
            "SELECT seq, hash, policy_version, xmin = pg_current_xact_id()::xid FROM audit_chain_head "
                + "WHERE id = 1 FOR UPDATE"
        ) { head = ($0.int64(0), $0.bytes(1), $0.int64(2), $0.text(3) == "t") }
        // Refuse rather than start a second chain at the genesis value.
        guard var (seq, prev, inForce, ours) = head else {
            throw StoreError("the audit chain head is missing", kind: .unavailable)
        }
        // A newer version came into force (another transaction moved the head row) since this
        // transaction's writes decided: they run again, under it. The row lock orders the two:
        // a version stored while this holds the head waits for this commit.
        if let running = policyVersionInForce, inForce > running, !ours {
            throw PolicyVersionChanged(newest: inForce)
        }
        var chained: [AuditEntry] = []
        chained.reserveCapacity(pendingAudit.count)
        for entry in pendingAudit {
            seq += 1
            let e = AuditLog.chained(entry, seq: seq, prev: prev)
            prev = e.hash
            chained.append(e)
        }
        var rest = chained[...]
        while !rest.isEmpty {
            let rows = rest.prefix(Self.auditRowsPerStatement)
            rest = rest.dropFirst(rows.count)
            var params: [PostgresValue] = []
            params.reserveCapacity(rows.count * 11 + 2)
            for e in rows {
                params += [
                    .integer(e.seq), .text(e.time), .text(e.principal), .text(e.action), .text(e.resourceType),
                    .text(e.resourceID), .text(AuditLog.encodeAttributes(e.attributes)), .text(e.requestID),
                    .text(e.outcome), .bytes(e.prevHash), .bytes(e.hash),
                ]
            }
            var sql =
                """
                INSERT INTO audit(seq, time, principal, action, resource_type, resource_id, attributes, request_id,
                outcome, prev_hash, hash) VALUES
                """ + Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: rows.count).joined(separator: ", ")
            // The last INSERT moves the head in the same statement (a data-modifying WITH runs
            // to completion whether or not its rows are read).
            if rest.isEmpty {
                sql =
                    "WITH added AS (" + sql + ") UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1 "
                    + "RETURNING pg_current_xact_id()::text"
                params += [.integer(seq), .bytes(prev)]
                try db.query(sql, params) { xid = $0.text(0) }
            } else {
                try db.run(sql, params)
            }
        }
        pendingAudit = []
        return xid
    }
}

/// A write transaction decided under a policy version older than the one in force
/// (`PostgresWriteContext.sealAudit`): the group commit runs its writes again under `newest`.
struct PolicyVersionChanged: Error {
    let newest: Int64
}
