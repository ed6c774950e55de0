// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
import JSONCore
import Provisioning
import TestSupport

/// The circuit breaker is a pure state machine: every (state, event) pair has one answer.
@Suite struct CircuitBreakerStateTests {
    typealias S = CircuitBreaker.State
    static let threshold = 3, open = 10.0, now = 100.0

    func breaker(_ state: S) -> CircuitBreaker {
        var b = CircuitBreaker(threshold: Self.threshold, openSeconds: Self.open)
        // Drive it into `state` through its own events (its state is not settable from outside).
        switch state {
        case .closed(let f):
            for _ in 0..<f { b.finished(.retryableFailure, now: Self.now) }
        case .open(let until):
            for _ in 0..<Self.threshold { b.finished(.retryableFailure, now: until - Self.open) }
        case .halfOpen(let running):
            for _ in 0..<Self.threshold { b.finished(.retryableFailure, now: Self.now - Self.open - 1) }
            _ = b.permits(now: Self.now, inFlight: 0, concurrency: 4)
            if running { b.started() }
        }
        #expect(b.state == state)
        return b
    }

    static let states: [S] = [
        .closed(failures: 0), .closed(failures: 2), .open(until: now + 5), .open(until: now - 1),
        .halfOpen(probeRunning: false), .halfOpen(probeRunning: true),
    ]

    @Test(arguments: [
        // (state, inFlight, permits, state after)
        (S.closed(failures: 0), 0, 4, S.closed(failures: 0)),
        (.closed(failures: 2), 3, 1, .closed(failures: 2)),
        (.open(until: now + 5), 0, 0, .open(until: now + 5)),
        (.open(until: now - 1), 0, 1, .halfOpen(probeRunning: false)),  // time up: half-open, one probe allowed
        (.open(until: now - 1), 2, 0, .halfOpen(probeRunning: false)),  // …once nothing else runs
        (.halfOpen(probeRunning: false), 0, 1, .halfOpen(probeRunning: false)),  // asking does not mark a probe running
        (.halfOpen(probeRunning: true), 0, 0, .halfOpen(probeRunning: true)),
    ])
    func permits(state: S, inFlight: Int, expected: Int, after: S) {
        var b = breaker(state)
        #expect(b.permits(now: Self.now, inFlight: inFlight, concurrency: 4) == expected)
        #expect(b.state == after)
    }

    @Test func started_marksOnlyAHalfOpenProbe() {
        let expected: [S: S] = [
            .closed(failures: 0): .closed(failures: 0), .closed(failures: 2): .closed(failures: 2),
            .open(until: Self.now + 5): .open(until: Self.now + 5),
            .open(until: Self.now - 1): .open(until: Self.now - 1),
            .halfOpen(probeRunning: false): .halfOpen(probeRunning: true),
            .halfOpen(probeRunning: true): .halfOpen(probeRunning: true),
        ]
        for s in Self.states {
            var b = breaker(s)
            b.started()
            #expect(b.state == expected[s], "\(s)")
        }
    }

