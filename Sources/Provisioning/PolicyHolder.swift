// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The policy the hub runs now, shared by the engine and every governance service, so a
/// version applied over the API takes effect everywhere at once. Targets are fixed for the
/// life of the process (their connectors and queues are built at start); a new version
/// changes packages, rules and mappings.
public final class PolicyHolder: Sendable {
    private let state: Mutex<(policy: Policy, version: Int64?)>

    public init(_ policy: Policy) { state = Mutex((policy, nil)) }

    public var current: Policy { state.withLock { $0.policy } }

    /// The stored version in force (nil until the start-up has matched the policy with the
    /// store's versions, and for a policy without a store: the command line's runs).
    public var version: Int64? { state.withLock { $0.version } }

    /// The policy in force and its version, read together.
    public var inForce: (policy: Policy, version: Int64?) { state.withLock { $0 } }

    /// Puts `policy`, stored as `version`, in force.
    public func replace(with policy: Policy, version: Int64?) { state.withLock { $0 = (policy, version) } }

    /// Puts `policy`, stored as `version`, in force unless a newer version is in force
    /// already (another node's, adopted meanwhile): versions only move forward. Returns
    /// whether it did.
    @discardableResult
    public func advance(to policy: Policy, version: Int64) -> Bool {
        state.withLock { s in
            guard version > s.version ?? 0 else { return false }
            s = (policy, version)
            return true
        }
    }

    /// Records which stored version the policy in force is.
    func markInForce(_ version: Int64) { state.withLock { $0.version = version } }
}
