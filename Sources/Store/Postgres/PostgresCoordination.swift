// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Postgres
import HubCrypto
import HubLog

/// How several hub nodes on one PostgreSQL database divide the work that must happen once.
///
/// - **Heartbeat**: every `heartbeatSeconds` the node writes its row in `nodes` (id, version,
///   start, last heartbeat) for `GET /admin/nodes`.
/// - **Leadership**: in the same pass it takes or renews the one row of `leader_lease` with a
///   conditional upsert: it wins when it already holds the lease or the lease ran out. Times
///   are the database's clock, so nodes whose clocks differ agree on when a lease ends. A
///   leader that dies is replaced within `leaseSeconds` plus one pass; one that stops
///   gives the lease up at once. The node counts itself leader only until
///   `leaseSeconds - 1` after it *sent* its last successful renewal, so it stops before
///   another node can start (a leader cut off from the database steps down by itself).
/// - **Wake-ups**: `notify` runs local listeners at once and sends a `NOTIFY` to the other
///   nodes from the heartbeat thread (coalesced: a burst of commits is one message); a
///   dedicated connection `LISTEN`s and reconnects after a restart of PostgreSQL, then
///   wakes every listener once, since notifications sent meanwhile are lost. Polling (the
///   engine's `pollInterval`, the deadline timers' longest sleep) remains the fallback.
public final class PostgresCoordination: Coordination {
    public let nodeID: String
    public var isSoleNode: Bool { false }
    public let leaseSeconds: Double
    public let heartbeatSeconds: Double
    private let settings: PostgresSettings
    private let version: String
    private let started = Date().timeIntervalSince1970
    private let logger: Logger
    /// The one lease name: every kind of scheduled work follows the same leader.
    static let leaseName = "scheduler"
    /// Channel names are program constants; only these characters ever reach `LISTEN`.
    static let channelPrefix = "scimhub_"

    private struct State {
        /// Monotonic time until which this node counts itself leader.
        var leaderUntil: Double = 0
        var wasLeader = false
        /// Wake-ups waiting to be sent to the other nodes.
        var pending = Set<WakeChannel>()
        var closed = false
        /// The database was unreachable at the last pass (logged once per outage).
        var beatFailing = false
        var listenFailing = false
    }

    private let state = Mutex(State())
    private let listeners = Mutex<[WakeChannel: [@Sendable () -> Void]]>([:])
    private let gained = Mutex<[@Sendable () -> Void]>([])
    private let signal = NSCondition()
    private let beaterDone = DispatchGroup()
    private let listenerDone = DispatchGroup()

    /// Connects, writes the first heartbeat and tries for the lease once (so a node alone
    /// leads from its first second), then keeps both up on threads of its own.
    public init(
        settings: PostgresSettings, version: String, logger: Logger, leaseSeconds: Double = 10,
        heartbeatSeconds: Double = 2
    ) {
        self.settings = settings
        self.version = version
        self.logger = logger
        self.leaseSeconds = leaseSeconds
        self.heartbeatSeconds = heartbeatSeconds
        nodeID = "node-" + UUIDv7.make()
        var conn: PostgresConnection? = nil
        beat(&conn)
        let box = ConnectionBox(conn)
        beaterDone.enter()
        let beater = Thread { [self] in
            defer { beaterDone.leave() }
            heartbeatLoop(box.take())
        }
        beater.name = "coordination"
        beater.start()
        listenerDone.enter()
        let listener = Thread { [self] in
            defer { listenerDone.leave() }
            listenLoop()
        }
        listener.name = "coordination-listen"
        listener.start()
    }

    /// Hands the first connection to the heartbeat thread.
    private final class ConnectionBox: @unchecked Sendable {
        // @unchecked Sendable: written in init, taken once by the one thread that uses it after.
        private var conn: PostgresConnection?
        init(_ c: PostgresConnection?) { conn = c }
        func take() -> PostgresConnection? {
            defer { conn = nil }
            return conn
        }
    }

    // MARK: - Coordination

    public func isLeader() -> Bool {
        state.withLock { !$0.closed && Self.monotonic() < $0.leaderUntil }
    }

