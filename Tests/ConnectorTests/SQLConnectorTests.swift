// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import SQLConnector
import TestSupport

/// The reference administrative system (statements from scripts/reference-policy.json).
func adminConfig(_ database: SQLConfig.Database) -> SQLConfig {
    var c = SQLConfig(database: database, statements: AdminSchema.statements)
    c.attributes = AdminSchema.attributes
    if case .sqlite = database { c.schema = AdminSchema.sqliteSchema } else { c.schema = AdminSchema.postgresSchema }
    return c
}

/// Shared checks, run against both dialects.
enum SQLChecks {
    static func assertConformant(_ c: SQLConnector) {
        let failures = ConformanceKit(
            connector: c, userName: "kit@x.org", entitlements: ("front-desk", "billing@CLN-N"),
            attributes: ["displayName": "Ana Silva", "email": "ana@x.org", "department": "Front Office"],
            updatedAttributes: ["displayName": "Ana S. Silva", "email": "ana.s@x.org", "department": "Billing"]
        ).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    static func assertNamesIntact(_ c: SQLConnector, names: [String]) throws {
        for name in names {
            let a = try c.create(
                AccountSpec(
                    userName: name, attributes: ["displayName": name],
                    entitlements: ["role'); DROP TABLE account_roles; --"]))
            let back = try #require(try c.read(id: a.id))
            #expect(back.userName == name)
            #expect(back.attributes["displayName"] == name)
            #expect(back.entitlements == ["role'); DROP TABLE account_roles; --"])
            #expect(try c.find(userName: name)?.id == a.id)
        }
        #expect(try c.find(userName: "' OR '1'='1") == nil)
        #expect(try c.find(userName: "%") == nil)
    }

    /// A convergence whose last step fails leaves nothing behind (one transaction).
    static func assertRollback(_ c: SQLConnector) throws {
        _ = try c.create(AccountSpec(userName: "taken@x.org"))
        do {
            try c.transaction { s throws(ConnectorError) in
                let a = try s.create(AccountSpec(userName: "half@x.org", entitlements: ["front-desk"]))
                try s.rename(id: a.id, userName: "taken@x.org")  // the unique index refuses it
            }
            Issue.record("the failing grant was accepted")
        } catch {
            #expect(!error.isRetryable, "\(error)")
        }
        #expect(try c.find(userName: "half@x.org") == nil)
    }

    static func assertListing(_ c: SQLConnector) throws {
        var expected: [String: Set<String>] = [:]
        for i in 0..<230 {
            let roles: Set<String> = i % 2 == 0 ? ["front-desk", "billing"] : []
            expected[try c.create(AccountSpec(userName: "list\(i)@x.org", entitlements: roles)).id] = roles
        }
        var seen: [String: Set<String>] = [:]
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try c.list(cursor: cursor, pageSize: 50)
            for a in page.accounts { seen[a.id] = a.entitlements }
            cursor = page.next
            pages += 1
        } while cursor != nil && pages < 100
        #expect(seen == expected)
        #expect(pages == 5)
    }
}

@Suite struct SQLStatementTests {
    @Test func namedParameters_becomePositional_outsideQuotesCastsAndComments() throws {
        let s = try SQLStatement(
            name: "x", source: "SELECT ':no', \":no\", a::text, :id, :userName -- :no\n/* :no */ WHERE b = :id",
            dialect: .postgresql)
        #expect(s.text == "SELECT ':no', \":no\", a::text, $1, $2 -- :no\n/* :no */ WHERE b = $1")
        #expect(s.parameters == ["id", "userName"])
        let q = try SQLStatement(name: "x", source: "SELECT 'it''s :no' WHERE x = :id", dialect: .sqlite)
        #expect(q.text == "SELECT 'it''s :no' WHERE x = ?1")
    }

    @Test func badStatements_areRefusedByName() {
        #expect(throws: SQLConfigError.self) { try SQLStatement(name: "x", source: "SELECT 'open", dialect: .sqlite) }
        var statements = AdminSchema.statements
        statements["update"] = "UPDATE accounts SET display_name = :displyName WHERE id = :id"
        do {
            var config = SQLConfig(database: .sqlite(path: "/nonexistent"), statements: statements)
            config.attributes = ["displayName", "email", "department"]
            _ = try SQLConnector(config: config)
            Issue.record("typo accepted")
        } catch {
            #expect(error.description.contains("'update'") && error.description.contains(":displyName"))
        }
        statements = AdminSchema.statements
        statements["list"] = nil
        #expect(throws: SQLConfigError.self) {
            try SQLConnector(config: SQLConfig(database: .sqlite(path: "/x"), statements: statements))
        }
        statements = AdminSchema.statements
        statements["drop"] = "DROP TABLE accounts"
        #expect(throws: SQLConfigError.self) {
            try SQLConnector(config: SQLConfig(database: .sqlite(path: "/x"), statements: statements))
        }
    }
}

