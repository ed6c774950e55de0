// SPDX-License-Identifier: Apache-2.0

/// A queued convergence job.
public struct ProvisioningJob: Sendable, Equatable {
    public let personID: String
    public let target: String
    public let priority: Int
    public let state: JobState
    public let generation: Int64
    public let attempts: Int
    public let notBefore: Double
    public let enqueued: Double
    public let lastError: String?
}

/// Queue statistics for one target.
public struct QueueStats: Sendable {
    public let pending: Int
    public let dead: Int
    /// Jobs a feed hold keeps (they run when the hold is released).
    public var held: Int = 0
    public let oldestPending: Double?
}

/// The durable provisioning queue: one job per (person, target), claimed with a lease.
public protocol JobQueue {
    /// Marks (person, target) dirty. One row per pair: a second change before the first
    /// ran only bumps the generation and keeps the higher priority (lower number).
    /// A dead-lettered pair comes back to life: the change may be what fixes it.
    func enqueue(personID: String, target: String, priority: Int, now: Double) throws
    /// `enqueue` for several targets of one person (one statement where the backend can).
    func enqueue(personID: String, jobs: [(target: String, priority: Int)], now: Double) throws
    /// A queued or running job of the pair runs again (its generation moves on), though the
    /// decision now equals what was last applied: a run under way may be applying a state
    /// this change has already made stale. Dead letters stay as they are.
    func touchJob(personID: String, target: String) throws

    /// Runs a pair's job before everything else, now (break-glass: an emergency does not wait out a backoff).
    func expedite(personID: String, target: String, now: Double) throws

    /// Jobs of `target` due at `now` and not leased by a running worker, leavers first.
    func readyJobs(target: String, now: Double, limit: Int) throws -> [ProvisioningJob]

    /// Claims up to `limit` due jobs of `target` for `owner` until `leaseUntil`, leavers
    /// first. A job leased by someone else is skipped until its lease runs out (its worker
    /// died). Runs on the writer, so two claims never take the same job.
    func claimJobs(target: String, limit: Int, owner: String, leaseUntil: Double, now: Double) throws
        -> [ProvisioningJob]

    /// Keeps `owner`'s lease on a job until `until` without running it (the hub's own storage
    /// failed during the run: the job cools down instead of retrying in a tight loop).
    func extendLease(personID: String, target: String, owner: String, until: Double) throws

    /// Drops every lease not held by `owner`. Only for a node that knows it is alone on the
    /// store (SQLite, under the serve lock): leases left by a process that died are void.
    @discardableResult
    func releaseLeases(notHeldBy owner: String) throws -> Int

    /// Jobs leased now, by anyone (a gauge, and for tests).
    func leasedJobs(now: Double) throws -> Int

    /// Jobs leased now, counted per lease owner (a node id), for `/admin/nodes`.
    func leasedJobsByOwner(now: Double) throws -> [String: Int]

    /// The earliest future time a pending job falls due or a lease runs out, for the
    /// dispatcher's sleep.
    func nextDue(after now: Double) throws -> Double?

    /// One job, or nil.
    func job(personID: String, target: String) throws -> ProvisioningJob?

    /// Jobs for the admin API, filtered by target and state.
    func jobs(target: String?, state: JobState?, limit: Int) throws -> [ProvisioningJob]

    /// Done with `generation`: removes the job unless a newer change arrived meanwhile,
    /// in which case it runs again at once. Returns true when the job is gone.
    @discardableResult
    func finishJob(personID: String, target: String, generation: Int64, now: Double) throws -> Bool

    /// Keeps the job for later (retention period, or a retry after a retryable failure).
    func deferJob(personID: String, target: String, until: Double, attempts: Int?, error: String?) throws

    /// A target is back: jobs waiting out a retry after a failure become due now (jobs
    /// deferred for other reasons, such as retention, keep their time). Returns how many.
    @discardableResult
    func releaseBackoff(target: String, now: Double) throws -> Int

    /// Moves the job of `generation` to the dead letter with the target's reason. When a
    /// newer change arrived meanwhile (a leaver, say) the job is not dead: it runs again now
    /// with a fresh count. Returns true when it was dead-lettered.
    @discardableResult
    func deadLetter(personID: String, target: String, attempts: Int, error: String, generation: Int64, now: Double)
        throws -> Bool

    /// Admin re-drive: a dead job runs again now. False when there is no dead job.
    func redrive(personID: String, target: String, now: Double) throws -> Bool

    func queueStats(target: String, now: Double) throws -> QueueStats
}

extension JobQueue {
    public func enqueue(personID: String, jobs: [(target: String, priority: Int)], now: Double) throws {
        for j in jobs { try enqueue(personID: personID, target: j.target, priority: j.priority, now: now) }
    }
}
