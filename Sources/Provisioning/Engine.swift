// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import Synchronization
import ConnectorKit
import HubBase
import HubLog
import JSONCore
import SCIM
import Store

/// Tuning of retries and the circuit breaker.
public struct EngineOptions: Sendable {
    /// Retry schedule: attempt n waits min(cap, base × 2^(n-1)) × a random factor in
    /// [0.5, 1.0], or longer when the target sent `Retry-After`. With the defaults:
    /// ~1 s, 2 s, 4 s, 8 s, … 5 min, 5 min, …
    public var backoffBase: Double = 1
    public var backoffCap: Double = 300
    /// A job that still fails after this many attempts, or this long after its change,
    /// goes to the dead letter.
    public var maxAttempts = 20
    public var maxAge: Double = 24 * 3600
    /// Consecutive retryable failures that open a target's circuit, and how long it stays
    /// open before one probe job is let through (half-open).
    public var breakerThreshold = 5
    public var breakerOpenSeconds: Double = 10
    /// A target whose circuit has been open this long is announced unavailable
    /// (`target.unavailable`); a shorter blip is not. Its recovery is announced only after that.
    public var unavailableNoticeSeconds: Double = 300
    /// The dispatcher sleeps until the next due job or a wake-up; this is the longest it
    /// sleeps, for jobs another process (the CLI's remediation) enqueued without waking it.
    public var pollInterval: Double = 5
    /// How long a claimed job is leased to this node. The node renews the leases of the
    /// jobs it runs every third of this, so a live worker never loses its job however long
    /// its connector call takes; a node that dies stops renewing and frees its jobs when this
    /// runs out. 300 on one SQLite node (nobody else could take them); the server sets it to
    /// 12 on PostgreSQL, where another node takes a dead node's jobs within that.
    public var leaseSeconds: Double = 300
    /// The guard on each feed's mass removals.
    public var feedGuard = FeedGuard()
    /// Seconds between probes of each target (`TargetProbes`); 0 turns them off.
    public var probeInterval: Double = 30

    public init() {}
}

/// A target's circuit breaker state, for the admin API.
public enum CircuitState: String, Sendable { case closed, open, halfOpen = "half-open" }

/// The provisioning engine: decides desired state from the policy, keeps the durable
/// queue, and converges each (person, target) through the target's connector.
///
/// "Converge, don't replay": a job only says *this pair may be out of date*; the worker
/// computes the desired account from the person's current state at run time, reads the
/// target's account, and applies the difference. Delayed or repeated jobs are harmless.
///
/// Jobs are claimed in the store with a lease (`claimJobs`), so the queue, not this
/// process's memory, says who runs what: a node that dies loses its leases and the jobs run
/// again elsewhere (or here after a restart).
public final class ProvisioningEngine: HubService {
    public var serviceName: String { "provisioning" }
    /// The policy in force: read at each use, so a version applied over the API takes
    /// effect at once.
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    private let store: any HubStore
    private let connectors: [String: any Connector]
    let logger: Logger
    public let options: EngineOptions
    /// Where deadlines, backoff and leases read the time (a test moves it by hand).
    public let clock: any WallClock
    private let coordination: any Coordination
    /// Announces holds, dead letters and outages, when notifications are configured.
    public let notifier: Notifier?
    /// Each target's last active probe: health before any job runs. A service of its own,
    /// started by the server after the engine.
    public let probes: TargetProbes
    /// Convergence latency and connector failures per target, for `/metrics`.
    public let metrics = EngineMetrics()

    private struct Runtime {
        /// Jobs this process is running. The lease already keeps other workers off them;
        /// this also keeps this dispatcher off a job whose lease a slow call outlived.
        var running = Set<String>()
        /// Jobs claimed ahead of free slots, per target, leavers first: one claim (a write)
        /// then feeds several workers. Each keeps its lease until it starts or is given back.
        var backlog: [String: [ClaimedJob]] = [:]
        var inFlight: [String: Int] = [:]
        var breakers: [String: CircuitBreaker] = [:]
        /// Targets whose outage was announced, until it is announced over.
        var announcedDown = Set<String>()
        /// When each target's circuit opened, until it closes again.
        var downSince: [String: Double] = [:]
        /// When each target's last dead letter was announced: a burst (an outage that outlives
        /// the retries) makes one message per quarter hour, not one per person.
        var deadLetterAnnounced: [String: Double] = [:]
        var started = false
        /// Dispatch passes under way: jobs they claimed are leased but not yet in `running`.
        var dispatching = 0
        var woken = false
    }

