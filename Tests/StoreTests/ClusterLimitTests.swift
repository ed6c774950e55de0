// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import HubLog
@testable import Store
import TestSupport

/// Limits that hold for every node on one store: a target's slots (its concurrency), its
/// shared circuit with one half-open probe, and the auth-failure counts. Each test runs on
/// SQLite and on PostgreSQL; the races run writes from several threads at once, as several
/// nodes would.
@Suite struct ClusterLimitTests {
    private func take(_ t: TempStore, _ owner: String, _ count: Int, concurrency: Int = 2, now: Double = 100) throws
        -> Int
    {
        try t.store.write(isolated: true, durable: false) {
            try $0.connection.takeTargetSlots(
                target: "ehr", concurrency: concurrency, count: count, owner: owner, leaseUntil: now + 12, now: now)
        }
    }

    private func held(_ t: TempStore, now: Double = 100) throws -> [String: Int] {
        try t.store.read { try $0.heldTargetSlots(target: "ehr", now: now) }
    }

    // MARK: - Slots

    @Test(arguments: StoreBackend.allCases)
    func slots_neverMoreThanConcurrency_freedByReleaseOrLapse(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        #expect(try take(t, "a", 1) == 0)  // no slots before the target is sized
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 2) }
        #expect(try take(t, "a", 3) == 2)  // asks for three, the limit is two
        #expect(try take(t, "b", 1) == 0)
        #expect(try held(t) == ["a": 2])
        // a gives one back: b gets it.
        #expect(try t.store.write { try $0.connection.releaseTargetSlots(target: "ehr", owner: "a", count: 1) } == 1)
        #expect(try take(t, "b", 2) == 1)
        #expect(try held(t) == ["a": 1, "b": 1])
        // b renews in time; a stops renewing (it died): at 113 its slot has lapsed and c takes
        // it. a's own lapsed slot is never taken twice by a itself.
        #expect(try t.store.write { try $0.connection.renewTargetSlots(owner: "b", until: 125) } == ["ehr": 1])
        #expect(try take(t, "a", 1, now: 113) == 0)
        #expect(try take(t, "c", 2, now: 113) == 1)
        // a, back, renews and learns it holds nothing.
        #expect(try t.store.write { try $0.connection.renewTargetSlots(owner: "a", until: 125) } == [:])
        #expect(try held(t, now: 113) == ["b": 1, "c": 1])
        // Every slot of one owner back at once (a node stopping).
        #expect(try t.store.write { try $0.connection.releaseTargetSlots(target: nil, owner: "c", count: nil) } == 1)
        #expect(try held(t, now: 113) == ["b": 1])
    }

    @Test(arguments: StoreBackend.allCases)
    func slots_resizedDown_freeSlotsAboveTheLimitGo_heldOnesAreNeverTakenAgain(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 4) }
        #expect(try take(t, "a", 4, concurrency: 4) == 4)
        // The highest go back first: slots 3 and 2.
        try t.store.write { try $0.connection.releaseTargetSlots(target: "ehr", owner: "a", count: 2) }
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 1) }
        // Slot 1 is above the new limit but held: it stays a's until given back, and nobody
        // takes a slot above the limit meanwhile.
        #expect(try held(t) == ["a": 2])
        #expect(try take(t, "b", 1, concurrency: 1) == 0)
        try t.store.write { try $0.connection.releaseTargetSlots(target: "ehr", owner: "a", count: nil) }
        #expect(try take(t, "b", 3, concurrency: 1) == 1)
        // Sizing up again adds slots.
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 3) }
        #expect(try take(t, "c", 5, concurrency: 3) == 2)
    }

    @Test(arguments: StoreBackend.allCases)
    func slots_takenAtOnceByManyNodes_neverExceedTheLimit(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 3) }
        let taken = Mutex<[String: Int]>([:])
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            let n = (try? take(t, "node-\(i)", 2, concurrency: 3)) ?? -100
            taken.withLock { $0["node-\(i)"] = n }
        }
        let all = taken.withLock { $0 }
        #expect(all.values.allSatisfy { $0 >= 0 }, "a take failed: \(all)")
        #expect(all.values.reduce(0, +) == 3, "\(all)")
        #expect(try held(t).values.reduce(0, +) == 3)
    }

    @Test(arguments: StoreBackend.allCases)
    func slotWaiters_areListedUntilTheirMarkEnds(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write(isolated: true, durable: false) { w in
            try w.connection.markSlotWaiter(target: "ehr", owner: "b", until: 103)
            try w.connection.markSlotWaiter(target: "ehr", owner: "c", until: 101)
            try w.connection.markSlotWaiter(target: "ldap", owner: "d", until: 103)
        }
        #expect(try t.store.read { try $0.slotWaiters(target: "ehr", now: 100) } == ["b", "c"])
        #expect(try t.store.read { try $0.slotWaiters(target: "ehr", now: 102) } == ["b"])
        // Marked again, it waits longer; a mark long ended is deleted by the next one.
        try t.store.write { try $0.connection.markSlotWaiter(target: "ehr", owner: "c", until: 170) }
        #expect(try t.store.read { try $0.slotWaiters(target: "ehr", now: 150) } == ["c"])
        #expect(try t.store.read { try $0.slotWaiters(target: "ldap", now: 100) } == ["d"])
    }

    @Test(arguments: StoreBackend.allCases)
    func aSoleNode_freesSlotsAndProbesLeftByADeadProcess(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { try $0.connection.sizeTargetSlots(target: "ehr", concurrency: 2) }
        #expect(try take(t, "dead", 2) == 2)
        try t.store.write { w in
            try w.connection.saveTargetCircuit(target: "ehr", SharedCircuit(state: .open, openUntil: 90))
            #expect(try w.connection.takeCircuitProbe(target: "ehr", owner: "dead", until: 400, now: 100))
        }
        try t.store.write { w in
            try w.connection.releaseTargetSlots(notHeldBy: "me")
            try w.connection.releaseCircuitProbes(notHeldBy: "me")
        }
        #expect(try take(t, "me", 2) == 2)
        #expect(
            try t.store.write { try $0.connection.takeCircuitProbe(target: "ehr", owner: "me", until: 112, now: 100) })
    }

    // MARK: - Circuits

    @Test(arguments: StoreBackend.allCases)
    func circuit_isShared_andExactlyOneNodeTakesTheProbe(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        #expect(try t.store.read { try $0.targetCircuits() }.isEmpty)
        // A node locks the row (created closed) and opens it until 110.
        try t.store.write { w in
            let c = try w.connection.lockTargetCircuit(target: "ehr")
            #expect(c == .closed)
            try w.connection.saveTargetCircuit(
                target: "ehr", SharedCircuit(state: .open, openUntil: 110, downSince: 100))
        }
        let seen = try #require(try t.store.read { try $0.targetCircuits()["ehr"] })
        #expect(seen.state == .open && seen.openUntil == 110 && seen.downSince == 100 && !seen.announced)
        @Sendable func probe(_ owner: String, now: Double) throws -> Bool {
            try t.store.write(isolated: true, durable: false) {
                try $0.connection.takeCircuitProbe(target: "ehr", owner: owner, until: now + 12, now: now)
            }
        }
        #expect(try !probe("a", now: 105))  // still open
        // The open time is up: of twelve nodes asking at once, one gets the probe.
        let winners = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            if (try? probe("node-\(i)", now: 111)) == true { winners.withLock { $0.append("node-\(i)") } }
        }
        let winner = try #require(winners.withLock { $0 }.first)
        #expect(winners.withLock { $0 }.count == 1)
        let halfOpen = try #require(try t.store.read { try $0.targetCircuits()["ehr"] })
        #expect(halfOpen.state == .halfOpen && halfOpen.probeOwner == winner)
        #expect(halfOpen.probeRunning(now: 112) && !halfOpen.probeRunning(now: 124))
        // Its renewal keeps others off; once it lapses (the node died) another node probes.
        try t.store.write { try $0.connection.renewCircuitProbes(owner: winner, until: 130) }
        #expect(try !probe("late", now: 125))
        #expect(try probe("late", now: 131))
        // A probe with no job to run is given back without a verdict.
        try t.store.write { try $0.connection.releaseCircuitProbe(target: "ehr", owner: "late") }
        let freed = try #require(try t.store.read { try $0.targetCircuits()["ehr"] })
        #expect(freed.state == .halfOpen && freed.probeOwner == nil)
        #expect(try probe("next", now: 132))
    }

    @Test(arguments: StoreBackend.allCases)
    func circuit_lockedTransitions_fromManyNodes_loseNoFailure(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        // Twenty nodes count a failure each at once, under the row's lock: none is lost.
        DispatchQueue.concurrentPerform(iterations: 20) { _ in
            _ = try? t.store.write { w in
                var c = try w.connection.lockTargetCircuit(target: "ehr")
                c.failures += 1
                try w.connection.saveTargetCircuit(target: "ehr", c)
            }
        }
        #expect(try t.store.read { try $0.targetCircuits()["ehr"]?.failures } == 20)
    }

    // MARK: - Auth failures

    @Test(arguments: StoreBackend.allCases)
    func authFailures_countPerWindow_andTheTableStaysBounded(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        func fail(_ key: String, at now: Double) throws {
            try t.store.write(isolated: true, durable: false) {
                try $0.connection.recordAuthFailure(key: key, now: now, window: 60)
            }
        }
        for i in 0..<3 { try fail("auth:addr:1", at: 100 + Double(i)) }
        try fail("auth:token:x", at: 101)
        try fail("mfa:ana", at: 101)
        var counts = try t.store.read { try $0.authFailures(keys: ["auth:addr:1", "auth:nobody"], since: 102 - 60) }
        #expect(counts == ["auth:addr:1": AuthFailureCount(failures: 3, windowStart: 100)])
        // The window ended: the next failure starts a new one; reads ignore an ended window.
        #expect(try t.store.read { try $0.authFailures(keys: ["auth:addr:1"], since: 161 - 60) }.isEmpty)
        try fail("auth:addr:1", at: 161)
        counts = try t.store.read { try $0.authFailures(keys: ["auth:addr:1"], since: 161 - 60) }
        #expect(counts["auth:addr:1"] == AuthFailureCount(failures: 1, windowStart: 161))
        // Pruning deletes the prefix's ended windows only (the step-up throttle's stay).
        #expect(
            try t.store.write {
                try $0.connection.pruneAuthFailures(prefix: "auth:", now: 170, window: 60, cap: 100, limit: 10)
            } == 2)
        // Past the cap, the prefix's keys below the limit go; a throttled key stays.
        for _ in 0..<2 { try fail("auth:addr:2", at: 170) }
        try fail("auth:addr:3", at: 170)
        let left = try t.store.write {
            try $0.connection.pruneAuthFailures(prefix: "auth:", now: 171, window: 60, cap: 2, limit: 2)
        }
        #expect(left == 2)
        let keys = ["auth:addr:1", "auth:addr:2", "auth:addr:3", "mfa:ana"]
        #expect(Set(try t.store.read { try $0.authFailures(keys: keys, since: 0) }.keys) == ["auth:addr:2", "mfa:ana"])
    }

    @Test(arguments: StoreBackend.allCases)
    func authFailures_fromManyNodesAtOnce_areAllCounted(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        DispatchQueue.concurrentPerform(iterations: 30) { _ in
            _ = try? t.store.write(isolated: true, durable: false) {
                try $0.connection.recordAuthFailure(key: "auth:addr:9", now: 100, window: 60)
            }
        }
        #expect(
            try t.store.read { try $0.authFailures(keys: ["auth:addr:9"], since: 0)["auth:addr:9"]?.failures } == 30)
    }

    @Test func upperBound_ofAPrefix_boundsExactlyItsKeys() {
        #expect(AuthFailureKeys.upperBound("auth:") == "auth;")
        #expect("auth:zzz" < AuthFailureKeys.upperBound("auth:"))
        #expect("authx" > AuthFailureKeys.upperBound("auth:"))
    }
}
