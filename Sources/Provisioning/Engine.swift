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
        /// Each target's circuit as this node last saw it in the store (`SharedCircuit`): read
        /// at every dispatch pass, and set from each transition this node saved.
        var breakers: [String: CircuitBreaker] = [:]
        /// Bumped at each transition this node saves, so a pass's older read does not undo it.
        var circuitEpoch: [String: Int] = [:]
        /// The job running as a target's half-open probe on this node (its key).
        var probes: [String: String] = [:]
        /// Slots of each target this node holds in the store (`target_slots`): it runs at most
        /// this many jobs on the target, whatever its own `concurrency` would allow.
        var slots: [String: Int] = [:]
        /// The concurrency each target's slots were sized to by this process.
        var sizedSlots: [String: Int] = [:]
        /// A pass had jobs to run but found every slot held by other nodes: look again soon.
        var starved = false
        /// The most slots of each target this node keeps while other nodes wait for one (its
        /// fair share), and when it last looked; when it last said it waits itself.
        var slotCap: [String: Int] = [:]
        var slotCapCheckedAt: [String: Double] = [:]
        var waitMarkedAt: [String: Double] = [:]
        /// When each target's last dead letter was announced: a burst (an outage that outlives
        /// the retries) makes one message per quarter hour, not one per person.
        var deadLetterAnnounced: [String: Double] = [:]
        var started = false
        /// Dispatch passes under way: jobs they claimed are leased but not yet in `running`.
        var dispatching = 0
        /// Jobs that ended whose verdict on the target's circuit is still being written: not
        /// idle yet (a test or tool reading the circuit after `waitUntilIdle` sees the verdict).
        var settling = 0
        var woken = false
    }

    /// A job claimed ahead, and when its lease ends.
    private struct ClaimedJob {
        let job: ProvisioningJob
        let leaseUntil: Double
    }

    private let runtime = Mutex(Runtime())
    /// Serialises the writes that change this node's slots with the matching change of
    /// `Runtime.slots` (the dispatcher takes and gives back, the renewer counts what is left).
    private let slotLock = NSLock()
    private let wakeListeners = Mutex<[@Sendable () -> Void]>([])
    private let policyFollower = Mutex<
        (parse: @Sendable ([UInt8]) throws -> Policy, followed: @Sendable (Int64) -> Void)?
    >(nil)
    /// One version put in force at a time (the write lanes may meet a new one together).
    private let adopting = NSLock()
    /// The newest version that could not be parsed here, and why (logged once by the follower).
    private let policyFailed = Mutex<(version: Int64, error: StoreError)?>(nil)
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
        try adoptPolicyInForce(w)
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

    /// With several nodes: `parse` reads a stored policy text as this node runs it, and
    /// `followed` is told when a write put a newer version in force here (`PolicyFollower`
    /// rewrites the policy file and logs it).
    public func followPolicy(
        parse: @escaping @Sendable ([UInt8]) throws -> Policy, followed: @escaping @Sendable (Int64) -> Void
    ) {
        policyFollower.withLock { $0 = (parse, followed) }
    }

    /// Marks `w` as deciding under the policy (its transaction checks, when it ends, that no
    /// newer version came into force meanwhile, and runs again under it if one did: on
    /// PostgreSQL the version in force is on the audit chain's head row), and puts in force
    /// the version the transaction decides under if this node runs an older one. A version
    /// whose text cannot run on this node fails the write (503), rather than commit what the
    /// policy in force no longer gives.
    public func adoptPolicyInForce(_ w: any StoreWriter) throws {
        w.decidesUnderPolicy()
        guard let newest = w.policyVersionInForce, newest > policies.version ?? 0 else { return }
        try adoptPolicy(newest) { try w.connection.policyVersion(newest) }
    }

    /// Puts stored version `newest` in force if this node runs an older one; `read` reads it.
    /// Returns true when it changed what this node runs.
    /// A version that failed here is refused at once, without parsing it again, unless
    /// `retryFailed` (the follower's look, every few seconds: a secret file may have appeared).
    @discardableResult
    public func adoptPolicy(_ newest: Int64, retryFailed: Bool = false, read: () throws -> PolicyVersion?) throws
        -> Bool
    {
        // No parser yet: the node is starting (its start-up puts the newest version in force).
        guard let (parse, followed) = policyFollower.withLock({ $0 }) else { return false }
        adopting.lock()
        defer { adopting.unlock() }
        guard newest > policies.version ?? 0 else { return false }
        if !retryFailed, let failed = policyFailed.withLock({ $0 }), failed.version == newest { throw failed.error }
        guard let stored = try read(), stored.state == .active else { return false }
        do {
            let policy = try parse(stored.text)
            // As `PUT /admin/policy` refuses: connectors and queues are built at start.
            guard policy.targetsSource == policies.current.targetsSource else {
                throw PolicyError(
                    "its targets differ from the ones this node started with (connectors are built at start): "
                        + "restart this node with the policy file of version \(newest)")
            }
            policies.advance(to: policy, version: newest)
        } catch {
            let e = StoreError(
                "policy version \(newest), in force on another node, cannot run on this node: "
                    + String(describing: error).prefix(300))
            policyFailed.withLock { $0 = (newest, e) }
            throw e
        }
        followed(newest)
        return true
    }

    /// The policy version in force elsewhere that this node cannot run, if any (for
    /// `/readyz`: such a node answers writes 503 until it can).
    public var policyBehind: String? {
        guard let failed = policyFailed.withLock({ $0 }), failed.version > policies.version ?? 0 else { return nil }
        return failed.error.description
    }

    /// Tells the other nodes that a policy version was put in force here (`PolicyFollower`).
    public func policyPutInForce() {
        coordination.notify(.policy)
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
                r.dispatching > 0 || r.settling > 0 || !r.running.isEmpty || r.backlog.values.contains { !$0.isEmpty }
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
                let freed = try store.write { w in
                    // A stopped process's slots and half-open probe are void too.
                    try w.connection.releaseTargetSlots(notHeldBy: owner)
                    try w.connection.releaseCircuitProbes(notHeldBy: owner)
                    return try w.connection.releaseLeases(notHeldBy: owner)
                }
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
            let (keys, holdsSlots, probing) = runtime.withLock { r in
                (Array(r.running), r.slots.values.contains { $0 > 0 }, !r.probes.isEmpty)
            }
            guard !keys.isEmpty || holdsSlots || probing else { continue }
            let (owner, until) = (coordination.nodeID, clock.now() + options.leaseSeconds)
            do {
                // The job leases, the slots and the probe: one write, whatever their number.
                slotLock.lock()
                defer { slotLock.unlock() }
                let held = try store.write(isolated: true, durable: false) { w -> [String: Int]? in
                    for key in keys {
                        let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                        guard parts.count == 2 else { continue }
                        try w.connection.extendLease(personID: parts[0], target: parts[1], owner: owner, until: until)
                    }
                    if probing { try w.connection.renewCircuitProbes(owner: owner, until: until) }
                    return holdsSlots ? try w.connection.renewTargetSlots(owner: owner, until: until) : nil
                }
                // A slot this node let lapse (cut off from the database longer than the lease)
                // may have gone to another node: it counts only what it still holds.
                if let held {
                    let lost = runtime.withLock { r -> Int in
                        var lost = 0
                        for (t, n) in r.slots where (held[t] ?? 0) < n {
                            lost += n - (held[t] ?? 0)
                            r.slots[t] = held[t] ?? 0
                        }
                        return lost
                    }
                    if lost > 0 {
                        logger.warning("provisioning: target slots lapsed and were lost", ["slots": String(lost)])
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
        // So are this node's slots (its jobs are done): another node takes them at once.
        let owner = coordination.nodeID
        slotLock.lock()
        defer { slotLock.unlock() }
        do {
            _ = try store.write(isolated: true, durable: false) { w in
                try w.connection.releaseTargetSlots(target: nil, owner: owner, count: nil)
            }
            runtime.withLock { $0.slots = [:] }
        } catch {
            logger.error(
                "provisioning: cannot give target slots back; they lapse with their lease",
                ["error": "\(error)".prefix(200).description])
        }
    }

    /// Dispatches what is due, then sleeps until the next job falls due (or a lease or a
    /// circuit's open interval ends), or a wake-up (a commit that enqueued, a job that
    /// finished). `pollInterval` is only the fallback for jobs another process enqueued.
    private func dispatchLoop() {
        while runtime.withLock({ $0.started }) {
            let now = clock.now()
            runtime.withLock { $0.starved = false }
            syncCircuits(now: now)
            for t in policy.enabledTargets { dispatch(t, now: now) }
            // Storage trouble here is not hidden: `dispatch` reads the same table and logs it;
            // the sleep then falls back to the poll interval.
            let nextJob = (try? store.read(snapshot: false) { try $0.nextDue(after: now) }) ?? nil
            let nextCircuit = runtime.withLock { r in
                r.breakers.values.compactMap { b -> Double? in
                    if case .open(let until) = b.state { return until } else { return nil }
                }.min()
            }
            // Due times are on the engine's clock; the wait is in real seconds from now. Jobs
            // waiting for a slot another node holds look again soon (a read, then a write only
            // when one is free).
            var wait = min(options.pollInterval, max(0, min(nextJob ?? .infinity, nextCircuit ?? .infinity) - now))
            if runtime.withLock({ $0.starved }) { wait = min(wait, Self.slotRetrySeconds) }
            signal.lock()
            if !runtime.withLock({ $0.woken }) { _ = signal.wait(until: Date().addingTimeInterval(wait)) }
            runtime.withLock { $0.woken = false }
            signal.unlock()
        }
        stopped.signal()
    }

    /// How soon a pass that found every slot of a target taken looks again.
    static let slotRetrySeconds = 0.25

    /// Reads every target's shared circuit (one query) into this node's breakers: a circuit
    /// another node opened stops this one too, and one another node's probe closed lets it
    /// run again. A transition this node saved meanwhile is newer than the read: it stays.
    private func syncCircuits(now: Double) {
        let epochs = runtime.withLock { $0.circuitEpoch }
        let shared: [String: SharedCircuit]
        do {
            shared = try store.read(snapshot: false) { try $0.targetCircuits() }
        } catch {
            // Each node's breaker keeps its last view; the claim below meets the same trouble.
            return
        }
        let targets = policy.enabledTargets.map(\.name)
        runtime.withLock { r in
            for t in targets where r.circuitEpoch[t] == epochs[t] {
                let s = shared[t] ?? .closed
                // This node's own probe is running: its breaker says so already.
                if s.state == .halfOpen, s.probeOwner == coordination.nodeID, r.probes[t] != nil { continue }
                r.breakers[t] = newBreaker(s.breakerState(now: now))
            }
        }
    }

    private func dispatch(_ target: Target, now: Double) {
        guard let queue = queues[target.name] else { return }
        // Idle means nothing claimed either: a claim is leased before its jobs are running.
        runtime.withLock { $0.dispatching += 1 }
        defer { runtime.withLock { $0.dispatching -= 1 } }
        defer { releaseIdleSlots(target) }
        // Jobs that may start on this target, as the circuit allows; a half-open circuit
        // whose probe is free lets one through, if this node wins the probe.
        let (slots, needProbe): (Int, Bool) = runtime.withLock { r in
            var b = r.breakers[target.name, default: newBreaker()]
            let n = b.permits(now: now, inFlight: r.inFlight[target.name, default: 0], concurrency: target.concurrency)
            r.breakers[target.name] = b
            if case .halfOpen(probeRunning: false) = b.state { return (n, n > 0) }
            return (n, false)
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
        let claimed: Claim
        do {
            claimed = try claim(target, slots: slots, probe: needProbe, now: now)
        } catch {
            // The jobs stay queued; the next pass (at most the poll interval away) tries again.
            // A node that cannot run the policy in force claims nothing (the follower says why).
            guard policyBehind == nil else { return }
            logger.error(
                "provisioning: cannot claim due jobs",
                ["target": target.name, "error": String(describing: error).prefix(200).description])
            return
        }
        var busy: [ProvisioningJob] = []
        defer { returnLeases(busy, now: now) }
        for job in claimed.jobs {
            let key = job.personID + "\u{0}" + job.target
            let fresh = runtime.withLock { r -> Bool in
                guard r.running.insert(key).inserted else { return false }
                r.inFlight[target.name, default: 0] += 1
                r.breakers[target.name, default: newBreaker()].started()
                if claimed.probe { r.probes[target.name] = key }
                return true
            }
            // Its previous run is still finishing here (a newer change made it due again):
            // the lease goes back at once, so the job is not stuck behind it.
            guard fresh else {
                busy.append(job)
                continue
            }
            queue.addOperation { [self] in
                let version = policies.version
                let outcome = self.run(job, target)
                // A newer policy came into force during the run: the job runs again under it.
                if policies.version != version { rerun(job) }
                let now = clock.now()
                if outcome == .none { coolDown(job, until: now + max(1, options.backoffBase)) }
                let (wasProbe, seen) = runtime.withLock { r -> (Bool, CircuitBreaker.State) in
                    r.running.remove(key)
                    r.settling += 1
                    r.inFlight[target.name, default: 1] -= 1
                    let probe = r.probes[target.name] == key
                    if probe { r.probes[target.name] = nil }
                    return (probe, r.breakers[target.name, default: newBreaker()].state)
                }
                // The shared circuit changes only on news: a failure, a probe's verdict, or a
                // success while the circuit (as last seen) is not closed and clean. A success
                // on a healthy target writes nothing.
                if outcome == .retryableFailure || wasProbe || (outcome == .reached && seen != .closed(failures: 0)) {
                    transition(target, outcome, now: now)
                }
                runtime.withLock { $0.settling -= 1 }
                wakeDispatcher()
            }
        }
        // A probe won but no job to run on it: free it for the next pass or node.
        if claimed.probe, claimed.jobs.isEmpty {
            let owner = coordination.nodeID
            _ = try? store.write(isolated: true, durable: false) {
                try $0.connection.releaseCircuitProbe(target: target.name, owner: owner)
            }
        }
    }

    /// What a pass may start: the jobs, and whether the first of them is the half-open probe.
    private struct Claim {
        var jobs: [ProvisioningJob] = []
        var probe = false
    }

    /// The next jobs to start on `target`, at most `slots` and at most as many as the slots
    /// this node holds in the store allow, leavers first: from the backlog, topped up with
    /// one claim when it runs low (a read first: most passes find nothing due, and a claim is
    /// a write). Missing slots are taken in the same write as the claim (one statement for
    /// several), and so is the half-open probe when `probe`. Jobs are claimed only on slots:
    /// at most twice as many in hand (running and waiting) as the node holds, so a node
    /// without a slot never sits on jobs (leavers first) that another node could run.
    ///
    /// Fair share: a node with work and no slot says so (`markSlotWaiter`, at most once a
    /// second); a node holding slots looks (at most once a second) and then keeps only
    /// `concurrency / (waiters + 1)` of them (at least one), giving the rest back as its jobs
    /// end. A job whose lease is half over is given back rather than started: it must never
    /// run past its lease.
    private func claim(_ target: Target, slots: Int, probe: Bool, now: Double) throws -> Claim {
        giveBack(target, now: now) { $0.leaseUntil - now < options.leaseSeconds / 2 }
        slotLock.lock()
        defer { slotLock.unlock() }
        let owner = coordination.nodeID
        let (held, slotsHeld, inFlight, sized, capCheckedAt) = runtime.withLock { r in
            (
                r.backlog[target.name]?.count ?? 0, r.slots[target.name] ?? 0, r.inFlight[target.name] ?? 0,
                r.sizedSlots[target.name], r.slotCapCheckedAt[target.name] ?? -.infinity
            )
        }
        // The share this node may keep, looked up at most once a second while it holds slots.
        if slotsHeld > 0, abs(now - capCheckedAt) >= 1, !coordination.isSoleNode {
            let waiters = try store.read(snapshot: false) { try $0.slotWaiters(target: target.name, now: now) }
            let others = waiters.subtracting([owner]).count
            let cap = others == 0 ? target.concurrency : max(1, target.concurrency / (others + 1))
            runtime.withLock { r in
                r.slotCap[target.name] = cap
                r.slotCapCheckedAt[target.name] = now
            }
        }
        let cap = runtime.withLock { min($0.slotCap[target.name] ?? target.concurrency, target.concurrency) }
        let want = slots + target.concurrency - held
        let ready =
            try want > 0
            && store.read(snapshot: false) { try !$0.readyJobs(target: target.name, now: now, limit: 1).isEmpty }
        guard held > 0 || ready else { return Claim() }
        // As many slots as there is work for, within the circuit's permit and the share.
        let running = min(inFlight + slots, cap, inFlight + held + (ready ? want : 0))
        var needSlots = max(0, running - slotsHeld)
        let resize = sized != target.concurrency
        var starved = false
        if needSlots > 0, !resize, slotsHeld - inFlight <= 0 {
            // Every slot held (by live leases) elsewhere: no write, look again soon.
            let taken = try store.read(snapshot: false) {
                try $0.heldTargetSlots(target: target.name, now: now).values.reduce(0, +)
            }
            if taken >= target.concurrency {
                needSlots = 0
                starved = true
            }
        }
        let idleSlots = max(0, slotsHeld - inFlight)
        var claimed: [ClaimedJob] = []
        var took = 0
        var wonProbe = false
        if needSlots > 0 || (ready && idleSlots > 0) || resize || probe {
            let until = now + options.leaseSeconds
            let (name, concurrency, count) = (target.name, target.concurrency, needSlots)
            let r = try store.write(isolated: true, durable: false) { w -> (Int, Bool, [ProvisioningJob]) in
                let c = w.connection
                if resize { try c.sizeTargetSlots(target: name, concurrency: concurrency) }
                let took =
                    count > 0
                    ? try c.takeTargetSlots(
                        target: name, concurrency: concurrency, count: count, owner: owner, leaseUntil: until,
                        now: now) : 0
                let probed =
                    try probe && idleSlots + took > 0
                    && c.takeCircuitProbe(target: name, owner: owner, until: until, now: now)
                // Jobs in hand at most twice the slots held: the running ones and as many waiting.
                let limit = min(want, 2 * (slotsHeld + took) - inFlight - held)
                let jobs =
                    ready && limit > 0
                    ? try c.claimJobs(target: name, limit: limit, owner: owner, leaseUntil: until, now: now) : []
                return (took, probed, jobs)
            }
            took = r.0
            wonProbe = r.1
            claimed = r.2.map { ClaimedJob(job: $0, leaseUntil: until) }
            starved = starved || (slotsHeld + took == 0 && ready)
        }
        if starved { try markWaiting(target, now: now) }
        return runtime.withLock { r in
            r.slots[target.name, default: 0] += took
            r.sizedSlots[target.name] = target.concurrency
            var startable = min(slots, max(0, min(r.slots[target.name, default: 0], cap) - inFlight))
            if probe {
                // Another node probes: this one waits for its verdict (read at a later pass).
                if !wonProbe { r.breakers[target.name] = newBreaker(.halfOpen(probeRunning: true)) }
                startable = wonProbe ? min(1, startable) : 0
            }
            var all = (r.backlog[target.name] ?? []) + claimed
            all.sort { ($0.job.priority, $0.job.notBefore) < ($1.job.priority, $1.job.notBefore) }
            if starved || (startable == 0 && !all.isEmpty && !probe) { r.starved = true }
            r.backlog[target.name] = Array(all.dropFirst(startable))
            return Claim(jobs: all.prefix(startable).map(\.job), probe: wonProbe && startable > 0)
        }
    }

    /// Marks this node as waiting for a slot of `target`, at most once a second (a mark
    /// holds 3 s): the holders read it and keep only their share.
    private func markWaiting(_ target: Target, now: Double) throws {
        let due = runtime.withLock { r -> Bool in
            guard abs(now - (r.waitMarkedAt[target.name] ?? -.infinity)) >= 1 else { return false }
            r.waitMarkedAt[target.name] = now
            return true
        }
        guard due else { return }
        let (name, owner) = (target.name, coordination.nodeID)
        try store.write(isolated: true, durable: false) {
            try $0.connection.markSlotWaiter(target: name, owner: owner, until: now + 3)
        }
    }

    /// Gives back the slots of `target` this node holds beyond its running jobs once it has
    /// nothing left to start there (no backlog, or a circuit that is not closed), and those
    /// beyond its share while others wait: one write when a burst of work ends or a share
    /// shrinks, none per job.
    private func releaseIdleSlots(_ target: Target) {
        slotLock.lock()
        defer { slotLock.unlock() }
        let idle = runtime.withLock { r -> Int in
            let (slots, inFlight) = (r.slots[target.name] ?? 0, r.inFlight[target.name] ?? 0)
            let spare = slots - inFlight
            guard spare > 0 else { return 0 }
            var closed = false
            if case .closed = r.breakers[target.name, default: newBreaker()].state { closed = true }
            if (r.backlog[target.name] ?? []).isEmpty || !closed { return spare }
            return min(spare, max(0, slots - (r.slotCap[target.name] ?? target.concurrency)))
        }
        guard idle > 0 else { return }
        let owner = coordination.nodeID
        do {
            let released = try store.write(isolated: true, durable: false) {
                try $0.connection.releaseTargetSlots(target: target.name, owner: owner, count: idle)
            }
            // Fewer released than asked: the others lapsed and went elsewhere; none is held.
            _ = released
            runtime.withLock { r in r.slots[target.name] = max(0, (r.slots[target.name] ?? 0) - idle) }
        } catch {
            // They lapse with their lease, at the next renewal this node counts them again.
            logger.error(
                "provisioning: cannot give target slots back",
                ["target": target.name, "error": "\(error)".prefix(200).description])
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

    /// Queues a job again after its run ended (it may have converged under a policy replaced
    /// meanwhile): the next run decides under the policy in force.
    private func rerun(_ job: ProvisioningJob) {
        let now = clock.now()
        do {
            try store.write(isolated: true, durable: false) {
                try $0.connection.enqueue(personID: job.personID, target: job.target, priority: job.priority, now: now)
            }
        } catch {
            logger.error(
                "provisioning: cannot queue a job run under a replaced policy again",
                ["target": job.target, "error": "\(error)".prefix(200).description])
        }
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

    private func newBreaker(_ state: CircuitBreaker.State) -> CircuitBreaker {
        CircuitBreaker(threshold: options.breakerThreshold, openSeconds: options.breakerOpenSeconds, state: state)
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
            let (policyNow, decidedUnder) = policies.inForce
            // The target as the version in force describes it (its mapping), not as the pass began.
            let decision = policyNow.decide(snapshot, target: policyNow.target(target.name) ?? target)
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
                // A newer version came into force since the decision: what was applied is
                // recorded, and the job runs again under the version in force.
                try self.adoptPolicyInForce(w)
                if self.policies.version != decidedUnder {
                    try c.touchJob(personID: job.personID, target: target.name)
                }
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

    /// What one transition of a target's shared circuit did.
    private struct Transition: Sendable {
        var circuit: SharedCircuit
        /// This node's event opened the circuit (closed → open): it logs `circuit.open`.
        var tripped = false
        /// The outage reached `unavailableNoticeSeconds` and this node announced it.
        var unavailable = false
        /// This node's event closed the circuit: it released the backed-off jobs.
        var recovered = false
        /// The outage had been announced: this node announced the recovery.
        var back = false
        var released = 0
    }

    /// Runs a job's outcome through the target's circuit breaker on the state every node
    /// shares, in one write that holds the circuit's row: the pure `CircuitBreaker` decides,
    /// the row keeps the answer. Whatever follows from the transition happens once for the
    /// cluster, in the same transaction as the state that says it happened: the `circuit.open`
    /// log line, the `target.unavailable` and `target.recovered` notifications, the release of
    /// jobs waiting out a backoff (backoff protects a down target, not a healthy one).
    private func transition(_ target: Target, _ outcome: CircuitBreaker.Outcome, now: Double) {
        let (name, threshold, openSeconds) = (target.name, options.breakerThreshold, options.breakerOpenSeconds)
        let notice = options.unavailableNoticeSeconds
        let notifier = self.notifier
        let t: Transition
        do {
            t = try store.write { w -> Transition in
                let c = w.connection
                let before = try c.lockTargetCircuit(target: name)
                var breaker = CircuitBreaker(
                    threshold: threshold, openSeconds: openSeconds, state: before.breakerState(now: now))
                let wasClosed = before.state == .closed
                let recovered = breaker.finished(outcome, now: now)
                var t = Transition(circuit: before)
                t.circuit.adopt(breaker.state)
                if wasClosed, t.circuit.state == .open {
                    t.tripped = true
                    t.circuit.downSince = now
                    t.circuit.announced = false
                }
                if recovered {
                    t.recovered = true
                    t.back = before.announced
                    t.circuit.downSince = nil
                    t.circuit.announced = false
                } else if t.circuit.state != .closed, let since = t.circuit.downSince, now - since >= notice,
                    !t.circuit.announced
                {
                    // Announced once per outage that lasts `unavailableNoticeSeconds`: at the first
                    // outcome after that long (the half-open probes keep coming while work waits).
                    t.circuit.announced = true
                    t.unavailable = true
                }
                if t.circuit != before { try c.saveTargetCircuit(target: name, t.circuit) }
                if recovered { t.released = try c.releaseBackoff(target: name, now: now) }
                if let notifier {
                    if t.unavailable { try notifier.announce(w, .targetUnavailable, ["target": name]) }
                    if t.back { try notifier.announce(w, .targetRecovered, ["target": name]) }
                }
                return t
            }
        } catch {
            // The shared state could not be written: this node's breaker still moves, so it at
            // least stops calling a target it saw fail; the next pass reads the shared one again.
            runtime.withLock { r in
                var b = r.breakers[name, default: newBreaker()]
                b.finished(outcome, now: now)
                r.breakers[name] = b
                r.circuitEpoch[name, default: 0] += 1
            }
            logger.error(
                "provisioning: the target's circuit state cannot be shared",
                ["target": name, "error": String(describing: error).prefix(200).description])
            return
        }
        runtime.withLock { r in
            r.breakers[name] = newBreaker(t.circuit.breakerState(now: now))
            r.circuitEpoch[name, default: 0] += 1
        }
        if t.tripped {
            logger.warning(
                "circuit opened: target unreachable, jobs wait",
                ["event": "circuit.open", "target": name, "open.seconds": String(options.breakerOpenSeconds)])
        }
        if t.unavailable {
            logger.warning(
                "target unavailable: its circuit has been open for a while, jobs wait",
                ["target": name, "notice.seconds": String(options.unavailableNoticeSeconds)])
        }
        if t.recovered {
            logger.info(
                "target recovered", ["event": "circuit.close", "target": name, "jobs.released": String(t.released)])
            // Every node's dispatcher: the circuit is closed for all, and the released jobs are due.
            coordination.notify(.jobs)
        }
        if t.unavailable || t.back { notifier?.wake() }
    }

    /// A target's health for people: `unavailable` when its circuit is not closed or its last
    /// probe failed (so a down target shows before a job fails), `degraded` with dead
    /// letters waiting, else `healthy`. `deadLetters` comes from the store.
    public func health(_ target: String, deadLetters: Int) -> String {
        if circuit(target) != .closed || probes.last(target)?.up == false { return "unavailable" }
        return deadLetters > 0 ? "degraded" : "healthy"
    }

    /// The circuit state of a target, as every node shares it (this node's last view if the
    /// store cannot be read).
    public func circuit(_ target: String) -> CircuitState {
        let now = clock.now()
        if let shared = try? store.read(snapshot: false, { try $0.targetCircuits() }) {
            return newBreaker((shared[target] ?? .closed).breakerState(now: now)).circuitState(now: now)
        }
        return runtime.withLock { r in (r.breakers[target] ?? newBreaker()).circuitState(now: now) }
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

extension SharedCircuit {
    /// The breaker state this shared circuit stands for at `now`: a half-open circuit's probe
    /// runs while a node holds it and its claim has not lapsed.
    func breakerState(now: Double) -> CircuitBreaker.State {
        switch state {
        case .closed: return .closed(failures: failures)
        case .open: return .open(until: openUntil)
        case .halfOpen: return .halfOpen(probeRunning: probeRunning(now: now))
        }
    }

    /// Takes the breaker's answer; a probe no longer running lets go of its owner.
    mutating func adopt(_ breaker: CircuitBreaker.State) {
        switch breaker {
        case .closed(let f):
            state = .closed
            failures = f
        case .open(let until):
            state = .open
            failures = 0
            openUntil = until
        case .halfOpen(let running):
            state = .halfOpen
            if running { return }
        }
        probeOwner = nil
        probeUntil = 0
    }
}
