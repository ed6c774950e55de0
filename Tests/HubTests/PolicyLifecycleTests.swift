// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
@testable import Hub
import JSONCore
import Store
import TestSupport

/// Policy versions: a changed policy file re-converges exactly the people it changes, a
/// change over the limit waits for an administrator, and a candidate can be previewed with
/// no side effect.
@Suite struct PolicyLifecycleTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    /// The EHR policy with the receptionist package, or without it (a tighter policy).
    func policy(receptionists: Bool) -> String {
        let receptionist =
            #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
        return singleEHRPolicy(
            ehr,
            packages: (receptionists ? receptionist : "")
                + #"{"name": "clerk", "rule": "title eq \"Clerk\"", "grants": {"ehr": ["billing"]}}"#)
    }

    /// Stores a receptionist and a clerk, provisioned under the full policy; returns the hub's directory.
    func provisionedStaff(limit: String = "") throws -> (dir: TemporaryDirectory, ids: [String]) {
        let hub = try LiveHub(policy: policy(receptionists: true))
        var ids: [String] = []
        for (name, title) in [("desk@x.org", "Receptionist"), ("files@x.org", "Clerk")] {
            let r = try hub.call("POST", "/scim/v2/Users", body: person(name, title: title))
            ids.append(try #require(r.object["id"]?.stringValue))
        }
        eventually("both provisioned") {
            ehr.snapshot()["desk@x.org"]?.roles == ["scheduling"] && ehr.snapshot()["files@x.org"]?.roles == ["billing"]
        }
        #expect(try hub.call("GET", "/admin/policy", token: hub.admin).object["version"] == .int(1))
        hub.server.shutdown()
        return (hub.directory, ids)
    }

    /// A hub on `dir` started with the tighter policy and `configure`.
    func restartTighter(_ dir: TemporaryDirectory, _ configure: (inout HubConfig) -> Void = { _ in }) throws -> LiveHub
    {
        try LiveHub(policy: policy(receptionists: false)) {
            $0.dataDirectory = dir.path
            configure(&$0)
        }
    }

    @Test func aTighterPolicyAtRestart_takesAwayExactlyWhatItRemoved() throws {
        let (dir, _) = try provisionedStaff()
        let hub = try restartTighter(dir)
        defer { hub.stop(); dir.remove(); ehr.stop() }
        eventually("the receptionist's access is gone") { ehr.snapshot()["desk@x.org"]?.active == false }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["files@x.org"]?.roles == ["billing"] && ehr.snapshot()["files@x.org"]?.active == true)
        let current = try hub.call("GET", "/admin/policy", token: hub.admin).object
        #expect(current["version"] == .int(2) && current["state"]?.stringValue == "active")
        #expect(current["author"]?.stringValue == "policy-file" && current["rolledOut"] != .null)
        let versions = try hub.call("GET", "/admin/policy/versions", token: hub.admin).object["versions"]?.arrayValue
        #expect(versions?.count == 2)
        let audit = try hub.call("GET", "/admin/audit?principal=policy-file", token: hub.admin).text
        #expect(audit.contains("policy.version") && audit.contains("losing:1"))
        // A run says which policy it judged by.
        let run = try #require(
            try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}").object["id"]?.stringValue)
        #expect(
            try hub.call("GET", "/admin/reconciliations/\(run)", token: hub.admin).object["policyVersion"] == .int(2))
    }

    @Test func aChangeOverTheLimit_isHeld_untilAnAdministratorConfirmsWithStepUp() throws {
        let (dir, ids) = try provisionedStaff()
        let hub = try restartTighter(dir) {
            $0.policyChangeLimit.people = 0
            $0.policyChangeLimit.share = 0
        }
        defer { hub.stop(); dir.remove(); ehr.stop() }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["desk@x.org"]?.roles == ["scheduling"])  // nothing removed while held
        // The held version is not in force, not even for the next change to one person.
        #expect(hub.server.engine?.policy.packages.contains { $0.name == "receptionist" } == true)
        let rename =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"displayName","value":"Front Desk"}]}"#
        #expect(try hub.call("PATCH", "/scim/v2/Users/\(ids[0])", body: rename).status == 200)
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["desk@x.org"]?.roles == ["scheduling"])
        let current = try hub.call("GET", "/admin/policy", token: hub.admin).object
        #expect(current["state"]?.stringValue == "held")
        #expect(current["heldReason"]?.stringValue?.hasPrefix("1 of 2 people would lose access (limit 0") == true)
        #expect(try hub.call("POST", "/admin/policy/versions/2/confirm", token: hub.admin).status == 403)  // step-up
        let secret = try hub.enrolTOTP(hub.admin)
        let step = [("X-ScimHub-TOTP", LiveHub.totp(secret))]
        #expect(try hub.call("POST", "/admin/policy/versions/1/confirm", token: hub.admin, headers: step).status == 409)
        #expect(try hub.call("POST", "/admin/policy/versions/9/confirm", token: hub.admin, headers: step).status == 404)
        let confirmed = try hub.call(
            "POST", "/admin/policy/versions/2/confirm", token: hub.admin,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: 1))])
        #expect(confirmed.status == 200, "\(confirmed.text)")
        #expect(confirmed.object["queued"] == .int(1))
        eventually("removed once confirmed") { ehr.snapshot()["desk@x.org"]?.active == false }
        #expect(try hub.call("GET", "/admin/policy", token: hub.admin).object["confirmedBy"]?.stringValue == "auditor")
    }

    @Test func preview_namesWhoGainsAndLoses_andChangesNothing() throws {
        let hub = try LiveHub(policy: policy(receptionists: true))
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("desk@x.org", title: "Receptionist"))
        _ = try hub.call("POST", "/scim/v2/Users", body: person("files@x.org", title: "Clerk"))
        eventually("provisioned") { ehr.snapshot().count == 2 }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        let before = try hub.snapshot()
        let candidate = policy(receptionists: false)
        let r = try hub.call("POST", "/admin/policy/preview", token: hub.admin, body: candidate)
        #expect(r.status == 200, "\(r.text)")
        let o = r.object
        #expect(o["people"] == .int(2) && o["losingAccess"] == .int(1) && o["gainingAccess"] == .int(0))
        let lost = o["packages"]?.objectValue?["receptionist"]?.objectValue
        #expect(lost?["lost"] == .int(1))
        #expect(lost?["lostBy"]?.arrayValue?.first?.objectValue?["userName"]?.stringValue == "desk@x.org")
        let ehrChange = o["targets"]?.objectValue?["ehr"]?.objectValue
        #expect(ehrChange?["accountsDisabled"] == .int(1))
        #expect(ehrChange?["entitlements"]?.objectValue?["scheduling"]?.objectValue?["lost"] == .int(1))
        #expect(o["guard"]?.objectValue?["wouldHold"] == .bool(false))
        let csv = try hub.call("POST", "/admin/policy/preview?format=csv", token: hub.admin, body: candidate)
        #expect(csv.text.hasPrefix("kind,name,change,detail,personId,userName\r\n"))
        #expect(csv.text.contains("package,receptionist,lost,,") && csv.text.contains("target,ehr,account-disabled,,"))
        // Nothing changed: no data, no job, no version; one audit entry per preview.
        #expect(try hub.snapshot() == before)
        #expect(try hub.server.store.read { try $0.jobs(target: nil, state: nil, limit: 10) }.isEmpty)
        #expect(
            try hub.call("GET", "/admin/policy/versions", token: hub.admin).object["versions"]?.arrayValue?.count == 1)
        #expect(ehr.snapshot()["desk@x.org"]?.roles == ["scheduling"])
        let audit = try hub.call("GET", "/admin/audit?principal=auditor", token: hub.admin).text
        #expect(audit.components(separatedBy: "policy.preview").count - 1 == 2)
        // Bad candidates: 400 naming the problem, nothing stored.
        let bad = try hub.call(
            "POST", "/admin/policy/preview", token: hub.admin,
            body: #"{"targets": [], "packages": [{"name": "x", "rule": "title eq", "grants": {}}]}"#)
        #expect(bad.status == 400 && bad.text.contains("packages[0].rule"))
        #expect(try hub.call("POST", "/admin/policy/preview", token: hub.admin, body: "[1]").status == 400)
        #expect(
            try hub.call("POST", "/admin/policy/preview?format=pdf", token: hub.admin, body: candidate).status == 400)
        #expect(try hub.call("POST", "/admin/policy/preview", token: hub.writer, body: candidate).status == 403)
    }

    @Test func policyDiff_printsTheSamePreviewOffline() throws {
        let (dir, _) = try provisionedStaff()
        defer { dir.remove(); ehr.stop() }
        let files = TemporaryDirectory()
        defer { files.remove() }
        let old = files.path + "/old.json", new = files.path + "/new.json"
        _ = FileManager.default.createFile(atPath: old, contents: Data(policy(receptionists: true).utf8))
        _ = FileManager.default.createFile(atPath: new, contents: Data(policy(receptionists: false).utf8))
        let binary = repoRoot + "/.build/debug/scimhub"
        let text = try HubProcess.runWithStatus(binary, ["policy", "diff", old, new, "--data", dir.path])
        #expect(text.status == 0, "\(text.out)")
        #expect(text.out.contains("2 people: 1 would lose access, 0 would gain it"))
        #expect(text.out.contains("package receptionist: +0 −1"))
        let json = try HubProcess.runWithStatus(
            binary, ["policy", "diff", old, new, "--data", dir.path, "--format", "json"])
        #expect(try JSONParser().parse(Array(json.out.utf8)).objectValue?["losingAccess"] == .int(1))
        let broken = files.path + "/broken.json"
        _ = FileManager.default.createFile(atPath: broken, contents: Data(#"{"targets": []"#.utf8))
        let refused = try HubProcess.runWithStatus(binary, ["policy", "diff", old, broken, "--data", dir.path])
        #expect(refused.status == 1)  // "policy invalid: …" on stderr, nothing on stdout
        #expect(refused.out.isEmpty)
    }
    @Test func put_appliesANewVersion_atOnce_andWritesThePolicyFile() throws {
        let hub = try LiveHub(policy: policy(receptionists: true)) { $0.policyChangeLimit.share = 1 }
        defer { hub.stop(); ehr.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("desk@x.org", title: "Receptionist"))
        _ = try hub.call("POST", "/scim/v2/Users", body: person("files@x.org", title: "Clerk"))
        eventually("provisioned") { ehr.snapshot().count == 2 }
        let tighter = policy(receptionists: false)
        let secret = try hub.enrolTOTP(hub.admin)
        func put(_ body: String, offset: Int64) throws -> RawResponse {
            try hub.call(
                "PUT", "/admin/policy", token: hub.admin, body: body,
                headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: offset))])
        }
        #expect(try hub.call("PUT", "/admin/policy", token: hub.admin, body: tighter).status == 403)  // step-up
        // Bad candidates change nothing: invalid, or with other targets.
        let invalid = try put(#"{"targets": [], "packages": [{"name": "a"}]}"#, offset: -1)
        #expect(invalid.status == 400 && invalid.text.contains("packages[0]"))
        let moved = tighter.replacingOccurrences(of: #""name": "ehr""#, with: #""name": "ehr2""#)
            .replacingOccurrences(of: #"{"ehr": ["billing"]}"#, with: #"{"ehr2": ["billing"]}"#)
        let refused = try put(moved, offset: 0)
        #expect(refused.status == 409 && refused.text.contains("targets"), "\(refused.text)")
        #expect(
            try hub.call("GET", "/admin/policy/versions", token: hub.admin).object["versions"]?.arrayValue?.count == 1)
        // A second apply while one runs is refused.
        hub.server.app.policyEndpoints.applying.busy.store(true, ordering: .sequentiallyConsistent)
        #expect(try put(tighter, offset: 1).status == 409)  // refused before its code is spent
        hub.server.app.policyEndpoints.applying.busy.store(false, ordering: .sequentiallyConsistent)
        // The apply: version 2, in force at once, the receptionist's access gone, the file rewritten.
        let applied = try hub.call(
            "PUT", "/admin/policy", token: hub.admin, body: tighter,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: 1))])
        #expect(applied.status == 200, "\(applied.text)")
        #expect(applied.object["version"] == .int(2) && applied.object["queued"] == .int(1))
        eventually("the receptionist's access is gone") { ehr.snapshot()["desk@x.org"]?.active == false }
        #expect(ehr.snapshot()["files@x.org"]?.active == true)
        let file = try #require(hub.server.app.config.policyFile)
        #expect(FileManager.default.contents(atPath: file) == Data(tighter.utf8))
        #expect(hub.server.engine?.policy.packages.contains { $0.name == "receptionist" } == false)
        let audit = try hub.call("GET", "/admin/audit?principal=auditor", token: hub.admin).text
        #expect(audit.contains("policy.apply"))
    }
}
