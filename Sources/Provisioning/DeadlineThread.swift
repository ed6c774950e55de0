// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HubBase
import HubLog

/// A thread that sleeps until the next deadline stored in the database (or until poked
/// about a new one), then processes whatever is due. The deadlines live in the store, not
/// in this thread: a restart loses nothing, and `process` at start-up catches up.
/// Deadlines are on `clock` (a test moves it and the thread re-reads them); only the leader
/// processes them, so several nodes never expire the same grant twice.
final class DeadlineThread: Sendable {
    private let name: String
    private let next: @Sendable () -> Double?
    private let process: @Sendable () -> Void
    private let clock: any WallClock
    private let isLeader: @Sendable () -> Bool
    private let signal = NSCondition()
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    /// A poke that came while the thread was not waiting (mid-pass): the next wait is skipped,
    /// so a deadline moved or leadership gained meanwhile is not left for the longest sleep.
    private let poked = Atomic<Bool>(false)
    /// Checked at least this often, whatever the next deadline says.
    static let maxSleep = 60.0

    init(
        name: String, clock: any WallClock, isLeader: @escaping @Sendable () -> Bool = { true },
        next: @escaping @Sendable () -> Double?, process: @escaping @Sendable () -> Void
    ) {
        self.name = name
        self.next = next
        self.process = process
        self.clock = clock
        self.isLeader = isLeader
        clock.onChange { [weak self] in self?.poke() }
    }

    /// A timer whose reads and passes may fail (the store is busy or down): the failure is
    /// logged as `what` and the work is tried again at the next check; nothing is lost, the
    /// deadlines stay in the store.
    convenience init(
        name: String, clock: any WallClock, isLeader: @escaping @Sendable () -> Bool = { true }, logger: Logger,
        what: String, next: @escaping @Sendable () throws -> Double?, process: @escaping @Sendable () throws -> Void
    ) {
        @Sendable func logged<T>(_ body: () throws -> T?) -> T? {
            do { return try body() } catch {
                logger.error(
                    "\(what) failed; retried at the next check",
                    ["error": String(describing: error).prefix(200).description])
                return nil
            }
        }
        self.init(
            name: name, clock: clock, isLeader: isLeader, next: { logged(next) ?? nil },
            process: { _ = logged { try process() } })
    }

    func start() {
        started.store(true, ordering: .sequentiallyConsistent)
        let t = Thread { [self] in
            defer { finished.signal() }
            while !stopped.load(ordering: .relaxed) {
                // A node that does not lead waits for a poke (leadership gained) or the longest
                // sleep: a deadline already past must not make it spin.
                let leading = isLeader()
                if leading { process() }
                let wait =
                    leading ? min(Self.maxSleep, max(0.01, (next() ?? .infinity) - clock.now())) : Self.maxSleep
                signal.lock()
                if !stopped.load(ordering: .relaxed) && !poked.load(ordering: .relaxed) {
                    _ = signal.wait(until: Date().addingTimeInterval(wait))
                }
                poked.store(false, ordering: .relaxed)
                signal.unlock()
            }
        }
        t.name = name
        t.start()
    }

    /// A deadline was added or moved: re-read the next one now.
    func poke() {
        signal.lock()
        poked.store(true, ordering: .relaxed)
        signal.broadcast()
        signal.unlock()
    }

    /// Stops and waits for a pass in progress to finish.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        poke()
        if started.exchange(false, ordering: .sequentiallyConsistent) { finished.wait() }
    }
}
