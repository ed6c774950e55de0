// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Postgres
import HubLog

extension StoreError {
    /// The typed error for a PostgreSQL error (SQLSTATE classes, PostgreSQL appendix A). The
    /// text names the SQLSTATE and the statement's purpose, never a bound value.
    public init(_ e: PostgresError) {
        let kind: Kind
        switch e.sqlState {
        case _ where e.isConnectionLost: kind = .unavailable
        case "23505": kind = .uniqueness
        case "23503": kind = .invalidReference
        case "53100": kind = .full  // disk full
        case "40001", "40P01", "55P03", "53300": kind = .busy  // retries ran out, lock timeout, too many clients
        case "58030", "XX001", "XX002": kind = .io  // I/O error, data or index corrupted
        case _ where e.sqlState.hasPrefix("23"): kind = .constraint
        default: kind = .unavailable
        }
        self.init("\(kind.rawValue): \(e.description)", kind: kind)
    }

    /// Maps PostgreSQL errors to store errors; everything else passes through unchanged.
    static func mappingPostgres<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw mappedPostgres(error)
        }
    }

    /// The store error for a PostgreSQL error; any other error unchanged.
    static func mappedPostgres(_ error: any Error) -> any Error {
        switch error {
        case let e as PostgresError: return StoreError(e)
        case let e as PostgresConnectError: return StoreError("\(e)", kind: .unavailable)
        default: return error
        }
    }
}

/// The hub's persistent state in a PostgreSQL database that several hub nodes may share.
///
/// Reads take a pooled connection, in a `REPEATABLE READ READ ONLY` transaction (one
/// snapshot) or in autocommit. Writes run in `READ COMMITTED` transactions shared by the
/// writes waiting at that moment, each in a savepoint of its own (`PostgresGroupCommit`): the
/// database's unique indexes settle races between nodes (the loser gets `.uniqueness`), the
/// audit chain is appended under a row lock on its head at the end of the transaction, and a
/// serialization failure or deadlock runs the write again. A broken connection is dropped
/// and a new one opened on next use, so the store recovers by itself when PostgreSQL comes back.
public final class PostgresStore: HubStore {
    /// Where the database is (no password in it).
    public let settings: PostgresSettings
    private let pool: PostgresPool
    private let logger: Logger
    private let inFlight = Atomic<Int>(0)
    private let writer: PostgresGroupCommit

    public func adoptPolicies(_ adopt: @escaping @Sendable (Int64?, () throws -> PolicyVersion?) throws -> Int64?) {
        writer.policyAdopter.withLock { $0 = adopt }
    }

    /// Connects, runs the migrations this database lacks (under an advisory lock, so nodes
    /// starting together migrate once) and keeps up to `maxConnections` connections, of
    /// which up to half (at most `maxWriteLanes`) run write transactions at once.
    public init(settings: PostgresSettings, maxConnections: Int = 8, logger: Logger) throws {
        self.settings = settings
        self.logger = logger
        let limit = max(2, maxConnections)
        let pool = PostgresPool(settings: settings, limit: limit)
        self.pool = pool
        try StoreError.mappingPostgres {
            let c = try pool.checkout()
            defer { pool.checkin(c) }
            try PostgresMigrations.run(c)
        }
        writer = PostgresGroupCommit(pool: pool, lanes: min(Self.maxWriteLanes, limit / 2), logger: logger)
    }

    /// Write transactions one node runs at once. More lanes do more work in parallel but
    /// make smaller batches and more row-lock waits between them; four keep two cores busy.
    static let maxWriteLanes = 4

    /// Runs `body` while holding the cluster's start-up lock (a session advisory lock on a
    /// connection of its own): nodes starting together take turns at the steps that read,
    /// decide and write across several transactions (a changed policy file becoming a version).
    public func whileHoldingStartupLock<T>(_ body: () throws -> T) throws -> T {
        let c = try StoreError.mappingPostgres {
            let c = try PostgresConnection(
                conninfo: settings.conninfo, password: settings.password, defaults: PostgresPool.defaults)
            try c.run(
                "SELECT pg_advisory_lock($1)", [.integer(PostgresMigrations.startupLockKey)], context: "start-up lock")
            return c
        }
        // Closing the connection (at the end of this scope) releases the lock, also when `body` throws.
        defer { try? c.run("SELECT pg_advisory_unlock($1)", [.integer(PostgresMigrations.startupLockKey)]) }
        return try body()
    }

    /// Writes in progress (waiting for a connection or running).
    public var queuedWrites: Int { inFlight.load(ordering: .relaxed) }

