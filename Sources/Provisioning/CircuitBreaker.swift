// SPDX-License-Identifier: Apache-2.0

/// A target's circuit breaker as a pure state machine: no clock, no locks, no I/O. The
/// engine feeds it events under its lock and acts on what it answers; the transitions are
/// tested exhaustively.
///
/// ```
///            failure × threshold                 openSeconds passed
///  closed ───────────────────────▶ open ──────────────────────────────▶ half-open (no probe)
///    ▲                              ▲                                        │ a job starts
///    │ success (any state)          │ probe fails                            ▼
///    └──────────────────────────────┴──────────────────────────── half-open (probe running)
/// ```
/// Half-open lets exactly one job through, and only once a job is actually started: asking
/// for permission never marks a probe as running (that mistake left a circuit half-open
/// forever when no job was ready at that moment). A probe that ends without a verdict
/// (storage trouble) lets the next job probe.
public struct CircuitBreaker: Sendable, Equatable {
    public enum State: Sendable, Hashable {
        case closed(failures: Int)
        case open(until: Double)
        case halfOpen(probeRunning: Bool)
    }

    /// How a job on the target ended, as the breaker sees it.
    public enum Outcome: Sendable, Equatable {
        /// The target answered (success, or a permanent refusal: it is up).
        case reached
        /// Network error, timeout, 5xx, 429: the target may be down.
        case retryableFailure
        /// No verdict about the target (storage failure, job skipped).
        case none
    }

    public let threshold: Int
    public let openSeconds: Double
    public private(set) var state: State = .closed(failures: 0)

    public init(threshold: Int, openSeconds: Double) {
        self.threshold = max(1, threshold)
        self.openSeconds = openSeconds
    }

    /// A breaker resumed in `state`: the engine keeps each target's state in the store, so
    /// every node sees one circuit, and runs each event through this machine on the state
    /// it read (under the row's lock) before saving the answer back.
    public init(threshold: Int, openSeconds: Double, state: State) {
        self.init(threshold: threshold, openSeconds: openSeconds)
        self.state = state
    }

    /// How many more jobs may start now, `inFlight` running, at most `concurrency` at once.
    /// An open circuit whose time is up becomes half-open here.
    public mutating func permits(now: Double, inFlight: Int, concurrency: Int) -> Int {
        if case .open(let until) = state {
            guard now >= until else { return 0 }
            state = .halfOpen(probeRunning: false)
        }
        switch state {
        case .closed: return max(0, concurrency - inFlight)
        case .halfOpen(let running): return !running && inFlight == 0 ? 1 : 0
        case .open: return 0
        }
    }

    /// A job was started on the target (after `permits`).
    public mutating func started() {
        if case .halfOpen(false) = state { state = .halfOpen(probeRunning: true) }
    }

    /// A job ended. Returns true when this closed a circuit that was open or half-open (the
    /// target is back: jobs waiting out their backoff may run now).
    @discardableResult
    public mutating func finished(_ outcome: Outcome, now: Double) -> Bool {
        switch (state, outcome) {
        case (.closed, .reached):
            state = .closed(failures: 0)
            return false
        case (.open, .reached), (.halfOpen, .reached):
            state = .closed(failures: 0)
            return true
        case (.closed(let f), .retryableFailure):
            state = f + 1 >= threshold ? .open(until: now + openSeconds) : .closed(failures: f + 1)
            return false
        case (.halfOpen, .retryableFailure):
            state = .open(until: now + openSeconds)
            return false
        case (.open, .retryableFailure):
            return false  // a job started before the circuit opened: it stays open as it is
        case (.halfOpen(true), .none):
            state = .halfOpen(probeRunning: false)  // no verdict: the next job probes
            return false
        case (_, .none):
            return false
        }
    }

    /// The state for the admin API.
    public func circuitState(now: Double) -> CircuitState {
        switch state {
        case .closed: return .closed
        case .open(let until): return now >= until ? .halfOpen : .open
        case .halfOpen: return .halfOpen
        }
    }
}
