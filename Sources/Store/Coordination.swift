// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HubCrypto

/// A named wake-up: "there is new work of this kind".
public struct WakeChannel: RawRepresentable, Hashable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// A commit enqueued provisioning jobs, or a job finished.
    public static let jobs = WakeChannel(rawValue: "jobs")
    /// A deadline (break-glass expiry, licence, contract end) was added or moved.
    public static let deadlines = WakeChannel(rawValue: "deadlines")
    /// A policy version was put in force (applied or confirmed) on some node.
    public static let policy = WakeChannel(rawValue: "policy")
}

/// How the hub processes that share one store divide the work that must happen once:
/// scheduled work runs on the leader only, and a commit on one node wakes the others.
///
/// On SQLite there is one node (`LocalCoordination`): it always leads and wake-ups stay in
/// the process. A shared database backend implements leadership with a renewed lease and
/// wake-ups with its notification channel, with polling as the fallback.
public protocol Coordination: Sendable {
    /// This process's identity in job leases.
    var nodeID: String { get }
    /// True when no other node can use the store: leases someone else left are void.
    var isSoleNode: Bool { get }
    /// Whether this node runs scheduled work now (deadline expiries, review schedules and
    /// due dates, scheduled reconciliations).
    func isLeader() -> Bool
    /// Tells every listener of `channel`, on every node, that there is work.
    func notify(_ channel: WakeChannel)
    /// Calls `handler` on every notification of `channel`.
    func listen(_ channel: WakeChannel, _ handler: @escaping @Sendable () -> Void)
    /// Calls `handler` (on a thread of its own) each time this node becomes the leader, so
    /// it catches up on what fell due while another node led or none did. A node that leads
    /// from the start (SQLite) never calls it: the server catches up at start-up.
    func onLeadershipGained(_ handler: @escaping @Sendable () -> Void)
    /// Every node that shares the store, this one included, for `GET /admin/nodes`.
    func nodes() throws -> [NodeStatus]
    /// Gives up leadership and the node's claim on the store.
    func close()
}

/// One hub node as the coordination sees it.
public struct NodeStatus: Sendable, Equatable {
    public let nodeID: String
    public let version: String
    /// When it started and when it last said it was alive (seconds since 1970).
    public let started: Double
    public let heartbeat: Double
    public let leader: Bool
    /// True while its heartbeat is recent (a node that died stays listed for a while).
    public let alive: Bool
    public init(nodeID: String, version: String, started: Double, heartbeat: Double, leader: Bool, alive: Bool) {
        self.nodeID = nodeID
        self.version = version
        self.started = started
        self.heartbeat = heartbeat
        self.leader = leader
        self.alive = alive
    }
}

/// The coordination of a single hub on a SQLite store. An exclusive lock on
/// `serve.lock` in the data directory makes it the only `scimhub serve` there: a second
/// one would run every job twice, so it is refused at start with the holder's pid.
public final class LocalCoordination: Coordination {
    public let nodeID: String
    public var isSoleNode: Bool { true }
    private let fd: Mutex<Int32>
    private let listeners = Mutex<[WakeChannel: [@Sendable () -> Void]]>([:])
    private let version: String
    private let started = Date().timeIntervalSince1970

    /// Takes the serve lock of `directory`, or throws naming the process that holds it.
    public init(directory: String, version: String = "") throws {
        self.version = version
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        let path = directory + "/serve.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot open \(path) (errno \(errno))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            var buf = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &buf, 31, 0)
            _ = Glibc.close(fd)
            let pid =
                n > 0
                ? String(decoding: buf.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                : "unknown"
            throw StoreError(
                "another scimhub serve (pid \(pid)) is using the data directory \(directory); one node per SQLite store"
            )
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        self.fd = Mutex(fd)
        nodeID = "local-" + UUIDv7.make()
    }

    public func isLeader() -> Bool { fd.withLock { $0 >= 0 } }

    public func notify(_ channel: WakeChannel) {
        for handler in listeners.withLock({ $0[channel] ?? [] }) { handler() }
    }

    public func listen(_ channel: WakeChannel, _ handler: @escaping @Sendable () -> Void) {
        listeners.withLock { $0[channel, default: []].append(handler) }
    }

    /// The one node leads from the start; the server catches up at start-up.
    public func onLeadershipGained(_ handler: @escaping @Sendable () -> Void) {}

    public func nodes() throws -> [NodeStatus] {
        let now = Date().timeIntervalSince1970
        return [
            NodeStatus(
                nodeID: nodeID, version: version, started: started, heartbeat: now, leader: isLeader(), alive: true)
        ]
    }

    public func close() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            _ = flock(fd, LOCK_UN)
            _ = Glibc.close(fd)
            fd = -1
        }
    }

    deinit { close() }
}
