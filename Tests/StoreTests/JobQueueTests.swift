// SPDX-License-Identifier: Apache-2.0
import Testing
import HubLog
@testable import Store
import TestSupport

/// The durable queue's claims: a job is leased to one worker at a time, a lease that runs
/// out frees the job, and finishing, deferring or dead-lettering gives the lease back.
@Suite struct JobQueueTests {
    private func enqueue(_ t: TempStore, _ people: [String], priority: Int = 1, now: Double = 100) throws {
        try t.store.write { w in
            for p in people { try w.connection.enqueue(personID: p, target: "ehr", priority: priority, now: now) }
        }
    }

    private func claim(_ t: TempStore, _ owner: String, limit: Int = 10, now: Double = 100, lease: Double = 60) throws
        -> [String]
    {
        try t.store.write {
            try $0.connection.claimJobs(target: "ehr", limit: limit, owner: owner, leaseUntil: now + lease, now: now)
        }.map(\.personID)
    }

    @Test(arguments: StoreBackend.allCases)
    func aClaimedJob_isNotClaimedAgain_untilItsLeaseRunsOut(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["a", "b", "c"])
        #expect(try claim(t, "node-1", limit: 2).count == 2)
        let second = try claim(t, "node-2")
        #expect(second.count == 1)  // only the job node-1 did not take
        #expect(try claim(t, "node-2").isEmpty)
        #expect(try t.store.read { try $0.leasedJobs(now: 100) } == 3)
        #expect(try t.store.read { try $0.nextDue(after: 100) } == 160)  // the dispatcher wakes when the leases end
        // node-1 died: its leases run out and its jobs are claimable again.
        #expect(Set(try claim(t, "node-2", now: 161)).count == 3)
    }

    @Test(arguments: StoreBackend.allCases)
    func aTouchedJob_runsAgain_afterTheRunUnderWayFinishes(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["a"])
        let running = try #require(
            try t.store.write {
                try $0.connection.claimJobs(target: "ehr", limit: 1, owner: "n", leaseUntil: 160, now: 100)
            }.first)
        // A change lands while the run applies the old state: nothing to do by the decision, but
        // the run under way is stale, so the job must stay.
        try t.store.write { w in
            try w.connection.touchJob(personID: "a", target: "ehr")
            try w.connection.touchJob(personID: "nobody", target: "ehr")  // no job: nothing happens
        }
        let finished = try t.store.write {
            try $0.connection.finishJob(personID: "a", target: "ehr", generation: running.generation, now: 101)
        }
        #expect(!finished, "a newer generation keeps the job")
        #expect(try t.store.read { try $0.job(personID: "a", target: "ehr") }?.state == .pending)
        #expect(try t.store.read { try $0.job(personID: "nobody", target: "ehr") } == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func leaversAreClaimedFirst(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["joiner"], priority: 1, now: 90)
        try enqueue(t, ["leaver"], priority: 0, now: 99)
        #expect(try claim(t, "n", limit: 1) == ["leaver"])
    }

    @Test(arguments: StoreBackend.allCases)
    func finishDeferAndDeadLetter_giveTheLeaseBack(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["a", "b", "c"])
        let jobs = try t.store.write {
            try $0.connection.claimJobs(target: "ehr", limit: 3, owner: "n", leaseUntil: 1000, now: 100)
        }
        let a = try #require(jobs.first { $0.personID == "a" })
        // A change arrives while a's job runs: finishing the old generation keeps the job, due now and unleased.
        try enqueue(t, ["a"])
        let gone = try t.store.write {
            try $0.connection.finishJob(personID: "a", target: "ehr", generation: a.generation, now: 101)
        }
        #expect(gone == false)
        try t.store.write { w in
            try w.connection.deferJob(personID: "b", target: "ehr", until: 200, attempts: 1, error: "timeout")
            try w.connection.deadLetter(
                personID: "c", target: "ehr", attempts: 20, error: "refused", generation: 1, now: 101)
        }
        #expect(try claim(t, "other", now: 101, lease: 1000) == ["a"])  // runs again with the newer change
        #expect(try claim(t, "other", now: 201) == ["b"])  // after its backoff, not its lease
        #expect(try t.store.read { try $0.job(personID: "c", target: "ehr")?.state } == .dead)
    }

    @Test(arguments: StoreBackend.allCases)
    func aFailureOfAnOlderRun_doesNotDeadLetterANewerChange(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["leaver"])
        let job = try #require(
            try t.store.write {
                try $0.connection.claimJobs(target: "ehr", limit: 1, owner: "n", leaseUntil: 1000, now: 100)
            }.first)
        try enqueue(t, ["leaver"], priority: 0)  // the leaver change arrives while the old run fails
        let dead = try t.store.write {
            try $0.connection.deadLetter(
                personID: "leaver", target: "ehr", attempts: 20, error: "refused", generation: job.generation, now: 102)
        }
        #expect(dead == false)
        let after = try t.store.read { try $0.job(personID: "leaver", target: "ehr") }
        #expect(after?.state == .pending && after?.attempts == 0 && after?.notBefore == 102)
        #expect(try claim(t, "n", now: 102) == ["leaver"])  // runs again at once
    }

    @Test(arguments: StoreBackend.allCases)
    func aSoleNode_dropsLeasesLeftByADeadProcess(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try enqueue(t, ["a", "b"])
        _ = try claim(t, "dead-process", lease: 3600)
        _ = try t.store.write {
            try $0.connection.extendLease(personID: "a", target: "ehr", owner: "someone-else", until: 9999)
        }
        #expect(try t.store.write { try $0.connection.releaseLeases(notHeldBy: "me") } == 2)
        #expect(Set(try claim(t, "me")) == ["a", "b"])
        #expect(try t.store.write { try $0.connection.releaseLeases(notHeldBy: "me") } == 0)  // its own leases stay
    }
}

/// Writes whose loss does no harm (leases) commit without waiting for the disk; every
/// other write still does, also in the batch right after.
@Suite struct NonDurableWriteTests {
    @Test func aLeaseOnlyBatch_skipsTheSync_andTheNextBatchSyncsAgain() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let store = try SQLiteStore(directory: dir.path, durability: .full, logger: Logger(label: "t", silent: true))
        defer { store.close() }
        func pragma(_ name: String, durable: Bool) throws -> Int64 {
            try store.write(isolated: true, durable: durable) { w in
                var v: Int64 = -1
                try (w as! SQLiteWriteContext).session.db.query("PRAGMA \(name)") { v = $0.int64(0) }
                return v
            }
        }
        #expect(try pragma("synchronous", durable: false) == 0)  // OFF
        // No checkpoint may copy acknowledged frames into the database without a sync.
        #expect(try pragma("wal_autocheckpoint", durable: false) == 0)
        #expect(try pragma("synchronous", durable: true) == 2)  // FULL, as configured
        #expect(try pragma("wal_autocheckpoint", durable: true) == 8000)
        try store.write(isolated: true, durable: false) {
            try $0.connection.enqueue(personID: "p", target: "ehr", priority: 0, now: 1)
        }
        #expect(try store.read { try $0.job(personID: "p", target: "ehr") } != nil)  // committed all the same
    }
}
