// SPDX-License-Identifier: Apache-2.0
import HubBase
import Synchronization

/// What the engine counts for `/metrics`, per target: how long a change took to reach the
/// target (from the first change of a job to its convergence), and connector failures by
/// class. In memory, per node: Prometheus adds the nodes up.
public final class EngineMetrics: Sendable {
    public struct Target: Sendable {
        public init() {}
        public var convergence = Histogram(bounds: Histogram.convergenceBounds)
        /// Failures by `ConnectorError.Kind` (`retryable`, `permanent`).
        public var errors: [String: UInt64] = [:]
        public var deadLetters: UInt64 = 0
    }

    private let targets = Mutex<[String: Target]>([:])

    public init() {}

    func converged(_ target: String, seconds: Double) {
        targets.withLock { $0[target, default: Target()].convergence.observe(max(0, seconds)) }
    }

    func failed(_ target: String, kind: String, dead: Bool) {
        targets.withLock {
            $0[target, default: Target()].errors[kind, default: 0] += 1
            if dead { $0[target, default: Target()].deadLetters += 1 }
        }
    }

    /// A copy of every target's figures.
    public func snapshot() -> [String: Target] { targets.withLock { $0 } }
}
