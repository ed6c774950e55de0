// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import HubCrypto
import SQLite

/// One audit entry. It holds identifiers and attribute *names*, never values or secrets.
public struct AuditEntry: Sendable, Equatable {
    public var seq: Int64 = 0
    public var time: String
    /// Feed or admin principal, `cli` for the command line, or `anonymous`.
    public var principal: String
    /// `create`, `replace`, `patch`, `delete`, `token.create`, ...
    public var action: String
    public var resourceType: String
    public var resourceID: String
    /// Changed attribute names.
    public var attributes: [String]
    public var requestID: String
    /// `success`, or `failure <status> <scimType>`.
    public var outcome: String
    public var prevHash: [UInt8] = []
    public var hash: [UInt8] = []

    public init(time: String, principal: String, action: String, resourceType: String, resourceID: String,
                attributes: [String], requestID: String, outcome: String) {
        self.time = time
        self.principal = principal
        self.action = action
        self.resourceType = resourceType
        self.resourceID = resourceID
        self.attributes = attributes
        self.requestID = requestID
        self.outcome = outcome
    }

    /// The bytes the hash covers: the predecessor's hash, then every field as one JSON
    /// array (unambiguous, so no two entries share a preimage).
    func preimage(seq: Int64, prev: [UInt8]) -> [UInt8] {
        let fields: JSONValue = .array([.number(JSONNumber(Int(seq))), .string(time), .string(principal), .string(action),
                                        .string(resourceType), .string(resourceID), .array(attributes.map { .string($0) }),
                                        .string(requestID), .string(outcome)])
        return prev + JSONWriter().write(fields)
    }

    /// The entry as JSON for `GET /admin/audit`.
    public var json: JSONValue {
        .object(JSONObject([
            "seq": .number(JSONNumber(Int(seq))),
            "time": .string(time),
            "principal": .string(principal),
            "action": .string(action),
            "resourceType": .string(resourceType),
            "resourceId": .string(resourceID),
            "attributes": .array(attributes.map { .string($0) }),
            "requestId": .string(requestID),
            "outcome": .string(outcome),
            "hash": .string(hexString(hash)),
        ]))
    }
}

/// The outcome of verifying the chain.
public struct AuditVerification: Sendable {
    /// Entries checked.
    public let entries: Int
    /// Sequence number and hash of the last entry (publish them to anchor the chain elsewhere).
    public let headSeq: Int64
    public let headHash: String
    /// Every entry whose link or hash does not check, with the reason, in order (the first
    /// `maxListed`; `breakCount` counts them all). Verification goes on past a break, so a
    /// false break cannot hide a real one further on.
    public let breaks: [(seq: Int64, reason: String)]
    public let breakCount: Int
    public var firstBroken: (seq: Int64, reason: String)? { breaks.first }
    public var intact: Bool { breakCount == 0 }
    public static let maxListed = 1000
}

