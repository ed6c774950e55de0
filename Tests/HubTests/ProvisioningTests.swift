// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
import Hub
import JSONCore
import Provisioning
import SCIM
import Store
import TestSupport

/// The reference policy's EHR part, pointed at an EHR test server.
func ehrPolicy(_ ehr: EHRTestServer, extraPackages: String = "") -> String {
    """
    {"targets": [
      {"name": "ehr", "type": "ehr-rest", "concurrency": 4,
       "settings": {"baseURL": "\(ehr.baseURL)", "auth": {"type": "bearer", "tokenFile": "\(tokenFile(ehr))"}, \
    "timeoutSeconds": 2},
       "mapping": {"displayName": "displayName", "email": "emails.value", "title": "title"}},
      {"name": "imaging", "type": "ldap", "enabled": false}
     ],
     "packages": [
      {"name": "physician", "rule": \
    "title eq \\"Physician\\" and \
    urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:credentialStatus eq \\"active\\"",
       "grants": {"ehr": ["physician"], "imaging": ["imaging-viewer"]}, "siteScoped": ["ehr"]},
      {"name": "nurse", "rule": \
    "(title eq \\"Registered Nurse\\" or title eq \\"Nursing Technician\\") and \
    urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:credentialStatus eq \\"active\\"",
       "grants": {"ehr": ["nurse"]}, "siteScoped": ["ehr"]},
      {"name": "receptionist", "rule": "title eq \\"Receptionist\\"", "grants": {"ehr": ["scheduling"]}},
      {"name": "on-call-billing", "groups": ["Billing On-Call"], "grants": {"ehr": ["billing"]}}\(extraPackages)
     ]}
    """
}

/// One EHR target (the test server) and `packages` (the members of the packages array).
func singleEHRPolicy(_ ehr: EHRTestServer, packages: String) -> String {
    """
    {"targets": [{"name": "ehr", "type": "ehr-rest", "settings": {"baseURL": "\(ehr.baseURL)", \
    "auth": {"type": "bearer", "tokenFile": "\(tokenFile(ehr))"}}}],
     "packages": [\(packages)]}
    """
}

/// The EHR token lives in a file, as the policy's secret references require.
func tokenFile(_ ehr: EHRTestServer) -> String {
    let path = NSTemporaryDirectory() + "ehr-token-\(ehr.port)"
    _ = FileManager.default.createFile(atPath: path, contents: Data(ehr.staticToken.utf8))
    return path
}

func person(
    _ userName: String, title: String, status: String = "active", sites: [String] = ["CLN-CEN"], active: Bool = true
) -> String {
    let s = sites.map { "\"\($0)\"" }.joined(separator: ",")
    return
        #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","#
        + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"],"#
        + #""userName":"\#(userName)","displayName":"\#(userName)","title":"\#(title)","active":\#(active),"#
        + #""emails":[{"value":"\#(userName)","type":"work","primary":true}],"#
        + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":{"sites":[\#(s)],"#
        + #""credentialStatus":"\#(status)"}}"#
}

/// Polls until `condition` holds (or fails the test after `timeout`).
func eventually(
    _ what: String, timeout: Double = 10, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () throws -> Bool
) {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? condition()) == true { return }
        Thread.sleep(forTimeInterval: 0.02)
    }
    Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
}

