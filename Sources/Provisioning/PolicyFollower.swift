// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubLog
import Store
import Synchronization

/// With several nodes on one store: puts in force on this node the policy version another
/// node applied or confirmed (`PUT /admin/policy`, a confirmed held rollout), so that every
/// node decides with the same policy.
///
/// It looks when told (`WakeChannel.policy`, sent by the node that put the version in
/// force), every `pollSeconds` in case a notification was lost, and whenever the engine's
/// claim reads a newer version than it runs: jobs a rollout queued are claimed only after the
/// version is committed, so they always run under it. Then:
/// - the version's text is parsed here (secret files are this node's) and put in force, and
///   written to this node's policy file, so a restart runs it too;
/// - the people written here since this node last saw its version current are queued again:
///   their writes were decided under the old policy (the applying node's own rollout only
///   saw its own writes), and the engine decides each one again.
/// Jobs running while the version changes run again (`ProvisioningEngine`).
public final class PolicyFollower: HubService {
    public var serviceName: String { "policy-follower" }
    private let engine: ProvisioningEngine
    private let store: any HubStore
    private let parse: @Sendable ([UInt8]) throws -> Policy
    private let policyFile: String?
    private let logger: Logger
    private let pollSeconds: Double

    private struct State {
        /// System time of the last look that found this node current: writes after it may
        /// have been decided under a policy already replaced.
        var currentSince = Timestamp.now()
        /// A version that failed to parse here, so its error is logged once.
        var failed: Int64? = nil
        /// A version was followed at the last look: the next look that finds this node current
        /// queues the late writers once more (a write decided under the old policy may have
        /// committed just after the first scan).
        var rescan: Int64? = nil
    }
    private let state = Mutex(State())
    /// One look at a time (the poll, a notification and a claim may come together).
    private let looking = NSLock()
    private let wake = NSCondition()
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    public init(
        engine: ProvisioningEngine, store: any HubStore, parse: @escaping @Sendable ([UInt8]) throws -> Policy,
        policyFile: String?, logger: Logger, pollSeconds: Double = 2
    ) {
        self.engine = engine
        self.store = store
        self.parse = parse
        self.policyFile = policyFile
        self.logger = logger
        self.pollSeconds = pollSeconds
    }

    public func start() {
        engine.followPolicy { [weak self] newest in self?.look(newest: newest) }
        let t = Thread { [self] in
            defer { finished.signal() }
            while waitForNextLook() { look(newest: nil) }
        }
        t.name = "policy-follower"
        t.start()
    }

    public func stop() {
        wake.lock()
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake.signal()
        wake.unlock()
        finished.wait()
    }

    /// A notification: look now.
    public func poke() {
        wake.lock()
        wake.signal()
        wake.unlock()
    }

    private func waitForNextLook() -> Bool {
        wake.lock()
        defer { wake.unlock() }
        if !stopping.load(ordering: .sequentiallyConsistent) {
            _ = wake.wait(until: Date().addingTimeInterval(pollSeconds))
        }
        return !stopping.load(ordering: .sequentiallyConsistent)
    }

    /// Compares the newest active version (read now when `newest` is nil) with the one in
    /// force here, and follows it when it is newer. Storage trouble: the next look retries.
    func look(newest known: Int64?) {
        looking.lock()
        defer { looking.unlock() }
        let started = Timestamp.now()
        do {
            guard let newest = try known ?? store.read(snapshot: false, { try $0.newestActivePolicyVersion() })
            else { return }
            guard newest > engine.policies.version ?? 0 else {
                let (rescan, since) = state.withLock { ($0.rescan, $0.currentSince) }
                if let rescan { try requeueWritesSince(since, version: rescan) }
                state.withLock { s in
                    s.currentSince = started
                    s.rescan = nil
                }
                return
            }
            try follow(newest)
        } catch {
            logger.warning(
                "cannot look for a newer policy version; retrying",
                ["error": String(describing: error).prefix(200).description])
        }
    }

    private func follow(_ newest: Int64) throws {
        guard let version = try store.read({ try $0.policyVersion(newest) }), version.state == .active else { return }
        let policy: Policy
        do {
            policy = try parse(version.text)
        } catch {
            // A secret file this node lacks, say: it keeps the version it runs, and says so once.
            let first = state.withLock { s -> Bool in
                defer { s.failed = newest }
                return s.failed != newest
            }
            if first {
                logger.error(
                    "a policy version put in force on another node cannot run here; this node keeps the previous one",
                    ["policy.version": String(newest), "error": String(describing: error).prefix(300).description])
            }
            return
        }
        let since = state.withLock { $0.currentSince }
        engine.policies.replace(with: policy, version: newest)
        var fileError: String? = nil
        if let file = policyFile {
            do { try PolicyRollout.replaceFile(file, with: version.text) } catch { fileError = "\(error)" }
        }
        let requeued = try requeueWritesSince(since, version: newest)
        state.withLock { $0.rescan = newest }
        var fields = ["policy.version": String(newest), "people.requeued": String(requeued)]
        if let fileError { fields["policyFileError"] = String(fileError.prefix(200)) }
        logger.notice("policy version put in force on another node now runs here", fields)
    }

    /// Queues the people written since `since` (system time, a second of margin; members of
    /// groups written since too): they were decided under the previous policy, and the engine
    /// decides each one again. Returns how many.
    @discardableResult
    private func requeueWritesSince(_ since: Double, version: Int64) throws -> Int {
        let late = try PolicyRollout.peopleWritten(since: since - 1, store: store)
        try PolicyRollout.converge(late, version: version, engine: engine, store: store, markRolledOut: false)
        return late.count
    }
}
