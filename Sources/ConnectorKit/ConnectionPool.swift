// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// A connection a pool can hand out: an LDAP session, a database connection.
public protocol PooledConnection: AnyObject {
    /// False once the connection is known to be broken (server gone, socket closed).
    var isUsable: Bool { get }
}

/// Reuses blocking connections across the engine's worker threads: each call checks one
/// out (opening a new one when none is idle), and returns it afterwards unless it broke.
/// A call that fails with a retryable error on a *reused* connection is tried once more on a
/// fresh one: a server restart leaves idle sockets stale, and that should cost nothing.
public final class ConnectionPool<C: PooledConnection>: Sendable {
    private let idle = Mutex<[UnsafeTransfer<C>]>([])
    private let open: @Sendable () throws(ConnectorError) -> C
    private let maxIdle: Int

    public init(maxIdle: Int = 16, open: @escaping @Sendable () throws(ConnectorError) -> C) {
        self.maxIdle = maxIdle
        self.open = open
    }

    /// Runs `body` with a connection.
    public func with<T>(_ body: (C) throws(ConnectorError) -> T) throws(ConnectorError) -> T {
        let (c, reused) = try checkout()
        do {
            let result = try body(c)
            checkin(c)
            return result
        } catch {
            guard reused, error.isRetryable, !c.isUsable else {
                if c.isUsable { checkin(c) }
                throw error
            }
        }
        // The idle connection had gone stale: every other idle one probably has too.
        drain()
        let fresh = try open()
        do {
            let result = try body(fresh)
            checkin(fresh)
            return result
        } catch {
            if fresh.isUsable { checkin(fresh) }
            throw error
        }
    }

    /// A connection for exclusive use until `checkin` (transactions); `reused` says whether it was idle before.
    public func checkout() throws(ConnectorError) -> (connection: C, reused: Bool) {
        if let c = idle.withLock({ $0.popLast() }) { return (c.value, true) }
        return (try open(), false)
    }

    /// Returns a connection for reuse (dropped when broken or the pool is full).
    public func checkin(_ c: C) {
        guard c.isUsable else { return }
        let transfer = UnsafeTransfer(c)
        idle.withLock { list in
            if list.count < maxIdle { list.append(transfer) }
        }
    }

    /// Closes every idle connection.
    public func drain() {
        _ = idle.withLock { list in list.removeAll() }
    }
}

/// Moves a connection between threads. Safe here because a pooled connection is only ever
/// used by the one thread that checked it out.
struct UnsafeTransfer<C: AnyObject>: @unchecked Sendable {
    let value: C
    init(_ value: C) { self.value = value }
}