@Suite struct PolicyTests {
    @Test(arguments: [
        (
            #"{"targets":[],"packages":[{"name":"a","rule":"title pr","grants":{"nope":["x"]}}]}"#,
            "packages[0].grants: unknown target 'nope'"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":"#
                + #"[{"name":"a","rule":"title eq","grants":{"t":["x"]}}]}"#,
            "packages[0].rule (package 'a')"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":"#
                + #"[{"name":"a","rule":"title pr","grants":{"t":["x"]}},"#
                + #"{"name":"a","rule":"title pr","grants":{"t":["y"]}}]}"#,
            "duplicate package 'a'"
        ),
        (
            #"{"targets":[{"name":"t","type":"carrier-pigeon"}],"packages":[]}"#,
            "targets[0].type: no connector plugin 'carrier-pigeon'"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":[{"name":"a","grants":{"t":["x"]}}]}"#,
            "needs a 'rule', 'groups', 'requestable' or 'breakGlass'"
        ),
        (
            #"{"targets":[{"name":"t","type":"ehr-rest","settings":{"auth":{"tokenEnv":"NO_SUCH_VARIABLE_X"}}}],"#
                + #""packages":[]}"#,
            "environment variable NO_SUCH_VARIABLE_X is not set"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false,"mapping":{"x":"nosuch"}}],"packages":[]}"#,
            "targets[0].mapping.x"
        ),
        (#"{"targets":[],"packages":[],"extra":1}"#, "unknown key 'extra'"),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":"#
                + #"[{"name":"a","rule":"title pr","grants":{"t":["x"]},"breakGlass":{"maxHours":100}}]}"#,
            "packages[0].breakGlass must be"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false,"reconciliation":{"orphans":"burn"}}],"#
                + #""packages":[]}"#,
            "targets[0].reconciliation.orphans must be"
        ),
        ("{\"targets\": [],\n\"packages\": [\n  {\"name\": }\n]}", "line 3"),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":[{"name":"a","grants":{"t":["x"]},"#
                + #""requestable":{"approval":["manager","group:A","group:B"],"maxDays":5}}]}"#,
            "packages[0].requestable.approval must list one or two stages"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":[{"name":"a","grants":{"t":["x"]},"#
                + #""requestable":{"approval":["boss"],"maxDays":5}}]}"#,
            "packages[0].requestable.approval[0] must be"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":[{"name":"a","grants":{"t":["x"]},"#
                + #""requestable":{"approval":["manager"],"maxDays":500}}]}"#,
            "packages[0].requestable.maxDays must be"
        ),
        (
            #"{"targets":[{"name":"t","type":"ldap","enabled":false}],"packages":[{"name":"a","grants":{"t":["x"]},"#
                + #""requestable":{"approval":["manager"],"maxDays":5,"requesters":"title eq"}}]}"#,
            "packages[0].requestable.requesters"
        ),
    ])
    func invalidPolicy_isRefusedNamingTheProblem(text: String, fragment: String) {
        do {
            _ = try Policy.parse(
                Array(text.utf8), userType: registryForTests.resourceType(named: "User")!, knownTypes: ["ehr-rest"],
                environment: [:])
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }

    @Test func ehrSettings_badFieldsAreRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.path + "/policy.json"
        _ = FileManager.default.createFile(
            atPath: file,
            contents: Data(
                (#"{"targets":[{"name":"ehr","type":"ehr-rest","settings":{"baseURL":"http://127.0.0.1:1","auth":"#
                    + #"{"type":"bearer","tokenFile":"/nonexistent"}}}],"packages":[]}"#)
                    .utf8))
        #expect(throws: PolicyError("targets[0].settings.auth.tokenFile: file /nonexistent cannot be read or is empty"))
        { _ = try LiveHub { $0.policyFile = file } }
        let tok = dir.path + "/token"
        _ = FileManager.default.createFile(atPath: tok, contents: Data("t".utf8))
        _ = FileManager.default.createFile(
            atPath: file,
            contents: Data(
                (#"{"targets":[{"name":"ehr","type":"ehr-rest","settings":{"baseURL":"http://127.0.0.1:1","auth":"#
                    + #"{"type":"bearer","tokenFile":"\#(tok)"},"fields":{"colour":"x"}}}],"packages":[]}"#)
                    .utf8))
        #expect(
            throws: PolicyError(
                "target 'ehr' settings.fields: unknown field 'colour' (id, userName, enabled, entitlements, list, next)"
            )
        ) { _ = try LiveHub { $0.policyFile = file } }
    }

    @Test func disabledTarget_needsNoSecretsYet() throws {
        let text =
            #"{"targets":[{"name":"t","type":"ldap","enabled":false,"settings":"#
            + #"{"bindPasswordEnv":"NOT_SET_ANYWHERE"}}],"packages":[]}"#
        let p = try Policy.parse(
            Array(text.utf8), userType: registryForTests.resourceType(named: "User")!, knownTypes: ["ldap"],
            environment: [:])
        #expect(p.enabledTargets.isEmpty)
    }

    @Test func referencePolicy_isValid() throws {
        let bytes = try #require(FileManager.default.contents(atPath: repoRoot + "/scripts/reference-policy.json"))
        let p = try Policy.parse(
            Array(bytes), userType: registryForTests.resourceType(named: "User")!, knownTypes: testConnectors.types,
            environment: ["SCIMHUB_EHR_TOKEN": "t", "SCIMHUB_LDAP_PASSWORD": "p"])
        #expect(p.packages.count == 13)
        #expect(p.enabledTargets.map(\.name) == ["ehr", "imaging", "admin"])
        // What the README and the demo name: a break-glass package, requestable packages with one
        // and two stages, separation-of-duties rules in both modes, and a description on every package.
        #expect(p.packages.first { $0.name == "emergency-physician" }?.breakGlassMaxHours == 8)
        #expect(p.packages.first { $0.name == "clinic-reports" }?.requestable?.approval == [.manager])
        #expect(
            p.packages.first { $0.name == "billing-cover" }?.requestable?.approval
                == [.manager, .group("Finance Approvers")])
        #expect(Set(p.separationOfDuties.map(\.mode)) == [.record, .enforce])
        #expect(p.packages.allSatisfy { !$0.description.isEmpty })
        // Every target's settings are valid for its plugin (statements parse, parameters are known).
        for t in p.enabledTargets { _ = try testConnectors.make(t) }
    }
}

