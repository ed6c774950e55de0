// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization
import Testing
import EHRTestServer
import JSONCore
import TestSupport
import HubCrypto
import Hub
import Postgres
@testable import Store

/// Three real `scimhub serve` processes on one real PostgreSQL (issue #14): races between
/// nodes settled by the database, a node killed with its jobs in flight, the leader killed
/// with deadlines due, and PostgreSQL restarted under load. A cluster that cannot start
/// fails the test; nothing is skipped.
@Suite(.serialized) struct MultiNodeTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    /// One PostgreSQL cluster, the nodes on it, and tokens made with the CLI's `--store`.
    final class Cluster: @unchecked Sendable {
        // @unchecked Sendable: nodes are started and killed from the test's thread only;
        // worker threads only read `ports`, set before they start.
        let pg: PostgresServer
        let dir = TemporaryDirectory()
        let connection: String
        let passwordFile: String
        var nodes: [HubProcess] = []
        let policyFile: String?
        /// A config file every node reads (`--config`), when given.
        let configFile: String?
        private(set) var writer = ""
        private(set) var admin = ""

        /// `tokens: false` leaves the database empty (an import's target).
        init(policy: String? = nil, tokens: Bool = true, config: String? = nil) throws {
            pg = try PostgresServer()
            // No password in the connection string: the hub refuses one there.
            connection = "host=127.0.0.1 port=\(pg.port) dbname=\(pg.database) user=\(pg.user) connect_timeout=5"
            passwordFile = dir.path + "/pgpass"
            try (pg.password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
            if let policy {
                let file = dir.path + "/policy.json"
                try policy.write(toFile: file, atomically: true, encoding: .utf8)
                policyFile = file
            } else {
                policyFile = nil
            }
            if let config {
                let file = dir.path + "/config.json"
                try config.write(toFile: file, atomically: true, encoding: .utf8)
                configFile = file
            } else {
                configFile = nil
            }
            if tokens {
                writer = try token("hr", "scim:read,scim:write")
                admin = try token("ops", "admin")
            }
        }

        /// The CLI against the shared database: its exit status and stdout.
        func cli(_ args: [String]) throws -> (status: Int32, out: String) {
            try HubProcess.runWithStatus(
                MultiNodeTests.binary, args + ["--store", connection, "--store-password-file", passwordFile])
        }

        func token(_ principal: String, _ scopes: String) throws -> String {
            let r = try cli(["token", "create", "--principal", principal, "--scope", scopes])
            guard r.status == 0, let t = r.out.split(separator: "\n").last.map(String.init), t.hasPrefix("shub_") else {
                throw TestError("token create --store failed: \(r.status) \(r.out)")
            }
            return t
        }

        @discardableResult
        func startNode() throws -> HubProcess {
            let data = dir.path + "/node\(nodes.count)"
            var extra = ["--log-level", "info"]
            if let policyFile { extra += ["--policy", policyFile] }
            if let configFile { extra += ["--config", configFile] }
            let node = try HubProcess(
                binary: MultiNodeTests.binary, data: data, extraArguments: extra, store: connection,
                storePasswordFile: passwordFile)
            nodes.append(node)
            return node
        }

        /// Starts `count` nodes at the same instant (they migrate and read the policy file together).
        func startNodesTogether(_ count: Int) throws {
            let started = Mutex<[Result<HubProcess, any Error>]>([])
            let first = nodes.count
            DispatchQueue.concurrentPerform(iterations: count) { i in
                let r = Result {
                    var extra = ["--log-level", "info"]
                    if let policyFile { extra += ["--policy", policyFile] }
                    if let configFile { extra += ["--config", configFile] }
                    return try HubProcess(
                        binary: MultiNodeTests.binary, data: dir.path + "/node\(first + i)", extraArguments: extra,
                        store: connection, storePasswordFile: passwordFile)
                }
                started.withLock { $0.append(r) }
            }
            for r in started.withLock({ $0 }) {
                if case .success(let node) = r { nodes.append(node) }
            }
            for r in started.withLock({ $0 }) { _ = try r.get() }
        }

        func stop() {
            for n in nodes { n.stop() }
            pg.stop()
            pg.directory.remove()
            dir.remove()
        }
    }

    /// One request on a new connection.
    static func call(
        _ port: UInt16, _ method: String, _ path: String, token: String, body: String? = nil,
        headers: [(String, String)] = []
    ) -> RawResponse? {
        guard let c = try? RawHTTPClient(port: port, timeout: 30) else { return nil }
        var h = headers + [("Authorization", "Bearer \(token)")]
        if body != nil { h.append(("Content-Type", "application/scim+json")) }
        return c.request(method, path, headers: h, body: body.map { Array($0.utf8) })
    }

    /// The node id a process logged at start.
    static func nodeID(_ p: HubProcess) -> String? {
        guard let r = p.log.range(of: #""node":"[^"]+""#, options: .regularExpression) else { return nil }
        return String(p.log[r].dropFirst(8).dropLast())
    }

    static func nodes(_ port: UInt16, _ token: String) -> [JSONObject] {
        call(port, "GET", "/admin/nodes", token: token)?.object["nodes"]?.arrayValue?.compactMap(\.objectValue) ?? []
    }

    /// Runs `body(i)` on `count` threads that start together (each connects first).
    static func together(_ count: Int, _ body: @escaping @Sendable (Int, () -> Void) -> Void) {
        let ready = Atomic<Int>(0)
        let group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            Thread {
                body(i) {
                    ready.add(1, ordering: .sequentiallyConsistent)
                    while ready.load(ordering: .sequentiallyConsistent) < count { usleep(100) }
                }
                group.leave()
            }.start()
        }
        group.wait()
    }

    // MARK: - Races settled by the database

    @Test func sameUserNameOnTwoNodes_oneCreated_oneConflict_andIfMatchHasOneWinner() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let cluster = try Cluster()
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        let ports = cluster.nodes.map(\.port)
        let writer = cluster.writer

        // The same userName POSTed to two nodes at the same instant, five times over.
        for round in 0..<5 {
            let statuses = Mutex<[Int]>([])
            Self.together(2) { i, go in
                guard let c = try? RawHTTPClient(port: ports[i], timeout: 30) else { return }
                go()
                let r = c.request(
                    "POST", "/scim/v2/Users",
                    headers: [("Authorization", "Bearer \(writer)"), ("Content-Type", "application/scim+json")],
                    body: Array(person("same\(round)@x.org", title: "Receptionist").utf8))
                statuses.withLock { $0.append(r?.status ?? 0) }
            }
            #expect(statuses.withLock { $0.sorted() } == [201, 409], "round \(round)")
        }

        // 50 PATCHes with one If-Match, spread over the three nodes: exactly one wins.
        let created = try #require(
            Self.call(ports[0], "POST", "/scim/v2/Users", token: writer, body: person("etag@x.org", title: "Nurse")))
        let id = try #require(created.object["id"]?.stringValue)
        let etag = try #require(created.header("ETag"))
        let results = Mutex<[Int]>([])
        Self.together(50) { i, go in
            guard let c = try? RawHTTPClient(port: ports[i % 3], timeout: 60) else { return }
            go()
            let body =
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
                + #""Operations":[{"op":"replace","path":"title","value":"T\#(i)"}]}"#
            let r = c.request(
                "PATCH", "/scim/v2/Users/\(id)",
                headers: [
                    ("Authorization", "Bearer \(writer)"), ("Content-Type", "application/scim+json"),
                    ("If-Match", etag),
                ], body: Array(body.utf8))
            results.withLock { $0.append(r?.status ?? 0) }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 50)
        #expect(all.filter { $0 == 200 }.count == 1, "\(all)")
        #expect(all.filter { $0 == 412 }.count == 49, "\(all)")

        // Every node sees the three nodes, one leader, and itself; an auditor may look, a feed may not.
        for port in ports {
            let listed = Self.nodes(port, cluster.admin)
            #expect(listed.count == 3)
            #expect(listed.filter { $0["leader"] == .bool(true) }.count == 1)
            #expect(listed.filter { $0["self"] == .bool(true) }.count == 1)
            #expect(listed.allSatisfy { $0["alive"] == .bool(true) && $0["version"]?.stringValue?.isEmpty == false })
        }
        let auditor = try cluster.token("auditor.ana", "auditor")
        #expect(Self.call(ports[1], "GET", "/admin/nodes", token: auditor)?.status == 200)
        #expect(Self.call(ports[1], "GET", "/admin/nodes", token: writer)?.status == 403)
        let verify = try cluster.cli(["audit", "verify"])
        #expect(verify.status == 0, "\(verify.out)")
    }

    // MARK: - A target's limits hold for the cluster

    /// The EHR policy with `concurrency` 2, on nodes that do not probe targets on a schedule
    /// (a probe is a call too, and these tests count calls).
    static func limitedCluster(_ ehr: EHRTestServer, config: String = #""targetProbeSeconds": 0"#) throws -> Cluster {
        let policy = ehrPolicy(ehr).replacingOccurrences(of: #""concurrency": 4"#, with: #""concurrency": 2"#)
        #expect(policy.contains(#""concurrency": 2"#))
        return try Cluster(policy: policy, config: "{\(config)}")
    }

    /// Bulk-creates `people` receptionists, dealt over the nodes.
    static func onboard(_ cluster: Cluster, _ people: [String]) {
        for (n, node) in cluster.nodes.enumerated() {
            let mine = people.enumerated().filter { $0.offset % cluster.nodes.count == n }.map(\.element)
            guard !mine.isEmpty else { continue }
            let ops = mine.enumerated().map {
                #"{"method":"POST","path":"/Users","bulkId":"b\#($0.offset)","#
                    + #""data":\#(person($0.element, title: "Receptionist"))}"#
            }
            let bulk =
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                + #"[\#(ops.joined(separator: ","))]}"#
            #expect(Self.call(node.port, "POST", "/scim/v2/Bulk", token: cluster.writer, body: bulk)?.status == 200)
        }
    }

    static func circuit(_ port: UInt16, _ token: String) -> String? {
        call(port, "GET", "/admin/targets", token: token)?.object["targets"]?.arrayValue?
            .compactMap(\.objectValue).first { $0["name"]?.stringValue == "ehr" }?["circuit"]?.stringValue
    }

    static func occurrences(_ needle: String, in nodes: [HubProcess]) -> Int {
        nodes.reduce(0) { $0 + $1.log.components(separatedBy: needle).count - 1 }
    }

    @Test func concurrencyTwo_threeNodesOnboarding_theEHRNeverSeesMoreThanTwoCallsAtOnce() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        // Slow calls keep every node wanting to run jobs the whole time.
        ehr.setLatency(0.04)
        let cluster = try Self.limitedCluster(ehr)
        defer { cluster.stop() }
        try cluster.startNodesTogether(3)
        let people = (0..<120).map { "slot\($0)@x.org" }
        Self.onboard(cluster, people)
        // Which nodes hold jobs while it runs (a node claims jobs only on slots it holds).
        var working = Set<String>()
        eventually("everyone converges", timeout: 120) {
            for n in Self.nodes(cluster.nodes[0].port, cluster.admin)
            where (n["jobsLeased"]?.numberValue?.int64 ?? 0) > 0 {
                working.insert(n["id"]?.stringValue ?? "")
            }
            return ehr.snapshot().values.filter { $0.roles == ["scheduling"] }.count == people.count
        }
        // The slots were shared out: nodes waiting for one got their share.
        #expect(working.count >= 2, "only \(working) ran jobs")
        // Per node, three nodes would have made up to six calls at once.
        #expect(ehr.maxConcurrentCalls <= 2, "the EHR saw \(ehr.maxConcurrentCalls) calls at once")
        #expect(ehr.maxConcurrentCalls == 2, "the limit was never used: the test proves nothing")
        #expect(ehr.snapshot().count == people.count)
        // Nothing held once the work is done: the slots went back.
        for node in cluster.nodes {
            let listed = Self.call(node.port, "GET", "/admin/jobs?state=dead", token: cluster.admin)
            #expect(listed?.object["jobs"]?.arrayValue?.isEmpty ?? false, "\(listed?.text ?? "")")
        }
    }

    @Test func ehrDown_theCircuitOpensOnEveryNode_oneProbeAtATime_andOneSuccessClosesItForAll() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        ehr.setLatency(0.02)
        ehr.setFault(.error5xx)
        // An outage is announced after 6 s (0.1 minute): within the test, once for the cluster.
        let cluster = try Self.limitedCluster(ehr, config: #""targetProbeSeconds": 0, "targetUnavailableMinutes": 0.1"#)
        defer { cluster.stop() }
        try cluster.startNodesTogether(3)
        let people = (0..<30).map { "down\($0)@x.org" }
        Self.onboard(cluster, people)
        // One node's failures open the circuit; every node shows it and stops calling.
        eventually("the circuit is open on every node", timeout: 30) {
            cluster.nodes.allSatisfy { (Self.circuit($0.port, cluster.admin) ?? "closed") != "closed" }
        }
        // Jobs started before it opened end (at most two, the slots); from then on only the
        // half-open probe reaches the EHR, one at a time, once per open interval (10 s) for the
        // whole cluster: three probes need at least two intervals. Per node, each node would
        // probe on its own: three probes in one interval, up to three at once.
        eventually("calls in flight drained", timeout: 5) { ehr.callsInFlight == 0 }
        ehr.resetConcurrency()
        let start = (calls: ehr.calls, time: Date())
        eventually("three probes", timeout: 60) { ehr.calls - start.calls >= 3 }
        let elapsed = Date().timeIntervalSince(start.time)
        print("multi-node: 3 half-open probes took \(String(format: "%.1f", elapsed)) s on three nodes")
        #expect(ehr.maxConcurrentCalls <= 1, "\(ehr.maxConcurrentCalls) calls at once while the circuit was open")
        #expect(elapsed >= 18, "three probes in \(elapsed) s: more than one per open interval")
        // Announced once for the cluster, by the node whose failure opened it, and the outage
        // (open for more than 6 s by now) once, by the node whose probe outcome came first after.
        #expect(Self.occurrences(#""event":"circuit.open""#, in: cluster.nodes) == 1)
        #expect(Self.occurrences("target unavailable: ", in: cluster.nodes) == 1)
        // The EHR comes back: the next probe succeeds and closes the circuit for every node.
        ehr.setFault(.none)
        eventually("closed on every node", timeout: 30) {
            cluster.nodes.allSatisfy { Self.circuit($0.port, cluster.admin) == "closed" }
        }
        eventually("everyone converges", timeout: 60) {
            ehr.snapshot().values.filter { $0.roles == ["scheduling"] }.count == people.count
        }
        #expect(Self.occurrences(#""event":"circuit.close""#, in: cluster.nodes) == 1)
        #expect(ehr.maxConcurrentCalls <= 2)
    }

    @Test func authFailuresSpreadOverThreeNodes_get429AfterTheLimitInTotal_andStepUpCodesToo() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let cluster = try Cluster(config: #"{"authFailureLimit": 6}"#)
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        let ports = cluster.nodes.map(\.port)
        // Six guesses dealt over the three nodes: two each, well under the limit per node.
        for i in 0..<6 {
            let r = Self.call(ports[i % 3], "GET", "/scim/v2/Users", token: "shub_0000000000000000_guess\(i)")
            #expect(r?.status == 401, "guess \(i): \(r?.status ?? 0)")
        }
        // The seventh is refused on every node: the limit counts the cluster's failures.
        for port in ports {
            let r = Self.call(port, "GET", "/scim/v2/Users", token: "shub_0000000000000000_guess")
            #expect(r?.status == 429)
            #expect(Int(r?.header("Retry-After") ?? "") ?? 0 >= 1)
        }
        // A valid token is served everywhere, from the same address.
        for port in ports { #expect(Self.call(port, "GET", "/scim/v2/Users", token: cluster.writer)?.status == 200) }

        // Step-up codes too: five wrong ones for one principal, dealt over the nodes, and the
        // sixth is refused on every node (the codes' replay protection is in the store as well).
        #expect(Self.call(ports[0], "POST", "/mfa/enrol", token: cluster.admin)?.status == 201)
        let body = #"{"principal": "report.reader", "scopes": ["scim:read"]}"#
        for i in 0..<5 {
            let r = Self.call(
                ports[i % 3], "POST", "/admin/tokens", token: cluster.admin, body: body,
                headers: [("X-ScimHub-TOTP", "x00000")])
            #expect(r?.status == 403, "wrong code \(i): \(r?.status ?? 0) \(r?.text ?? "")")
        }
        for port in ports {
            let r = Self.call(
                port, "POST", "/admin/tokens", token: cluster.admin, body: body, headers: [("X-ScimHub-TOTP", "x00000")]
            )
            #expect(r?.status == 429, "\(r?.status ?? 0) \(r?.text ?? "")")
        }
    }

    // MARK: - A node killed with jobs in flight

    /// The issue's onboarding: 10,000 people posted in Bulk to all three nodes at once, into
    /// the reference policy's three targets (EHR test server, slapd, the SQLite admin
    /// database); one node is killed with its jobs in flight. Its leases lapse within 15 s,
    /// every person converges on the two nodes left, no target holds anyone twice, the hub's
    /// own reconciliation finds nothing to fix, and the audit chain verifies.
    @Test func kill9OfOneNodeDuringOnboarding_everyoneConverges_noDuplicates_chainVerifies() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let targets = try ThreeTargets()
        defer { targets.stop() }
        let cluster = try Cluster(policy: try String(contentsOfFile: targets.policyFile, encoding: .utf8))
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        let (front, victim) = (cluster.nodes[0], cluster.nodes[2])
        let victimID = try #require(Self.nodeID(victim))
        let n = 10_000
        let started = Date()
        let bodies = ThreeTargets.bulkBodies(0..<n)
        let ports = cluster.nodes.map(\.port)
        let statuses = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: ports.count) { i in
            for body in stride(from: i, to: bodies.count, by: ports.count).map({ bodies[$0] }) {
                let r = Self.call(ports[i], "POST", "/scim/v2/Bulk", token: cluster.writer, body: body)
                statuses.withLock { $0.append(r?.status ?? 0) }
            }
        }
        #expect(statuses.withLock { $0 } == Array(repeating: 200, count: bodies.count))
        func leasedBy(_ id: String) -> Int64? {
            Self.nodes(front.port, cluster.admin).first { $0["id"]?.stringValue == id }?["jobsLeased"]?.numberValue?
                .int64
        }
        eventually("the victim holds leased jobs", timeout: 60) { (leasedBy(victimID) ?? 0) > 0 }
        victim.kill9()
        let killed = Date()
        #expect(!ThreeTargets.drained(port: front.port, adminToken: cluster.admin), "killed too late to test anything")
        // Its leases end without it (12 s) and the other nodes take the jobs.
        eventually("the dead node's leases lapse", timeout: 20) { leasedBy(victimID) == 0 }
        let failover = Date().timeIntervalSince(killed)
        print("multi-node: the killed node's job leases lapsed \(String(format: "%.1f", failover)) s after kill -9")
        #expect(failover <= 15)
        eventually("every target's queue drains on the two nodes left", timeout: 900) {
            ThreeTargets.drained(port: front.port, adminToken: cluster.admin)
        }
        print(
            "multi-node: \(n) people into three targets with a node killed: converged "
                + String(format: "%.1f s", Date().timeIntervalSince(started)) + " after the first Bulk")
        // One account per person in every target: a create the dead node left unrecorded was
        // found, not repeated.
        let accounts = try targets.accounts()
        print(
            "multi-node: accounts "
                + accounts.keys.sorted().map { "\($0) \(accounts[$0]!.count)" }.joined(separator: ", "))
        for (name, a) in accounts {
            #expect(a.count > 0 && a.count == a.distinctUserNames, "\(name): \(a)")
        }
        // The hub's own comparison: every account is what the policy says, nothing missing.
        let report = try ThreeTargets.reconcile(port: cluster.nodes[1].port, adminToken: cluster.admin)
        for (name, a) in accounts {
            #expect(report[name]?.findings == 0, "\(name): \(report[name].map { "\($0)" } ?? "not reconciled")")
            #expect(report[name]?.accounts == a.count, "\(name)")
        }
        let verify = try cluster.cli(["audit", "verify"])
        #expect(verify.status == 0, "\(verify.out)")
        #expect(verify.out.contains("intact"), "\(verify.out)")
    }

    // MARK: - Audit forwarding across a change of leader

    /// Only the leader forwards the audit chain to the SIEM; the cursor is in the store, so
    /// when the leader is killed the node that takes over goes on from where it stopped: the
    /// receiver gets every entry, and only the few sent again on reconnecting twice (a cursor
    /// per node made a node that never led send the whole chain again).
    @Test func auditForwarding_aNewLeaderGoesOnFromTheSharedCursor() throws {
        let siem = try RsyslogServer()
        defer { siem.stop() }
        let cluster = try Cluster(config: #"{"auditForward": {"url": "tcp://127.0.0.1:\#(siem.port)"}}"#)
        defer { cluster.stop() }
        for _ in 0..<2 { try cluster.startNode() }
        func seqs() -> [Int] { siem.messages.compactMap { $0.firstMatch(of: /seq="(\d+)"/).map { Int($0.1)! } } }
        func head() throws -> Int {
            let out = try cluster.cli(["audit", "verify"]).out
            return try #require(out.firstMatch(of: /@(\d+)/).map { Int($0.1)! }, "\(out)")
        }
        func leader() -> HubProcess? {
            let id = Self.nodes(cluster.nodes[0].port, cluster.admin).first { $0["leader"] == .bool(true) }?["id"]?
                .stringValue
            return cluster.nodes.first { Self.nodeID($0) == id }
        }
        var old: HubProcess?
        eventually("a leader", timeout: 20) {
            old = leader()
            return old != nil
        }
        let first = try #require(old)
        let other = try #require(cluster.nodes.first { $0 !== first })
        for body in ThreeTargets.bulkBodies(0..<1500, size: 750) {
            #expect(Self.call(other.port, "POST", "/scim/v2/Bulk", token: cluster.writer, body: body)?.status == 200)
        }
        let before = try head()
        eventually("the leader forwarded every entry", timeout: 30) { Set(seqs()).isSuperset(of: Set(1...before)) }
        let sentBefore = seqs().count
        first.kill9()
        for body in ThreeTargets.bulkBodies(1500..<1700, size: 200) {
            #expect(Self.call(other.port, "POST", "/scim/v2/Bulk", token: cluster.writer, body: body)?.status == 200)
        }
        let after = try head()
        eventually("the new leader forwarded the rest", timeout: 40) { Set(seqs()).isSuperset(of: Set(1...after)) }
        let resent = seqs().count - sentBefore - (after - before)
        print("multi-node: after the leader's kill -9 the new leader sent \(resent) entries again (chain \(after))")
        // resendOnReconnect (200), plus one batch (500) if the kill fell between a send and its
        // cursor; never the chain again (1,500 entries and more).
        #expect(resent >= 0 && resent <= 700, "\(resent) entries sent twice")
        #expect(Array(Set(seqs())).sorted() == Array(1...after))
    }

    // MARK: - The leader killed with deadlines due

    @Test func kill9OfTheLeader_breakGlassTakenBackWithinTheLease() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        let policy = singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "emergency-physician", "groups": ["Emergency Roster"], "#
                + #""grants": {"ehr": ["physician"]}, "breakGlass": {"maxHours": 8}}"#)
        let cluster = try Cluster(policy: policy)
        defer { cluster.stop() }
        try cluster.startNodesTogether(3)
        // Three nodes started together with the policy file stored it once.
        let versions = Self.call(cluster.nodes[1].port, "GET", "/admin/policy/versions", token: cluster.admin)
        #expect(versions?.object["versions"]?.arrayValue?.count == 1, "\(versions?.text ?? "")")
        var leaderID: String? = nil
        eventually("one leader") {
            leaderID =
                Self.nodes(cluster.nodes[0].port, cluster.admin).first { $0["leader"] == .bool(true) }?["id"]?
                .stringValue
            return leaderID != nil
        }
        let leader = try #require(cluster.nodes.first { Self.nodeID($0) == leaderID })
        let others = cluster.nodes.filter { $0 !== leader }
        let grantNode = others[0]
        // Three people, each granted by their own on-call doctor (enrolled for step-up) through a follower.
        let people = (0..<3).map { "rosa\($0)@x.org" }
        var ids: [String] = []
        for p in people {
            let r = Self.call(
                grantNode.port, "POST", "/scim/v2/Users", token: cluster.writer, body: person(p, title: "Receptionist"))
            ids.append(try #require(r?.object["id"]?.stringValue, "\(r?.text ?? "")"))
        }
        eventually("provisioned") { people.allSatisfy { ehr.snapshot()[$0]?.roles == ["scheduling"] } }
        let seconds = 8.0
        var expires = Date()
        for (i, id) in ids.enumerated() {
            let doctor = try cluster.token("dr.oncall\(i)", "break-glass")
            let enrol = Self.call(grantNode.port, "POST", "/mfa/enrol", token: doctor)
            let uri = try #require(enrol?.object["otpauth"]?.stringValue, "\(enrol?.text ?? "")")
            let range = try #require(uri.range(of: "secret="))
            let secret = try #require(TOTP.base32Decode(String(uri[range.upperBound...].prefix { $0 != "&" })))
            let body =
                #"{"personId": "\#(id)", "package": "emergency-physician", "#
                + #""reason": "cardiac arrest in bay 3", "hours": \#(seconds / 3600)}"#
            let r = Self.call(
                grantNode.port, "POST", "/admin/break-glass", token: doctor, body: body,
                headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
            #expect(r?.status == 201, "\(r?.text ?? "")")
            expires = Date().addingTimeInterval(seconds)
        }
        eventually("physician downstream") {
            people.allSatisfy { ehr.snapshot()[$0]?.roles == ["scheduling", "physician"] }
        }
        // The leader dies a moment before the grants end: a follower must take over and end them.
        let untilKill = expires.timeIntervalSinceNow - 1
        #expect(untilKill > 0, "the grants were made too slowly for the test")
        if untilKill > 0 { Thread.sleep(forTimeInterval: untilKill) }
        leader.kill9()
        let killed = Date()
        eventually("taken back by the new leader", timeout: 25) {
            people.allSatisfy { ehr.snapshot()[$0]?.roles == ["scheduling"] }
        }
        let took = Date().timeIntervalSince(killed)
        print("multi-node: break-glass taken back \(String(format: "%.1f", took)) s after kill -9 of the leader")
        // The lease (10 s) plus one renewal pass (2 s) plus the expiry's job.
        #expect(took <= 13.5)
        let listed = Self.nodes(grantNode.port, cluster.admin)
        let newLeader = listed.first { $0["leader"] == .bool(true) }?["id"]?.stringValue
        #expect(newLeader != nil && newLeader != leaderID)
        #expect(listed.first { $0["id"]?.stringValue == leaderID }?["alive"] == .bool(false))
    }

    // MARK: - The start-up lock

    /// Nodes starting together with a changed policy file could each store it as a version
    /// (read, decide and write span several transactions); `whileHoldingStartupLock` makes
    /// them take turns. Here the test holds that lock itself: a node started with a changed
    /// file must wait for it, storing nothing, and store the one new version once it is free.
    @Test func startupLock_heldElsewhere_nodeWaitsAndStoresNoVersion_thenExactlyOne() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        let receptionist =
            #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#
        let cluster = try Cluster(policy: singleEHRPolicy(ehr, packages: receptionist))
        defer { cluster.stop() }
        let first = try cluster.startNode()
        func versions() -> Int? {
            Self.call(first.port, "GET", "/admin/policy/versions", token: cluster.admin)?.object["versions"]?
                .arrayValue?.count
        }
        #expect(versions() == 1)
        // A changed file for the next node.
        let nurse = #"{"name": "nurse", "rule": "title eq \"Registered Nurse\"", "grants": {"ehr": ["nurse"]}}"#
        try singleEHRPolicy(ehr, packages: receptionist + ", " + nurse).write(
            toFile: try #require(cluster.policyFile), atomically: true, encoding: .utf8)

        let key = PostgresMigrations.startupLockKey
        let holder = try PostgresConnection(
            conninfo: cluster.connection, password: cluster.pg.password, defaults: [("application_name", "test-holder")]
        )
        try holder.run("SELECT pg_advisory_lock($1)", [.integer(key)])
        var held = true
        defer { if held { _ = try? holder.run("SELECT pg_advisory_unlock($1)", [.integer(key)]) } }

        // The node starts on a thread of its own: HubProcess returns once it listens.
        let started = Mutex<Result<HubProcess, any Error>?>(nil)
        let data = cluster.dir.path + "/node-waiting"
        let (connection, passwordFile, policyFile) = (cluster.connection, cluster.passwordFile, cluster.policyFile!)
        Thread {
            let r = Result {
                try HubProcess(
                    binary: MultiNodeTests.binary, data: data,
                    extraArguments: ["--log-level", "info", "--policy", policyFile], store: connection,
                    storePasswordFile: passwordFile)
            }
            started.withLock { $0 = r }
        }.start()
        defer { if case .success(let n)? = started.withLock({ $0 }) { n.stop() } }

        // Another session waits for the start-up lock: the node, and it has not gone past it.
        func waiting() throws -> [String] {
            var names: [String] = []
            try holder.query(
                """
                SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1
                  AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 AND l.pid <> pg_backend_pid()
                """, [.integer(key)]
            ) { names.append($0.text(0) ?? "") }
            return names
        }
        var waiters: [String] = []
        eventually("the new node waits for the start-up lock", timeout: 30) {
            waiters = try waiting()
            return !waiters.isEmpty
        }
        // The node's own session (the store's connections are named scimhub), and only it.
        #expect(waiters == ["scimhub"])
        // While it waits: no new version, and the node does not serve yet.
        #expect(versions() == 1)
        #expect(started.withLock { $0 } == nil)

        try holder.run("SELECT pg_advisory_unlock($1)", [.integer(key)])
        held = false
        eventually("the node starts once the lock is free", timeout: 30) { started.withLock { $0 } != nil }
        let node = try #require(try started.withLock { $0 }?.get())
        #expect(versions() == 2)
        let seen = Self.call(node.port, "GET", "/admin/policy/versions", token: cluster.admin)
        let list = seen?.object["versions"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(list.count == 2, "\(seen?.text ?? "")")
        // The lock is free again (the node released it), so the next start does not wait.
        #expect(try waiting().isEmpty)
    }

    // MARK: - A policy applied on one node

    /// `PUT /admin/policy` on one node: every node runs the new version (the others follow
    /// it), the rollout's jobs converge everyone to it whichever node runs them, and people
    /// written through the other nodes just after get it too: new ones, and porters moved to
    /// reporting, whom only version 2 gives an account (version 1 queues nothing for them).
    @Test func policyAppliedOnOneNode_isInForceOnEveryNode_andEveryoneConvergesToIt() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        let package =
            #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#
        let cluster = try Cluster(policy: singleEHRPolicy(ehr, packages: package))
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        let before = (0..<60).map { "desk\($0)@x.org" }
        Self.onboard(cluster, before)
        let porters = try (0..<10).map { i -> String in
            let r = Self.call(
                cluster.nodes[i % 3].port, "POST", "/scim/v2/Users", token: cluster.writer,
                body: person("porter\(i)@x.org", title: "Porter"))
            return try #require(r?.object["id"]?.stringValue, "\(r?.text ?? "")")
        }
        eventually("everyone has scheduling", timeout: 60) {
            let accounts = ehr.snapshot()
            return before.allSatisfy { accounts[$0]?.roles == ["scheduling"] }
        }
        eventually("no job left") { Self.idle(cluster) }
        #expect(ehr.snapshot().count == 60)  // porters get nothing under version 1
        // Node 0 applies version 2: receptionists get billing too, reporting staff get
        // clinic-reporting (nobody loses access).
        let applier = cluster.nodes[0]
        let enrol = Self.call(applier.port, "POST", "/mfa/enrol", token: cluster.admin)
        let uri = try #require(enrol?.object["otpauth"]?.stringValue, "\(enrol?.text ?? "")")
        let range = try #require(uri.range(of: "secret="))
        let secret = try #require(TOTP.base32Decode(String(uri[range.upperBound...].prefix { $0 != "&" })))
        let reporting =
            #"{"name": "reporting", "rule": "userType eq \"Reporting\"", "grants": {"ehr": ["clinic-reporting"]}}"#
        let wider = singleEHRPolicy(
            ehr,
            packages: package.replacingOccurrences(of: #"["scheduling"]"#, with: #"["scheduling", "billing"]"#) + ", "
                + reporting)
        let applied = Self.call(
            applier.port, "PUT", "/admin/policy", token: cluster.admin, body: wider,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(applied?.status == 200, "\(applied?.text ?? "")")
        #expect(applied?.object["version"] == .int(2) && applied?.object["queued"] == .int(60))
        // At once, people written through the other two nodes.
        let after = (0..<10).map { "late\($0)@x.org" }
        for (i, p) in after.enumerated() {
            let node = cluster.nodes[1 + i % 2]
            let r = Self.call(
                node.port, "POST", "/scim/v2/Users", token: cluster.writer, body: person(p, title: "Receptionist"))
            #expect(r?.status == 201, "\(r?.text ?? "")")
        }
        for (i, id) in porters.enumerated() {
            let r = Self.call(
                cluster.nodes[1 + i % 2].port, "PATCH", "/scim/v2/Users/\(id)", token: cluster.writer,
                body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
                    + #""Operations":[{"op":"replace","path":"userType","value":"Reporting"}]}"#)
            #expect(r?.status == 200, "\(r?.text ?? "")")
        }
        eventually("everyone converges to version 2", timeout: 60) {
            let accounts = ehr.snapshot()
            return (before + after).allSatisfy { accounts[$0]?.roles == ["billing", "scheduling"] }
                && (0..<10).allSatisfy { accounts["porter\($0)@x.org"]?.roles == ["clinic-reporting"] }
        }
        // The other nodes said they follow it, and say which version they run.
        for node in cluster.nodes[1...] {
            eventually("node follows version 2") {
                node.log.contains("policy version put in force on another node now runs here")
                    && node.log.contains(#""policy.version":"2""#)
            }
        }
        #expect(ehr.snapshot().count == 80)
        for node in cluster.nodes {
            let listed = Self.call(node.port, "GET", "/admin/jobs?state=dead", token: cluster.admin)
            #expect(listed?.object["jobs"]?.arrayValue?.isEmpty ?? false, "\(listed?.text ?? "")")
        }
    }

    /// No node has a job running, claimed or due.
    static func idle(_ cluster: Cluster) -> Bool {
        cluster.nodes.allSatisfy { n in
            let jobs = Self.call(n.port, "GET", "/admin/jobs?state=pending", token: cluster.admin)
            return jobs?.status == 200 && jobs?.object["jobs"]?.arrayValue?.isEmpty == true
        }
    }

    // MARK: - A node killed during a reconciliation run

    /// Node 2 (a follower), or the leader itself, killed while its run lists a slow target.
    @Test(arguments: [false, true])
    func kill9OfTheNodeRunningAReconciliation_theLeaderFailsTheRunAsInterrupted(victimLeads: Bool) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        // 6,000 accounts listed 500 a page, each page a second late: the run lists for over 12 s.
        ehr.seed((0..<6000).map { (userName: "acct\($0)@x.org", attributes: [:], roles: ["scheduling"]) })
        let policy = singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#
        )
        let cluster = try Cluster(policy: policy)
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        var leaderID: String? = nil
        eventually("one leader") {
            leaderID =
                Self.nodes(cluster.nodes[0].port, cluster.admin).first { $0["leader"] == .bool(true) }?["id"]?
                .stringValue
            return leaderID != nil
        }
        let leader = try #require(cluster.nodes.first { Self.nodeID($0) == leaderID })
        let followers = cluster.nodes.filter { $0 !== leader }
        let victim =
            victimLeads ? leader : (followers.contains { $0 === cluster.nodes[1] } ? cluster.nodes[1] : followers[0])
        let watcher = try #require(cluster.nodes.last { $0 !== victim })
        let victimID = try #require(Self.nodeID(victim))
        ehr.setLatency(1)
        let started = Self.call(
            victim.port, "POST", "/admin/reconciliations", token: cluster.admin, body: #"{"targets": ["ehr"]}"#)
        #expect(started?.status == 202, "\(started?.text ?? "")")
        let id = try #require(started?.object["id"]?.stringValue)
        func listed(_ port: UInt16) -> JSONObject? {
            Self.call(port, "GET", "/admin/reconciliations", token: cluster.admin)?.object["runs"]?.arrayValue?
                .compactMap(\.objectValue).first { $0["id"]?.stringValue == id }
        }
        // Two pages in (over two of the leader's passes), the run of a live node is left running.
        eventually("the run lists accounts on node 2", timeout: 30) {
            let s = Self.call(victim.port, "GET", "/admin/reconciliations/\(id)", token: cluster.admin)?.object
            return s?["state"]?.stringValue == "running"
                && (s?["accountsListed"]?.objectValue?["ehr"]?.numberValue?.int64 ?? 0) >= 1000
        }
        let before = try #require(listed(watcher.port))
        #expect(before["state"]?.stringValue == "running")
        #expect(before["summary"]?.objectValue?["node"]?.stringValue == victimID)
        // One run per target for the cluster: another node refuses a second run on it.
        let refused = Self.call(
            watcher.port, "POST", "/admin/reconciliations", token: cluster.admin, body: #"{"targets": ["ehr"]}"#)
        #expect(refused?.status == 409, "\(refused?.text ?? "")")
        #expect(refused?.text.contains("'ehr' is already running") == true, "\(refused?.text ?? "")")
        victim.kill9()
        let killed = Date()
        let reason = "interrupted: node \(victimID) stopped during the run"
        eventually("another node reports the run failed", timeout: 30) {
            let r = listed(watcher.port)
            return r?["state"]?.stringValue == "failed" && r?["summary"]?.objectValue?["reason"]?.stringValue == reason
        }
        let took = Date().timeIntervalSince(killed)
        print(
            "multi-node: a reconciliation run of a node killed with kill -9 failed as interrupted "
                + "\(String(format: "%.1f", took)) s after it (the killed node \(victimLeads ? "led" : "followed"))"
        )
        // The lease (10 s) plus one pass (2 s); when the victim led, its lease ends as its
        // heartbeat does, so a follower takes over and fails the run in about the same time.
        #expect(took <= 15)
        let after = try #require(listed(watcher.port))
        #expect(after["finished"]?.stringValue != nil)
        // Audited once, by the leader's schedule.
        let audit = Self.call(
            watcher.port, "GET", "/admin/audit?action=reconcile.interrupt&resourceId=\(id)",
            token: cluster.admin)
        let entries = audit?.object["entries"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(entries.count == 1, "\(audit?.text ?? "")")
        #expect(entries.first?["outcome"]?.stringValue == "failed: \(reason)")
        #expect(entries.first?["attributes"] == .array([.string("ehr"), .string("node:\(victimID)")]))
        // The target is free: a new run on another node finishes.
        ehr.setLatency(0)
        let again = Self.call(
            watcher.port, "POST", "/admin/reconciliations", token: cluster.admin, body: #"{"targets": ["ehr"]}"#)
        #expect(again?.status == 202, "\(again?.text ?? "")")
        let second = try #require(again?.object["id"]?.stringValue)
        eventually("the new run finishes", timeout: 120) {
            Self.call(watcher.port, "GET", "/admin/reconciliations/\(second)", token: cluster.admin)?.object["state"]?
                .stringValue == "done"
        }
        let verify = try cluster.cli(["audit", "verify"])
        #expect(verify.status == 0 && verify.out.contains("intact"), "\(verify.out)")
    }

    // MARK: - PostgreSQL restarted under load

    @Test func postgresRestartedUnderLoad_writesGet503WithRetryAfter_nodesReconnect() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let cluster = try Cluster()
        defer { cluster.stop() }
        for _ in 0..<3 { try cluster.startNode() }
        let ports = cluster.nodes.map(\.port)
        let writer = cluster.writer
        let stop = Atomic<Bool>(false)
        let restarted = Atomic<Bool>(false)
        // (status, Retry-After present, userName, node, after the restart)
        let outcomes = Mutex<[(Int, Bool, String, Int, Bool)]>([])
        let group = DispatchGroup()
        for w in 0..<3 {
            group.enter()
            Thread {
                defer { group.leave() }
                var i = 0
                while !stop.load(ordering: .sequentiallyConsistent) {
                    let node = (w + i) % 3
                    let name = "load\(w)-\(i)@x.org"
                    let after = restarted.load(ordering: .sequentiallyConsistent)
                    let r = Self.call(
                        ports[node], "POST", "/scim/v2/Users", token: writer, body: person(name, title: "Receptionist"))
                    outcomes.withLock {
                        $0.append((r?.status ?? 0, r?.header("Retry-After") != nil, name, node, after))
                    }
                    i += 1
                    usleep(5_000)
                }
            }.start()
        }
        Thread.sleep(forTimeInterval: 1)
        cluster.pg.stop()
        Thread.sleep(forTimeInterval: 2)
        try cluster.pg.start()
        restarted.store(true, ordering: .sequentiallyConsistent)
        // Every node writes again by itself.
        eventually("every node accepts writes again", timeout: 20) {
            let ok = outcomes.withLock { o in Set(o.filter { $0.4 && $0.0 == 201 }.map(\.3)) }
            return ok.count == 3
        }
        stop.store(true, ordering: .sequentiallyConsistent)
        group.wait()
        let all = outcomes.withLock { $0 }
        let statuses = Dictionary(grouping: all, by: \.0).mapValues(\.count)
        print("multi-node: writes across a PostgreSQL restart: \(statuses.sorted { $0.key < $1.key })")
        #expect(all.allSatisfy { $0.0 == 201 || $0.0 == 503 }, "\(statuses)")
        #expect(!all.contains { $0.0 == 503 && !$0.1 }, "a 503 without Retry-After")
        #expect(all.contains { $0.0 == 503 }, "no write fell into the outage")
        // Every acknowledged create is there.
        let created = Set(all.filter { $0.0 == 201 }.map(\.2))
        var stored = Set<String>()
        var start = 1
        while true {
            let page = Self.call(
                ports[0], "GET", "/scim/v2/Users?attributes=userName&count=1000&startIndex=\(start)", token: writer)
            let rs = page?.object["Resources"]?.arrayValue ?? []
            for r in rs { if let u = r.objectValue?["userName"]?.stringValue { stored.insert(u) } }
            if rs.count < 1000 { break }
            start += 1000
        }
        #expect(created.isSubset(of: stored), "\(created.subtracting(stored).count) acknowledged creates missing")
        // The heartbeats came back too: three live nodes and a leader.
        eventually("three live nodes and a leader", timeout: 15) {
            let listed = Self.nodes(ports[1], cluster.admin)
            return listed.filter { $0["alive"] == .bool(true) }.count == 3
                && listed.contains { $0["leader"] == .bool(true) }
        }
        let verify = try cluster.cli(["audit", "verify"])
        #expect(verify.status == 0, "\(verify.out)")
    }

    // MARK: - From one SQLite node to PostgreSQL

    /// `scimhub migrate` into the cluster's database: its status, and stdout with stderr (the reason).
    static func migrate(_ data: String, _ cluster: Cluster) throws -> (status: Int32, out: String) {
        try HubProcess.runWithStatus(
            "/bin/sh",
            [
                "-c", #"exec "$0" "$@" 2>&1"#, binary, "migrate", "--from", data, "--to", cluster.connection,
                "--to-password-file", cluster.passwordFile,
            ])
    }

    @Test func migrate_copiesASQLiteHub_chainVerifies_nodesServeIt_andANonEmptyTargetIsRefused() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let cluster = try Cluster(tokens: false)
        defer { cluster.stop() }
        // A SQLite hub with people, a Group, tokens and an audit chain; stopped before the copy.
        let data = cluster.dir.path + "/sqlite"
        let token = try HubProcess.createToken(Self.binary, data: data, principal: "hr", scopes: "scim:read,scim:write")
        let single = try HubProcess(binary: Self.binary, data: data)
        var ids: [String] = []
        for i in 0..<20 {
            let r = Self.call(
                single.port, "POST", "/scim/v2/Users", token: token, body: person("mig\(i)@x.org", title: "Nurse"))
            ids.append(try #require(r?.object["id"]?.stringValue))
        }
        let group =
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ward 7","#
            + #""members":[{"value":"\#(ids[0])"},{"value":"\#(ids[1])"}]}"#
        #expect(Self.call(single.port, "POST", "/scim/v2/Groups", token: token, body: group)?.status == 201)
        #expect(Self.call(single.port, "DELETE", "/scim/v2/Users/\(ids[19])", token: token)?.status == 204)
        // While the hub serves its directory, the copy is refused (it would miss later writes).
        let busy = try Self.migrate(data, cluster)
        #expect(busy.status != 0)
        #expect(single.stop() == 0)
        let sourceAudit = try HubProcess.run(Self.binary, ["audit", "verify", "--data", data])

        let copy = try Self.migrate(data, cluster)
        #expect(copy.status == 0, "\(copy.out)")
        #expect(copy.out.contains("resources: 20 rows"), "\(copy.out)")
        #expect(copy.out.contains("audit chain: intact on the target"), "\(copy.out)")
        // The same head as the source's chain.
        let head = sourceAudit.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(head.map { copy.out.contains($0) } == true, "\(sourceAudit) vs \(copy.out)")
        let verify = try cluster.cli(["audit", "verify"])
        #expect(verify.status == 0 && verify.out.contains("intact"), "\(verify.out)")

        // Nodes on PostgreSQL serve the copy: the old token, the same ids, the Group, new writes chained on.
        let node = try cluster.startNode()
        let got = Self.call(node.port, "GET", "/scim/v2/Users/\(ids[3])", token: token)
        #expect(got?.status == 200 && got?.object["userName"]?.stringValue == "mig3@x.org")
        #expect(Self.call(node.port, "GET", "/scim/v2/Users/\(ids[19])", token: token)?.status == 404)
        let listed = Self.call(node.port, "GET", "/scim/v2/Groups", token: token)
        #expect(listed?.object["totalResults"]?.numberValue?.int64 == 1)
        #expect(
            Self.call(node.port, "POST", "/scim/v2/Users", token: token, body: person("new@x.org", title: "Nurse"))?
                .status == 201)
        #expect(
            Self.call(node.port, "POST", "/scim/v2/Users", token: token, body: person("mig4@x.org", title: "Nurse"))?
                .status == 409)
        #expect(try cluster.cli(["audit", "verify"]).status == 0)

        // A second copy into the now non-empty database is refused and changes nothing.
        let again = try Self.migrate(data, cluster)
        #expect(again.status != 0)
        #expect(Self.call(node.port, "GET", "/scim/v2/Users?count=0", token: token)?.object["totalResults"] == .int(20))
    }

    // MARK: - One node on SQLite

    @Test func sqliteHub_listsItselfAsTheOneNode() throws {
        let hub = try LiveHub()
        defer { hub.stop() }
        let r = try hub.call("GET", "/admin/nodes", token: hub.admin)
        #expect(r.status == 200)
        let nodes = r.object["nodes"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(nodes.count == 1)
        #expect(nodes.first?["leader"] == .bool(true) && nodes.first?["self"] == .bool(true))
        #expect(nodes.first?["jobsLeased"]?.numberValue?.int64 == 0)
    }
}

/// The `store` setting: SQLite by default, PostgreSQL by URL or libpq string, the password
/// only by reference.
@Suite struct StoreSettingTests {
    @Test func storeSetting_acceptsPostgresAndRefusesPasswordsInline() throws {
        #expect(try HubConfig.storeSettings("sqlite", passwordEnv: nil, passwordFile: nil) == nil)
        let url = try HubConfig.storeSettings(
            "postgres://hub@db.example/scimhub?sslmode=verify-full", passwordEnv: "PGPW", passwordFile: nil,
            environment: ["PGPW": "s3cret"])
        #expect(url?.password == "s3cret")
        #expect(url?.value("sslmode") == "verify-full")
        let kv = try HubConfig.storeSettings(
            "host=db.example dbname=scimhub user=hub", passwordEnv: nil, passwordFile: nil, environment: [:])
        #expect(kv?.value("dbname") == "scimhub" && kv?.password == nil)
        for (text, env, fragment) in [
            ("host=db password=s3cret", nil, "must not hold the password"),
            ("postgres://hub:s3cret@db/scimhub", nil, "must not hold the password"),
            ("/var/lib/scimhub", nil, "store must be sqlite"),
            ("host=db", "MISSING", "MISSING is not set"),
        ] as [(String, String?, String)] {
            #expect {
                try HubConfig.storeSettings(text, passwordEnv: env, passwordFile: nil, environment: [:])
            } throws: { error in
                let d = "\(error)"
                return d.contains(fragment) && !d.contains("s3cret")
            }
        }
        #expect(throws: ConfigError.self) {
            try HubConfig.storeSettings("host=db", passwordEnv: "A", passwordFile: "/x", environment: ["A": "b"])
        }
        // The config file's object form, with the password from a file.
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try "pw-from-file\n".write(toFile: dir.path + "/pw", atomically: true, encoding: .utf8)
        let file = dir.path + "/config.json"
        try #"{"store": {"connection": "host=db.example dbname=scimhub", "passwordFile": "\#(dir.path)/pw"}}"#.write(
            toFile: file, atomically: true, encoding: .utf8)
        #expect(try HubConfig.load(path: file).postgres?.password == "pw-from-file")
        try #"{"store": {"connection": "host=db", "colour": 1}}"#.write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: ConfigError.self) { try HubConfig.load(path: file) }
    }
}