    public func notify(_ channel: WakeChannel) {
        for handler in listeners.withLock({ $0[channel] ?? [] }) { handler() }
        let first = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            return s.pending.insert(channel).inserted
        }
        if first {
            signal.lock()
            signal.signal()
            signal.unlock()
        }
    }

    public func listen(_ channel: WakeChannel, _ handler: @escaping @Sendable () -> Void) {
        listeners.withLock { $0[channel, default: []].append(handler) }
    }

    public func onLeadershipGained(_ handler: @escaping @Sendable () -> Void) {
        gained.withLock { $0.append(handler) }
    }

    /// The nodes whose heartbeat is less than an hour old, from the database.
    public func nodes() throws -> [NodeStatus] {
        try StoreError.mappingPostgres {
            let c = try connect()
            var leader: (holder: String, until: Double)? = nil
            try c.query(
                "SELECT holder, lease_until FROM leader_lease WHERE name = $1", [.text(Self.leaseName)],
                context: "leader lease"
            ) { leader = ($0.text(0) ?? "", $0.double(1)) }
            var out: [NodeStatus] = []
            try c.query(
                """
                SELECT node_id, version, started, heartbeat, EXTRACT(EPOCH FROM clock_timestamp())::float8 FROM nodes
                WHERE heartbeat > EXTRACT(EPOCH FROM clock_timestamp())::float8 - 3600 ORDER BY started, node_id
                """, [], context: "nodes"
            ) { r in
                let (id, beat, now) = (r.text(0) ?? "", r.double(3), r.double(4))
                out.append(
                    NodeStatus(
                        nodeID: id, version: r.text(1) ?? "", started: r.double(2), heartbeat: beat,
                        leader: leader.map { $0.holder == id && $0.until > now } ?? false,
                        alive: now - beat < leaseSeconds))
            }
            return out
        }
    }

    /// Stops the threads, gives the lease up (another node takes over at its next pass, not
    /// when the lease would have run out) and removes this node's row.
    public func close() {
        let wasOpen = state.withLock { s -> Bool in
            defer { s.closed = true }
            return !s.closed
        }
        guard wasOpen else { return }
        signal.lock()
        signal.broadcast()
        signal.unlock()
        // The heartbeat thread gives the lease up on its way out (`giveUp`). Both waits are
        // bounded: a thread caught in a connection attempt (a name lookup, which libpq's
        // connect_timeout does not cover) must not hold the process at SIGTERM; the lease then
        // runs out by itself.
        if beaterDone.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("cluster: the heartbeat did not end within 5 s at stop; the lease runs out by itself")
        }
        if listenerDone.wait(timeout: .now() + 5) == .timedOut {
            logger.warning("cluster: the notification listener did not end within 5 s at stop")
        }
    }

    /// At stop, on the heartbeat's own connection: gives the lease up (another node takes over
    /// at its next pass, not when the lease would have run out) and removes this node's row.
    /// Without a working connection nothing is opened: the lease and the row age out.
    private func giveUp(_ conn: PostgresConnection?) {
        guard let c = conn, c.isUsable else { return }
        do {
            try c.run(
                "UPDATE leader_lease SET lease_until = 0 WHERE name = $1 AND holder = $2",
                [.text(Self.leaseName), .text(nodeID)], context: "leader lease")
            try c.run("DELETE FROM nodes WHERE node_id = $1", [.text(nodeID)], context: "heartbeat")
        } catch {
            logger.warning("cluster: could not give the leader lease up at stop", ["error": "\(error)"])
        }
    }

    deinit { close() }

    // MARK: - Heartbeat and lease

    private func connect() throws -> PostgresConnection {
        let c = try PostgresConnection(
            conninfo: settings.conninfo, password: settings.password,
            defaults: [("connect_timeout", "5"), ("application_name", "scimhub-coordination")])
        // A pass must never hang on a lock or a stuck server: the lease would run out meanwhile.
        try c.execute("SET statement_timeout = '5s'; SET lock_timeout = '5s'", context: "session settings")
        return c
    }

    private func heartbeatLoop(_ first: PostgresConnection?) {
        var conn = first
        var nextBeat = Self.monotonic() + heartbeatSeconds
        while true {
            let (closed, channels) = state.withLock { s -> (Bool, Set<WakeChannel>) in
                defer { s.pending.removeAll() }
                return (s.closed, s.pending)
            }
            if closed {
                giveUp(conn)
                return
            }
            if !channels.isEmpty { send(channels, &conn) }
            if Self.monotonic() >= nextBeat {
                beat(&conn)
                nextBeat = Self.monotonic() + heartbeatSeconds
            }
            // A leader cut off from the database steps down when its lease would end, between passes too.
            noteLeadership()
            signal.lock()
            let idle = state.withLock { $0.pending.isEmpty && !$0.closed }
            if idle {
                let leaderEnds = state.withLock { $0.wasLeader ? $0.leaderUntil : .infinity }
                let wake = min(nextBeat, leaderEnds) - Self.monotonic()
                _ = signal.wait(until: Date().addingTimeInterval(max(0.001, wake)))
            }
            signal.unlock()
        }
    }

    /// One heartbeat and one try for the lease. Failures drop the connection (the next pass
    /// opens another) and are logged once per outage.
    private func beat(_ conn: inout PostgresConnection?) {
        do {
            if conn?.isUsable != true { conn = try connect() }
            guard let c = conn else { return }
            let sent = Self.monotonic()
            try c.run(
                """
                INSERT INTO nodes(node_id, version, started, heartbeat)
                VALUES ($1, $2, $3, EXTRACT(EPOCH FROM clock_timestamp())::float8)
                ON CONFLICT(node_id) DO UPDATE SET heartbeat = excluded.heartbeat
                """, [.text(nodeID), .text(version), .real(started)], context: "heartbeat")
            var held = false
            try c.query(
                """
                INSERT INTO leader_lease(name, holder, since, lease_until)
                VALUES ($1, $2, EXTRACT(EPOCH FROM clock_timestamp())::float8,
                        EXTRACT(EPOCH FROM clock_timestamp())::float8 + $3)
                ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,
                    since = CASE WHEN leader_lease.holder = excluded.holder THEN leader_lease.since
                        ELSE excluded.since END
                WHERE leader_lease.holder = excluded.holder
                    OR leader_lease.lease_until < EXTRACT(EPOCH FROM clock_timestamp())::float8
                RETURNING holder
                """, [.text(Self.leaseName), .text(nodeID), .real(leaseSeconds)], context: "leader lease"
            ) { held = $0.text(0) == nodeID }
            // Nodes gone for an hour leave the list.
            try c.run(
                "DELETE FROM nodes WHERE heartbeat < EXTRACT(EPOCH FROM clock_timestamp())::float8 - 3600", [],
                context: "heartbeat")
            let recovered = state.withLock { s -> Bool in
                // Counted from before the renewal was sent: the database's lease ends later than this.
                s.leaderUntil = held ? sent + leaseSeconds - 1 : 0
                defer { s.beatFailing = false }
                return s.beatFailing
            }
            if recovered { logger.notice("cluster: database reachable again", ["node": nodeID]) }
        } catch {
            conn = nil
            let first = state.withLock { s -> Bool in
                defer { s.beatFailing = true }
                return !s.beatFailing
            }
            if first {
                logger.warning(
                    "cluster: heartbeat failed; retrying",
                    ["node": nodeID, "error": "\(error)".prefix(200).description])
            }
        }
        noteLeadership()
    }

    /// Logs a change of leadership and runs the leadership-gained handlers on a new thread.
    private func noteLeadership() {
        let leading = isLeader()
        let changed = state.withLock { s -> Bool in
            defer { s.wasLeader = leading }
            return s.wasLeader != leading
        }
        guard changed else { return }
        if leading {
            logger.notice("cluster: this node leads scheduled work", ["event": "leader.gained", "node": nodeID])
            let handlers = gained.withLock { $0 }
            let t = Thread { for h in handlers { h() } }
            t.name = "leader-catch-up"
            t.start()
        } else {
            logger.notice("cluster: this node no longer leads", ["event": "leader.lost", "node": nodeID])
        }
    }

    /// Tells the other nodes. Lost when the database is down: their polling finds the work.
    private func send(_ channels: Set<WakeChannel>, _ conn: inout PostgresConnection?) {
        do {
            if conn?.isUsable != true { conn = try connect() }
            guard let c = conn else { return }
            for ch in channels {
                try c.run(
                    "SELECT pg_notify($1, $2)", [.text(Self.channelPrefix + ch.rawValue), .text(nodeID)],
                    context: "notify")
            }
        } catch {
            conn = nil
        }
    }

    // MARK: - Listening

    private func listenLoop() {
        var conn: PostgresConnection? = nil
        var listening = Set<WakeChannel>()
        while !state.withLock({ $0.closed }) {
            do {
                if conn == nil {
                    let c = try connect()
                    listening = []
                    conn = c
                    let again = state.withLock { s -> Bool in
                        defer { s.listenFailing = false }
                        return s.listenFailing
                    }
                    if again {
                        // Notifications sent while the connection was down are lost: look once.
                        for handler in listeners.withLock({ $0.values.flatMap { $0 } }) { handler() }
                    }
                }
                guard let c = conn else { continue }
                for ch in listeners.withLock({ Set($0.keys) }).subtracting(listening) {
                    guard Self.isChannelName(ch.rawValue) else { continue }
                    // LISTEN takes an identifier, not a parameter: the name is a checked program constant.
                    try c.execute("LISTEN \(Self.channelPrefix)\(ch.rawValue)", context: "listen")
                    listening.insert(ch)
                }
                // One second at most, so a stop is noticed promptly.
                for n in try c.waitForNotifications(timeout: 1) where n.payload != nodeID {
                    let ch = WakeChannel(rawValue: String(n.channel.dropFirst(Self.channelPrefix.count)))
                    for handler in listeners.withLock({ $0[ch] ?? [] }) { handler() }
                }
            } catch {
                conn = nil
                let first = state.withLock { s -> Bool in
                    defer { s.listenFailing = true }
                    return !s.listenFailing
                }
                if first {
                    logger.warning(
                        "cluster: wake-up connection lost; reconnecting, polling meanwhile",
                        ["node": nodeID, "error": "\(error)".prefix(200).description])
                }
                signal.lock()
                if !state.withLock({ $0.closed }) { _ = signal.wait(until: Date().addingTimeInterval(1)) }
                signal.unlock()
            }
        }
    }

    static func isChannelName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 40 && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || $0 == 95 }
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