    /// Commits the writes queued, then closes the connections; later calls fail as unavailable.
    public func close() {
        writer.stop()
        pool.close()
    }

    // MARK: - Reads

    public func read<T>(snapshot: Bool = true, _ body: (any StoreSession) throws -> T) throws -> T {
        try StoreError.mappingPostgres {
            guard snapshot else {
                let c = try pool.checkout()
                defer { pool.checkin(c) }
                return try body(PostgresSession(c))
            }
            let c = try pool.checkoutBegun("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "begin read")
            defer { pool.checkin(c) }
            let session = PostgresSession(c)
            do {
                let r = try body(session)
                try c.execute("COMMIT", context: "end read")
                return r
            } catch {
                if c.isInTransaction { try? c.execute("ROLLBACK", context: "end read") }
                throw error
            }
        }
    }

    // MARK: - Writes

    /// Runs `body` in the next transaction of one of the write lanes, in a savepoint of its
    /// own, and returns once committed (`PostgresGroupCommit`). `durable: false` alone in a
    /// transaction commits without waiting for the WAL flush (`synchronous_commit = off`): a
    /// crash may lose it, never corrupt it.
    @discardableResult
    public func write<T: Sendable>(
        isolated: Bool = true, durable: Bool = true, _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) throws -> T {
        inFlight.add(1, ordering: .relaxed)
        defer { inFlight.subtract(1, ordering: .relaxed) }
        return try writer.submit(isolated: isolated, durable: durable, body)
    }
}

/// Open connections to one database, handed to one user at a time. A connection that broke
/// or was left inside a transaction is closed instead of going back to the pool.
final class PostgresPool: @unchecked Sendable {
    // @unchecked Sendable: `idle`, `open` and `closed` are guarded by `condition`; a connection
    // is used by the one thread that checked it out until it is checked in.
    private let settings: PostgresSettings
    private let limit: Int
    private let condition = NSCondition()
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var closed = false

    /// A server that does not answer fails the connection in seconds, not minutes; the name
    /// shows in `pg_stat_activity`. A connection string may set either itself.
    /// TCP keepalives let either side notice a peer that vanished (a dead node's open
    /// transaction ends, a client stops waiting on a dead server) in about a minute, not hours.
    static let defaults = [
        ("connect_timeout", "10"), ("application_name", "scimhub"), ("keepalives_idle", "30"),
        ("keepalives_interval", "10"), ("keepalives_count", "3"),
    ]

    init(settings: PostgresSettings, limit: Int) {
        self.settings = settings
        self.limit = limit
    }

    /// An idle connection, a new one when fewer than `limit` are open, or the next one
    /// checked in.
    func checkout() throws -> PostgresConnection {
        condition.lock()
        while true {
            if closed {
                condition.unlock()
                throw StoreError("store is closed")
            }
            if let c = idle.popLast() {
                condition.unlock()
                // A pooled connection may have died while idle (PostgreSQL restarted, a failover,
                // an administrator ended it): then open another rather than fail the caller.
                if c.checkAlive() { return c }
                condition.lock()
                open -= 1
                continue
            }
            if open < limit { break }
            condition.wait()
        }
        open += 1
        condition.unlock()
        do {
            let c = try PostgresConnection(
                conninfo: settings.conninfo, password: settings.password, defaults: Self.defaults)
            // A write waiting on a row lock (the audit chain head, a job) that another node holds
            // too long fails as busy (55P03), as SQLite's busy timeout does, instead of hanging.
            // Results are read as text: bytea in hex, doubles exactly and text in UTF-8, whatever
            // the database or role defaults say (an escaped hash or a rounded time would be wrong).
            try c.execute(
                "SET lock_timeout = '30s'; SET bytea_output = 'hex'; SET extra_float_digits = 3; "
                    + "SET client_encoding = 'UTF8'",
                context: "session settings")
            return c
        } catch let e as PostgresError {
            condition.lock()
            open -= 1
            condition.signal()
            condition.unlock()
            throw StoreError(e)
        } catch {
            condition.lock()
            open -= 1
            condition.signal()
            condition.unlock()
            throw StoreError("\(error)", kind: .unavailable)
        }
    }

    /// A connection with `begin` run on it. A connection that turns out dead at this first
    /// statement is dropped and the next one tried: nothing ran on it, so nothing is lost or
    /// done twice. When PostgreSQL is down, opening a new one fails and that error is thrown.
    func checkoutBegun(_ begin: String, _ context: String) throws -> PostgresConnection {
        var tries = 0
        while true {
            let c = try checkout()
            do {
                try c.execute(begin, context: context)
                return c
            } catch let lost where lost.isConnectionLost && tries < limit {
                checkin(c)  // not usable: closed, not pooled
                tries += 1
            } catch {
                checkin(c)
                throw error
            }
        }
    }

