// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import ConnectorKit
import LDAPConnector
import Provisioning
import SQLConnector
import SQLite
import HubHarness

/// `scimhub-bench --connectors`: each connector against its real server on loopback.
/// 1. Convergence: `--convergences` joiners (create with two roles), movers (update, revoke one,
///    grant one) and leavers (disable, revoke all), each a full read-compare-apply
///    (`Convergence.converge`) in the connector's transaction, on `--threads` threads.
/// 2. Listing: `--list-accounts` accounts with their entitlements, preloaded in bulk, read
///    back through the connector's paged `list`.
func runConnectorBenchmark(_ o: Options) throws {
    say(
        "scimhub-bench --connectors: \(o.convergences) people per phase, \(o.threads) threads, "
            + "listing \(o.listAccounts) accounts, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    if o.only.contains("ldap") { try benchLDAP(o) }
    if o.only.contains("postgresql") { try benchPostgres(o) }
    if o.only.contains("sqlite") { try benchSQLite(o) }
}

// MARK: - Per connector

private func benchLDAP(_ o: Options) throws {
    // back-mdb has one writer at a time and, by default, flushes every write to disk: the
    // directory's own write rate is then the ceiling, so both settings are measured.
    for durable in [true, false] {
        say(
            "\n== LDAP (slapd \(slapdVersion()), back-mdb \(durable ? "synchronous commits (default)" : "dbnosync"), "
                + "ppolicy lock, groupOfNames)"
        )
        let server = try SlapdServer(durable: durable)
        var c = LDAPConfig(
            url: server.url, bindDN: server.rootDN, bindPassword: server.rootPassword, usersBase: server.usersBase,
            groupsBase: server.groupsBase)
        c.attributes = ["cn", "mail", "title"]
        convergencePhases(
            LDAPConnector(config: c), o,
            attributes: { i, v in ["cn": "Person \(i) v\(v)", "mail": "p\(i)@x.org", "title": "Title \(v)"] })
        server.stop()
    }
    // Listing: the accounts and ten groups loaded offline with slapadd.
    let n = o.listAccounts
    var ldif = ""
    ldif.reserveCapacity(n * 200)
    for i in 0..<n {
        ldif +=
            "dn: uid=user\(i)@x.org,ou=people,dc=scimhub,dc=test\nobjectClass: inetOrgPerson\n"
            + "uid: user\(i)@x.org\ncn: User \(i)\nsn: \(i)\nmail: user\(i)@x.org\ntitle: Nurse\n\n"
    }
    for g in 0..<10 {
        ldif += "dn: cn=role-\(g),ou=groups,dc=scimhub,dc=test\nobjectClass: groupOfNames\ncn: role-\(g)\n"
        for i in stride(from: g, to: n, by: 10) { ldif += "member: uid=user\(i)@x.org,ou=people,dc=scimhub,dc=test\n" }
        ldif += "\n"
    }
    let t0 = Date()
    let server = try SlapdServer(ldif: ldif)
    say(String(format: "  loaded %d entries with slapadd in %.1f s", n, Date().timeIntervalSince(t0)))
    var c = LDAPConfig(
        url: server.url, bindDN: server.rootDN, bindPassword: server.rootPassword, usersBase: server.usersBase,
        groupsBase: server.groupsBase)
    c.attributes = ["cn", "mail", "title"]
    listing(LDAPConnector(config: c), expected: n, pageSize: 1000)
    server.stop()
}

private func benchPostgres(_ o: Options) throws {
    // Durable: PostgreSQL's defaults (fsync on, synchronous_commit on).
    let server = try PostgresServer(durable: true)
    let version = (try? server.psql("SHOW server_version").trimmingCharacters(in: .whitespacesAndNewlines)) ?? "?"
    say("\n== PostgreSQL \(version) (libpq, durable commits, one transaction per convergence)")
    let connector = try postgresConnector(server)
    convergencePhases(
        connector, o,
        attributes: { i, v in ["displayName": "Person \(i) v\(v)", "email": "p\(i)@x.org", "department": "Dept \(v)"] })
    try server.psql("TRUNCATE account_roles, accounts")
    let t0 = Date()
    try server.psql(
        """
        INSERT INTO accounts (user_name, display_name, email, department, enabled)
            SELECT 'user' || g || '@x.org', 'User ' || g, 'user' || g || '@x.org', 'Nursing', true
            FROM generate_series(1, \(o.listAccounts)) g;
        INSERT INTO account_roles (account_id, role) SELECT id, 'role-' || (id % 10) FROM accounts;
        INSERT INTO account_roles (account_id, role) SELECT id, 'viewer' FROM accounts WHERE id % 2 = 0;
        ANALYZE;
        """)
    say(
        String(
            format: "  loaded %d rows with INSERT … SELECT in %.1f s", o.listAccounts,
            Date().timeIntervalSince(t0)))
    listing(connector, expected: o.listAccounts, pageSize: 1000)
    server.stop()
}

private func benchSQLite(_ o: Options) throws {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    say("\n== SQLite (WAL, BEGIN IMMEDIATE per convergence)")
    var c = SQLConfig(database: .sqlite(path: dir.path + "/admin.db"), statements: AdminSchema.statements)
    c.attributes = AdminSchema.attributes
    c.schema = AdminSchema.sqliteSchema
    let connector = try SQLConnector(config: c)
    convergencePhases(
        connector, o,
        attributes: { i, v in ["displayName": "Person \(i) v\(v)", "email": "p\(i)@x.org", "department": "Dept \(v)"] })
    let db = try SQLiteConnection(path: dir.path + "/admin.db")
    try db.execute(
        """
        DELETE FROM account_roles; DELETE FROM accounts;
        WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < \(o.listAccounts))
            INSERT INTO accounts (id, user_name, display_name, email, department, enabled)
            SELECT n, 'user' || n || '@x.org', 'User ' || n, 'user' || n || '@x.org', 'Nursing', 1 FROM g;
        INSERT INTO account_roles (account_id, role) SELECT id, 'role-' || (id % 10) FROM accounts;
        INSERT INTO account_roles (account_id, role) SELECT id, 'viewer' FROM accounts WHERE id % 2 = 0;
        """)
    listing(connector, expected: o.listAccounts, pageSize: 1000)
}

private func postgresConnector(_ server: PostgresServer) throws -> SQLConnector {
    var c = SQLConfig(
        database: .postgresql(
            conninfo: "host=127.0.0.1 port=\(server.port) dbname=postgres user=\(server.user)",
            password: server.password),
        statements: AdminSchema.statements)
    c.attributes = AdminSchema.attributes
    c.schema = AdminSchema.postgresSchema
    return try SQLConnector(config: c)
}

private func slapdVersion() -> String {
    let out = (try? String(contentsOfFile: "/var/lib/dpkg/status", encoding: .utf8)) ?? ""
    guard let r = out.range(of: "Package: slapd\n") else { return "?" }
    let rest = out[r.upperBound...]
    guard let v = rest.range(of: "Version: ") else { return "?" }
    return String(rest[v.upperBound...].prefix { $0 != "\n" })
}

// MARK: - Phases

/// Joiners, movers and leavers through `Convergence.converge` inside `transaction`.
private func convergencePhases(
    _ connector: any Connector, _ o: Options, attributes: @escaping @Sendable (Int, Int) -> [String: String]
) {
    let ids = Mutex([String?](repeating: nil, count: o.convergences))
    @Sendable func desired(_ i: Int, phase: Int) -> DesiredAccount {
        let roles: Set<String>
        switch phase {
        case 0: roles = ["viewer", "role-\(i % 10)"]
        case 1: roles = ["viewer", "role-\((i + 1) % 10)"]
        default: roles = []
        }
        return DesiredAccount(
            userName: "bench\(i)@x.org", enabled: phase < 2, attributes: attributes(i, phase == 0 ? 0 : 1),
            entitlements: roles, packages: [])
    }
    for (phase, name) in [
        "joiners (create + 2 grants)", "movers (update, revoke 1, grant 1)", "leavers (disable, revoke 2)",
    ].enumerated() {
        let r = timed(threads: o.threads, count: o.convergences) { i throws(ConnectorError) -> Int in
            let id = ids.withLock { $0[i] }
            let outcome = try connector.transaction { s throws(ConnectorError) in
                try Convergence.converge(desired: desired(i, phase: phase), accountID: id, connector: s)
            }
            if phase == 0 { ids.withLock { $0[i] = outcome.accountID } }
            return phase == 0 ? 3 : outcome.actions.count  // create + its two grants
        }
        say(
            String(
                format: "  %-38@ %7.0f convergences/s  %7.0f writes/s  p50 %6.2f ms  p99 %6.2f ms  (%d errors%@)",
                name as NSString, Double(r.count) / r.elapsed, Double(r.writes) / r.elapsed, r.percentile(0.5) * 1000,
                r.percentile(0.99) * 1000,
                r.errors, (r.firstError.map { ": " + $0 } ?? "") as NSString))
    }
}

private struct Timing {
    var latencies: [Double] = []
    var writes = 0
    var errors = 0
    var firstError: String?
    var elapsed = 0.0
    var count: Int { latencies.count }

    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let s = latencies.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }
}