    @Test func finished_everyStateAndOutcome() {
        let opened = S.open(until: Self.now + Self.open)
        // (state, outcome) → (state after, recovered)
        let table: [(S, CircuitBreaker.Outcome, S, Bool)] = [
            (.closed(failures: 0), .reached, .closed(failures: 0), false),
            (.closed(failures: 0), .retryableFailure, .closed(failures: 1), false),
            (.closed(failures: 0), .none, .closed(failures: 0), false),
            (.closed(failures: 2), .reached, .closed(failures: 0), false),
            (.closed(failures: 2), .retryableFailure, opened, false),
            (.closed(failures: 2), .none, .closed(failures: 2), false),
            (.open(until: Self.now + 5), .reached, .closed(failures: 0), true),
            (.open(until: Self.now + 5), .retryableFailure, .open(until: Self.now + 5), false),
            (.open(until: Self.now + 5), .none, .open(until: Self.now + 5), false),
            (.open(until: Self.now - 1), .reached, .closed(failures: 0), true),
            (.open(until: Self.now - 1), .retryableFailure, .open(until: Self.now - 1), false),
            (.open(until: Self.now - 1), .none, .open(until: Self.now - 1), false),
            (.halfOpen(probeRunning: false), .reached, .closed(failures: 0), true),
            (.halfOpen(probeRunning: false), .retryableFailure, opened, false),
            (.halfOpen(probeRunning: false), .none, .halfOpen(probeRunning: false), false),
            (.halfOpen(probeRunning: true), .reached, .closed(failures: 0), true),
            (.halfOpen(probeRunning: true), .retryableFailure, opened, false),
            // no verdict: the next job probes
            (.halfOpen(probeRunning: true), .none, .halfOpen(probeRunning: false), false),
        ]
        #expect(table.count == Self.states.count * 3)
        for (s, outcome, after, recovered) in table {
            var b = breaker(s)
            #expect(b.finished(outcome, now: Self.now) == recovered, "\(s) \(outcome)")
            #expect(b.state == after, "\(s) \(outcome)")
        }
    }

    /// The defect: half-open was marked as probing when no job was ready, and stayed so.
    @Test func halfOpenWithNoReadyJob_stillProbesLater() {
        var b = breaker(.open(until: Self.now - 1))
        #expect(b.permits(now: Self.now, inFlight: 0, concurrency: 4) == 1)  // no job ready: nothing started
        for t in 1...100 { #expect(b.permits(now: Self.now + Double(t), inFlight: 0, concurrency: 4) == 1) }
    }
}

/// Watchdog: after any outage pattern the queue drains within the backoff cap plus a few
/// seconds of the target coming back.
@Suite struct OutageWatchdogTests {
    enum Pattern: String, CaseIterable { case error5xx, rateLimitStorm, timeouts, stopped }

    @Test(arguments: Pattern.allCases)
    func afterAnOutage_theQueueDrains(pattern: Pattern) throws {
        var ehr = try EHRTestServer(timeoutDelay: 3)
        ehr.start()
        let port = ehr.port
        let hub = try LiveHub(policy: ehrPolicy(ehr))
        defer { hub.stop(); ehr.stop() }
        switch pattern {
        case .error5xx: ehr.setFault(.error5xx)
        case .rateLimitStorm: ehr.setFault(.rateLimit, retryAfter: 2)
        case .timeouts: ehr.setFault(.timeout)
        case .stopped: ehr.stop()
        }
        for i in 0..<40 {
            let r = try hub.call("POST", "/scim/v2/Users", body: person("p\(i)@x.org", title: "Registered Nurse"))
            #expect(r.status == 201)
        }
        func target() throws -> JSONObject? {
            try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.first?.objectValue
        }
        eventually("circuit opens", timeout: 20) { try target()?["circuit"]?.stringValue != "closed" }
        // Let the outage go on across several open/half-open cycles: the threshold's five
        // failures, then at least five failed probes.
        eventually("repeated failures", timeout: 30) {
            let jobs =
                try hub.call("GET", "/admin/jobs?state=pending", token: hub.admin).object["jobs"]?.arrayValue ?? []
            return jobs.reduce(0) { $0 + ($1.objectValue?["attempts"]?.numberValue?.int64 ?? 0) } >= 10
        }
        switch pattern {
        case .stopped:
            ehr = try EHRTestServer(port: port, timeoutDelay: 3)
            ehr.start()
        default:
            ehr.setFault(.none)
        }
        let back = Date()
        // Cap 0.5 s (LiveHub), Retry-After 2 s, connector timeout 2 s: all well within 8 s.
        eventually("queue drained", timeout: 8) { try target()?["queueDepth"] == .int(0) }
        eventually("everyone provisioned", timeout: 2) {
            (0..<40).allSatisfy { ehr.snapshot()["p\($0)@x.org"]?.roles == ["nurse@CLN-CEN"] }
        }
        #expect(try target()?["circuit"]?.stringValue == "closed")
        #expect(Date().timeIntervalSince(back) < 8)
    }
}
