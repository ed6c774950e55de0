// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import SQLite
import HubLog

extension StoreError {
    /// The typed error for a driver error (SQLite primary result codes).
    public init(_ e: SQLiteError) {
        let kind: Kind
        switch e.code {
        case 5, 6: kind = .busy  // SQLITE_BUSY, SQLITE_LOCKED
        case 13: kind = .full  // SQLITE_FULL
        case 10, 11, 14, 26: kind = .io  // SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB
        // A unique index kept a key from appearing twice: the caller's input (or a racing
        // request) is at fault, as PostgreSQL's 23505 says too.
        case 19 where e.isUniqueViolation: kind = .uniqueness
        case 19: kind = .constraint  // SQLITE_CONSTRAINT
        default: kind = .unavailable
        }
        self.init("\(kind.rawValue): \(e.description)", kind: kind)
    }

    /// SQLite ended the transaction by itself (disk full, I/O error): nothing of it stands.
    static let transactionLost = StoreError("the storage layer rolled the transaction back", kind: .io)

    /// Maps driver errors to store errors; everything else passes through unchanged.
    static func mapping<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as SQLiteError { throw StoreError(e) }
    }
}

/// The hub's persistent state in one SQLite file in WAL mode. Reads use a pool of
/// connections; all writes go through one writer thread that groups concurrent requests
/// into one transaction (one fsync), each request inside its own savepoint so a failing
/// request rolls back alone. A caller's `write` returns only after its commit.
public final class SQLiteStore: HubStore {
    /// Path of the database file.
    public let path: String
    /// Idle read connections, sharded by thread so concurrent workers rarely share a lock.
    private let readerShards: [ReaderShard]
    private static let shardCount = 16
    private let writer: GroupCommitWriter
    private let logger: Logger

    /// Opens (creating if needed) `directory/scimhub.sqlite` and runs migrations.
    public init(directory: String, durability: Durability = .full, logger: Logger) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        path = directory + "/scimhub.sqlite"
        self.logger = logger
        let w = try SQLiteConnection(path: path)
        try w.execute("PRAGMA journal_mode=WAL")
        try w.execute("PRAGMA synchronous=\(durability == .full ? "FULL" : "NORMAL")")
        try w.execute("PRAGMA foreign_keys=ON")
        try w.execute("PRAGMA cache_size=-16000")
        // Savepoint (statement) journals in memory: one per request in a group commit.
        try w.execute("PRAGMA temp_store=MEMORY")
        // Checkpoint every ~32 MB of WAL rather than 4 MB: pages a bulk load rewrites many
        // times are copied into the database once.
        try w.execute("PRAGMA wal_autocheckpoint=8000")
        try Migrations.run(w)
        // The database holds token hashes and personal data: owner-only permissions.
        chmod(path, 0o600)
        writer = GroupCommitWriter(connection: w, synchronous: durability == .full ? "FULL" : "NORMAL", logger: logger)
        readerShards = (0..<Self.shardCount).map { _ in ReaderShard() }
    }

    /// Writes waiting for the writer thread (a gauge for operators, and for tests that need
    /// several writes in one group commit).
    public var queuedWrites: Int { writer.queued }

    /// Stops the writer thread after pending writes commit.
    public func close() { writer.stop() }

    // MARK: - Reads

    private var shard: ReaderShard {
        // pthread_self() is the thread's control block address; mix its bits (Fibonacci hashing).
        let h = UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))) &* 0x9E37_79B9_7F4A_7C15
        return readerShards[Int(h >> 60) % Self.shardCount]
    }

    private func checkoutReader() throws -> SQLiteConnection {
        if let c = shard.pool.withLock({ $0.popLast() }) { return c }
        let c = try SQLiteConnection(path: path)
        try c.execute("PRAGMA query_only=1")
        // Small private caches: there is one reader per thread, and the OS page cache
        // already holds hot pages for all of them.
        try c.execute("PRAGMA cache_size=-1000")
        return c
    }

    private func checkin(_ c: SQLiteConnection) {
        shard.pool.withLock { pool in
            if pool.count < 8 { pool.append(c) }
        }
    }

    /// Runs `body` with a read connection. With `snapshot` (the default) its statements
    /// share one consistent view; a single lookup can skip the transaction.
    public func read<T>(snapshot: Bool = true, _ body: (any StoreSession) throws -> T) throws -> T {
        try StoreError.mapping {
            let c = try checkoutReader()
            defer { checkin(c) }
            guard snapshot else { return try body(SQLiteSession(db: c)) }
            try c.run("BEGIN")
            defer { _ = try? c.run("COMMIT") }
            return try body(SQLiteSession(db: c))
        }
    }

    // MARK: - Writes

    /// Runs `body` in the next group commit and returns its result once durable. If `body`
    /// throws, its changes (and its audit entries) are rolled back and the error rethrown.
    ///
    /// `isolated: false` is for jobs that take their own savepoints per item (Bulk): an
    /// enclosing savepoint would keep SQLite's statement journal growing for the whole job,
    /// making each further write slower. Such a job must throw only when storage fails;
    /// then the whole batch is rolled back.
    @discardableResult
    public func write<T: Sendable>(
        isolated: Bool = true, durable: Bool = true, _ body: @escaping @Sendable (any StoreWriter) throws -> T
    )
        throws -> T
    {
        try StoreError.mapping { try writer.submit(isolated: isolated, durable: durable, body) }
    }
}

