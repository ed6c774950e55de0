// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import HubLog
import JSONCore
import Postgres
import Provisioning
@testable import Store
import TestSupport

/// Several nodes on one PostgreSQL: a write never decides under a policy version older than
/// the one in force. Every write transaction reads the version in force under a lock a new
/// version's transaction takes exclusively, and the engine puts it in force before deciding,
/// whether or not this node heard of the version (here no follower runs at all).
@Suite struct PolicyInForceTests {
    /// One node's view: an engine over a PostgreSQL store, running `version` of `texts`.
    final class Node: @unchecked Sendable {
        // @unchecked Sendable: every field is set once in init; the servers are stopped once.
        let pg: PostgresServer
        let store: PostgresStore
        let engine: ProvisioningEngine
        let lock: TemporaryDirectory
        let followed = Mutex<[Int64]>([])
        /// The EHR token file the policy names, this node's own.
        let token = NSTemporaryDirectory() + "policy-in-force-token-\(UUID().uuidString)"

        init() throws {
            pg = try PostgresServer()
            let settings = try PostgresSettings(
                conninfo: "host=127.0.0.1 port=\(pg.port) dbname=\(pg.database) user=\(pg.user) connect_timeout=5",
                password: pg.password)
            store = try PostgresStore(settings: settings, maxConnections: 4, logger: Logger(label: "t", silent: true))
            let v1 = Self.policy(token: token)
            _ = try store.write {
                try $0.connection.insertPolicyVersion(
                    hash: "v1", text: Array(v1.utf8), author: "policy-file", now: 1, state: .active, heldReason: nil)
            }
            lock = TemporaryDirectory()
            let holder = PolicyHolder(try Self.parse(Array(v1.utf8)))
            holder.replace(with: holder.current, version: 1)
            engine = ProvisioningEngine(
                policies: holder, store: store, connectors: [:], logger: Logger(label: "t", silent: true),
                coordination: try LocalCoordination(directory: lock.path))
            engine.followPolicy(parse: Self.parse) { [weak self] v in self?.followed.withLock { $0.append(v) } }
            // As `HubServer` does with several nodes: write transactions read the version in force.
            let engine = self.engine
            store.adoptPolicies { newest, read in
                if let newest { try engine.adoptPolicy(newest, read: read) }
                return engine.policies.version
            }
        }

        func stop() {
            store.close()
            pg.stop()
            pg.directory.remove()
            lock.remove()
            unlink(token)
        }

        func policy(reporting: Bool = false) -> String { Self.policy(token: token, reporting: reporting) }

        /// Version 1: receptionists get scheduling. Later versions add reporting staff
        /// (`userType` Reporting).
        static func policy(token: String, reporting: Bool = false) -> String {
            if !FileManager.default.fileExists(atPath: token) {
                _ = FileManager.default.createFile(atPath: token, contents: Data("t".utf8))
            }
            var packages =
                #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#
            if reporting {
                packages +=
                    #", {"name": "reporting", "rule": "userType eq \"Reporting\"", "#
                    + #""grants": {"ehr": ["clinic-reporting"]}}"#
            }
            return #"{"targets": [{"name": "ehr", "type": "ehr-rest", "settings": {"baseURL": "http://127.0.0.1:1", "#
                + #""auth": {"type": "bearer", "tokenFile": "\#(token)"}}}], "packages": [\#(packages)]}"#
        }

        @Sendable static func parse(_ text: [UInt8]) throws -> Policy {
            try Policy.parse(
                text, userType: registryForTests.resourceType(named: "User")!, knownTypes: ["ehr-rest"],
                environment: [:])
        }

        /// Another node stores `text` as the next version, in force at once.
        func applyElsewhere(_ text: String, hash: String) throws {
            _ = try store.write {
                try $0.connection.insertPolicyVersion(
                    hash: hash, text: Array(text.utf8), author: "ops", now: 2, state: .active, heldReason: nil)
            }
        }

        /// This node queues a new person with `userType`: the decision is made in the write.
        func enqueue(_ id: String, userType: String) throws {
            let doc = try #require(
                try JSONParser().parse(
                    Array(#"{"userName": "\#(id)@x.org", "title": "Porter", "userType": "\#(userType)"}"#.utf8)
                ).objectValue)
            let engine = self.engine
            try store.write { w in try engine.enqueue(w, personID: id, person: doc, created: true) }
        }

        func job(_ id: String) throws -> ProvisioningJob? {
            try store.read { try $0.job(personID: id, target: "ehr") }
        }
    }

