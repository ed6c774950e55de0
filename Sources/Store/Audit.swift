// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import HubCrypto
import Synchronization

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

    public init(
        time: String, principal: String, action: String, resourceType: String, resourceID: String,
        attributes: [String], requestID: String, outcome: String
    ) {
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
        let fields: JSONValue = .array([
            .number(JSONNumber(Int(seq))), .string(time), .string(principal), .string(action),
            .string(resourceType), .string(resourceID), .array(attributes.map { .string($0) }),
            .string(requestID), .string(outcome),
        ])
        return prev + JSONWriter().write(fields)
    }

    /// The entry as JSON for `GET /admin/audit`.
    public var json: JSONValue {
        .object(
            JSONObject([
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
/// SHA-256(predecessor's hash ‖ its own fields). Backend-neutral: the chain's rules are
/// here, the rows in the store (`AuditStore`).
public enum AuditLog {
    /// The predecessor hash of the first entry.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// Appends an entry in the caller's write transaction.
    public static func append(_ w: any StoreWriter, _ entry: AuditEntry) throws {
        try w.appendAudit(entry)
    }

    /// The entry with its sequence number, predecessor hash and hash filled in.
    public static func chained(_ entry: AuditEntry, seq: Int64, prev: [UInt8]) -> AuditEntry {
        var e = entry
        e.seq = seq
        e.prevHash = prev
        e.hash = Crypto.sha256(entry.preimage(seq: seq, prev: prev))
        return e
    }

    /// Attribute names as a JSON array: unambiguous whatever the names hold (a comma once
    /// split one name in two on read, and the entry no longer matched its hash).
    public static func encodeAttributes(_ names: [String]) -> String {
        String(decoding: JSONWriter().write(.array(names.map { .string($0) })), as: UTF8.self)
    }

    /// Entries written before the JSON encoding hold names joined by commas.
    public static func decodeAttributes(_ text: String) -> [String] {
        if text.hasPrefix("["), case .array(let items)? = try? JSONParser().parse(Array(text.utf8)) {
            return items.compactMap(\.stringValue)
        }
        return text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    /// Walks the whole chain in order and reports every break. `hashAt` is called with each
    /// entry's sequence number and hash (checkpoint verification).
    public static func verify(_ conn: any StoreSession, hashAt: (Int64, [UInt8]) -> Void = { _, _ in }) throws
        -> AuditVerification
    {
        var prev = genesis
        var expectedSeq: Int64 = 1
        var count = 0, breakCount = 0
        var breaks: [(Int64, String)] = []
        func broken(_ seq: Int64, _ reason: String) {
            breakCount += 1
            if breaks.count < AuditVerification.maxListed { breaks.append((seq, reason)) }
        }
        var lastSeq: Int64 = 0
        try conn.scanAudit { e in
            if e.seq != expectedSeq {
                broken(
                    expectedSeq,
                    e.seq == expectedSeq + 1
                        ? "entry \(expectedSeq) is missing" : "entries \(expectedSeq) to \(e.seq - 1) are missing")
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
        if breakCount > 0 { brokenVerifications.add(1, ordering: .relaxed) }
        return AuditVerification(
            entries: count, headSeq: lastSeq, headHash: hexString(prev), breaks: breaks, breakCount: breakCount)
    }

    /// Verifications in this process that found a break (`scimhub_audit_verify_failures_total`).
    public static let brokenVerifications = Atomic<Int>(0)

    /// Entries matching the filters, oldest first (`time` bounds are ISO timestamps).
    public static func list(
        _ conn: any StoreSession, since: String?, until: String?, principal: String?, resourceID: String?,
        action: String? = nil, afterSeq: Int64, limit: Int
    ) throws -> [AuditEntry] {
        try conn.auditEntries(
            since: since, until: until, principal: principal, resourceID: resourceID, action: action,
            afterSeq: afterSeq, limit: limit)
    }
}

/// The audit chain's rows.
public protocol AuditStore {
    /// Every entry in sequence order.
    func scanAudit(_ body: (AuditEntry) throws -> Void) throws

    /// Entries matching the filters, oldest first, after `afterSeq`.
    func auditEntries(
        since: String?, until: String?, principal: String?, resourceID: String?, action: String?, afterSeq: Int64,
        limit: Int
    ) throws -> [AuditEntry]

    /// The hash of entry `seq`, or nil when there is none.
    func auditHash(seq: Int64) throws -> [UInt8]?

    /// Sequence number and hash of the newest entry (0 and the genesis value when empty).
    func auditHead() throws -> (seq: Int64, hash: [UInt8])
    /// The last entry forwarded to the SIEM, nil before the first.
    func auditForwardCursor() throws -> Int64?
    /// Moves the forwarding cursor to `seq`, never back.
    func setAuditForwardCursor(_ seq: Int64) throws
}

extension AuditEntry {
    /// An entry stamped with the current time.
    public static func now(
        principal: String, action: String, resourceType: String, resourceID: String,
        attributes: [String] = [], requestID: String, outcome: String = "success"
    ) -> AuditEntry {
        AuditEntry(
            time: Timestamp.format(Timestamp.now()), principal: principal, action: action, resourceType: resourceType,
            resourceID: resourceID, attributes: attributes, requestID: requestID, outcome: outcome)
    }
}
