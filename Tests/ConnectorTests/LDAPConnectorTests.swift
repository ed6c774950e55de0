// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import LDAPConnector
import TestSupport

/// RFC 4514 / RFC 4515 escaping, by the RFCs' own examples.
@Suite struct LDAPEscapingTests {
    @Test func dnValues_escapeSpecialsAndEdges() {
        #expect(LDAPEscaping.dnValue("Smith, Jr.") == #"Smith\, Jr."#)
        #expect(LDAPEscaping.dnValue(#"a+b"c\d<e>f;g=h"#) == #"a\+b\"c\\d\<e\>f\;g\=h"#)
        #expect(LDAPEscaping.dnValue("#lead") == ##"\#lead"##)
        #expect(LDAPEscaping.dnValue(" both ") == #"\ both\ "#)
        #expect(LDAPEscaping.dnValue("nul\u{0}x") == #"nul\00x"#)
        #expect(LDAPEscaping.dnValue("João D'Ávila") == "João D'Ávila")
    }

    @Test func filterValues_escapeWildcardsAndParentheses() {
        #expect(LDAPEscaping.filterValue("*") == #"\2a"#)
        #expect(LDAPEscaping.filterValue("a)(uid=*") == #"a\29\28uid=\2a"#)
        #expect(LDAPEscaping.filterValue(#"back\slash"#) == #"back\5cslash"#)
        #expect(LDAPEscaping.filterValue("nul\u{0}") == #"nul\00"#)
        #expect(LDAPEscaping.filterValue("Lucía") == "Lucía")
    }
}

/// The LDAP connector against a real slapd started for each test.
@Suite(.serialized) struct LDAPConnectorTests {
    let server: SlapdServer

    init() throws { server = try SlapdServer() }

    func config(_ disable: LDAPConfig.DisableMethod = .lock, password: String? = nil) -> LDAPConfig {
        var c = LDAPConfig(
            url: server.url, bindDN: server.rootDN, bindPassword: password ?? server.rootPassword,
            usersBase: server.usersBase, groupsBase: server.groupsBase)
        c.attributes = ["cn", "mail", "title"]
        c.disable = disable
        c.timeout = 5
        return c
    }

    func connector(_ disable: LDAPConfig.DisableMethod = .lock) -> LDAPConnector {
        LDAPConnector(config: config(disable))
    }

