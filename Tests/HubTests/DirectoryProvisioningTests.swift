// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import JSONCore
import LDAPConnector
import SQLConnector
import TestSupport

/// The engine end to end into a real slapd (imaging directory) and a real PostgreSQL
/// (administrative system), through the hub's SCIM API.
@Suite(.serialized) struct DirectoryProvisioningTests {
    let slapd: SlapdServer
    let postgres: PostgresServer
    let secrets = TemporaryDirectory()

    init() throws {
        slapd = try SlapdServer()
        postgres = try PostgresServer()
    }

    /// Policy with both targets; `ldapPassword` lets a test give the wrong one.
    func policy(ldapPassword: String? = nil) throws -> String {
        let ldapSecret = secrets.path + "/ldap", pgSecret = secrets.path + "/pg"
        try (ldapPassword ?? slapd.rootPassword).write(toFile: ldapSecret, atomically: true, encoding: .utf8)
        try postgres.password.write(toFile: pgSecret, atomically: true, encoding: .utf8)
        var statementsJSON = JSONObject()
        for (k, v) in AdminSchema.statements.sorted(by: { $0.key < $1.key }) { statementsJSON[k] = .string(v) }
        let sqlSettings = JSONWriter().string(
            .object(
                JSONObject([
                    "dialect": .string("postgresql"),
                    "connection": .string(
                        "host=127.0.0.1 port=\(postgres.port) dbname=postgres user=\(postgres.user) connect_timeout=2"),
                    "passwordFile": .string(pgSecret),
                    "schema": .array(AdminSchema.postgresSchema.map { .string($0) }),
                    "statements": .object(statementsJSON),
                ])))
        return """
            {"targets": [
              {"name": "imaging", "type": "ldap", "concurrency": 4,
               "settings": {"url": "\(slapd.url)", "bindDN": "\(slapd.rootDN)", "bindPasswordFile": "\(ldapSecret)",
                            "usersBase": "\(slapd.usersBase)", "groupsBase": "\(slapd.groupsBase)", \
            "timeoutSeconds": 2, "connectTimeoutSeconds": 1},
               "mapping": {"cn": "displayName", "mail": "emails.value", "title": "title"}},
              {"name": "admin", "type": "sql", "concurrency": 4, "settings": \(sqlSettings),
               "mapping": {"displayName": "displayName", "email": "emails.value", \
            "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}}
             ],
             "packages": [
              {"name": "physician", "rule": "title eq \\"Physician\\"", "grants": {"imaging": ["imaging-viewer"], \
            "admin": ["clinician-self-service"]}},
              {"name": "radiographer", "rule": "title eq \\"Radiographer\\"", \
            "grants": {"imaging": ["imaging-technologist"]}},
              {"name": "receptionist", "rule": "title eq \\"Receptionist\\"", "grants": {"admin": ["front-desk"]}}
             ]}
            """
    }

    /// The connectors a test uses to look at the targets directly.
    var ldap: LDAPConnector {
        var c = LDAPConfig(
            url: slapd.url, bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, usersBase: slapd.usersBase,
            groupsBase: slapd.groupsBase)
        c.attributes = ["cn", "mail", "title"]
        return LDAPConnector(config: c)
    }

    var sql: SQLConnector {
        var c = SQLConfig(
            database: .postgresql(
                conninfo: "host=127.0.0.1 port=\(postgres.port) dbname=postgres user=\(postgres.user)",
                password: postgres.password),
            statements: AdminSchema.statements)
        c.attributes = AdminSchema.attributes
        return try! SQLConnector(config: c)
    }

