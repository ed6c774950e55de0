// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
import Hub
import HubLog
import Store
import TestSupport

/// One hub per SQLite store: a second `serve` on the same data directory would run every
/// job twice, so it is refused; and leases a stopped hub left behind (jobs, a target's
/// slots, a half-open probe) do not hold its jobs.
@Suite struct SoleNodeTests {
    @Test func aSecondHub_onTheSameDataDirectory_isRefused_untilTheFirstStops() throws {
        let first = try LiveHub()
        let dir = first.directory.path
        var config = HubConfig()
        config.listen = "127.0.0.1:0"
        config.dataDirectory = dir
        config.schemasDirectory = repoRoot + "/schemas"
        let refused = #expect(throws: StoreError.self) {
            _ = try HubServer(config: config, connectors: testConnectors, logger: Logger(label: "t", silent: true))
        }
        #expect(refused?.description.contains("another scimhub serve (pid \(getpid()))") == true)
        #expect(try first.call("GET", "/scim/v2/Users").status == 200)  // the first one is unharmed
        first.server.shutdown()
        let second = try LiveHub { $0.dataDirectory = dir }
        defer { second.stop(); first.directory.remove() }
        #expect(try second.call("GET", "/scim/v2/Users").status == 200)
    }

    @Test func jobsLeasedByAStoppedHub_runAtTheNextStart() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        // A hub without a policy stores the person; nothing is provisioned.
        let plain = try LiveHub()
        let dir = plain.directory.path
        let created = try plain.call("POST", "/scim/v2/Users", body: person("leased@x.org", title: "Receptionist"))
        #expect(created.status == 201)
        let id = try #require(created.object["id"]?.stringValue)
        plain.server.shutdown()
        // As if a hub had claimed the job, every slot of the target and its half-open probe for
        // an hour, and then died.
        let store = try SQLiteStore(directory: dir, durability: .normal, logger: Logger(label: "t", silent: true))
        let now = Date().timeIntervalSince1970
        let claimed = try store.write { w in
            try w.connection.enqueue(personID: id, target: "ehr", priority: 1, now: now)
            try w.connection.sizeTargetSlots(target: "ehr", concurrency: 4)
            let slots = try w.connection.takeTargetSlots(
                target: "ehr", concurrency: 4, count: 4, owner: "dead-node", leaseUntil: now + 3600, now: now)
            try w.connection.saveTargetCircuit(
                target: "ehr",
                SharedCircuit(state: .halfOpen, probeOwner: "dead-node", probeUntil: now + 3600, downSince: now))
            let jobs = try w.connection.claimJobs(
                target: "ehr", limit: 1, owner: "dead-node", leaseUntil: now + 3600, now: now
            ).count
            return (jobs, slots)
        }
        #expect(claimed == (1, 4))
        store.close()
        let policy = singleEHRPolicy(
            ehr, packages: #"{"name": "staff", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#
        )
        let hub = try LiveHub(policy: policy) { $0.dataDirectory = dir }
        defer { hub.stop(); plain.directory.remove() }
        eventually("the job runs now, not when the dead node's lease would end") {
            ehr.snapshot()["leased@x.org"]?.roles == ["scheduling"]
        }
        #expect(hub.server.engine?.waitUntilIdle() == true)  // the start-up rollout may queue it once more
        #expect(try hub.server.store.read { try $0.leasedJobs(now: Date().timeIntervalSince1970) } == 0)
        // The probe's success closed the circuit.
        #expect(hub.server.engine?.circuit("ehr") == .closed)
    }

    @Test func aTargetsConcurrency_isTheMostCallsAtOnce_andIdleSlotsGoBack() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        ehr.setLatency(0.03)
        let policy = ehrPolicy(ehr).replacingOccurrences(of: #""concurrency": 4"#, with: #""concurrency": 2"#)
        let hub = try LiveHub(policy: policy)
        defer { hub.stop() }
        for i in 0..<30 {
            #expect(
                try hub.call("POST", "/scim/v2/Users", body: person("two\(i)@x.org", title: "Receptionist")).status
                    == 201)
        }
        eventually("everyone converges", timeout: 60) {
            ehr.snapshot().values.filter { $0.roles == ["scheduling"] }.count == 30
        }
        #expect(ehr.maxConcurrentCalls == 2)
        #expect(hub.server.engine?.waitUntilIdle() == true)
        // Nothing to run: the one node holds no slot (another node could take them at once).
        eventually("slots given back") {
            try hub.server.store.read { try $0.heldTargetSlots(target: "ehr", now: Date().timeIntervalSince1970) }
                .isEmpty
        }
    }
}

/// Jobs claimed ahead of free workers hold leases; a hub that stops gives them back, so
/// they are never stuck behind a lease no one will finish.
@Suite struct ClaimAheadTests {
    @Test func aStoppingHub_givesBackTheLeasesOfJobsItNeverStarted() throws {
        let ehr = try EHRTestServer(timeoutDelay: 1)
        ehr.start()
        defer { ehr.stop() }
        ehr.setFault(.timeout)  // workers busy for a second per call
        let hub = try LiveHub(policy: ehrPolicy(ehr))
        let dir = hub.directory.path
        defer { hub.directory.remove() }
        for i in 0..<20 {
            #expect(
                try hub.call("POST", "/scim/v2/Users", body: person("ahead\(i)@x.org", title: "Receptionist")).status
                    == 201)
        }
        // Four workers busy, more jobs claimed ahead: more leases than running jobs, and the
        // target's four slots held.
        eventually("jobs claimed ahead of the busy workers, on the target's four slots") {
            let now = Date().timeIntervalSince1970
            return try hub.server.store.read {
                try $0.leasedJobs(now: now) > 4 && $0.heldTargetSlots(target: "ehr", now: now).values.reduce(0, +) == 4
            }
        }
        hub.server.shutdown()
        let store = try SQLiteStore(directory: dir, durability: .normal, logger: Logger(label: "t", silent: true))
        defer { store.close() }
        #expect(try store.read { try $0.leasedJobs(now: Date().timeIntervalSince1970) } == 0)
        #expect(try store.read { try $0.heldTargetSlots(target: "ehr", now: Date().timeIntervalSince1970) }.isEmpty)
        #expect(try store.read { try $0.jobs(target: "ehr", state: .pending, limit: 100) }.count == 20)  // nothing lost
    }
}