/// The tamper-evident audit log: each entry stores its predecessor's hash and
/// SHA-256(predecessor's hash ‖ its own fields).
public enum AuditLog {
    /// The predecessor hash of the first entry.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// Appends an entry in the caller's write transaction.
    public static func append(_ ctx: WriteContext, _ entry: AuditEntry) throws {
        let db = ctx.connection.db
        var seq: Int64 = 1
        try db.query("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit") { seq = $0.int64(0) }
        let prev = ctx.auditHead
        let hash = Crypto.sha256(entry.preimage(seq: seq, prev: prev))
        try db.run("""
            INSERT INTO audit(seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome, prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.integer(seq), .text(entry.time), .text(entry.principal), .text(entry.action), .text(entry.resourceType),
                  .text(entry.resourceID), .text(encodeAttributes(entry.attributes)), .text(entry.requestID), .text(entry.outcome),
                  .blob(prev), .blob(hash)])
        ctx.auditHead = hash
    }

    /// Attribute names as a JSON array: unambiguous whatever the names hold (a comma once
    /// split one name in two on read, and the entry no longer matched its hash).
    static func encodeAttributes(_ names: [String]) -> String {
        String(decoding: JSONWriter().write(.array(names.map { .string($0) })), as: UTF8.self)
    }

    /// Entries written before the JSON encoding hold names joined by commas.
    static func decodeAttributes(_ text: String) -> [String] {
        if text.hasPrefix("["), case .array(let items)? = try? JSONParser().parse(Array(text.utf8)) { return items.compactMap(\.stringValue) }
        return text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    /// Walks the whole chain in order and reports every break. `hashAt` is called with each
    /// entry's sequence number and hash (checkpoint verification).
    public static func verify(_ conn: StoreConnection, hashAt: (Int64, [UInt8]) -> Void = { _, _ in }) throws -> AuditVerification {
        var prev = genesis
        var expectedSeq: Int64 = 1
        var count = 0, breakCount = 0
        var breaks: [(Int64, String)] = []
        func broken(_ seq: Int64, _ reason: String) {
            breakCount += 1
            if breaks.count < AuditVerification.maxListed { breaks.append((seq, reason)) }
        }
        var lastSeq: Int64 = 0
        try conn.db.query("SELECT \(columns) FROM audit ORDER BY seq") { row in
            let e = entry(row)
            if e.seq != expectedSeq {
                broken(expectedSeq, e.seq == expectedSeq + 1 ? "entry \(expectedSeq) is missing" : "entries \(expectedSeq) to \(e.seq - 1) are missing")
            }
            if e.prevHash != prev {
                broken(e.seq, "does not link to its predecessor")
            }
            if Crypto.sha256(e.preimage(seq: e.seq, prev: e.prevHash)) != e.hash {
                broken(e.seq, "content does not match its hash")
            }
            hashAt(e.seq, e.hash)
            prev = e.hash
            lastSeq = e.seq
            expectedSeq = e.seq + 1
            count += 1
        }
        return AuditVerification(entries: count, headSeq: lastSeq, headHash: hexString(prev), breaks: breaks, breakCount: breakCount)
    }

    /// Entries matching the filters, oldest first (`time` bounds are ISO timestamps).
    public static func list(_ conn: StoreConnection, since: String?, until: String?, principal: String?, resourceID: String?,
                            afterSeq: Int64, limit: Int) throws -> [AuditEntry] {
        var sql = "SELECT \(columns) FROM audit WHERE seq > ?"
        var params: [SQLiteValue] = [.integer(afterSeq)]
        if let s = since { sql += " AND time >= ?"; params.append(.text(s)) }
        if let u = until { sql += " AND time < ?"; params.append(.text(u)) }
        if let p = principal { sql += " AND principal = ?"; params.append(.text(p)) }
        if let r = resourceID { sql += " AND resource_id = ?"; params.append(.text(r)) }
        sql += " ORDER BY seq LIMIT ?"
        params.append(.integer(Int64(limit)))
        var out: [AuditEntry] = []
        try conn.db.query(sql, params) { out.append(entry($0)) }
        return out
    }

    static let columns = "seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome, prev_hash, hash"

    static func entry(_ r: SQLiteRow) -> AuditEntry {
        var e = AuditEntry(time: r.text(1) ?? "", principal: r.text(2) ?? "", action: r.text(3) ?? "", resourceType: r.text(4) ?? "",
                           resourceID: r.text(5) ?? "", attributes: decodeAttributes(r.text(6) ?? ""),
                           requestID: r.text(7) ?? "", outcome: r.text(8) ?? "")
        e.seq = r.int64(0)
        e.prevHash = r.blob(9)
        e.hash = r.blob(10)
        return e
    }
}

extension StoreConnection {
    /// Hash of the newest audit entry, or the genesis value.
    func auditHeadHash() throws -> [UInt8] {
        try auditHead().hash
    }

    /// The hash of entry `seq`, or nil when there is none.
    public func auditHash(seq: Int64) throws -> [UInt8]? {
        var h: [UInt8]?
        try db.query("SELECT hash FROM audit WHERE seq = ?", [.integer(seq)]) { h = $0.blob(0) }
        return h
    }

    /// Sequence number and hash of the newest audit entry (0 and the genesis value when empty).
    public func auditHead() throws -> (seq: Int64, hash: [UInt8]) {
        var h = (seq: Int64(0), hash: AuditLog.genesis)
        try db.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") { h = ($0.int64(0), $0.blob(1)) }
        return h
    }
}

extension AuditEntry {
    /// An entry stamped with the current time.
    public static func now(principal: String, action: String, resourceType: String, resourceID: String,
                           attributes: [String] = [], requestID: String, outcome: String = "success") -> AuditEntry {
        AuditEntry(time: Timestamp.format(Timestamp.now()), principal: principal, action: action, resourceType: resourceType,
                   resourceID: resourceID, attributes: attributes, requestID: requestID, outcome: outcome)
    }
}
