// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubLog
import Store
import Synchronization

/// With several nodes on one store: keeps the policy version another node applied or
/// confirmed (`PUT /admin/policy`, a confirmed held rollout) in force on this node too.
///
/// Writes do not wait for it: a write transaction that decided under the policy reads the
/// version in force on the audit chain's head row when it seals, and runs again under a
/// newer one, put in force first (`PostgresGroupCommit`, `ProvisioningEngine.adoptPolicy`).
/// So no node commits a decision or a job's result under a version older than the one in
/// force. The follower brings an idle node along too (told by `WakeChannel.policy`, and
/// every `pollSeconds` in case a notification was lost), rewrites this node's policy file so
/// a restart runs the version, and logs the change; a version whose text cannot run here (a
/// secret file this node lacks) is logged once, and the node answers writes 503 and
/// `/readyz` not ready until it can.
public final class PolicyFollower: HubService {
    public var serviceName: String { "policy-follower" }
    private let engine: ProvisioningEngine
    private let store: any HubStore
    private let parse: @Sendable ([UInt8]) throws -> Policy
    private let policyFile: String?
    private let logger: Logger
    private let pollSeconds: Double

    private struct State {
        /// Versions put in force here by a write or a look, not yet logged and written to the file.
        var followed: [Int64] = []
        /// Why a version cannot run here, so it is logged once.
        var failed: String? = nil
    }
    private let state = Mutex(State())
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
        // From the first write on, before the services start. Called inside a write (under the
        // engine's lock): note it, the thread does the rest.
        engine.followPolicy(parse: parse) { [weak self] version in
            self?.state.withLock { $0.followed.append(version) }
            self?.poke()
        }
    }

    public func start() {
        let t = Thread { [self] in
            defer { finished.signal() }
            while waitForNextLook() {
                look()
                report()
            }
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
        if !stopping.load(ordering: .sequentiallyConsistent), state.withLock({ $0.followed.isEmpty }) {
            _ = wake.wait(until: Date().addingTimeInterval(pollSeconds))
        }
        return !stopping.load(ordering: .sequentiallyConsistent)
    }

    /// Reads the newest active version and puts it in force if this node runs an older one.
    /// Storage trouble: the next look retries (and writes read the version themselves).
    private func look() {
        do {
            guard let newest = try store.read(snapshot: false, { try $0.newestActivePolicyVersion() }) else { return }
            // A version that could not run here is tried again (a secret file may be there now).
            try engine.adoptPolicy(newest, retryFailed: true) { try store.read { try $0.policyVersion(newest) } }
        } catch {
            let behind = engine.policyBehind
            let first = state.withLock { s -> Bool in
                guard let behind else { return true }
                defer { s.failed = behind }
                return s.failed != behind
            }
            guard first else { return }
            if let behind {
                logger.error(
                    "a policy version in force on another node cannot run here: this node answers writes 503 "
                        + "and /readyz not ready until it can", ["error": String(behind.prefix(300))])
            } else {
                logger.warning(
                    "cannot look for a newer policy version; retrying",
                    ["error": String(describing: error).prefix(200).description])
            }
        }
    }

    /// Logs each version put in force here and writes the newest to this node's policy file.
    private func report() {
        let versions = state.withLock { s -> [Int64] in
            defer { s.followed = [] }
            return s.followed
        }
        // Only the version this node runs now: an older one a write adopted never overwrites
        // the file with a newer one this node applied itself.
        guard let newest = versions.max(), newest == engine.policies.version else { return }
        var fields = ["policy.version": String(newest)]
        if let file = policyFile {
            do {
                guard let stored = try store.read({ try $0.policyVersion(newest) }) else { return }
                try PolicyRollout.replaceFile(file, with: stored.text)
            } catch {
                // A read-only mount, say: the next start finds the newer version in the database.
                fields["policyFileError"] = String(describing: error).prefix(200).description
            }
        }
        logger.notice("policy version put in force on another node now runs here", fields)
    }
}
