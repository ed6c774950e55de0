// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// Where the hub reads the time of day, as seconds since 1970.
///
/// Deadlines (break-glass expiry, licences, contract ends, review due dates), backoff and
/// job leases all ask a `WallClock` instead of the system, so a test can move time
/// forward (`ManualClock`) instead of sleeping until something expires.
public protocol WallClock: Sendable {
    func now() -> Double
    /// Calls `observer` whenever the clock jumps (never for the system clock, which only
    /// flows): whoever sleeps until a deadline re-reads it.
    func onChange(_ observer: @escaping @Sendable () -> Void)
}

/// The system's real-time clock.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Double { Timestamp.now() }
    public func onChange(_ observer: @escaping @Sendable () -> Void) {}
}

/// A clock that moves only when told to: tests of expiry set it past the deadline.
public final class ManualClock: WallClock {
    private struct State {
        var time: Double
        var observers: [@Sendable () -> Void] = []
    }
    private let state: Mutex<State>

    public init(_ start: Double = Timestamp.now()) { state = Mutex(State(time: start)) }

    public func now() -> Double { state.withLock { $0.time } }

    public func onChange(_ observer: @escaping @Sendable () -> Void) {
        state.withLock { $0.observers.append(observer) }
    }

    /// Moves the clock forward by `seconds` and tells the observers.
    public func advance(by seconds: Double) { set(now() + seconds) }

    /// Sets the clock to `t` and tells the observers.
    public func set(_ t: Double) {
        let observers = state.withLock { s in
            s.time = t
            return s.observers
        }
        for o in observers { o() }
    }
}
