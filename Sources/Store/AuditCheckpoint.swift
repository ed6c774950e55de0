// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import Synchronization
import HubCrypto
import HubLog
import JSONCore

/// A signed statement "the audit chain had entry `seq` with hash `head` at `time`".
///
/// The hash chain alone proves nothing was altered or removed *between* entries; whoever
/// can write the database can still cut the tail or rewrite an entry and re-hash every
/// entry after it. A checkpoint signed with a key kept outside the database, written to an
/// append-only file and to the log (which ships elsewhere), closes both: the chain must
/// still reach each checkpoint's entry with the same hash.
public struct AuditCheckpoint: Sendable, Equatable {
    public let seq: Int64
    public let head: String
    public let time: String
    /// Which key signed it (`Ed25519PrivateKey.keyID`).
    public let keyID: String
    public let signature: String

    /// The exact bytes signed: a versioned, line-based text no field can spill out of.
    static func message(seq: Int64, head: String, time: String) -> [UInt8] {
        Array("scimhub-audit-checkpoint/1\n\(seq)\n\(head)\n\(time)\n".utf8)
    }

    public static func make(seq: Int64, head: [UInt8], time: String, key: Ed25519PrivateKey) throws -> AuditCheckpoint {
        let h = hexString(head)
        return AuditCheckpoint(
            seq: seq, head: h, time: time, keyID: key.keyID,
            signature: hexString(try key.sign(message(seq: seq, head: h, time: time))))
    }

    public func isSigned(by key: Ed25519PublicKey) -> Bool {
        guard let sig = bytesFromHex(signature) else { return false }
        return key.verify(signature: sig, message: Self.message(seq: seq, head: head, time: time))
    }

    func isSigned(by key: Ed25519PrivateKey) -> Bool {
        guard let sig = bytesFromHex(signature) else { return false }
        return key.verify(signature: sig, message: Self.message(seq: seq, head: head, time: time))
    }

    /// One line of the checkpoint file.
    public var line: String {
        JSONValue.object(
            JSONObject([
                "seq": .number(JSONNumber(Int(seq))), "head": .string(head), "time": .string(time),
                "key": .string(keyID), "signature": .string(signature),
            ])
        ).jsonString
    }

    public init(seq: Int64, head: String, time: String, keyID: String, signature: String) {
        self.seq = seq; self.head = head; self.time = time; self.keyID = keyID; self.signature = signature
    }

    /// Parses a checkpoint file line, or `HASH@SEQ` as published by hand (unsigned).
    public init?(text: String) {
        if let at = text.firstIndex(of: "@"), !text.hasPrefix("{") {
            guard let seq = Int64(text[text.index(after: at)...]), seq > 0, let h = bytesFromHex(String(text[..<at])),
                h.count == 32
            else { return nil }
            self.init(seq: seq, head: hexString(h), time: "", keyID: "", signature: "")
            return
        }
        guard case .object(let o)? = try? JSONParser().parse(Array(text.utf8)), let seq = o["seq"]?.numberValue?.int64,
            let head = o["head"]?.stringValue, let time = o["time"]?.stringValue, let key = o["key"]?.stringValue,
            let sig = o["signature"]?.stringValue
        else { return nil }
        self.init(seq: seq, head: head.lowercased(), time: time, keyID: key, signature: sig)
    }
}

/// What a checkpoint says about the chain.
public enum CheckpointCheck: Sendable, Equatable {
    case reached
    /// The checkpoint's entry is gone though later ones remain.
    case missing
    /// The chain ends before the checkpoint's entry: its tail was cut.
    case cut(logEndsAt: Int64)
    /// The entry is there with another hash: the chain was rewritten (and re-hashed).
    case rewritten
}

extension AuditLog {
    /// Verifies the chain and checks each checkpoint against it, in one pass.
    public static func verify(_ conn: any StoreSession, checkpoints: [AuditCheckpoint]) throws -> (
        AuditVerification, [CheckpointCheck]
    ) {
        var wanted: [Int64: String] = [:]
        for c in checkpoints { wanted[c.seq] = c.head }
        var found: [Int64: String] = [:]
        let v = try verify(conn) { seq, hash in
            if wanted[seq] != nil { found[seq] = hexString(hash) }
        }
        let checks = checkpoints.map { c -> CheckpointCheck in
            guard let h = found[c.seq] else { return v.headSeq >= c.seq ? .missing : .cut(logEndsAt: v.headSeq) }
            return h == c.head ? .reached : .rewritten
        }
        return (v, checks)
    }
}

/// Writes a signed checkpoint of the chain head every `interval` seconds when the chain
/// has grown, and once more at shutdown: one line appended (O_APPEND, fsync) to the
/// checkpoint file and one log line.
public final class AuditCheckpointer: HubService {
    public var serviceName: String { "audit-checkpoints" }
    private let store: any HubStore
    private let key: Ed25519PrivateKey
    private let path: String
    private let interval: Double
    private let logger: Logger
    private let lastSeq = Mutex<Int64>(0)
    private let signal = NSCondition()
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// The last checkpoint written (read back from the file at start).
    private let last = Mutex<AuditCheckpoint?>(nil)
    /// Why the checkpoint file cannot be continued (its last line is not ours), if so.
    private let unusable: String?
    private let started = Atomic<Bool>(false)