    @Test func aWrite_onANodeThatNeverHeardOfTheNewVersion_decidesUnderIt() throws {
        let node = try Node()
        defer { node.stop() }
        try node.enqueue("p1", userType: "Reporting")
        #expect(try node.job("p1") == nil)  // version 1 gives reporting staff nothing
        try node.applyElsewhere(node.policy(reporting: true), hash: "v2")
        #expect(node.engine.policies.version == 1)  // nobody told this node
        try node.enqueue("p2", userType: "Reporting")
        #expect(try node.job("p2")?.state == .pending)  // decided under version 2
        #expect(node.engine.policies.version == 2)
        #expect(node.followed.withLock { $0 } == [2])
        #expect(node.engine.policyBehind == nil)
    }

    @Test func aVersionThatCannotRunHere_failsTheWrite_andTheNodeSaysSo() throws {
        let node = try Node()
        defer { node.stop() }
        // Version 2's secret file is missing on this node (removed after version 1 was read).
        let v2 = node.policy(reporting: true)
        let file = node.token
        unlink(file)
        try node.applyElsewhere(v2, hash: "v2")
        let refused = #expect(throws: StoreError.self) { try node.enqueue("p1", userType: "Reporting") }
        #expect(
            refused?.description.contains("policy version 2, in force on another node, cannot run on this node") == true
        )
        #expect(try node.job("p1") == nil)  // nothing decided under version 1 was committed
        #expect(node.engine.policies.version == 1)
        #expect(node.engine.policyBehind?.contains("policy version 2") == true)
        // Writes do not parse it again; the follower's look does, and once the file is back
        // the node runs version 2 and is no longer behind.
        #expect(throws: StoreError.self) { try node.enqueue("p2", userType: "Reporting") }
        _ = FileManager.default.createFile(atPath: file, contents: Data("t".utf8))
        let store = node.store
        #expect(try node.engine.adoptPolicy(2, retryFailed: true) { try store.read { try $0.policyVersion(2) } })
        #expect(node.engine.policies.version == 2 && node.engine.policyBehind == nil)
        try node.enqueue("p3", userType: "Reporting")
        #expect(try node.job("p3")?.state == .pending)
        // A newer version that runs: in force at the next write.
        try node.applyElsewhere(node.policy(reporting: true), hash: "v3")
        try node.enqueue("p4", userType: "Reporting")
        #expect(node.engine.policies.version == 3 && node.engine.policyBehind == nil)
    }

    /// A node started with a policy file whose targets differ stores a version the running
    /// nodes cannot run without a restart (their connectors are built at start): they refuse
    /// writes and say so, rather than run a connector the version no longer describes.
    @Test func aVersionWithOtherTargets_needsARestart() throws {
        let node = try Node()
        defer { node.stop() }
        let moved = node.policy(reporting: true).replacingOccurrences(of: "127.0.0.1:1", with: "127.0.0.1:2")
        try node.applyElsewhere(moved, hash: "v2")
        let refused = #expect(throws: StoreError.self) { try node.enqueue("p1", userType: "Reporting") }
        #expect(refused?.description.contains("targets differ from the ones this node started with") == true)
        #expect(node.engine.policies.version == 1 && node.engine.policyBehind != nil)
    }

    /// A write under way (it decided under version 1) when another node stores version 2
    /// runs again under version 2: it finds the version on the audit chain's head row when
    /// it ends. The decision that commits is version 2's.
    @Test func aWriteUnderWay_whenANewVersionIsStored_runsAgainUnderIt() throws {
        let node = try Node()
        defer { node.stop() }
        let release = DispatchSemaphore(value: 0), inside = DispatchSemaphore(value: 0)
        let runs = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        let engine = node.engine
        let doc = try #require(
            try JSONParser().parse(Array(#"{"userName": "w@x.org", "title": "Porter", "userType": "Reporting"}"#.utf8))
                .objectValue)
        Thread {
            _ = try? node.store.write { w in
                if runs.add(1, ordering: .relaxed).newValue == 1 {
                    inside.signal()
                    release.wait()
                }
                try engine.enqueue(w, personID: "w", person: doc, created: true)
            }
            done.signal()
        }.start()
        inside.wait()
        try node.applyElsewhere(node.policy(reporting: true), hash: "v2")
        release.signal()
        done.wait()
        #expect(runs.load(ordering: .relaxed) == 2)
        #expect(try node.job("w")?.state == .pending)  // version 2 gives reporting staff an account
        #expect(node.engine.policies.version == 2)
    }
}