    func assertConformant(_ c: LDAPConnector, _ userName: String) {
        let failures = ConformanceKit(
            connector: c, userName: userName, entitlements: ("imaging-viewer", "imaging-reporting@CLN-CEN"),
            attributes: ["cn": "Ana Silva", "mail": "ana@x.org", "title": "Radiologist"],
            updatedAttributes: ["cn": "Ana S. Silva", "mail": "ana.silva@x.org", "title": "Radiographer"]
        ).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func conformanceKit_passes_withEveryDisableMethod() {
        assertConformant(connector(.lock), "kit-lock@x.org")
        assertConformant(connector(.attribute(name: "employeeType", value: "disabled")), "kit-attr@x.org")
        assertConformant(connector(.move(base: server.disabledBase)), "kit-move@x.org")
    }

    @Test func groupOfUniqueNames_conformant() {
        var c = config()
        c.groupObjectClass = "groupOfUniqueNames"
        assertConformant(LDAPConnector(config: c), "kit-unique@x.org")
    }

    @Test func specialCharacters_reachTheDirectoryIntact_andCannotInject() throws {
        let c = connector()
        let plain = try c.create(AccountSpec(userName: "plain@x.org", entitlements: ["viewer"]))
        let names = ["João D'Ávila", "Smith, Jr.", #"a+b"c\d"#, "star*(paren)", "#hash ", "nul\u{0}byte", "<x>;y=z"]
        for name in names {
            let a = try c.create(
                AccountSpec(
                    userName: name, attributes: ["cn": name, "title": "T, \"x\" \\ *"],
                    entitlements: ["role, with comma", "viewer"]))
            let back = try #require(try c.read(id: a.id))
            #expect(back.userName == name)
            #expect(back.attributes["cn"] == name)
            #expect(back.attributes["title"] == "T, \"x\" \\ *")
            #expect(back.entitlements == ["role, with comma", "viewer"])
            #expect(try c.find(userName: name)?.id == a.id)
        }
        // A wildcard or an extra clause in a user name matches nothing.
        #expect(try c.find(userName: "*") == nil)
        #expect(try c.find(userName: "plain*") == nil)
        #expect(try c.find(userName: "x)(uid=plain@x.org") == nil)
        #expect(try c.find(userName: "plain@x.org")?.id == plain.id)
        // A user name shaped like a DN stays one RDN value: it cannot place an entry elsewhere.
        let sneaky = try c.create(AccountSpec(userName: "evil,ou=groups,dc=scimhub,dc=test"))
        #expect(try c.read(id: sneaky.id)?.userName == "evil,ou=groups,dc=scimhub,dc=test")
        #expect(try c.find(userName: "evil") == nil)
    }

    @Test func rename_isModrdn_andKeepsGroupMemberships() throws {
        let c = connector()
        let a = try c.create(
            AccountSpec(
                userName: "maria.lopez@x.org", attributes: ["cn": "Maria Lopez"],
                entitlements: ["nurse@CLN-N", "viewer"]))
        try c.rename(id: a.id, userName: "maria.garcia@x.org")
        let after = try #require(try c.read(id: a.id))
        #expect(after.id == a.id)  // entryUUID survives the rename
        #expect(after.userName == "maria.garcia@x.org")
        #expect(after.entitlements == ["nurse@CLN-N", "viewer"])
        #expect(try c.find(userName: "maria.lopez@x.org") == nil)
    }

    @Test func disableByMove_keepsIdAndMemberships() throws {
        let c = connector(.move(base: server.disabledBase))
        let a = try c.create(AccountSpec(userName: "mover@x.org", entitlements: ["viewer"]))
        try c.setEnabled(id: a.id, false)
        let disabled = try #require(try c.read(id: a.id))
        #expect(!disabled.enabled)
        #expect(disabled.entitlements == ["viewer"])
        try c.setEnabled(id: a.id, true)
        #expect(try c.read(id: a.id)?.enabled == true)
    }

    @Test func wrongPassword_isPermanent_withAClearReason() {
        let c = LDAPConnector(config: config(password: "not-the-password"))
        do {
            _ = try c.find(userName: "a@x.org")
            Issue.record("bind with a wrong password accepted")
        } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("invalid credentials"))
            #expect(!error.reason.contains("not-the-password"))
        }
    }

    @Test func serverDown_isRetryable_andARestartedServerIsUsedAgain() throws {
        let c = connector()
        let a = try c.create(AccountSpec(userName: "restart@x.org"))
        server.stop()
        do {
            _ = try c.read(id: a.id)
            Issue.record("read succeeded with the server down")
        } catch {
            #expect(error.isRetryable, "\(error)")
        }
        try server.start()
        // The pooled session went stale; the next call reconnects by itself.
        #expect(try c.read(id: a.id)?.userName == "restart@x.org")
        try c.grant(id: a.id, entitlement: "viewer")
        #expect(try c.read(id: a.id)?.entitlements == ["viewer"])
    }

    @Test func entryDeletedByHand_readsAsMissing() throws {
        let c = connector()
        let a = try c.create(AccountSpec(userName: "gone@x.org", entitlements: ["viewer"]))
        try c.delete(id: a.id)
        #expect(try c.read(id: a.id) == nil)
        #expect(try c.find(userName: "gone@x.org") == nil)
        // An id that is not a UUID names nothing (it never reaches a filter unescaped).
        #expect(try c.read(id: "*)(objectClass=*") == nil)
    }

    @Test func listing_pagesThroughEveryAccountWithEntitlements() throws {
        let c = connector()
        var expected: [String: Set<String>] = [:]
        for i in 0..<250 {
            let roles: Set<String> = i % 3 == 0 ? ["viewer", "tech"] : (i % 3 == 1 ? ["viewer"] : [])
            let a = try c.create(AccountSpec(userName: "list\(i)@x.org", entitlements: roles))
            expected[a.id] = roles
        }
        var seen: [String: Set<String>] = [:]
        var cursor: String? = nil
        var pages = 0
        repeat {
            let page = try c.list(cursor: cursor, pageSize: 40)
            for a in page.accounts { seen[a.id] = a.entitlements }
            cursor = page.next
            pages += 1
        } while cursor != nil
        #expect(seen == expected)
        #expect(pages >= 7)
        do {
            _ = try c.list(cursor: "no-such-cursor", pageSize: 10)
            Issue.record("unknown cursor accepted")
        } catch {
            #expect(!error.isRetryable)
        }
    }
}
