// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Testing
import HubBase

/// Services start in order and stop in reverse; a failed start stops what already runs.
@Suite struct ServiceRunnerTests {
    final class Recorder: Sendable {
        let log = Mutex<[String]>([])
        func add(_ s: String) { log.withLock { $0.append(s) } }
        var entries: [String] { log.withLock { $0 } }
    }

    struct Probe: HubService {
        let serviceName: String
        let recorder: Recorder
        var fails = false
        func start() throws {
            if fails { throw ProbeError() }
            recorder.add("start \(serviceName)")
        }
        func stop() { recorder.add("stop \(serviceName)") }
    }

    struct ProbeError: Error {}

    @Test func startsInOrder_stopsInReverse() throws {
        let r = Recorder()
        let runner = ServiceRunner([
            Probe(serviceName: "a", recorder: r), Probe(serviceName: "b", recorder: r),
            Probe(serviceName: "c", recorder: r),
        ])
        try runner.start()
        runner.stop()
        #expect(r.entries == ["start a", "start b", "start c", "stop c", "stop b", "stop a"])
    }

    @Test func aFailedStart_stopsWhatAlreadyRuns_andRethrows() {
        let r = Recorder()
        let runner = ServiceRunner([
            Probe(serviceName: "a", recorder: r), Probe(serviceName: "b", recorder: r),
            Probe(serviceName: "c", recorder: r, fails: true), Probe(serviceName: "d", recorder: r),
        ])
        #expect(throws: ProbeError.self) { try runner.start() }
        #expect(r.entries == ["start a", "start b", "stop b", "stop a"])
    }

    @Test func manualClock_movesOnlyWhenTold_andTellsItsObservers() {
        let clock = ManualClock(1000)
        let seen = Recorder()
        clock.onChange { seen.add("changed to \(Int(clock.now()))") }
        #expect(clock.now() == 1000)
        clock.advance(by: 60)
        clock.set(5000)
        #expect(clock.now() == 5000)
        #expect(seen.entries == ["changed to 1060", "changed to 5000"])
    }
}
