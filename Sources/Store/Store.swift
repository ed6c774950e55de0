// SPDX-License-Identifier: Apache-2.0
import Foundation

/// How hard a commit waits for the disk.
public enum Durability: String, Sendable {
    /// fsync on every commit (`synchronous=FULL`): a 2xx survives power loss.
    case full
    /// fsync at checkpoints only (`synchronous=NORMAL` in WAL): a 2xx survives a process
    /// crash or `kill -9`, not a power cut.
    case normal
}

/// A failure of the storage layer itself: the hub answers 503 with `Retry-After`, and the
/// request's changes are rolled back. Driver errors never cross the store's boundary raw:
/// they become one of these kinds, with SQLite's code and message kept for the log.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public struct Kind: RawRepresentable, Sendable, Hashable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Another connection held a lock past the busy timeout.
        public static let busy = Kind(rawValue: "busy")
        /// The disk, the quota or the file-size limit is exhausted (SQLITE_FULL, EFBIG).
        public static let full = Kind(rawValue: "full")
        /// A read or write failed (SQLITE_IOERR) or the file is damaged.
        public static let io = Kind(rawValue: "io")
        /// A constraint the caller did not map (a bug, reported as unavailable, never half-written).
        public static let constraint = Kind(rawValue: "constraint")
        /// Anything else: the store is closed, a stored document cannot be read, ….
        public static let unavailable = Kind(rawValue: "unavailable")
        /// The write would make a unique key (a user name, an id) appear twice: the caller's
        /// input is at fault, not the storage (SCIM answers 409, RFC 7644 §3.12).
        public static let uniqueness = Kind(rawValue: "uniqueness")
        /// The write names something that does not exist or cannot be named there (a group
        /// member that is no resource, a group inside itself): the caller's input is at fault.
        public static let invalidReference = Kind(rawValue: "invalid-reference")
    }

    public let kind: Kind
    public let description: String
    /// True when the caller's input caused the error (uniqueness, a reference), so it is
    /// reported to the client instead of as unavailable storage.
    public var isInputError: Bool { kind == .uniqueness || kind == .invalidReference }
    public init(_ d: String, kind: Kind = .unavailable) {
        self.kind = kind
        description = d
    }
}

/// The hub's persistent state, whatever holds it. Reads run on a connection of their own;
/// writes run in the next commit of the store's writer, each in its own savepoint, and
/// return once durable. SQLite (`SQLiteStore`) is the embedded backend; every feature's
/// reads and writes are protocols (`StoreSession`), so another backend implements those.
public protocol HubStore: Sendable {
    /// Runs `body` with a read session. With `snapshot`, its statements share one
    /// consistent view; a single lookup can skip the transaction.
    func read<T>(snapshot: Bool, _ body: (any StoreSession) throws -> T) throws -> T

    /// Runs `body` in the next commit and returns its result once durable. If `body` throws,
    /// its changes and its audit entries are rolled back and the error rethrown.
    /// `isolated: false` is for jobs that take their own savepoints per item (Bulk); such a
    /// job must throw only when storage fails, and then its whole commit is refused.
    /// `durable: false` is for writes whose loss in a crash does no harm (a job's lease: a
    /// crash voids it anyway): the store need not wait for the disk for them alone.
    func write<T: Sendable>(isolated: Bool, durable: Bool, _ body: @escaping @Sendable (any StoreWriter) throws -> T)
        throws -> T

    /// Writes waiting for the writer (a gauge for operators, and for tests that need several
    /// writes in one commit).
    var queuedWrites: Int { get }

    /// Stops the writer after pending writes commit.
    func close()

    /// With several nodes: `adopt(newest, read)` runs at the start of every write
    /// transaction, before any of its writes. `newest` is the newest version a transaction saw
    /// in force (nil: none newer seen); it puts that version in force (`read` reads it in the
    /// transaction) and returns the version the node runs, which the transaction decides
    /// under. If it throws, the transaction's writes fail with its error. SQLite (one node)
    /// never calls it.
    func adoptPolicies(_ adopt: @escaping @Sendable (Int64?, () throws -> PolicyVersion?) throws -> Int64?)
}

extension HubStore {
    public func adoptPolicies(_ adopt: @escaping @Sendable (Int64?, () throws -> PolicyVersion?) throws -> Int64?) {}
}

extension HubStore {
    public func read<T>(_ body: (any StoreSession) throws -> T) throws -> T { try read(snapshot: true, body) }

    @discardableResult
    public func write<T: Sendable>(_ body: @escaping @Sendable (any StoreWriter) throws -> T) throws -> T {
        try write(isolated: true, durable: true, body)
    }

    @discardableResult
    public func write<T: Sendable>(isolated: Bool, _ body: @escaping @Sendable (any StoreWriter) throws -> T) throws
        -> T
    {
        try write(isolated: isolated, durable: true, body)
    }
}

/// Every feature's queries and mutations on one connection: what a read or a write body gets.
public protocol StoreSession: ResourceStore, JobQueue, AppliedStateStore, AuditStore, TokenStore, ReconciliationStore,
    ReviewStore,
    BreakGlassStore, CredentialScheduleStore, AttributeSourceStore, MFAStore, PolicyStore, HoldStore, NotificationStore,
    AccessRequestStore, SoDExceptionStore, PackageHoldingStore, ConsoleStore, ClusterLimitStore
{}

/// The writer's view of one write: the session, nested savepoints, and the audit chain,
/// appended in the same transaction as the change it records.
public protocol StoreWriter: AnyObject {
    /// Queries and mutations inside this write.
    var connection: any StoreSession { get }
    /// Runs `body` inside a nested savepoint: if it throws, only its changes are undone.
    func savepoint<T>(_ body: () throws -> T) throws -> T
    /// Appends `entry` to the audit chain, linked to the entry before it.
    func appendAudit(_ entry: AuditEntry) throws
    /// The policy version this write's transaction decides under: the newest this node knew
    /// of when the transaction began, put in force before its writes ran (PostgreSQL with a
    /// policy; nil on SQLite, one node). A transaction that finds a newer version on the audit
    /// chain's head row when it seals runs again, under that one.
    var policyVersionInForce: Int64? { get }
    /// Says that this write decided something under the policy: its transaction checks the
    /// version in force when it ends even if it appended no audit entry.
    func decidesUnderPolicy()
}
