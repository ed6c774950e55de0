// SPDX-License-Identifier: Apache-2.0

/// A target's circuit as every node sees it: the shared half of the engine's circuit
/// breaker (`CircuitBreaker` in Provisioning stays the pure state machine; this is what it
/// is loaded from and saved to). One row per target that ever failed.
public struct SharedCircuit: Sendable, Equatable {
    public enum State: String, Sendable { case closed, open, halfOpen = "half-open" }
    public var state: State
    /// Consecutive retryable failures, on any node, while closed.
    public var failures: Int
    /// When an open circuit lets one probe through (engine clock).
    public var openUntil: Double
    /// The node running the one half-open probe, and until when its claim holds (a node that
    /// dies mid-probe stops renewing it; another probes after it lapses).
    public var probeOwner: String?
    public var probeUntil: Double
    /// When the outage began (the circuit left closed), until it closes again.
    public var downSince: Double?
    /// True once the outage was announced (`target.unavailable`), so exactly one node does.
    public var announced: Bool

    public init(
        state: State = .closed, failures: Int = 0, openUntil: Double = 0, probeOwner: String? = nil,
        probeUntil: Double = 0, downSince: Double? = nil, announced: Bool = false
    ) {
        self.state = state
        self.failures = failures
        self.openUntil = openUntil
        self.probeOwner = probeOwner
        self.probeUntil = probeUntil
        self.downSince = downSince
        self.announced = announced
    }

    /// A target with no row: closed, no failures.
    public static let closed = SharedCircuit()

    /// True while a node holds the half-open probe.
    public func probeRunning(now: Double) -> Bool {
        state == .halfOpen && probeOwner != nil && probeUntil > now
    }
}

/// What the nodes sharing a store agree on about each target and each failing client, so a
/// limit holds for the cluster rather than per node:
/// - **slots**: `concurrency` leased rows per target; a node runs a job on a target only
///   while it holds a slot, so all nodes together never exceed the target's concurrency;
/// - **circuits**: the circuit breaker's state (`SharedCircuit`);
/// - **auth failures**: failed authentications per key (client address, token id,
///   principal), counted for the throttles on every node.
/// Every mutation here is a lease or a counter whose loss in a crash does no harm: callers
/// write them with `durable: false`.
public protocol ClusterLimitStore {
    // MARK: Slots

    /// Makes `target` have the slots `0..<concurrency`: missing ones are added free, free
    /// ones above it are dropped. A slot held above a lowered limit is never taken again
    /// (takes look below the limit only) and its holder gives it back when its job ends.
    func sizeTargetSlots(target: String, concurrency: Int) throws

    /// Takes up to `count` slots of `target` below `concurrency` that are free or whose
    /// lease ran out (their holder died), for `owner` until `leaseUntil`, in one statement.
    /// `owner`'s own lapsed slots are not taken twice (it still counts them). Returns how
    /// many it took.
    func takeTargetSlots(target: String, concurrency: Int, count: Int, owner: String, leaseUntil: Double, now: Double)
        throws -> Int

    /// Extends every slot `owner` still holds to `until`; returns how many it holds per
    /// target (fewer than it thought when a lapsed one was taken by another node).
    func renewTargetSlots(owner: String, until: Double) throws -> [String: Int]

    /// Gives back up to `count` of `owner`'s slots on `target` (every one with nil); returns
    /// how many.
    @discardableResult
    func releaseTargetSlots(target: String?, owner: String, count: Int?) throws -> Int

    /// Frees every slot not held by `owner`. Only for a node alone on its store.
    @discardableResult
    func releaseTargetSlots(notHeldBy owner: String) throws -> Int

    /// Slots of `target` held now, per owner (for tests and `/admin`).
    func heldTargetSlots(target: String, now: Double) throws -> [String: Int]

    /// Says that `owner` has jobs to run on `target` and no slot, until `until` (it says so
    /// again while it waits): the nodes holding slots then keep only a fair share.
    func markSlotWaiter(target: String, owner: String, until: Double) throws

    /// The nodes waiting for a slot of `target` at `now`.
    func slotWaiters(target: String, now: Double) throws -> Set<String>

    // MARK: Circuits

    /// Every target's shared circuit (targets without a row are closed).
    func targetCircuits() throws -> [String: SharedCircuit]

    /// In a write: `target`'s circuit, its row created closed if missing and locked until the
    /// write commits (on PostgreSQL `FOR UPDATE`; SQLite's single writer is the lock), so a
    /// read-decide-save on it is atomic across nodes.
    func lockTargetCircuit(target: String) throws -> SharedCircuit

    /// Stores `target`'s circuit (after `lockTargetCircuit` in the same write).
    func saveTargetCircuit(target: String, _ circuit: SharedCircuit) throws

    /// Takes the half-open probe of `target` for `owner` until `until`, when the circuit's
    /// open time is up or its probe is free or lapsed: one conditional update, so exactly one
    /// node wins. True when `owner` holds it.
    func takeCircuitProbe(target: String, owner: String, until: Double, now: Double) throws -> Bool

    /// Extends the probes `owner` holds to `until`.
    func renewCircuitProbes(owner: String, until: Double) throws

    /// Frees `owner`'s probe of `target` without a verdict (it had no job to run).
    func releaseCircuitProbe(target: String, owner: String) throws

    /// Frees every probe not held by `owner`. Only for a node alone on its store.
    func releaseCircuitProbes(notHeldBy owner: String) throws

    // MARK: Auth failures

    /// The failure counts of `keys` whose window started after `since`.
    func authFailures(keys: [String], since: Double) throws -> [String: AuthFailureCount]

    /// Counts one failure of `key`: in its window if that started after `now - window`, else
    /// in a new window starting at `now`.
    func recordAuthFailure(key: String, now: Double, window: Double) throws

    /// Bounds the table: deletes windows that ended before `now - window` for keys starting
    /// with `prefix`; if more than `cap` rows remain, deletes that prefix's keys with fewer
    /// than `limit` failures (the throttled ones stay). Returns the rows left.
    @discardableResult
    func pruneAuthFailures(prefix: String, now: Double, window: Double, cap: Int, limit: Int) throws -> Int
}

/// Failed authentications of one key in its current window.
public struct AuthFailureCount: Sendable, Equatable {
    public let failures: Int
    public let windowStart: Double
    public init(failures: Int, windowStart: Double) {
        self.failures = failures
        self.windowStart = windowStart
    }
}

/// Keys of the auth-failure table: each throttle's keys start with its own prefix.
public enum AuthFailureKeys {
    /// The smallest string greater than every string starting with `prefix` (its last
    /// character moved up by one): `key >= prefix AND key < upperBound` is a range on the
    /// primary key, with no pattern to escape.
    public static func upperBound(_ prefix: String) -> String {
        guard let last = prefix.unicodeScalars.last, let next = Unicode.Scalar(last.value + 1) else {
            return prefix + "\u{10FFFF}"
        }
        return String(prefix.unicodeScalars.dropLast()) + String(next)
    }
}