    /// A job claimed ahead, and when its lease ends.
    private struct ClaimedJob {
        let job: ProvisioningJob
        let leaseUntil: Double
    }

    private let runtime = Mutex(Runtime())
    private let wakeListeners = Mutex<[@Sendable () -> Void]>([])
    private let signal = NSCondition()
    private let queues: [String: OperationQueue]
    private let stopped = DispatchSemaphore(value: 0)
    /// Signalled at stop: the lease renewer ends.
    private let renewerStop = DispatchSemaphore(value: 0)
    private let renewerDone = DispatchSemaphore(value: 0)

    public init(
        policies: PolicyHolder, store: any HubStore, connectors: [String: any Connector], logger: Logger,
        options: EngineOptions = EngineOptions(), clock: any WallClock = SystemClock(),
        coordination: any Coordination, notifier: Notifier? = nil
    ) {
        self.notifier = notifier
        self.policies = policies
        self.store = store
        self.connectors = connectors
        self.logger = logger
        self.options = options
        self.clock = clock
        self.coordination = coordination
        probes = TargetProbes(connectors: connectors, interval: options.probeInterval, logger: logger)
        var qs: [String: OperationQueue] = [:]
        for t in policies.current.enabledTargets {
            let q = OperationQueue()
            q.name = "provisioning-\(t.name)"
            q.maxConcurrentOperationCount = t.concurrency
            qs[t.name] = q
        }
        queues = qs
        coordination.listen(.jobs) { [weak self] in self?.wakeDispatcher() }
        clock.onChange { [weak self] in self?.wakeDispatcher() }
    }

    // MARK: - Enqueue (inside the SCIM write transaction)

    /// Marks every target whose desired account for `personID` differs from what was last
    /// applied. Called in the same transaction as the SCIM write (transactional outbox), so
    /// a 2xx means the downstream change will happen. `person` nil means deleted.
    /// `origin`: the feed whose write this is, for its guard; nil for the hub's own changes
    /// (deadlines, reviews, break-glass), which no feed guard holds. `created`: the person was
    /// inserted in this transaction, so nothing about them need be read.
    public func enqueue(
        _ w: any StoreWriter, personID: String, person: JSONObject?, origin: ChangeOrigin? = nil, created: Bool = false
    ) throws {
        let conn = w.connection
        let now = clock.now()
        if person == nil { try conn.markPersonDeleted(personID: personID, now: now) }
        // Keep the schedule of deadlines (licence expiry, contract end) in step with the person.
        let deadline = Policy.nextDeadline(person, after: now)
        if deadline != nil || !created { try conn.setCredentialExpiry(personID: personID, expires: deadline) }
        let snapshot =
            if created, let person {
                PersonSnapshot.created(personID: personID, person: person, now: now)
            } else {
                try PersonSnapshot.load(conn, personID: personID, person: person, now: now)
            }
        let policy = self.policy
        // Tenure for reviewers: since when each package is held, in this same transaction.
        try PackageHoldings.update(conn, snapshot, policy: policy)
        let decisions = policy.enabledTargets.map { ($0, policy.decide(snapshot, target: $0)) }
        // A person the feed takes all access from counts against the feed's guard.
        var holdID: String? = nil
        // Any change that takes access away counts (a disable, or fewer entitlements on a
        // target): a deleted group takes a package from thousands who keep other access.
        let removals = decisions.filter { $0.1.needsJob(personDeleted: person == nil) && $0.1.removesAccess }
        // A removal already queued (counted when it was, or released from a hold) is not counted
        // or held again when the feed sends the person once more.
        let queued = try removals.allSatisfy { t, _ in
            guard let j = try conn.job(personID: personID, target: t.name) else { return false }
            return j.state == .pending && j.priority <= 0
        }
        if let origin, options.feedGuard.enabled, !removals.isEmpty, !queued {
            holdID = try feedHold(w, origin: origin, personID: personID, now: now)
        }
        var jobs: [(target: String, priority: Int)] = []
        for (t, decision) in decisions {
            guard decision.needsJob(personDeleted: person == nil) else {
                // Nothing differs from what was last applied, but a run under way may be applying
                // what this change just took back (a grant ended while it is provisioned): it runs
                // again. A person just created has no job to touch.
                if !snapshot.isNew { try conn.touchJob(personID: personID, target: t.name) }
                continue
            }
            let priority = decision.removesAccess || person == nil ? 0 : 1
            if let holdID, decision.removesAccess {
                try conn.holdJob(personID: personID, target: t.name, priority: priority, holdID: holdID, now: now)
            } else {
                jobs.append((t.name, priority))
            }
        }
        try conn.enqueue(personID: personID, jobs: jobs, now: now)
    }

