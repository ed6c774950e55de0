// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import EHRRestConnector
import EHRTestServer
import JSONCore
import Provisioning
import Store
import TestSupport

/// A connector never adopts or renames onto an account linked to another person; the
/// reconciliation flags an account two people claim. Against a real EHR test server.
@Suite struct AccountTakeoverTests {
    let ehr: EHRTestServer
    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#)
    }

    /// The EHR's own API, as someone with access to it would use it by hand.
    func ehrCall(_ method: String, _ path: String, body: String? = nil) throws -> RawResponse {
        let c = try RawHTTPClient(port: ehr.port)
        var h = [("Authorization", "Bearer \(ehr.staticToken)")]
        if body != nil { h.append(("Content-Type", "application/json")) }
        return try #require(c.request(method, path, headers: h, body: body.map { Array($0.utf8) }))
    }

    func ehrID(_ userName: String) throws -> String {
        try #require(
            try ehrCall("GET", "/api/users?userName=\(userName)").object["users"]?.arrayValue?.first?.objectValue?[
                "id"]?.stringValue)
    }

    @Test func accountLinkedToAnotherPerson_isNeverAdopted_andTheLeaverActionStaysWithItsOwner() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let ana = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("ana@x.org", title: "Receptionist")).object["id"]?
                .stringValue)
        eventually("Ana provisioned") { ehr.snapshot()["ana@x.org"]?.active == true }
        // Someone renames Ana's EHR account by hand to the name a new person will have.
        let x = try ehrID("ana@x.org")
        #expect(try ehrCall("PATCH", "/api/users/\(x)", body: #"{"userName": "bea@x.org"}"#).status == 200)
        let bea = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("bea@x.org", title: "Receptionist")).object["id"]?
                .stringValue)
        // Bea's job is refused for good, naming both people; it is in /admin/jobs.
        eventually("dead-lettered") {
            try hub.call("GET", "/admin/jobs?state=dead", token: hub.admin).object["jobs"]?.arrayValue?.count == 1
        }
        let job = try #require(
            try hub.call("GET", "/admin/jobs?state=dead", token: hub.admin).object["jobs"]?.arrayValue?.first?
                .objectValue)
        #expect(job["personId"]?.stringValue == bea)
        let error = job["lastError"]?.stringValue ?? ""
        #expect(error.contains("bea@x.org") && error.contains("ana@x.org") && error.contains("not adopted"), "\(error)")
        // Bea leaves: Ana's account is untouched (before the fix, Bea had adopted it and this disabled Ana).
        #expect(
            try hub.call(
                "PATCH", "/scim/v2/Users/\(bea)",
                body:
                    #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                    + #"[{"op":"replace","path":"active","value":false}]}"#
            ).status == 200)
        eventually("Bea's leaver job done") {
            try hub.call("GET", "/admin/jobs?state=pending", token: hub.admin).object["jobs"]?.arrayValue?.isEmpty
                == true
        }
        #expect(ehr.snapshot()["bea@x.org"]?.active == true)  // account X, Ana's, under the name given by hand
        #expect(try ehrID("bea@x.org") == x)
        #expect(try hub.server.store.read { try $0.claimants(target: "ehr", accountID: x) } == [ana])
    }

    @Test func renameOntoAnotherAccount_isRefusedNamingBoth() throws {
        defer { ehr.stop() }
        let connector = EHRRestConnector(config: EHRRestConfig(baseURL: ehr.baseURL, auth: .bearer(ehr.staticToken)))
        let ana = try connector.create(
            AccountSpec(userName: "ana@x.org", attributes: [:], enabled: true, entitlements: []))
        let bea = try connector.create(
            AccountSpec(userName: "bea@x.org", attributes: [:], enabled: true, entitlements: []))
        let desired = DesiredAccount(
            userName: "ANA@x.org", enabled: true, attributes: [:], entitlements: [], packages: [])
        // Bea's person renamed to a name the EHR folds onto Ana's account.
        // A rename to a free name goes through …
        let renamed = try Convergence.converge(
            desired: DesiredAccount(
                userName: "Ana.Other@x.org", enabled: true, attributes: [:], entitlements: [], packages: []),
            accountID: bea.id, connector: connector
        ) { $0 == ana.id ? "ana@x.org" : nil }
        #expect(renamed.actions == ["rename"])
        // … one the EHR folds onto Ana's account is refused, naming both.
        let refused = #expect(throws: ConnectorError.self) {
            _ = try Convergence.converge(desired: desired, accountID: bea.id, connector: connector) {
                $0 == ana.id ? "ana@x.org" : nil
            }
        }
        #expect(refused?.kind == .permanent)
        #expect(
            refused?.description.contains("would land on the account of 'ana@x.org'") == true,
            "\(String(describing: refused))")
        #expect(try connector.read(id: ana.id)?.userName == "ana@x.org")
        #expect(try connector.read(id: bea.id)?.userName == "Ana.Other@x.org")
    }

    @Test func reconciliation_flagsAnAccountClaimedByTwo_andLeavesItToAPerson() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let ana = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("ana@x.org", title: "Receptionist")).object["id"]?
                .stringValue)
        let bea = try #require(
            try hub.call("POST", "/scim/v2/Users", body: person("bea@x.org", title: "Receptionist")).object["id"]?
                .stringValue)
        eventually("both provisioned") { ehr.snapshot().count == 2 }
        let x = try ehrID("ana@x.org")
        // Damage left by an earlier version: Bea linked to Ana's account.
        try hub.server.store.write { w in
            try w.connection.recordApplied(
                personID: bea, target: "ehr", accountID: x, state: Array("{}".utf8), now: 1, result: "adopted")
        }
        let run = try #require(
            try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: #"{"mode": "report"}"#).object["id"]?
                .stringValue)
        eventually("run done") {
            try hub.call("GET", "/admin/reconciliations/\(run)", token: hub.admin).object["state"]?.stringValue
                == "done"
        }
        let findings =
            try hub.call("GET", "/admin/reconciliations/\(run)/report", token: hub.admin).object["findings"]?.arrayValue
            ?? []
        let shared = findings.compactMap(\.objectValue).filter { $0["category"]?.stringValue == "shared-account" }
        #expect(Set(shared.compactMap { $0["personId"]?.stringValue }) == [ana, bea], "\(findings)")
        #expect(shared.allSatisfy { $0["severity"]?.stringValue == "critical" && $0["accountId"]?.stringValue == x })
    }
}
