// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import ConnectorKit
import HubBase
import HubLog

/// The outcome of one probe of a target.
public struct ProbeResult: Sendable, Equatable {
    /// The target answered and accepted the hub's credentials.
    public let up: Bool
    /// When the probe finished (seconds since 1970, wall clock).
    public let checkedAt: Double
    /// How long the call took.
    public let seconds: Double
    /// Why it failed: the connector's classified reason, never personal data or secrets.
    public let error: String?
}

/// Probes every enabled target on a schedule, each from a thread of its own (a target that
/// hangs until its connector's timeout does not delay the others), so the admin API, the
/// console and `/readyz` show a down target before any change is queued for it (issue #15).
/// A change of state is logged once: down when a probe fails after success (or first), up
/// when it succeeds again. Probes do not move the circuit breaker: jobs decide that.
public final class TargetProbes: HubService {
    public var serviceName: String { "target-probes" }
    private let connectors: [String: any Connector]
    private let interval: Double
    private let logger: Logger
    private let results = Mutex<[String: ProbeResult]>([:])
    private let signal = NSCondition()
    private let stopped = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private let finished = NSCondition()

    /// `interval`: seconds between the end of one probe of a target and the start of the
    /// next; 0 turns scheduled probes off (`probeNow` still works).
    public init(connectors: [String: any Connector], interval: Double, logger: Logger) {
        self.connectors = connectors
        self.interval = interval
        self.logger = logger
    }

    /// The last probe of `target`, or nil before the first one finished.
    public func last(_ target: String) -> ProbeResult? { results.withLock { $0[target] } }

    /// Probes `target` now, records and returns the result; nil for a target without a connector.
    @discardableResult
    public func probeNow(_ target: String) -> ProbeResult? {
        guard let connector = connectors[target] else { return nil }
        let start = Date().timeIntervalSince1970
        var failure: String? = nil
        do { try connector.probe() } catch { failure = error.description }
        let end = Date().timeIntervalSince1970
        let result = ProbeResult(
            up: failure == nil, checkedAt: end, seconds: max(0, end - start),
            error: failure.map { String($0.prefix(300)) })
        let previous = results.withLock { r in
            defer { r[target] = result }
            return r[target]
        }
        announce(target, result, previous: previous)
        return result
    }

    private func announce(_ target: String, _ r: ProbeResult, previous: ProbeResult?) {
        if !r.up, previous?.up ?? true {
            logger.error(
                "the target does not answer its probe",
                [
                    "event": "target.probe.down", "target": target, "reason": r.error ?? "",
                ])
        } else if r.up, previous?.up == false {
            logger.info("the target answers its probe again", ["event": "target.probe.up", "target": target])
        }
    }

    public func start() throws {
        guard interval > 0 else { return }
        for target in connectors.keys.sorted() {
            running.add(1, ordering: .sequentiallyConsistent)
            let t = Thread { [self] in
                defer {
                    finished.lock()
                    running.subtract(1, ordering: .sequentiallyConsistent)
                    finished.broadcast()
                    finished.unlock()
                }
                while !stopped.load(ordering: .relaxed) {
                    probeNow(target)
                    signal.lock()
                    if !stopped.load(ordering: .relaxed) {
                        _ = signal.wait(until: Date().addingTimeInterval(interval))
                    }
                    signal.unlock()
                }
            }
            t.name = "probe-\(target)"
            t.start()
        }
    }

    /// Returns once every probe thread has ended (a probe in flight finishes its call first).
    public func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        signal.lock()
        signal.broadcast()
        signal.unlock()
        finished.lock()
        while running.load(ordering: .sequentiallyConsistent) > 0 { finished.wait() }
        finished.unlock()
    }
}
