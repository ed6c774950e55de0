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

extension PostgresWriteContext {
    /// Chains `entry` to the head of the one chain all nodes share. The first append of a
    /// transaction locks the chain head's row (`FOR UPDATE`) until commit: another node's
    /// append waits, then reads the head this one left, so the chain never forks. Entries
    /// therefore commit in chain order, one transaction at a time.
    func appendAudit(_ entry: AuditEntry) throws {
        let db = session.db
        if auditHead == nil {
            try db.query("SELECT seq, hash FROM audit_chain_head WHERE id = 1 FOR UPDATE") {
                auditHead = ($0.int64(0), $0.bytes(1))
            }
        }
        // Refuse rather than start a second chain at the genesis value.
        guard let head = auditHead else { throw StoreError("the audit chain head is missing", kind: .unavailable) }
        let e = AuditLog.chained(entry, seq: head.seq + 1, prev: head.hash)
        try db.run(
            """
            INSERT INTO audit(seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome,
            prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .integer(e.seq), .text(e.time), .text(e.principal), .text(e.action), .text(e.resourceType),
                .text(e.resourceID), .text(AuditLog.encodeAttributes(e.attributes)), .text(e.requestID),
                .text(e.outcome),
                .bytes(e.prevHash), .bytes(e.hash),
            ])
        try db.run("UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1", [.integer(e.seq), .bytes(e.hash)])
        auditHead = (e.seq, e.hash)
    }
}
