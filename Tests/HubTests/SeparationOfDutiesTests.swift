// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import EHRRestConnector
import EHRTestServer
import Hub
import JSONCore
import Provisioning
import TestSupport

/// Separation of duties: incompatible packages reported (`record`) or the later one
/// withheld (`enforce`); a candidate policy's new conflicts in the preview; entitlements held
/// together downstream, also by hand, found by reconciliation.
@Suite struct SeparationOfDutiesTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    /// Clerks bill; members of "Prescribers" prescribe; a rule forbids both.
    func policy(mode: String?) -> String {
        let rule =
            mode.map {
                #", "separationOfDuties": [{"name": "billing-vs-prescribing", "packages": ["billing", "prescriber"], "#
                    + #""entitlements": {"ehr": ["billing", "physician"]}, "severity": "high", "mode": "\#($0)"}]"#
            } ?? ""
        return """
            {"targets": [{"name": "ehr", "type": "ehr-rest", "settings": {"baseURL": "\(ehr.baseURL)", \
            "auth": {"type": "bearer", "tokenFile": "\(tokenFile(ehr))"}}}],
             "packages": [{"name": "billing", "rule": "title eq \\"Clerk\\"", "grants": {"ehr": ["billing"]}},
                          {"name": "prescriber", "groups": ["Prescribers"], "grants": {"ehr": ["physician"]}}]\(rule)}
            """
    }

    /// A clerk who is also in the Prescribers group.
    func clerkWhoPrescribes(_ hub: LiveHub) throws -> String {
        let r = try hub.call("POST", "/scim/v2/Users", body: person("clerk@x.org", title: "Clerk"))
        let id = try #require(r.object["id"]?.stringValue)
        let g = try hub.call(
            "POST", "/scim/v2/Groups",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Prescribers","#
                + #""members":[{"value":"\#(id)"}]}"#)
        #expect(g.status == 201)
        return id
    }

    /// A report run's findings.
    func reconcile(_ hub: LiveHub) throws -> [JSONValue] {
        let run = try #require(
            try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}").object["id"]?.stringValue)
        eventually("run done") {
            try hub.call("GET", "/admin/reconciliations/\(run)", token: hub.admin).object["state"]?.stringValue
                == "done"
        }
        return try hub.call("GET", "/admin/reconciliations/\(run)/report", token: hub.admin).object["findings"]?
            .arrayValue ?? []
    }

    func access(_ hub: LiveHub, _ id: String) throws -> JSONObject {
        try hub.call("GET", "/admin/people/\(id)/access", token: hub.admin).object
    }

    @Test func enforce_withholdsTheLaterPackage_andSaysWhy() throws {
        let hub = try LiveHub(policy: policy(mode: "enforce"))
        defer { hub.stop(); ehr.stop() }
        let id = try clerkWhoPrescribes(hub)
        eventually("provisioned") { ehr.snapshot()["clerk@x.org"]?.roles == ["billing"] }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["clerk@x.org"]?.roles == ["billing"])  // never physician
        let a = try access(hub, id)
        #expect(a["packages"]?.arrayValue?.compactMap { $0.objectValue?["name"]?.stringValue } == ["billing"])
        let conflict = a["sodConflicts"]?.arrayValue?.first?.objectValue
        #expect(
            conflict?["rule"]?.stringValue == "billing-vs-prescribing"
                && conflict?["withheld"]?.stringValue == "prescriber")
    }

    @Test func record_grantsBoth_andReportsTheConflict() throws {
        let hub = try LiveHub(policy: policy(mode: "record"))
        defer { hub.stop(); ehr.stop() }
        let id = try clerkWhoPrescribes(hub)
        eventually("both granted") { ehr.snapshot()["clerk@x.org"]?.roles == ["billing", "physician"] }
        let conflict = try access(hub, id)["sodConflicts"]?.arrayValue?.first?.objectValue
        #expect(conflict?["mode"]?.stringValue == "record" && conflict?["withheld"] == .null)
        // Reconciliation finds the pair downstream, critical.
        let findings = try reconcile(hub)
        let f = findings.first { $0.objectValue?["category"]?.stringValue == "sod-violation" }?.objectValue
        #expect(f?["detail"]?.stringValue == "billing-vs-prescribing" && f?["severity"]?.stringValue == "critical")
    }

    @Test func aRunThatFindsAViolation_isAnnouncedByEmail() throws {
        let smtp = try SMTPServer()
        let settings = try HubConfig.notificationSettings(
            try JSONParser().parse(
                Array(
                    (#"{"email": {"url": "\#(smtp.url)", "from": "hub@clinic.example", "tls": "none"},"#
                        + #""recipients": {"reconciliation.findings": ["compliance@clinic.example"]}}"#).utf8)))
        let hub = try LiveHub(policy: policy(mode: "record")) { $0.notifications = settings }
        defer { hub.stop(); ehr.stop(); smtp.stop() }
        _ = try clerkWhoPrescribes(hub)
        eventually("both granted") { ehr.snapshot()["clerk@x.org"]?.roles == ["billing", "physician"] }
        _ = try reconcile(hub)
        eventually("compliance is told") { smtp.messages().count == 1 }
        let mail = try #require(smtp.messages().first)
        #expect(mail.contains("To: <compliance@clinic.example>"), "\(mail)")
        #expect(mail.contains("found 0 enabled leavers, 1 SoD violations") && mail.contains("/report"), "\(mail)")
    }

    @Test func entitlementsGrantedByHand_areFoundByReconciliation() throws {
        let hub = try LiveHub(policy: policy(mode: "enforce"))
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("clerk@x.org", title: "Clerk"))
        eventually("provisioned") { ehr.snapshot()["clerk@x.org"]?.roles == ["billing"] }
        let hand = EHRRestConnector(config: EHRRestConfig(baseURL: ehr.baseURL, auth: .bearer(ehr.staticToken)))
        let account = try #require(try hand.find(userName: "clerk@x.org"))
        try hand.grant(id: account.id, entitlement: "physician")  // behind the hub's back
        let findings = try reconcile(hub)
        #expect(findings.contains { $0.objectValue?["category"]?.stringValue == "sod-violation" })
    }

    @Test func preview_namesTheConflictsACandidateCreates() throws {
        let hub = try LiveHub(policy: policy(mode: nil))
        defer { hub.stop(); ehr.stop() }
        _ = try clerkWhoPrescribes(hub)
        eventually("provisioned") { ehr.snapshot()["clerk@x.org"]?.roles == ["billing", "physician"] }
        let preview = try hub.call("POST", "/admin/policy/preview", token: hub.admin, body: policy(mode: "record"))
        #expect(preview.status == 200, "\(preview.text)")
        let rule = preview.object["newSoDConflicts"]?.objectValue?["billing-vs-prescribing"]?.objectValue
        #expect(rule?["people"] == .int(1))
        #expect(rule?["names"]?.arrayValue?.first?.objectValue?["userName"]?.stringValue == "clerk@x.org")
    }

    @Test(arguments: [
        (#"[{"name": "r", "packages": ["billing", "nope"]}]"#, "no package named 'nope'"),
        (#"[{"name": "r", "packages": ["billing"]}]"#, "at least two"),
        (
            #"[{"name": "r", "packages": ["billing", "prescriber"], "mode": "scream"}]"#,
            "mode must be record or enforce"
        ),
        (#"[{"name": "r", "entitlements": {"lab": ["a", "b"]}}]"#, "unknown target 'lab'"),
        (#"[{"name": "r", "packages": ["billing", "prescriber"], "severity": "dire"}]"#, "severity must be"),
        (#"[{"name": "r", "entitlements": {"ehr": ["a", "b"]}, "mode": "enforce"}]"#, "enforce needs at least two"),
    ])
    func badRules_areRefusedNamingTheKey(rules: String, fragment: String) throws {
        let text = policy(mode: nil).replacingOccurrences(
            of: #"{"ehr": ["physician"]}}]}"#, with: #"{"ehr": ["physician"]}}], "separationOfDuties": \#(rules)}"#)
        let hub = try LiveHub(policy: policy(mode: nil))
        defer { hub.stop(); ehr.stop() }
        let r = try hub.call("POST", "/admin/policy/preview", token: hub.admin, body: text)
        #expect(r.status == 400 && r.text.contains(fragment), "\(r.text)")
    }
}