let registryForTests: SchemaRegistry = {
    do { return try SchemaRegistry.load(directory: repoRoot + "/schemas") } catch { preconditionFailure("\(error)") }
}()

@Suite struct ProvisioningTests {
    let ehr: EHRTestServer
    let hub: LiveHub

    init() throws {
        ehr = try EHRTestServer(timeoutDelay: 3)
        ehr.start()
        hub = try LiveHub(policy: ehrPolicy(ehr))
    }

    func stop() {
        hub.stop()
        ehr.stop()
    }

    func create(_ body: String) throws -> String {
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("create: \(r.status) \(r.text)")
        }
        return id
    }

    func patch(_ id: String, _ ops: String) throws {
        let r = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}")
        #expect(r.status == 200, "\(r.text)")
    }

    @Test func joinerLeaverMover_convergeInTheEHR() throws {
        defer { stop() }
        let doc = try create(person("dr.ana@x.org", title: "Physician", sites: ["CLN-CEN", "CLN-MOI"]))
        let nurse = try create(person("nurse.bo@x.org", title: "Registered Nurse"))
        let pending = try create(person("nurse.cy@x.org", title: "Registered Nurse", status: "pending"))
        eventually("joiners provisioned") {
            ehr.snapshot()["dr.ana@x.org"]?.roles == ["physician@CLN-CEN", "physician@CLN-MOI"]
                && ehr.snapshot()["nurse.bo@x.org"]?.roles == ["nurse@CLN-CEN"]
        }
        #expect(ehr.snapshot()["dr.ana@x.org"]?.attributes["email"] == "dr.ana@x.org")
        #expect(ehr.snapshot()["nurse.cy@x.org"] == nil)  // clinical access needs an active credential
        _ = pending

        // Leaver (Entra style): disabled and stripped of roles.
        try patch(doc, #"[{"op":"Replace","path":"active","value":"False"}]"#)
        eventually("leaver disabled") {
            ehr.snapshot()["dr.ana@x.org"]?.active == false && ehr.snapshot()["dr.ana@x.org"]?.roles.isEmpty == true
        }

        // Mover: nurse becomes receptionist; nurse role goes, scheduling comes.
        try patch(nurse, #"[{"op":"replace","path":"title","value":"Receptionist"}]"#)
        eventually("mover re-entitled") { ehr.snapshot()["nurse.bo@x.org"]?.roles == ["scheduling"] }
        #expect(ehr.snapshot()["nurse.bo@x.org"]?.attributes["title"] == "Receptionist")

        // Audit has the provisioning results.
        let audit = try hub.call("GET", "/admin/audit?principal=engine", token: hub.admin)
        #expect(audit.text.contains("ehr:disable"))
    }

    @Test func unchangedPerson_causesNoDownstreamCall() throws {
        defer { stop() }
        let id = try create(person("r@x.org", title: "Receptionist"))
        eventually("provisioned") { ehr.snapshot()["r@x.org"] != nil }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        let calls = ehr.calls
        try patch(id, #"[{"op":"replace","path":"title","value":"Receptionist"}]"#)
        let put = try hub.call("PUT", "/scim/v2/Users/\(id)", body: person("r@x.org", title: "Receptionist"))
        #expect(put.status == 200)
        #expect(hub.server.engine?.waitUntilIdle() == true)  // nothing was enqueued, so nothing runs
        #expect(try hub.server.store.read { try $0.jobs(target: nil, state: nil, limit: 10) }.isEmpty)
        #expect(ehr.calls == calls)
    }

    @Test func deleteDisablesAndGroupMembershipGrants() throws {
        defer { stop() }
        let id = try create(person("b@x.org", title: "Clerk"))
        #expect(ehr.snapshot()["b@x.org"] == nil)
        let g = try hub.call(
            "POST", "/scim/v2/Groups",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"#
                + #""displayName":"Billing On-Call","members":[{"value":"\#(id)"}]}"#
        )
        #expect(g.status == 201)
        eventually("group package granted") { ehr.snapshot()["b@x.org"]?.roles == ["billing"] }
        let access = try hub.call("GET", "/admin/people/\(id)/access", token: hub.admin).object
        #expect(access["packages"]?.arrayValue?.first?.objectValue?["why"]?.stringValue == "group: Billing On-Call")
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(id)").status == 204)
        // Disable first, then revoke: wait for both.
        eventually("deleted person disabled, roles revoked") {
            ehr.snapshot()["b@x.org"]?.active == false && ehr.snapshot()["b@x.org"]?.roles.isEmpty == true
        }
        #expect(ehr.snapshot()["b@x.org"]?.active == false)
    }

    @Test func targetDown_jobsRetryAndNothingIsLost() throws {
        defer { stop() }
        ehr.setFault(.error5xx)
        var ids: [String] = []
        for i in 0..<10 { ids.append(try create(person("n\(i)@x.org", title: "Registered Nurse"))) }
        eventually("circuit opens") {
            try hub.call("GET", "/admin/targets", token: hub.admin).text.contains("\"circuit\":\"open\"")
        }
        let targets = try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.first?
            .objectValue
        #expect(targets?["queueDepth"] == .int(10))
        #expect(targets?["health"]?.stringValue == "unavailable")
        ehr.setFault(.none)
        eventually("all converge after recovery", timeout: 15) {
            (0..<10).allSatisfy { ehr.snapshot()["n\($0)@x.org"]?.roles == ["nurse@CLN-CEN"] }
        }
        eventually("queue drained") {
            try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.first?.objectValue?[
                "queueDepth"] == .int(0)
        }
        #expect(ehr.snapshot().count == 10)  // no duplicates
    }

    @Test func rateLimited_honoursRetryAfter() throws {
        defer { stop() }
        ehr.setFault(.rateLimit, retryAfter: 1, remaining: 1)
        let start = Date()
        _ = try create(person("rl@x.org", title: "Receptionist"))
        eventually("provisioned after Retry-After") { ehr.snapshot()["rl@x.org"] != nil }
        #expect(Date().timeIntervalSince(start) >= 0.9)
    }

    @Test func permanentRejection_deadLettersWithReason_andAdminRetryRedrives() throws {
        defer { stop() }
        ehr.setFault(.reject)
        let id = try create(person("rej@x.org", title: "Receptionist"))
        eventually("dead-lettered") {
            try hub.call("GET", "/admin/jobs?state=dead", token: hub.admin).object["jobs"]?.arrayValue?.count == 1
        }
        let job = try #require(
            try hub.call("GET", "/admin/jobs?state=dead&target=ehr", token: hub.admin).object["jobs"]?.arrayValue?
                .first?.objectValue)
        #expect(job["lastError"]?.stringValue?.contains("422") == true)
        #expect(job["id"]?.stringValue == "\(id):ehr")
        ehr.setFault(.none)
        #expect(try hub.call("POST", "/admin/jobs/nobody:ehr/retry", token: hub.admin).status == 404)
        #expect(try hub.call("POST", "/admin/jobs/\(id):ehr/retry", token: hub.admin).status == 202)
        eventually("re-driven") { ehr.snapshot()["rej@x.org"]?.roles == ["scheduling"] }
        #expect(try hub.call("GET", "/admin/audit?principal=auditor", token: hub.admin).text.contains("job.retry"))
        #expect(try hub.call("GET", "/admin/jobs?state=bogus", token: hub.admin).status == 400)
        #expect(try hub.call("GET", "/admin/targets", token: hub.writer).status == 403)
    }

    @Test func accountDeletedByHand_isRecreatedOnTheNextConvergence() throws {
        defer { stop() }
        let id = try create(person("gone@x.org", title: "Receptionist"))
        eventually("provisioned") { ehr.snapshot()["gone@x.org"] != nil }
        ehr.deleteByHand(userName: "gone@x.org")
        try patch(id, #"[{"op":"replace","path":"displayName","value":"Gone Again"}]"#)
        eventually("recreated") { ehr.snapshot()["gone@x.org"]?.attributes["displayName"] == "Gone Again" }
        #expect(ehr.snapshot()["gone@x.org"]?.roles == ["scheduling"])
    }

    @Test func bulkOnboarding_provisionsEveryone() throws {
        defer { stop() }
        let ops = (0..<50).map {
            #"{"method":"POST","path":"/Users","bulkId":"b\#($0)","#
                + #""data":\#(person("bulk\($0)@x.org", title: "Receptionist"))}"#
        }
        let r = try hub.call(
            "POST", "/scim/v2/Bulk",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                + #"[\#(ops.joined(separator: ","))]}"#
        )
        #expect(r.status == 200)
        eventually("bulk provisioned") { ehr.snapshot().count == 50 }
    }
}

@Suite struct ProvisioningFaultTests {
    @Test func invalidPolicy_hubRefusesToStart() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.path + "/policy.json"
        _ = FileManager.default.createFile(
            atPath: file,
            contents: Data(#"{"targets":[],"packages":[{"name":"a","rule":"title pr","grants":{"ehr":["x"]}}]}"#.utf8))
        #expect(throws: PolicyError("packages[0].grants: unknown target 'ehr'")) {
            _ = try LiveHub { $0.policyFile = file }
        }
    }

    /// A target that goes down shows as unavailable from its scheduled probe, before any
    /// change is queued for it; `/readyz` reports it without failing; "probe now" sees it come back.
    @Test func aDownTargetShowsBeforeAnyChange_fromItsProbe() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        let hub = try LiveHub(policy: ehrPolicy(ehr)) { $0.engine.probeInterval = 0.2 }
        defer { hub.stop(); ehr.stop() }
        func ehrTarget() throws -> JSONObject? {
            try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?
                .first { $0.objectValue?["name"]?.stringValue == "ehr" }?.objectValue
        }
        eventually("first probe up") { try ehrTarget()?["probe"]?.objectValue?["up"] == .bool(true) }
        #expect(try ehrTarget()?["health"]?.stringValue == "healthy")
        ehr.setFault(.error5xx)
        eventually("the probe sees the outage") { try ehrTarget()?["health"]?.stringValue == "unavailable" }
        let t = try #require(try ehrTarget())
        #expect(t["circuit"]?.stringValue == "closed" && t["queueDepth"] == .int(0))
        #expect(t["probe"]?.objectValue?["error"]?.stringValue?.contains("503") == true, "\(t)")
        let ready = try hub.call("GET", "/readyz", token: hub.reader)
        #expect(ready.status == 200)
        #expect(ready.object["targets"]?.objectValue?["ehr"]?.objectValue?["probe"]?.stringValue == "down")
        #expect(ready.object["store"]?.stringValue == "ok")
        ehr.setFault(.none)
        let now = try hub.call("POST", "/admin/targets/ehr/probe", token: hub.admin)
        #expect(now.status == 200 && now.object["probe"]?.objectValue?["up"] == .bool(true), "\(now.text)")
        #expect(try ehrTarget()?["health"]?.stringValue == "healthy")
        #expect(try hub.call("POST", "/admin/targets/imaging/probe", token: hub.admin).status == 409)
        #expect(try hub.call("POST", "/admin/targets/nope/probe", token: hub.admin).status == 404)
        #expect(try hub.call("POST", "/admin/targets/ehr/probe", token: hub.reader).status == 403)
    }

    @Test func oneTargetDown_otherTargetsUnaffected() throws {
        let up = try EHRTestServer(), down = try EHRTestServer()
        up.start(); down.start()
        defer { up.stop(); down.stop() }
        down.setFault(.error5xx)
        let policy = """
            {"targets": [
              {"name": "ehr-a", "type": "ehr-rest", "settings": {"baseURL": "\(up.baseURL)", \
            "auth": {"type": "bearer", "tokenFile": "\(tokenFile(up))"}}},
              {"name": "ehr-b", "type": "ehr-rest", "settings": {"baseURL": "\(down.baseURL)", \
            "auth": {"type": "bearer", "tokenFile": "\(tokenFile(down))"}}}],
             "packages": [{"name": "reception", "rule": "title eq \\"Receptionist\\"", \
            "grants": {"ehr-a": ["scheduling"], "ehr-b": ["scheduling"]}}]}
            """
        let hub = try LiveHub(policy: policy)
        defer { hub.stop() }
        for i in 0..<5 {
            _ = try hub.call("POST", "/scim/v2/Users", body: person("p\(i)@x.org", title: "Receptionist"))
        }
        eventually("healthy target converges while the other is down") { up.snapshot().count == 5 }
        #expect(down.snapshot().isEmpty)
        down.setFault(.none)
        eventually("the other catches up") { down.snapshot().count == 5 }
    }

    @Test func retention_deletesTheAccountAfterThePeriod() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        // 0.00002 days ≈ 1.7 s.
        let policy = ehrPolicy(ehr).replacingOccurrences(
            of: #""concurrency": 4,"#, with: #""concurrency": 4, "retentionDays": 0.00002,"#)
        let hub = try LiveHub(policy: policy)
        defer { hub.stop() }
        let r = try hub.call("POST", "/scim/v2/Users", body: person("ret@x.org", title: "Receptionist"))
        let id = try #require(r.object["id"]?.stringValue)
        eventually("provisioned") { ehr.snapshot()["ret@x.org"] != nil }
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(id)").status == 204)
        eventually("disabled first") { ehr.snapshot()["ret@x.org"]?.active == false }
        eventually("deleted after the retention period") { ehr.snapshot()["ret@x.org"] == nil }
        // Nothing left of the person anywhere (recorded just after the target's delete).
        eventually("applied state forgotten") {
            try hub.call("GET", "/admin/people/\(id)/access", token: hub.admin).status == 404
        }
    }

    /// kill -9 of the real binary during onboarding: after restart every person converges
    /// and no account is created twice.
    @Test func kill9DuringOnboarding_everyoneConvergesWithoutDuplicates() throws {
        let binary = repoRoot + "/.build/debug/scimhub"
        #expect(FileManager.default.isExecutableFile(atPath: binary), "build scimhub first (swift build)")
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let policyFile = dir.path + "/policy.json"
        _ = FileManager.default.createFile(atPath: policyFile, contents: Data(ehrPolicy(ehr).utf8))
        let token = try HubProcess.createToken(binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
        let hub = try HubProcess(
            binary: binary, data: dir.path, extraArguments: ["--policy", policyFile, "--log-level", "error"])
        let c = try RawHTTPClient(port: hub.port, timeout: 60)
        let n = 10_000
        for chunk in stride(from: 0, to: n, by: 1000) {
            let ops = (chunk..<(chunk + 1000)).map {
                #"{"method":"POST","path":"/Users","bulkId":"b\#($0)","#
                    + #""data":\#(person("k\($0)@x.org", title: "Receptionist"))}"#
            }
            let body =
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                + #"[\#(ops.joined(separator: ","))]}"#
            let r = c.request(
                "POST", "/scim/v2/Bulk",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")],
                body: Array(body.utf8))
            #expect(r?.status == 200)
        }
        // Kill while provisioning is under way.
        eventually("provisioning started", timeout: 120) { ehr.snapshot().count > 20 }
        hub.kill9()
        let before = ehr.snapshot().count
        #expect(before < n, "killed too late to test anything")
        let hub2 = try HubProcess(
            binary: binary, data: dir.path, extraArguments: ["--policy", policyFile, "--log-level", "error"])
        defer { hub2.stop() }
        eventually("everyone converges after restart", timeout: 300) {
            ehr.snapshot().values.filter { $0.roles == ["scheduling"] }.count == n
        }
        // one account per person: a create lost in the crash was found, not repeated
        #expect(ehr.snapshot().count == n)
    }
}

@Suite struct SCIMTargetTests {
    /// Hub A provisions into hub B over SCIM: the person appears with group memberships
    /// for entitlements, and a leaver is deactivated there.
    @Test func hubProvisionsIntoAnotherScimHub() throws {
        let b = try LiveHub()
        defer { b.stop() }
        let tokenPath = b.directory.path + "/token"
        _ = FileManager.default.createFile(atPath: tokenPath, contents: Data(b.writer.utf8))
        let policy = """
            {"targets": [{"name": "app", "type": "scim", "settings": {"baseURL": "http://127.0.0.1:\(b.port)/scim/v2", \
            "auth": {"type": "bearer", "tokenFile": "\(tokenPath)"}},
                          "mapping": {"displayName": "displayName", "title": "title"}}],
             "packages": [{"name": "front-desk", "rule": "title eq \\"Receptionist\\"", \
            "grants": {"app": ["Front Desk"]}}]}
            """
        let a = try LiveHub(policy: policy)
        defer { a.stop() }
        let created = try a.call("POST", "/scim/v2/Users", body: person("desk@x.org", title: "Receptionist"))
        let id = try #require(created.object["id"]?.stringValue)
        func remote() throws -> JSONObject? {
            try b.call("GET", "/scim/v2/Users?filter=userName%20eq%20%22desk@x.org%22").object["Resources"]?.arrayValue?
                .first?.objectValue
        }
        eventually("provisioned into hub B") {
            try remote()?["groups"]?.arrayValue?.first?.objectValue?["display"]?.stringValue == "Front Desk"
        }
        #expect(try remote()?["title"]?.stringValue == "Receptionist")
        _ = try a.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"active","value":false}]}"#
        )
        // Disable comes first, then the memberships are revoked: wait for both.
        // Two hubs in one test process, beside the other suites: give the two calls room.
        eventually("deactivated in hub B, memberships revoked", timeout: 20) {
            try remote()?["active"] == .bool(false) && remote()?["groups"] == nil
        }
        #expect(try remote()?["active"] == .bool(false))
    }
}

