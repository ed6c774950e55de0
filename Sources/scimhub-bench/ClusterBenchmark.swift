// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HubHarness

/// `--cluster`: the same durable creates, GETs by id and PATCHes through one SQLite node and
/// through one, two and three nodes on one local PostgreSQL (fsync on, as in production), the
/// load spread over the nodes. On a machine of two cores the point is the overhead of the
/// shared database and correctness, not scaling.
func runClusterBenchmark(_ o: Options) throws {
    say(
        "scimhub-bench --cluster: \(o.connections) keep-alive connections, \(o.seconds) s per test, "
            + "\(o.people) people, \(ProcessInfo.processInfo.activeProcessorCount) cores")
    var sqliteCreates = 0.0
    do {
        let (hub, dir, rate, ids, _) = try freshHub(o, count: o.people)
        say("\n== SQLite, one node (bulk load \(String(format: "%.0f", rate)) records/s)")
        sqliteCreates = try measureCluster(o, ports: [hub.port], ids: ids)
        hub.stop()
        dir.remove()
    }
    let pg = try PostgresServer(durable: true)
    defer {
        pg.stop()
        pg.directory.remove()
    }
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let passwordFile = dir.path + "/pgpass"
    try (pg.password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
    for count in 1...3 {
        // A database of its own per run, so each starts empty.
        let database = "bench\(count)"
        try pg.psql("CREATE DATABASE \(database)")
        let connection = "host=127.0.0.1 port=\(pg.port) dbname=\(database) user=\(pg.user)"
        let store = ["--store", connection, "--store-password-file", passwordFile]
        let out = try HubProcess.run(
            o.binary, ["token", "create", "--principal", "bench", "--scope", "scim:read,scim:write"] + store)
        guard let t = out.split(separator: "\n").last.map(String.init), t.hasPrefix("shub_") else {
            throw TestError("token create --store failed")
        }
        token = t
        var nodes: [HubProcess] = []
        for i in 0..<count {
            nodes.append(
                try HubProcess(
                    binary: o.binary, data: dir.path + "/\(database)-\(i)", extraArguments: ["--log-level", "warning"],
                    store: connection, storePasswordFile: passwordFile))
        }
        let c = try RawHTTPClient(port: nodes[0].port, timeout: 120)
        let rate = Double(o.people) / (try bulkLoad(o, count: o.people, client: c, token: token))
        var ids: [String] = []
        var start = 1
        while true {
            guard
                let r = c.request(
                    "GET", "/scim/v2/Users?attributes=userName&count=1000&startIndex=\(start)",
                    headers: [("Authorization", "Bearer \(token)")])
            else { break }
            let page = r.object["Resources"]?.arrayValue ?? []
            ids += page.compactMap { $0.objectValue?["id"]?.stringValue }
            if page.count < 1000 { break }
            start += 1000
        }
        say("\n== PostgreSQL, \(count) node(s) (bulk load \(String(format: "%.0f", rate)) records/s)")
        let creates = try measureCluster(o, ports: nodes.map(\.port), ids: ids)
        say(String(format: "durable creates/s against SQLite: %.2f", creates / max(1, sqliteCreates)))
        for n in nodes { n.stop() }
    }
    guard o.onboard > 0 else { return }
    say(
        "\n== Onboarding \(o.onboard) people (Bulk of 1,000, dealt over the nodes) into the reference policy's "
            + "three targets: EHR test server, slapd, SQLite admin database")
    let single = try onboard(o, nodes: 1, pg: nil)
    for (count, label) in [(1, "PostgreSQL, one node"), (3, "PostgreSQL, three nodes")] {
        let r = try onboard(o, nodes: count, pg: pg)
        say(String(format: "%@ against SQLite: %.2f of its rate", label, single / r))
    }
}

/// Onboards `o.onboard` people through `nodes` fresh nodes (SQLite when `pg` is nil) into
/// fresh targets; prints the time from the first Bulk until every queue is empty, the
/// accounts per target, and the findings of a reconciliation; returns the seconds.
private func onboard(_ o: Options, nodes count: Int, pg: PostgresServer?) throws -> Double {
    let targets = try ThreeTargets()
    defer { targets.stop() }
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    var storeArgs: [String] = []
    var connection: String? = nil
    let passwordFile = dir.path + "/pgpass"
    if let pg {
        let database = "onboard\(count)"
        try pg.psql("CREATE DATABASE \(database)")
        connection = "host=127.0.0.1 port=\(pg.port) dbname=\(database) user=\(pg.user)"
        try (pg.password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        storeArgs = ["--store", connection!, "--store-password-file", passwordFile]
    } else {
        storeArgs = ["--data", dir.path + "/node0"]
    }
    func token(_ principal: String, _ scopes: String) throws -> String {
        let out = try HubProcess.run(
            o.binary, ["token", "create", "--principal", principal, "--scope", scopes] + storeArgs)
        guard let t = out.split(separator: "\n").last.map(String.init), t.hasPrefix("shub_") else {
            throw TestError("token create failed")
        }
        return t
    }
    let (hr, admin) = (try token("hr", "scim:read,scim:write"), try token("bench-admin", "admin"))
    let config = dir.path + "/config.json"
    // Onboarding only adds access: the feed guard has nothing to hold; off, as in --provisioning.
    try #"{"feedGuard": {"enabled": false}}"#.write(toFile: config, atomically: true, encoding: .utf8)
    var nodes: [HubProcess] = []
    defer { for n in nodes { n.stop() } }
    for i in 0..<count {
        nodes.append(
            try HubProcess(
                binary: o.binary, data: dir.path + "/node\(i)",
                extraArguments: ["--policy", targets.policyFile, "--config", config, "--log-level", "error"],
                store: connection, storePasswordFile: pg == nil ? nil : passwordFile))
    }
    let bodies = ThreeTargets.bulkBodies(0..<o.onboard)
    let ports = nodes.map(\.port)
    let failures = Atomic<Int>(0)
    let t0 = Date()
    DispatchQueue.concurrentPerform(iterations: ports.count) { i in
        guard let c = try? RawHTTPClient(port: ports[i], timeout: 300) else {
            failures.add(1, ordering: .relaxed)
            return
        }
        for b in stride(from: i, to: bodies.count, by: ports.count) {
            let r = c.request(
                "POST", "/scim/v2/Bulk",
                headers: [("Authorization", "Bearer \(hr)"), ("Content-Type", "application/scim+json")],
                body: Array(bodies[b].utf8))
            if r?.status != 200 { failures.add(1, ordering: .relaxed) }
        }
    }
    let accepted = Date().timeIntervalSince(t0)
    guard failures.load(ordering: .relaxed) == 0 else { throw TestError("a Bulk request failed") }
    while !ThreeTargets.drained(port: ports[0], adminToken: admin) {
        guard Date().timeIntervalSince(t0) < 1800 else { throw TestError("onboarding did not drain in 30 minutes") }
        Thread.sleep(forTimeInterval: 0.1)
    }
    let seconds = Date().timeIntervalSince(t0)
    let accounts = try targets.accounts()
    let findings = try ThreeTargets.reconcile(port: ports[0], adminToken: admin).values.reduce(0) { $0 + $1.findings }
    let total = accounts.values.reduce(0) { $0 + $1.count }
    let duplicates = accounts.values.reduce(0) { $0 + $1.count - $1.distinctUserNames }
    say(
        String(
            format:
                "%@, %d node(s): %.1f s to the last account (Bulk accepted in %.1f s); %d accounts "
                + "(ehr %d, imaging %d, admin %d), %.0f accounts/s; duplicates %d, reconciliation findings %d",
            pg == nil ? "SQLite" : "PostgreSQL", count, seconds, accepted, total, accounts["ehr"]?.count ?? -1,
            accounts["imaging"]?.count ?? -1, accounts["admin"]?.count ?? -1, Double(total) / seconds, duplicates,
            findings))
    return seconds
}

/// GET by id, durable POST and PATCH with the connections dealt over `ports`; returns creates/s.
private func measureCluster(_ o: Options, ports: [UInt16], ids: [String]) throws -> Double {
    let n = ids.count
    guard n > 0 else { throw TestError("no people loaded") }
    let get = load(ports: ports, connections: o.connections, seconds: o.seconds) { t, i in
        ("GET", "/scim/v2/Users/\(ids[(t * 7919 + i * 104_729) % n])", nil)
    }
    say("GET /Users/{id}            " + get.line)
    let create = load(ports: ports, connections: o.connections, seconds: o.seconds) { t, i in
        (
            "POST", "/scim/v2/Users",
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                + #""userName":"cluster-\#(ports[0])-\#(t)-\#(i)@clinicas-exemplo.org","title":"Registered Nurse"}"#
        )
    }
    say("POST /Users (durable)      " + create.line)
    let patch = load(ports: ports, connections: o.connections, seconds: o.seconds) { t, i in
        (
            "PATCH", "/scim/v2/Users/\(ids[(t * 7919 + i * 104_729) % n])",
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"title","value":"Title \#(t)-\#(i)"}]}"#
        )
    }
    say("PATCH /Users/{id} (durable)" + patch.line)
    return Double(create.latencies.count) / create.elapsed
}
