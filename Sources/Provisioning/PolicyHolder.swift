// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// The policy the hub runs now, shared by the engine and every governance service, so a
/// version applied over the API takes effect everywhere at once. Targets are fixed for the
/// life of the process (their connectors and queues are built at start); a new version
/// changes packages, rules and mappings.
public final class PolicyHolder: Sendable {
    private let state: Mutex<Policy>

    public init(_ policy: Policy) { state = Mutex(policy) }

    public var current: Policy { state.withLock { $0 } }

    /// Puts `policy` in force.
    public func replace(with policy: Policy) { state.withLock { $0 = policy } }
}