    /// Tells every node's dispatcher that there is work (after a commit that enqueued jobs).
    public func wake() {
        coordination.notify(.jobs)
    }

    /// Wakes this process's dispatcher and the schedules that watch writes.
    private func wakeDispatcher() {
        signal.lock()
        runtime.withLock { $0.woken = true }
        signal.signal()
        signal.unlock()
        for listener in wakeListeners.withLock({ $0 }) { listener() }
    }

    /// Waits until no job is running and none is due, or `timeout` passes (then false). For
    /// tests and tools that must know the engine has done everything it can do now; jobs
    /// waiting out a backoff are not due.
    public func waitUntilIdle(timeout: Double = 30) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let busy = runtime.withLock { r in
                r.dispatching > 0 || !r.running.isEmpty || r.backlog.values.contains { !$0.isEmpty }
            }
            let now = clock.now()
            let due =
                (try? store.read(snapshot: false) { c in
                    try policy.enabledTargets.contains { try !c.readyJobs(target: $0.name, now: now, limit: 1).isEmpty }
                }) ?? true
            if !busy && !due { return true }
            usleep(10_000)
        }
        return false
    }

    /// Called after every wake: schedules kept with each write (licence expiries) re-read
    /// their next deadline, since the write may have brought it forward.
    public func addWakeListener(_ listener: @escaping @Sendable () -> Void) {
        wakeListeners.withLock { $0.append(listener) }
    }

    // MARK: - Dispatcher

    /// Starts the dispatcher thread. On a node alone on its store, leases left by a process
    /// that died are dropped first: their jobs run now, not when the lease would end.
    public func start() {
        if coordination.isSoleNode {
            let owner = coordination.nodeID
            do {
                let freed = try store.write { try $0.connection.releaseLeases(notHeldBy: owner) }
                if freed > 0 {
                    logger.info("provisioning: jobs leased by a stopped process run again", ["jobs": String(freed)])
                }
            } catch {
                logger.error(
                    "provisioning: cannot free stale leases; those jobs wait for them to end",
                    ["error": String(describing: error).prefix(200).description])
            }
        }
        runtime.withLock { $0.started = true }
        let t = Thread { [self] in self.dispatchLoop() }
        t.name = "provisioning-dispatcher"
        t.start()
        let r = Thread { [self] in
            defer { renewerDone.signal() }
            self.renewLoop()
        }
        r.name = "provisioning-leases"
        r.start()
    }

    /// Renews the leases of the jobs this node is running, every third of `leaseSeconds`: a
    /// connector call may outlast a short lease, and only a node that died stops renewing.
    /// Jobs claimed ahead (the backlog) are not renewed: they are given back at half their
    /// lease instead (`claim`). A renewal that fails is logged; the next one tries again.
    private func renewLoop() {
        let every = max(0.05, options.leaseSeconds / 3)
        while renewerStop.wait(timeout: .now() + every) == .timedOut {
            let keys = runtime.withLock { Array($0.running) }
            guard !keys.isEmpty else { continue }
            let (owner, until) = (coordination.nodeID, clock.now() + options.leaseSeconds)
            do {
                try store.write(isolated: true, durable: false) { w in
                    for key in keys {
                        let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                        guard parts.count == 2 else { continue }
                        try w.connection.extendLease(personID: parts[0], target: parts[1], owner: owner, until: until)
                    }
                }
            } catch {
                logger.error(
                    "provisioning: cannot renew the leases of running jobs; retried",
                    ["jobs": String(keys.count), "error": "\(error)".prefix(200).description])
            }
        }
    }

    /// Stops dispatching and waits for running jobs; pending ones stay queued for the next start.
    public func stop() {
        let wasRunning = runtime.withLock { r -> Bool in
            let was = r.started
            r.started = false
            return was
        }
        guard wasRunning else { return }
        wakeDispatcher()
        stopped.wait()
        for q in queues.values { q.waitUntilAllOperationsAreFinished() }
        // Running jobs keep their leases until they finish.
        renewerStop.signal()
        renewerDone.wait()
        // Jobs claimed ahead and never started are free for the next node (or start) at once.
        let now = clock.now()
        for t in policy.enabledTargets { giveBack(t, now: now) { _ in true } }
    }

    /// Dispatches what is due, then sleeps until the next job falls due (or a lease or a
    /// circuit's open interval ends), or a wake-up (a commit that enqueued, a job that
    /// finished). `pollInterval` is only the fallback for jobs another process enqueued.
    private func dispatchLoop() {
        while runtime.withLock({ $0.started }) {
            let now = clock.now()
            for t in policy.enabledTargets { dispatch(t, now: now) }
            // Storage trouble here is not hidden: `dispatch` reads the same table and logs it;
            // the sleep then falls back to the poll interval.
            let nextJob = (try? store.read(snapshot: false) { try $0.nextDue(after: now) }) ?? nil
            let nextCircuit = runtime.withLock { r in
                r.breakers.values.compactMap { b -> Double? in
                    if case .open(let until) = b.state { return until } else { return nil }
                }.min()
            }
            // Due times are on the engine's clock; the wait is in real seconds from now.
            let wait = min(options.pollInterval, max(0, min(nextJob ?? .infinity, nextCircuit ?? .infinity) - now))
            signal.lock()
            if !runtime.withLock({ $0.woken }) { _ = signal.wait(until: Date().addingTimeInterval(wait)) }
            runtime.withLock { $0.woken = false }
            signal.unlock()
        }
        stopped.signal()
    }

    private func dispatch(_ target: Target, now: Double) {
        guard let queue = queues[target.name] else { return }
        // Idle means nothing claimed either: a claim is leased before its jobs are running.
        runtime.withLock { $0.dispatching += 1 }
        defer { runtime.withLock { $0.dispatching -= 1 } }
        // Slots free on this target, as the circuit breaker allows.
        let slots: Int = runtime.withLock { r in
            r.breakers[target.name, default: newBreaker()].permits(
                now: now, inFlight: r.inFlight[target.name, default: 0], concurrency: target.concurrency)
        }
        guard slots > 0 else {
            // Busy workers keep the backlog; a circuit that is not closed gives it back.
            let stalled = runtime.withLock { r in
                if case .closed = r.breakers[target.name, default: newBreaker()].state { return false }
                return true
            }
            if stalled { giveBack(target, now: now) { _ in true } }
            return
        }
        let jobs: [ProvisioningJob]
        do {
            jobs = try claim(target, slots: slots, now: now)
        } catch {
            // The jobs stay queued; the next pass (at most the poll interval away) tries again.
            logger.error(
                "provisioning: cannot claim due jobs",
                ["target": target.name, "error": String(describing: error).prefix(200).description])
            return
        }
        var busy: [ProvisioningJob] = []
        defer { returnLeases(busy, now: now) }
        for job in jobs {
            let key = job.personID + "\u{0}" + job.target
            let fresh = runtime.withLock { r -> Bool in
                guard r.running.insert(key).inserted else { return false }
                r.inFlight[target.name, default: 0] += 1
                r.breakers[target.name, default: newBreaker()].started()
                return true
            }
            // Its previous run is still finishing here (a newer change made it due again):
            // the lease goes back at once, so the job is not stuck behind it.
            guard fresh else {
                busy.append(job)
                continue
            }
            queue.addOperation { [self] in
                let outcome = self.run(job, target)
                let now = clock.now()
                if outcome == .none { coolDown(job, until: now + max(1, options.backoffBase)) }
                let (recovered, opened, back, tripped) = runtime.withLock { r -> (Bool, Bool, Bool, Bool) in
                    r.running.remove(key)
                    r.inFlight[target.name, default: 1] -= 1
                    var b = r.breakers[target.name, default: newBreaker()]
                    let before = b.state
                    let recovered = b.finished(outcome, now: now)
                    r.breakers[target.name] = b
                    // Announced once per outage that lasts `unavailableNoticeSeconds`: at the first
                    // outcome after that long (the half-open probes keep coming while work waits),
                    // and its end once the circuit closes again.
                    var tripped = false
                    if case .open = b.state, case .closed = before {
                        r.downSince[target.name] = now
                        tripped = true
                    }
                    var opened = false
                    if !recovered, let since = r.downSince[target.name],
                        now - since >= options.unavailableNoticeSeconds
                    {
                        opened = r.announcedDown.insert(target.name).inserted
                    }
                    if recovered { r.downSince[target.name] = nil }
                    let back = recovered && r.announcedDown.remove(target.name) != nil
                    return (recovered, opened, back, tripped)
                }
                if tripped {
                    logger.warning(
                        "circuit opened: target unreachable, jobs wait",
                        [
                            "event": "circuit.open", "target": target.name,
                            "open.seconds": String(options.breakerOpenSeconds),
                        ])
                }
                if opened {
                    logger.warning(
                        "target unavailable: its circuit has been open for a while, jobs wait",
                        ["target": target.name, "notice.seconds": String(options.unavailableNoticeSeconds)])
                    announce(.targetUnavailable, ["target": target.name])
                }
                if recovered { targetRecovered(target.name) }
                if back {
                    announce(.targetRecovered, ["target": target.name])
                }
                wakeDispatcher()
            }
        }
    }

    /// The next `slots` jobs to start on `target`, leavers first: from the backlog, topped up
    /// with one claim of up to `slots + concurrency` jobs when it runs low (a read first:
    /// most passes find nothing due, and a claim is a write). A job whose lease is half over
    /// is given back rather than started: it must never run past its lease.
    private func claim(_ target: Target, slots: Int, now: Double) throws -> [ProvisioningJob] {
        giveBack(target, now: now) { $0.leaseUntil - now < options.leaseSeconds / 2 }
        let held = runtime.withLock { $0.backlog[target.name]?.count ?? 0 }
        var claimed: [ClaimedJob] = []
        let want = slots + target.concurrency - held
        if want > 0,
            try store.read(snapshot: false, { try !$0.readyJobs(target: target.name, now: now, limit: 1).isEmpty })
        {
            let (owner, until) = (coordination.nodeID, now + options.leaseSeconds)
            claimed = try store.write(isolated: true, durable: false) {
                try $0.connection.claimJobs(target: target.name, limit: want, owner: owner, leaseUntil: until, now: now)
            }.map { ClaimedJob(job: $0, leaseUntil: until) }
        }
        return runtime.withLock { r in
            var all = (r.backlog[target.name] ?? []) + claimed
            all.sort { ($0.job.priority, $0.job.notBefore) < ($1.job.priority, $1.job.notBefore) }
            r.backlog[target.name] = Array(all.dropFirst(slots))
            return all.prefix(slots).map(\.job)
        }
    }

    /// Gives back the leases of backlog jobs that match `which`: they become claimable at
    /// once (by this node or another) instead of when the lease would end.
    private func giveBack(_ target: Target, now: Double, which: (ClaimedJob) -> Bool) {
        let returned = runtime.withLock { r -> [ProvisioningJob] in
            let all = r.backlog[target.name] ?? []
            r.backlog[target.name] = all.filter { !which($0) }
            return all.filter(which).map(\.job)
        }
        returnLeases(returned, now: now)
    }

    /// Ends this node's leases on `jobs` now: they are claimable again at once.
    private func returnLeases(_ jobs: [ProvisioningJob], now: Double) {
        guard !jobs.isEmpty else { return }
        let owner = coordination.nodeID
        do {
            try store.write(isolated: true, durable: false) { w in
                for j in jobs {
                    try w.connection.extendLease(personID: j.personID, target: j.target, owner: owner, until: now)
                }
            }
        } catch {
            // The leases run out by themselves (at most `leaseSeconds` later).
            logger.error(
                "provisioning: cannot give leases back",
                ["jobs": String(jobs.count), "error": "\(error)".prefix(200).description])
        }
    }

    /// Announces an event outside any other write (a target's outage); failures are logged.
    private func announce(_ event: NotificationEvent, _ values: [String: String]) {
        guard let notifier else { return }
        do {
            try store.write { w in _ = try notifier.announce(w, event, values) }
            notifier.wake()
        } catch {
            logger.error(
                "notification cannot be queued", ["event": event.rawValue, "error": "\(error)".prefix(200).description])
        }
    }

    /// The hub's own storage failed during a run: the job keeps its lease for a short
    /// cool-down instead of retrying in a tight loop. If even that cannot be written, the
    /// lease simply runs out later.
    private func coolDown(_ job: ProvisioningJob, until: Double) {
        let owner = coordination.nodeID
        do {
            try store.write(isolated: true, durable: false) {
                try $0.connection.extendLease(personID: job.personID, target: job.target, owner: owner, until: until)
            }
        } catch {
            logger.error(
                "provisioning: cannot set a job's cool-down; it waits for its lease to end",
                ["target": job.target, "error": "\(error)".prefix(200).description])
        }
    }

    // MARK: - Running one job

    private func newBreaker() -> CircuitBreaker {
        CircuitBreaker(threshold: options.breakerThreshold, openSeconds: options.breakerOpenSeconds)
    }

    /// Runs one job; what it says about the target's health goes to the circuit breaker.
    private func run(_ job: ProvisioningJob, _ target: Target) -> CircuitBreaker.Outcome {
        guard let connector = connectors[target.name] else { return .none }
        let now = clock.now()
        do {
            // Claimed before a feed's guard held it (it sat in the backlog): it waits for the release.
            let current = try store.read(snapshot: false) { try $0.job(personID: job.personID, target: target.name) }
            guard let current, current.state == .pending else { return .none }
            let snapshot = try store.read { conn in
                try PersonSnapshot.load(
                    conn, personID: job.personID, person: try conn.fetch(type: .user, id: job.personID)?.doc, now: now)
            }
            let decision = policy.decide(snapshot, target: target)
            let (person, record, previous, desired) = (
                snapshot.document, decision.record, decision.lastApplied, decision.desired
            )
            let store = self.store, personID = job.personID, targetName = target.name
            let claimCheckFailed = Mutex(false)
            var outcome: Convergence.Outcome
            do {
                outcome = try connector.transaction { session throws(ConnectorError) in
                    try Convergence.converge(desired: desired, accountID: record?.accountID, connector: session) {
                        accountID throws(ConnectorError) in
                        do {
                            return try store.read {
                                try $0.otherClaimant(target: targetName, accountID: accountID, personID: personID)
                            }
                        } catch {
                            claimCheckFailed.withLock { $0 = true }
                            throw .retryable("cannot check who holds the account: storage unavailable")
                        }
                    }
                }
            } catch {
                // The hub's storage failed, not the target: no attempt counted, no verdict on the target.
                if claimCheckFailed.withLock({ $0 }) { throw StoreError("claim check failed in storage") }
                throw error
            }
            // Retention: a deleted person's account is deleted once the period has passed.
            var deferUntil: Double? = nil
            if person == nil, let days = target.retentionDays, let deletedAt = record?.personDeleted,
                let id = outcome.accountID
            {
                let due = deletedAt + days * 86400
                if now >= due {
                    try connector.delete(id: id)
                    outcome = Convergence.Outcome(accountID: nil, actions: outcome.actions + ["delete"])
                } else {
                    deferUntil = due
                }
            }
            let finalOutcome = outcome
            let until = deferUntil
            try store.write { w in
                let c = w.connection
                if person == nil && finalOutcome.accountID == nil {
                    try c.forgetApplied(personID: job.personID, target: target.name)
                } else if let d = desired ?? previous {
                    try c.recordApplied(
                        personID: job.personID, target: target.name, accountID: finalOutcome.accountID,
                        state: JSONWriter().write(d.json), now: now, result: finalOutcome.summary)
                }
                if let u = until {
                    try c.deferJob(personID: job.personID, target: target.name, until: u, attempts: 0, error: nil)
                } else {
                    try c.finishJob(personID: job.personID, target: target.name, generation: job.generation, now: now)
                }
                if !finalOutcome.actions.isEmpty {
                    try AuditLog.append(
                        w,
                        .now(
                            principal: "engine", action: "provision", resourceType: "User", resourceID: job.personID,
                            attributes: finalOutcome.actions.map { "\(target.name):\($0)" }, requestID: "job"))
                }
            }
            if until == nil { metrics.converged(target.name, seconds: clock.now() - job.enqueued) }
            return .reached
        } catch let e as ConnectorError {
            fail(job, target, e, now: now)
            return e.isRetryable ? .retryableFailure : .reached
        } catch {
            // Storage trouble: the job stays pending and runs again.
            logger.error(
                "provisioning job failed in storage",
                ["target": target.name, "error": String(describing: error).prefix(200).description])
            return .none
        }
    }

    private func fail(_ job: ProvisioningJob, _ target: Target, _ e: ConnectorError, now: Double) {
        let attempts = job.attempts + 1
        let dead = !e.isRetryable || attempts >= options.maxAttempts || now - job.enqueued >= options.maxAge
        let delay = Self.backoff(
            attempt: attempts, base: options.backoffBase, cap: options.backoffCap, retryAfter: e.retryAfter)
        let announceDead =
            dead
            && runtime.withLock { r in
                guard now - (r.deadLetterAnnounced[target.name] ?? -.infinity) >= 900 else { return false }
                r.deadLetterAnnounced[target.name] = now
                return true
            }
        metrics.failed(target.name, kind: e.kind.rawValue, dead: dead)
        // The reason may name people (user names): it goes to /admin/jobs, not to the log.
        logger.warning(
            dead ? "provisioning job dead-lettered (reason in GET /admin/jobs)" : "provisioning job will retry",
            [
                "event": dead ? "job.dead-letter" : "job.retry", "target": target.name, "attempts": String(attempts),
                "error.kind": e.kind.rawValue,
            ])
        do {
            try recordFailure(
                job, target, e, dead: dead, attempts: attempts, delay: delay, announceDead: announceDead, now: now)
        } catch {
            // Nothing of the failure stands (not its backoff, not its audit entry): the job
            // stays queued under this node's lease and runs again when the lease ends.
            logger.error(
                "provisioning: a failed job's outcome cannot be recorded; it runs again when its lease ends",
                ["target": target.name, "error": "\(error)".prefix(200).description])
        }
    }

    /// The failure's outcome in one transaction: backoff or dead letter, the last result,
    /// the audit entry and, for a dead letter, the announcement.
    private func recordFailure(
        _ job: ProvisioningJob, _ target: Target, _ e: ConnectorError, dead: Bool, attempts: Int, delay: Double,
        announceDead: Bool, now: Double
    ) throws {
        let reason = e.description
        try store.write { w in
            if dead {
                let isDead = try w.connection.deadLetter(
                    personID: job.personID, target: target.name, attempts: attempts, error: reason,
                    generation: job.generation, now: now)
                if isDead, announceDead, let notifier = self.notifier {
                    let userName = try w.connection.fetch(type: .user, id: job.personID)?.doc["userName"]?.stringValue
                    try notifier.announce(
                        w, .deadLetter,
                        [
                            "userName": userName ?? "a deleted person (\(job.personID))", "target": target.name,
                            "attempts": String(attempts), "errorKind": e.kind.rawValue,
                        ])
                }
            } else {
                try w.connection.deferJob(
                    personID: job.personID, target: target.name, until: now + delay, attempts: attempts, error: reason)
            }
            try w.connection.recordResult(personID: job.personID, target: target.name, result: "failed: \(reason)")
            try AuditLog.append(
                w,
                .now(
                    principal: "engine", action: "provision", resourceType: "User", resourceID: job.personID,
                    attributes: [target.name], requestID: "job",
                    outcome: dead ? "dead-letter: \(e.kind.rawValue)" : "retry \(attempts): \(e.kind.rawValue)"))
        }
    }

    /// Exponential backoff with jitter and cap; `Retry-After` is a floor.
    public static func backoff(attempt: Int, base: Double, cap: Double, retryAfter: Double?) -> Double {
        let exp = min(cap, base * pow(2, Double(max(0, attempt - 1))))
        let jittered = exp * Double.random(in: 0.5...1.0)
        return max(jittered, min(retryAfter ?? 0, 3600))
    }

    // MARK: - Circuit breaker

    /// The probe got through: the target is back, so jobs waiting out their backoff run now
    /// instead of minutes later (backoff protects a down target, not a healthy one).
    private func targetRecovered(_ target: String) {
        let now = clock.now()
        do {
            let released = try store.write { try $0.connection.releaseBackoff(target: target, now: now) }
            logger.info(
                "target recovered", ["event": "circuit.close", "target": target, "jobs.released": String(released)])
        } catch {
            // The jobs still run when their backoff ends (at most backoffCap later).
            logger.error(
                "target recovered; releasing backed-off jobs failed",
                ["target": target, "error": String(describing: error).prefix(200).description])
        }
    }

    /// A target's health for people: `unavailable` when its circuit is not closed or its last
    /// probe failed (so a down target shows before a job fails), `degraded` with dead
    /// letters waiting, else `healthy`. `deadLetters` comes from the store.
    public func health(_ target: String, deadLetters: Int) -> String {
        if circuit(target) != .closed || probes.last(target)?.up == false { return "unavailable" }
        return deadLetters > 0 ? "degraded" : "healthy"
    }

    /// The circuit state of a target.
    public func circuit(_ target: String) -> CircuitState {
        runtime.withLock { r in (r.breakers[target] ?? newBreaker()).circuitState(now: clock.now()) }
    }
}