    func create(_ hub: LiveHub, _ body: String) throws -> String {
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("create: \(r.status) \(r.text)")
        }
        return id
    }

    func patch(_ hub: LiveHub, _ id: String, _ ops: String) throws {
        let r = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}")
        #expect(r.status == 200, "\(r.text)")
    }

    @Test func joinerMoverLeaver_convergeInLDAPAndPostgres() throws {
        let hub = try LiveHub(policy: try policy())
        defer { hub.stop(); secrets.remove() }
        // mail is IA5String in LDAP (RFC 4524), so the user name (also the email) stays ASCII; the display name
        // carries the rest.
        let name = "o'brien+1@x.org"
        let display = "João D'Ávila, Jr. (*) \\ \"x\""
        let body = person(name, title: "Physician").replacingOccurrences(
            of: #""displayName":"o'brien+1@x.org""#, with: #""displayName":"João D'Ávila, Jr. (*) \\ \"x\"""#)
        let id = try create(hub, body)
        eventually("joiner in both") {
            try ldap.find(userName: name)?.entitlements == ["imaging-viewer"]
                && sql.find(userName: name)?.entitlements == ["clinician-self-service"]
        }
        #expect(try ldap.find(userName: name)?.attributes["cn"] == display)
        #expect(try sql.find(userName: name)?.attributes["displayName"] == display)
        // Mover: physician → radiographer loses the admin system and changes directory group.
        try patch(
            hub, id,
            #"[{"op":"replace","path":"title","value":"Radiographer"},"#
                + #"{"op":"replace","path":"displayName","value":"Smith, Jr. (\"JD\")"}]"#
        )
        eventually("mover") {
            let l = try ldap.find(userName: name)
            let s = try sql.find(userName: name)
            return l?.entitlements == ["imaging-technologist"] && l?.attributes["cn"] == #"Smith, Jr. ("JD")"#
                && s?.enabled == false && s?.entitlements == []
        }
        // Leaver: disabled everywhere, entitlements gone.
        try patch(hub, id, #"[{"op":"replace","path":"active","value":false}]"#)
        eventually("leaver") {
            try ldap.find(userName: name)?.enabled == false && ldap.find(userName: name)?.entitlements == []
        }
        #expect(try sql.find(userName: name)?.enabled == false)
    }

    @Test func serversRestartedMidRun_jobsRetryAndConverge() throws {
        let hub = try LiveHub(policy: try policy())
        defer { hub.stop(); secrets.remove() }
        _ = try create(hub, person("before@x.org", title: "Physician"))
        eventually("first person in both") {
            try ldap.find(userName: "before@x.org") != nil && sql.find(userName: "before@x.org") != nil
        }
        slapd.stop()
        postgres.stop()
        for i in 0..<10 { _ = try create(hub, person("during\(i)@x.org", title: "Physician")) }
        eventually("jobs are failing and waiting") {
            try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.allSatisfy {
                ($0.objectValue?["queueDepth"]?.numberValue?.int64 ?? 0) > 0
            } == true
        }
        Thread.sleep(forTimeInterval: 0.5)
        try slapd.start()
        try postgres.start()
        eventually("everyone converges after the restart", timeout: 30) {
            try (0..<10).allSatisfy { i in
                try ldap.find(userName: "during\(i)@x.org")?.entitlements == ["imaging-viewer"]
                    && sql.find(userName: "during\(i)@x.org")?.entitlements == ["clinician-self-service"]
            }
        }
        let dead = try hub.call("GET", "/admin/jobs?state=dead", token: hub.admin).object["jobs"]?.arrayValue ?? []
        #expect(dead.isEmpty)
    }

    @Test func entryAndRowDeletedByHand_areRecreatedOnTheNextConvergence() throws {
        let hub = try LiveHub(policy: try policy())
        defer { hub.stop(); secrets.remove() }
        let id = try create(hub, person("gone@x.org", title: "Physician"))
        eventually("provisioned") {
            try ldap.find(userName: "gone@x.org") != nil && sql.find(userName: "gone@x.org") != nil
        }
        try ldap.delete(id: try #require(try ldap.find(userName: "gone@x.org")).id)
        try postgres.psql("DELETE FROM accounts WHERE user_name = 'gone@x.org'")  // account_roles cascade
        try patch(hub, id, #"[{"op":"replace","path":"displayName","value":"Gone Again"}]"#)
        eventually("recreated in both") {
            try ldap.find(userName: "gone@x.org")?.attributes["cn"] == "Gone Again"
                && sql.find(userName: "gone@x.org")?.attributes["displayName"] == "Gone Again"
        }
        #expect(try ldap.find(userName: "gone@x.org")?.entitlements == ["imaging-viewer"])
        #expect(try sql.find(userName: "gone@x.org")?.entitlements == ["clinician-self-service"])
    }

    @Test func wrongDirectoryPassword_deadLettersOnce_withAClearReason() throws {
        let hub = try LiveHub(policy: try policy(ldapPassword: "wrong"))
        defer { hub.stop(); secrets.remove() }
        _ = try create(hub, person("locked-out@x.org", title: "Radiographer"))
        eventually("dead-lettered") {
            try hub.call("GET", "/admin/jobs?state=dead&target=imaging", token: hub.admin).object["jobs"]?.arrayValue?
                .count == 1
        }
        let job = try #require(
            try hub.call("GET", "/admin/jobs?state=dead&target=imaging", token: hub.admin).object["jobs"]?.arrayValue?
                .first?.objectValue)
        #expect(job["lastError"]?.stringValue?.contains("invalid credentials") == true)
        #expect(job["attempts"] == .int(1))  // permanent: no retry storm against the directory
    }
}