/// One shard of idle read connections.
private final class ReaderShard: Sendable {
    let pool = Mutex<[SQLiteConnection]>([])
}

/// A SQLite connection in use by one caller: every feature's queries (`StoreSession`),
/// implemented in this folder's `SQLite<Feature>.swift` files.
public struct SQLiteSession: StoreSession {
    let db: SQLiteConnection
}

/// The writer's view: the same queries plus mutations and audit appends.
final class SQLiteWriteContext: StoreWriter {
    /// Queries and mutations on the writer connection.
    let session: SQLiteSession
    var connection: any StoreSession { session }
    /// One node: the policy in force is the one in its memory.
    var policyVersionInForce: Int64? { nil }
    func decidesUnderPolicy() {}
    var auditHead: [UInt8]

    init(session: SQLiteSession, auditHead: [UInt8]) {
        self.session = session
        self.auditHead = auditHead
    }

    /// Runs `body` inside a nested savepoint: if it throws, only its changes are undone.
    func savepoint<T>(_ body: () throws -> T) throws -> T {
        let db = session.db
        // Never start work outside the group's transaction (it would commit on its own).
        guard db.isInTransaction else { throw StoreError.transactionLost }
        let head = auditHead
        try db.run("SAVEPOINT nested")
        do {
            let r = try body()
            try db.run("RELEASE nested")
            return r
        } catch {
            do {
                try db.run("ROLLBACK TO nested")
                try db.run("RELEASE nested")
            } catch {
                // The savepoint cannot be undone: nothing of this transaction may commit.
                _ = try? db.run("ROLLBACK")
                auditHead = head
                throw StoreError.transactionLost
            }
            auditHead = head
            guard db.isInTransaction else {
                throw (error as? SQLiteError).map(StoreError.init) ?? StoreError.transactionLost
            }
            throw error
        }
    }
}

extension Result {
    var failureError: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

/// The single writer thread and its queue.
final class GroupCommitWriter: @unchecked Sendable {
    // @unchecked Sendable: the queue guards its own state; the connection is used only by the
    // writer thread.
    private typealias Job = WriteQueue<SQLiteWriteContext>.Job
    private let queue = WriteQueue<SQLiteWriteContext>()

    private let db: SQLiteConnection
    private let logger: Logger
    /// The configured `synchronous` level, restored after a batch that needed none.
    private let synchronous: String
    /// Set when restoring `synchronous` or the checkpoint interval failed (writer thread only).
    private var durabilityLost = false

    /// Puts back the durable settings and checks they took; false (and every commit refused
    /// until it succeeds) when they did not.
    private func restoreDurability() -> Bool {
        do {
            try db.execute("PRAGMA synchronous=\(synchronous)")
            try db.execute("PRAGMA wal_autocheckpoint=8000")
            var level: Int64 = -1
            try db.query("PRAGMA synchronous") { level = $0.int64(0) }
            guard level == (synchronous == "FULL" ? 2 : 1) else { throw StoreError("synchronous is \(level)") }
            durabilityLost = false
        } catch {
            durabilityLost = true
            logger.error("store: durable settings cannot be restored; writes are refused", ["error": "\(error)"])
        }
        return !durabilityLost
    }
    private let finished = DispatchSemaphore(value: 0)
    /// Most requests folded into one transaction.
    static let maxBatch = 256