/// Runs `body(i)` for i in 0..<count on `threads` threads; `body` returns the writes it made.
private func timed(threads: Int, count: Int, _ body: @escaping @Sendable (Int) throws(ConnectorError) -> Int) -> Timing
{
    let next = Atomic<Int>(0)
    let merged = Mutex(Timing())
    let group = DispatchGroup()
    let start = Date()
    for _ in 0..<threads {
        group.enter()
        Thread {
            defer { group.leave() }
            var local = Timing()
            while true {
                let i = next.add(1, ordering: .relaxed).oldValue
                if i >= count { break }
                let t0 = DispatchTime.now().uptimeNanoseconds
                do {
                    local.writes += try body(i)
                    local.latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                } catch {
                    local.errors += 1
                    if local.firstError == nil { local.firstError = String(describing: error) }
                }
            }
            merged.withLock { m in
                m.latencies += local.latencies
                m.writes += local.writes
                m.errors += local.errors
                if m.firstError == nil { m.firstError = local.firstError }
            }
        }.start()
    }
    group.wait()
    var r = merged.withLock { $0 }
    r.elapsed = Date().timeIntervalSince(start)
    return r
}

/// Reads every account with its entitlements through `list`, as reconciliation will.
private func listing(_ connector: any Connector, expected: Int, pageSize: Int) {
    let t0 = Date()
    var accounts = 0, entitlements = 0, pages = 0
    var cursor: String? = nil
    do {
        repeat {
            let page = try connector.list(cursor: cursor, pageSize: pageSize)
            accounts += page.accounts.count
            for a in page.accounts { entitlements += a.entitlements.count }
            cursor = page.next
            pages += 1
        } while cursor != nil
    } catch {
        say("  listing failed: \(error)")
        return
    }
    let elapsed = Date().timeIntervalSince(t0)
    say(
        String(
            format: "  list %d accounts with %d entitlements: %.2f s (%d pages of %d)%@", accounts, entitlements,
            elapsed, pages, pageSize,
            accounts == expected ? "" : "  MISMATCH: expected \(expected)"))
}