@Suite struct SQLiteConnectorTests {
    let directory = TemporaryDirectory()

    func connector() throws -> SQLConnector {
        try SQLConnector(config: adminConfig(.sqlite(path: directory.path + "/admin.db")))
    }

    @Test func conformanceKit_passes() throws {
        defer { directory.remove() }
        SQLChecks.assertConformant(try connector())
    }

    @Test func specialCharacters_includingNUL_areStoredIntact() throws {
        defer { directory.remove() }
        try SQLChecks.assertNamesIntact(
            try connector(),
            names: [
                "João D'Ávila", "Smith, Jr.", #"q"uote\back*(x)"#, "Robert'); DROP TABLE accounts; --",
                "nul\u{0}byte",
            ])
    }

    @Test func aFailingConvergence_rollsBack() throws {
        defer { directory.remove() }
        try SQLChecks.assertRollback(try connector())
    }

    @Test func listing_pagesWithEntitlements() throws {
        defer { directory.remove() }
        try SQLChecks.assertListing(try connector())
    }
}

@Suite(.serialized) struct PostgresConnectorTests {
    let server: PostgresServer

    init() throws { server = try PostgresServer() }

    func connector(password: String? = nil) throws -> SQLConnector {
        try SQLConnector(
            config: adminConfig(
                .postgresql(
                    conninfo:
                        "host=127.0.0.1 port=\(server.port) dbname=postgres user=\(server.user) connect_timeout=5",
                    password: password ?? server.password)))
    }

    @Test func conformanceKit_passes() throws {
        SQLChecks.assertConformant(try connector())
    }

    @Test func specialCharacters_areStoredIntact_andNULIsRefusedCleanly() throws {
        let c = try connector()
        try SQLChecks.assertNamesIntact(
            c, names: ["João D'Ávila", "Smith, Jr.", #"q"uote\back*(x)$1"#, "Robert'); DROP TABLE accounts; --"])
        // PostgreSQL text cannot hold NUL: a clear permanent error, and nothing written.
        do {
            _ = try c.create(AccountSpec(userName: "nul\u{0}byte"))
            Issue.record("NUL accepted")
        } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("NUL"))
        }
        #expect(
            try server.psql("SELECT count(*) FROM accounts WHERE user_name LIKE 'nul%'").trimmingCharacters(
                in: .whitespacesAndNewlines) == "0")
        #expect(try server.psql("SELECT count(*) FROM accounts").trimmingCharacters(in: .whitespacesAndNewlines) == "4")
    }

    @Test func aFailingConvergence_rollsBack() throws {
        try SQLChecks.assertRollback(try connector())
    }

    @Test func listing_pagesWithEntitlements() throws {
        try SQLChecks.assertListing(try connector())
    }

    @Test func statementWithoutParameters_runs() throws {
        // A listEntitlements query that reads every grant (no :after/:last) is valid too.
        var config = adminConfig(
            .postgresql(
                conninfo: "host=127.0.0.1 port=\(server.port) dbname=postgres user=\(server.user)",
                password: server.password))
        config.statements["listEntitlements"] = "SELECT account_id AS id, role AS entitlement FROM account_roles"
        try SQLChecks.assertListing(try SQLConnector(config: config))
    }

    @Test func wrongPassword_isPermanent_withAClearReason() throws {
        let c = try connector(password: "wrong-password")
        do {
            _ = try c.find(userName: "a@x.org")
            Issue.record("wrong password accepted")
        } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("wrong user or password"))
            #expect(!error.reason.contains("wrong-password"))
        }
    }

    @Test func serverRestart_isRetryable_thenReconnects() throws {
        let c = try connector()
        let a = try c.create(AccountSpec(userName: "restart@x.org", entitlements: ["front-desk"]))
        server.stop()
        do {
            _ = try c.read(id: a.id)
            Issue.record("read succeeded with the server down")
        } catch {
            #expect(error.isRetryable, "\(error)")
        }
        try server.start()
        #expect(try c.read(id: a.id)?.entitlements == ["front-desk"])
        try c.transaction { s throws(ConnectorError) in try s.grant(id: a.id, entitlement: "billing") }
        #expect(try c.read(id: a.id)?.entitlements == ["front-desk", "billing"])
    }

    @Test func rowDeletedByHand_readsAsMissing() throws {
        let c = try connector()
        let a = try c.create(AccountSpec(userName: "gone@x.org"))
        try server.psql("DELETE FROM accounts WHERE id = \(Int(a.id)!)")
        #expect(try c.read(id: a.id) == nil)
        #expect(try c.find(userName: "gone@x.org") == nil)
    }
}