    init(connection: SQLiteConnection, synchronous: String, logger: Logger) {
        db = connection
        self.synchronous = synchronous
        self.logger = logger
        let t = Thread { [self] in self.run() }
        t.name = "store-writer"
        t.start()
    }

    var queued: Int {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        return queue.pending.count
    }

    func submit<T>(isolated: Bool, durable: Bool, _ body: @escaping (SQLiteWriteContext) throws -> T) throws -> T {
        try queue.submit(isolated: isolated, durable: durable, body)
    }

    func stop() {
        queue.condition.lock()
        let already = queue.stopping
        queue.stopping = true
        queue.condition.signal()
        queue.condition.unlock()
        if !already { finished.wait() }
    }

    private func run() {
        while true {
            queue.condition.lock()
            while queue.pending.isEmpty && !queue.stopping { queue.condition.wait() }
            if queue.pending.isEmpty && queue.stopping {
                queue.condition.unlock()
                finished.signal()
                return
            }
            let batch = queue.takeBatch(limit: Self.maxBatch)
            queue.condition.unlock()
            commit(batch)
        }
    }

    private func fail(_ batch: [Job], _ error: StoreError) {
        for j in batch { j.result = .failure(error); j.done.signal() }
    }

    private func commit(_ batch: [Job]) {
        // The writer could not restore its durable settings after a lease-only batch: nothing
        // commits until it can (a 2xx must mean the disk has it).
        if durabilityLost {
            guard restoreDurability() else {
                fail(batch, StoreError("storage cannot guarantee durable commits; retry later", kind: .io))
                return
            }
        }
        // A batch of writes whose loss does no harm (leases) commits without an fsync; the
        // next durable commit's fsync covers its WAL frames too. No checkpoint may run in
        // such a commit: it would copy acknowledged frames into the database unsynced.
        var durable = batch.contains { $0.durable }
        if !durable {
            do {
                try db.execute("PRAGMA wal_autocheckpoint=0")
                try db.execute("PRAGMA synchronous=OFF")
            } catch {
                durable = true
                if !restoreDurability() { fail(batch, StoreError("storage settings cannot be set", kind: .io)); return }
            }
        }
        defer { if !durable { _ = restoreDurability() } }
        do {
            try db.run("BEGIN IMMEDIATE")
        } catch {
            logger.error("store: cannot begin transaction", ["sqlite.error": "\(error)"])
            fail(batch, StoreError(error))
            return
        }
        let conn = SQLiteSession(db: db)
        // Read the chain head inside the transaction: the CLI may have appended entries.
        // When it cannot be read, nothing commits: falling back to genesis would fork the chain.
        let head: [UInt8]
        do {
            head = try conn.auditHeadHash()
        } catch {
            logger.error("store: cannot read the audit chain head; the batch is refused", ["sqlite.error": "\(error)"])
            _ = try? db.run("ROLLBACK")
            fail(batch, (error as? SQLiteError).map(StoreError.init) ?? StoreError("audit chain head unreadable"))
            return
        }
        let ctx = SQLiteWriteContext(session: conn, auditHead: head)
        var batchFailed = false
        for job in batch {
            do {
                let value = job.isolated ? try ctx.savepoint { try job.body(ctx) } : try job.body(ctx)
                job.result = .success(value)
            } catch {
                job.result = .failure(error)
                // A job without its own savepoint may have left partial changes: drop the batch.
                if !job.isolated { batchFailed = true; break }
            }
            // SQLite may have ended the transaction by itself: then every job's work so far
            // is gone, including the ones that succeeded; none may be reported as written.
            guard db.isInTransaction else {
                logger.error(
                    "store: the transaction was rolled back by SQLite; the batch is refused",
                    ["batch.size": String(batch.count)])
                fail(batch, job.result.failureError as? StoreError ?? StoreError.transactionLost)
                return
            }
        }
        if batchFailed {
            // Only ever a batch of one (takeBatch): its own error is its result.
            _ = try? db.run("ROLLBACK")
            for j in batch { j.done.signal() }
            return
        }
        do {
            try db.run("COMMIT")
        } catch {
            logger.error("store: commit failed", ["sqlite.error": "\(error)"])
            _ = try? db.run("ROLLBACK")
            fail(batch, StoreError(error))
            return
        }
        for j in batch { j.done.signal() }
    }
}