/// The writer evaluates a Group's members only when the policy reads that Group.
@Suite struct GroupEvaluationTests {
    @Test func membershipOfAGroupNoPackageReads_doesNotTouchTheMembersJobs() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        ehr.setFault(.reject)  // the person's job goes to the dead letter and stays there
        let hub = try LiveHub(policy: ehrPolicy(ehr))
        defer { hub.stop(); ehr.stop() }
        let created = try hub.call("POST", "/scim/v2/Users", body: person("desk@x.org", title: "Receptionist"))
        let id = try #require(created.object["id"]?.stringValue)
        func job() throws -> ProvisioningJob? { try hub.server.store.read { try $0.job(personID: id, target: "ehr") } }
        eventually("dead-lettered") { try job()?.state == .dead }
        let generation = try job()?.generation
        func group(_ name: String) throws -> Int {
            try hub.call(
                "POST", "/scim/v2/Groups",
                body:
                    #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"\#(name)","members":"#
                    + #"[{"value":"\#(id)"}]}"#
            ).status
        }
        #expect(try group("Book Club") == 201)
        #expect(try job()?.state == .dead && job()?.generation == generation)  // not evaluated: nothing to redo
        #expect(try group("Billing On-Call") == 201)  // a package reads this one
        #expect(try (job()?.generation ?? 0) > (generation ?? 0))  // evaluated and queued again
    }
}
