// SPDX-License-Identifier: Apache-2.0
import SQLite

extension SQLiteSession: AuditStore {
    static let auditColumns =
        "seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome, prev_hash, hash"

    static func auditEntry(_ r: SQLiteRow) -> AuditEntry {
        var e = AuditEntry(
            time: r.text(1) ?? "", principal: r.text(2) ?? "", action: r.text(3) ?? "", resourceType: r.text(4) ?? "",
            resourceID: r.text(5) ?? "", attributes: AuditLog.decodeAttributes(r.text(6) ?? ""),
            requestID: r.text(7) ?? "", outcome: r.text(8) ?? "")
        e.seq = r.int64(0)
        e.prevHash = r.blob(9)
        e.hash = r.blob(10)
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
        var params: [SQLiteValue] = [.integer(afterSeq)]
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
        try db.query("SELECT hash FROM audit WHERE seq = ?", [.integer(seq)]) { h = $0.blob(0) }
        return h
    }

    public func auditHead() throws -> (seq: Int64, hash: [UInt8]) {
        var h = (seq: Int64(0), hash: AuditLog.genesis)
        try db.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") { h = ($0.int64(0), $0.blob(1)) }
        return h
    }

    public func auditForwardCursor() throws -> Int64? {
        var seq: Int64?
        try db.query("SELECT seq FROM audit_forward_cursor WHERE id = 1") { seq = $0.int64(0) }
        return seq
    }

    public func setAuditForwardCursor(_ seq: Int64) throws {
        try db.run(
            """
            INSERT INTO audit_forward_cursor(id, seq) VALUES (1, ?)
            ON CONFLICT(id) DO UPDATE SET seq = max(audit_forward_cursor.seq, excluded.seq)
            """, [.integer(seq)])
    }

    /// Hash of the newest audit entry, or the genesis value.
    func auditHeadHash() throws -> [UInt8] {
        try auditHead().hash
    }
}

extension SQLiteWriteContext {
    /// Chains `entry` to the head this transaction read at its start (the single writer
    /// holds the only write lock, so the head cannot move underneath it).
    func appendAudit(_ entry: AuditEntry) throws {
        let db = session.db
        var seq: Int64 = 1
        try db.query("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit") { seq = $0.int64(0) }
        let e = AuditLog.chained(entry, seq: seq, prev: auditHead)
        try db.run(
            """
            INSERT INTO audit(seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome,
            prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(seq), .text(e.time), .text(e.principal), .text(e.action), .text(e.resourceType),
                .text(e.resourceID), .text(AuditLog.encodeAttributes(e.attributes)), .text(e.requestID),
                .text(e.outcome),
                .blob(e.prevHash), .blob(e.hash),
            ])
        auditHead = e.hash
    }
}