/// The read-compare-apply step for one account, shared by jobs, reconciliation and the
/// connector benchmarks.
public enum Convergence {
    public struct Outcome: Sendable {
        public var accountID: String?
        public var actions: [String]
        public init(accountID: String?, actions: [String]) {
            self.accountID = accountID
            self.actions = actions
        }
        public var summary: String { actions.isEmpty ? "in sync" : actions.joined(separator: ", ") }
    }

    /// Brings the target's account to `desired`. Reads the account first, so a lost record,
    /// a hand-made change or a crash between "applied" and "recorded" only costs one more
    /// comparison, never a duplicate account. Order matters: disable and revoke before
    /// granting, so a leaver loses access first.
    ///
    /// `claimedBy(accountID)` answers the user name of *another* person already linked to
    /// that account on this target, or nil. A target may fold two user names into one
    /// account (LDAP matching rules, lower-casing): the hub then never adopts or renames
    /// onto an account someone else holds. That is a permanent error naming both people,
    /// left for an administrator in `/admin/jobs`, never a takeover.
    public static func converge(
        desired: DesiredAccount?, accountID: String?, connector: any Connector,
        claimedBy: (String) throws(ConnectorError) -> String? = { _ in nil }
    ) throws(ConnectorError) -> Outcome {
        guard let d = desired else { return Outcome(accountID: accountID, actions: []) }
        var account: Account? = nil
        if let id = accountID { account = try connector.read(id: id) }
        if account == nil, !d.userName.isEmpty {
            account = try connector.find(userName: d.userName)
            if let found = account, let other = try claimedBy(found.id) {
                throw .permanent(
                    "the account '\(found.userName)' found for '\(d.userName)' is linked to '\(other)': "
                        + "not adopted (the target treats the two names as one)"
                )
            }
        }
        guard let acc = account else {
            if !d.enabled { return Outcome(accountID: nil, actions: []) }  // nothing to disable
            let created = try connector.create(
                AccountSpec(userName: d.userName, attributes: d.attributes, enabled: true, entitlements: d.entitlements)
            )
            return Outcome(accountID: created.id, actions: ["create"])
        }
        var actions: [String] = []
        if acc.enabled && !d.enabled {
            try connector.setEnabled(id: acc.id, false)
            actions.append("disable")
        }
        for e in acc.entitlements.subtracting(d.entitlements).sorted() {
            try connector.revoke(id: acc.id, entitlement: e)
            actions.append("revoke \(e)")
        }
        // userName is compared in canonical form (RFC 7643 §4.1.1, Identifier.canonical), so only a real
        // change renames.
        if !d.userName.isEmpty && Identifier.canonical(acc.userName) != Identifier.canonical(d.userName) {
            if let clash = try connector.find(userName: d.userName), clash.id != acc.id {
                let owner = try claimedBy(clash.id) ?? clash.userName
                throw .permanent(
                    "renaming '\(acc.userName)' to '\(d.userName)' would land on the account of '\(owner)': not renamed"
                )
            }
            try connector.rename(id: acc.id, userName: d.userName)
            actions.append("rename")
        }
        if d.attributes.contains(where: { acc.attributes[$0.key] != $0.value }) {
            try connector.update(id: acc.id, attributes: d.attributes)
            actions.append("update")
        }
        for e in d.entitlements.subtracting(acc.entitlements).sorted() {
            try connector.grant(id: acc.id, entitlement: e)
            actions.append("grant \(e)")
        }
        if !acc.enabled && d.enabled {
            try connector.setEnabled(id: acc.id, true)
            actions.append("enable")
        }
        return Outcome(accountID: acc.id, actions: actions)
    }
}