    /// Also checkpoint once the chain has grown by this many entries (0: by time only).
    private let everyEntries: Int

    public init(
        store: any HubStore, key: Ed25519PrivateKey, path: String, interval: Double, everyEntries: Int = 0,
        logger: Logger
    ) {
        self.store = store
        self.key = key
        self.path = path
        self.interval = interval
        self.everyEntries = everyEntries
        self.logger = logger
        // The last line must be a checkpoint this key signed: a foreign, unsigned or torn
        // line would otherwise disarm the check that the chain still reaches it.
        var previous: AuditCheckpoint? = nil
        var problem: String? = nil
        if FileManager.default.fileExists(atPath: path) {
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                if let line = text.split(separator: "\n").last(where: { !$0.allSatisfy(\.isWhitespace) }) {
                    previous = AuditCheckpoint(text: String(line))
                    if previous?.isSigned(by: key) != true {
                        previous = nil; problem = "its last line is not a checkpoint signed by this key"
                    }
                }
            } else {
                problem = "it cannot be read"
            }
        }
        unusable = problem.map {
            "audit checkpoint file \(path): \($0); not signing until an operator checks it (scimhub audit verify)"
        }
        last.withLock { $0 = previous }
        lastSeq.withLock { $0 = previous?.seq ?? 0 }
    }

    /// Checkpoints now if the chain grew since the last one; returns the checkpoint written.
    /// Never signs a chain that no longer reaches the previous checkpoint unaltered (rewritten
    /// or cut while the hub was stopped): that is reported, and left for `audit verify`.
    @discardableResult
    public func checkpoint() throws -> AuditCheckpoint? {
        if let u = unusable { throw StoreError(u) }
        let previous = last.withLock { $0 }
        let (head, hashAtPrevious) = try store.read { c in
            (try c.auditHead(), try previous.flatMap { try c.auditHash(seq: $0.seq) })
        }
        if let p = previous, hashAtPrevious.map(hexString) != p.head {
            AuditLog.brokenVerifications.add(1, ordering: .relaxed)  // scimhub_audit_verify_failures_total
            throw StoreError(
                "the audit chain no longer reaches the last checkpoint (entry \(p.seq)): "
                    + "not signing; run scimhub audit verify"
            )
        }
        guard head.seq > 0, head.seq > lastSeq.withLock({ $0 }) else { return nil }
        let c = try AuditCheckpoint.make(
            seq: head.seq, head: head.hash, time: Timestamp.format(Timestamp.now()), key: key)
        try Self.append(c.line + "\n", to: path)
        lastSeq.withLock { $0 = head.seq }
        last.withLock { $0 = c }
        logger.notice(
            "audit checkpoint",
            ["audit.seq": String(c.seq), "audit.head": c.head, "audit.key": c.keyID, "audit.signature": c.signature])
        return c
    }

    static func append(_ text: String, to path: String) throws {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StoreError("audit checkpoint file \(path) cannot be opened (errno \(errno))") }
        defer { close(fd) }
        var bytes = Array(text.utf8)
        // A line torn by an earlier failed write is ended first, so this one stays whole.
        let size = lseek(fd, 0, SEEK_END)
        var lastByte: UInt8 = 0x0A
        if size > 0, pread(fd, &lastByte, 1, size - 1) == 1, lastByte != 0x0A { bytes.insert(0x0A, at: 0) }
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard n == bytes.count, fsync(fd) == 0 else {
            throw StoreError("audit checkpoint file \(path) cannot be written (errno \(errno))")
        }
    }

    /// The last checkpoint signed (or read back at start), to publish.
    public var latest: AuditCheckpoint? { last.withLock { $0 } }

    /// Whether the chain has grown by `everyEntries` since the last checkpoint (one indexed read).
    private func grownEnough() -> Bool {
        guard everyEntries > 0, let head = try? store.read(snapshot: false, { try $0.auditHead().seq }) else {
            return false
        }
        return head - lastSeq.withLock({ $0 }) >= Int64(everyEntries)
    }

    public func start() {
        started.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            var due = Date().addingTimeInterval(interval)
            while !stopped.load(ordering: .relaxed) {
                // By entries, the head is looked at every second; by time, at the interval.
                let wake = everyEntries > 0 ? min(due, Date().addingTimeInterval(1)) : due
                signal.lock()
                if !stopped.load(ordering: .relaxed) { _ = signal.wait(until: wake) }
                signal.unlock()
                guard !stopped.load(ordering: .relaxed) else { break }
                guard Date() >= due || grownEnough() else { continue }
                due = Date().addingTimeInterval(interval)
                do { try checkpoint() } catch {
                    logger.error(
                        "audit checkpoint failed; retried at the next interval",
                        ["error": String(describing: error).prefix(200).description])
                }
            }
            finished.signal()
        }
        t.name = "audit-checkpoint"
        t.start()
    }

    /// Stops the thread and writes a last checkpoint, so a clean shutdown leaves the head signed.
    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        signal.lock()
        signal.broadcast()
        signal.unlock()
        if started.load(ordering: .relaxed) { finished.wait() }
        do { try checkpoint() } catch {
            logger.error("final audit checkpoint failed", ["error": String(describing: error).prefix(200).description])
        }
    }
}