    func checkin(_ c: PostgresConnection) {
        let keep = c.isUsable && c.isIdle
        condition.lock()
        if keep && !closed { idle.append(c) } else { open -= 1 }
        condition.signal()
        condition.unlock()
    }

    func close() {
        condition.lock()
        closed = true
        open -= idle.count
        idle.removeAll()
        condition.broadcast()
        condition.unlock()
    }
}

/// A PostgreSQL connection in use by one caller: every feature's queries (`StoreSession`),
/// implemented in this folder's `Postgres<Feature>.swift` files.
public struct PostgresSession: StoreSession {
    let db: PostgresStatements
    /// True in a write: a resource read by id is locked (`FOR UPDATE`) until the write ends.
    /// SQLite's single writer made "read, check `If-Match`, update" atomic; with several nodes
    /// the row lock does: a second writer's read waits and then sees the first one's version.
    let locksResources: Bool

    init(_ connection: PostgresConnection, locksResources: Bool = false) {
        db = PostgresStatements(conn: connection)
        self.locksResources = locksResources
    }
}

/// Runs the store's statements on one connection. Statements whose text is the same in both
/// dialects are written once with SQLite's placeholders (`?`, `?N`); they are numbered into
/// PostgreSQL's `$n` once per text. Values are always bound, never part of the text.
struct PostgresStatements {
    let conn: PostgresConnection

    func query(_ sql: String, _ params: [PostgresValue] = [], row: (PostgresRow) throws -> Void) throws {
        try conn.query(Self.numbered(sql), params, context: "store query", row: row)
    }

    @discardableResult
    func run(_ sql: String, _ params: [PostgresValue] = []) throws -> Int {
        try conn.run(Self.numbered(sql), params, context: "store statement")
    }

    private static let cache = Mutex<[String: String]>([:])

    /// `?` becomes `$1`, `$2`, ... in order; `?N` becomes `$N`; quoted text is left alone.
    static func numbered(_ sql: String) -> String {
        if let hit = cache.withLock({ $0[sql] }) { return hit }
        var out = ""
        var next = 1
        var quoted = false
        var chars = sql.makeIterator()
        var pending: Character? = chars.next()
        while let c = pending {
            pending = chars.next()
            if c == "'" { quoted.toggle() }
            guard c == "?", !quoted else { out.append(c); continue }
            var digits = ""
            while let d = pending, d.isASCII, d.isNumber {
                digits.append(d)
                pending = chars.next()
            }
            if digits.isEmpty {
                out += "$\(next)"
                next += 1
            } else {
                out += "$" + digits
            }
        }
        cache.withLock { $0[sql] = out }
        return out
    }
}

/// The writer's view of one write transaction: the session, savepoints and the audit
/// entries its writes appended, chained at the end (`sealAudit`).
final class PostgresWriteContext: StoreWriter {
    let session: PostgresSession
    var connection: any StoreSession { session }
    let policyVersionInForce: Int64?
    /// A write decided under the policy (`decidesUnderPolicy`).
    var decided = false
    func decidesUnderPolicy() { decided = true }
    /// Entries appended in this transaction, not yet chained.
    var pendingAudit: [AuditEntry] = []
    private var depth = 0

    init(session: PostgresSession, policyVersionInForce: Int64? = nil) {
        self.session = session
        self.policyVersionInForce = policyVersionInForce
    }

    /// Runs `body` inside a nested savepoint: if it throws, only its changes (and its audit
    /// entries) are undone.
    func savepoint<T>(_ body: () throws -> T) throws -> T {
        let db = session.db.conn
        guard db.isInTransaction else { throw StoreError("the transaction was lost", kind: .io) }
        let appended = pendingAudit.count
        depth += 1
        defer { depth -= 1 }
        let name = "sp\(depth)"
        try db.execute("SAVEPOINT \(name)", context: "savepoint")
        do {
            let r = try body()
            try db.execute("RELEASE SAVEPOINT \(name)", context: "savepoint")
            return r
        } catch {
            pendingAudit.removeSubrange(appended...)
            // When the savepoint cannot be undone (the connection broke), that error wins: the
            // write fails as a whole.
            try db.execute("ROLLBACK TO SAVEPOINT \(name)", context: "savepoint")
            try db.execute("RELEASE SAVEPOINT \(name)", context: "savepoint")
            throw error
        }
    }
}
