// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import HubLog
import Postgres
@testable import Store
import TestSupport

/// The coordination of several nodes on one database: one leader at a time, leadership
/// handed over when the leader stops, wake-ups across nodes, and the node list. Short
/// leases and heartbeats keep the test quick; the hub uses 10 s and 2 s.
@Suite struct PostgresCoordinationTests {
    static func waitFor(_ timeout: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    static func coordination(_ settings: PostgresSettings) -> PostgresCoordination {
        PostgresCoordination(
            settings: settings, version: "test", logger: Logger(label: "t", silent: true), leaseSeconds: 2,
            heartbeatSeconds: 0.2)
    }

    @Test func oneLeader_handedOverAtStop_wakeUpsCrossNodes_nodesListed() throws {
        let store = try TempStore(.postgres)
        defer { store.store.close() }
        let settings = try #require(store.postgres)
        let a = Self.coordination(settings)
        let b = Self.coordination(settings)
        defer { b.close() }
        // The first node leads from its first pass; the second follows.
        #expect(a.isLeader())
        #expect(!b.isLeader())
        #expect(!a.isSoleNode && !b.isSoleNode)
        let listed = try b.nodes()
        #expect(Set(listed.map(\.nodeID)) == [a.nodeID, b.nodeID])
        #expect(listed.filter(\.leader).map(\.nodeID) == [a.nodeID])
        #expect(listed.allSatisfy { $0.alive && $0.version == "test" })

        // A commit on A wakes B's listeners through NOTIFY, and A's own once, locally.
        let woken = Atomic<Int>(0)
        let local = Atomic<Int>(0)
        b.listen(.jobs) { woken.add(1, ordering: .relaxed) }
        a.listen(.jobs) { local.add(1, ordering: .relaxed) }
        // B listens from its next pass on the wake-up connection (at most a second).
        #expect(
            Self.waitFor(5) {
                a.notify(.jobs); return woken.load(ordering: .relaxed) > 0
            })
        #expect(local.load(ordering: .relaxed) >= 1)

        // A stops: it gives the lease up, and B leads at its next pass and says so.
        let gained = Atomic<Bool>(false)
        b.onLeadershipGained { gained.store(true, ordering: .relaxed) }
        let stopped = Date()
        a.close()
        #expect(!a.isLeader())
        #expect(Self.waitFor(3) { b.isLeader() && gained.load(ordering: .relaxed) })
        #expect(Date().timeIntervalSince(stopped) < 1.5, "handed over at the next pass, not at the lease's end")
        let after = try b.nodes()
        #expect(after.map(\.nodeID) == [b.nodeID])
        #expect(after.first?.leader == true)
    }

    @Test(arguments: StoreBackend.allCases) func leasedJobs_countedPerOwner(_ backend: StoreBackend) throws {
        let t = try TempStore(backend)
        defer { t.store.close() }
        try t.store.write { w in
            for i in 0..<5 { try w.connection.enqueue(personID: "p\(i)", target: "ehr", priority: 1, now: 0) }
        }
        _ = try t.store.write {
            try $0.connection.claimJobs(target: "ehr", limit: 3, owner: "node-a", leaseUntil: 100, now: 1)
        }
        _ = try t.store.write {
            try $0.connection.claimJobs(target: "ehr", limit: 1, owner: "node-b", leaseUntil: 100, now: 1)
        }
        #expect(try t.store.read { try $0.leasedJobsByOwner(now: 2) } == ["node-a": 3, "node-b": 1])
        // A lease that ran out is nobody's.
        #expect(try t.store.read { try $0.leasedJobsByOwner(now: 100) }.isEmpty)
        // The owner renews its lease; another node cannot.
        try t.store.write { w in
            try w.connection.extendLease(personID: "p0", target: "ehr", owner: "node-b", until: 500)
        }
        #expect(try t.store.read { try $0.leasedJobsByOwner(now: 200) }.isEmpty)
    }
}
