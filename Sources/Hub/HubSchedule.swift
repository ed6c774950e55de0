// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HubBase
import HubLog
import Provisioning
import Store

/// The schedule: reconciliation every `reconcileEveryHours`; access reviews every
/// `reviewEvery` days, their reminders, escalations and due dates, checked every minute.
/// All state is in the store, so nothing is lost while the hub is down; only the leader runs it.
final class HubSchedule: HubService {
    var serviceName: String { "schedule" }
    private let reconciliations: ReconciliationRuns?
    private let reconcileEveryHours: Double?
    private let reviews: AccessReviews?
    private let review: (every: Double, due: Double, decision: String)
    private let reminderDays: Double
    private let escalationDays: Double
    private let coordination: any Coordination
    private let logger: Logger
    private let wake = NSCondition()
    private let stopping = Atomic<Bool>(false)
    private let poked = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(
        reconciliations: ReconciliationRuns?, reconcileEveryHours: Double?, reviews: AccessReviews?,
        reviewEvery: Double, reviewDue: Double,
        reviewDecision: String, reminderDays: Double, escalationDays: Double, coordination: any Coordination,
        logger: Logger
    ) {
        self.reminderDays = reminderDays
        self.escalationDays = escalationDays
        self.reconciliations = reconciliations
        self.reconcileEveryHours = reconcileEveryHours
        self.reviews = reviews
        review = (reviewEvery, reviewDue, reviewDecision)
        self.coordination = coordination
        self.logger = logger
    }

    func start() {
        let t = Thread { [self] in
            defer { finished.signal() }
            var nextReconcile = reconcileEveryHours.map { Date().addingTimeInterval($0 * 3600) }
            repeat {
                guard coordination.isLeader() else { continue }  // another node runs the schedule
                if let next = nextReconcile, Date() >= next, let runs = reconciliations, let hours = reconcileEveryHours
                {
                    do {
                        _ = try runs.start(
                            targets: nil, mode: .report, categories: nil, principal: "scheduler", requestID: "schedule")
                    } catch {
                        logger.error(
                            "scheduled reconciliation did not start", ["error": "\(error)".prefix(200).description])
                    }
                    nextReconcile = Date().addingTimeInterval(hours * 3600)
                }
                do {
                    try reviews?.remindDue(days: reminderDays)
                    try reviews?.escalateDue(days: escalationDays)
                    if let n = try reviews?.closeOverdue(), n > 0 {
                        logger.notice(
                            "review campaigns past their due date decided by their default",
                            ["event": "review.auto-decided", "campaigns": String(n)])
                    }
                    if review.every > 0 {
                        try reviews?.scheduleIfDue(
                            everyDays: review.every, dueDays: review.due, defaultDecision: review.decision)
                    }
                } catch {
                    logger.error(
                        "access review schedule failed", ["error": String(describing: error).prefix(200).description])
                }
            } while waitForNextCheck(seconds: 60)
        }
        t.name = "schedule"
        t.start()
    }

    /// Sleeps until the next check or a poke; false once stopping.
    private func waitForNextCheck(seconds: Double) -> Bool {
        wake.lock()
        defer { wake.unlock() }
        if !stopping.load(ordering: .sequentiallyConsistent) && !poked.load(ordering: .sequentiallyConsistent) {
            _ = wake.wait(until: Date().addingTimeInterval(seconds))
        }
        poked.store(false, ordering: .sequentiallyConsistent)
        return !stopping.load(ordering: .sequentiallyConsistent)
    }

    /// Leadership came to this node: check the schedule now rather than within the minute.
    func poke() {
        wake.lock()
        poked.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        wake.unlock()
    }

    func stop() {
        wake.lock()
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        wake.unlock()
        finished.wait()
    }
}

/// The leader fails, every `seconds`, the reconciliation runs whose node is no longer alive
/// ("interrupted: node ID stopped during the run") and the command line's runs whose leases
/// on their targets lapsed (`scimhub reconcile` killed), each audited as `reconcile.interrupt`.
/// A node counts as alive while its heartbeat is within the coordination's lease, so a run
/// of a node killed with `kill -9` is failed within the lease plus one pass. A node alone
/// (SQLite) fails its own interrupted runs at start-up; here it finds the command line's.
final class InterruptedRunWatch: HubService {
    var serviceName: String { "interrupted-runs" }
    private let runs: ReconciliationRuns
    private let coordination: any Coordination
    private let logger: Logger
    private let seconds: Double
    private let wake = NSCondition()
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(runs: ReconciliationRuns, coordination: any Coordination, logger: Logger, seconds: Double = 2) {
        self.runs = runs
        self.coordination = coordination
        self.logger = logger
        self.seconds = seconds
    }

    func start() {
        let t = Thread { [self] in
            defer { finished.signal() }
            var failing = false
            while waitForNextPass() {
                guard coordination.isLeader() else { continue }  // the leader looks for all nodes
                do {
                    try runs.failRunsOfStoppedNodes {
                        Set(try coordination.nodes().filter(\.alive).map(\.nodeID))
                    }
                    if failing { logger.notice("looking for runs of stopped nodes works again") }
                    failing = false
                } catch {
                    // Once per outage, not every pass: the database may be down for a while.
                    if !failing {
                        logger.warning(
                            "looking for reconciliation runs of stopped nodes failed; retrying",
                            ["error": String(describing: error).prefix(200).description])
                    }
                    failing = true
                }
            }
        }
        t.name = "interrupted-runs"
        t.start()
    }

    /// Sleeps one pass; false once stopping.
    private func waitForNextPass() -> Bool {
        wake.lock()
        defer { wake.unlock() }
        if !stopping.load(ordering: .sequentiallyConsistent) {
            _ = wake.wait(until: Date().addingTimeInterval(seconds))
        }
        return !stopping.load(ordering: .sequentiallyConsistent)
    }

    func stop() {
        wake.lock()
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        wake.unlock()
        finished.wait()
    }
}
