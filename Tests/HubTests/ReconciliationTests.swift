// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import ConnectorKit
import EHRRestConnector
import EHRTestServer
import HubLog
import JSONCore
import Provisioning
import Store
import TestSupport

/// Reconciliation runs over the admin API against the EHR test server: every category,
/// reports in three formats, remediation, the mass-change guard, and the bad requests.
@Suite struct ReconciliationTests {
    let ehr: EHRTestServer
    let hand: EHRRestConnector

    init() throws {
        ehr = try EHRTestServer(timeoutDelay: 2)
        ehr.start()
        hand = EHRRestConnector(config: EHRRestConfig(baseURL: ehr.baseURL, auth: .bearer(ehr.staticToken)))
    }

    func policy(orphans: String = "report", maxChanges: Int = 100, extraTarget: String = "") -> String {
        """
        {"targets": [
          {"name": "ehr", "type": "ehr-rest", "concurrency": 4,
           "settings": {"baseURL": "\(ehr.baseURL)", "auth": {"type": "bearer", "tokenFile": "\(tokenFile(ehr))"}, \
        "timeoutSeconds": 5},
           "mapping": {"displayName": "displayName"},
           "reconciliation": {"orphans": "\(orphans)", "exclude": ["svc-*"], "maxChanges": \(maxChanges), \
        "maxChangeShare": 1}}\(extraTarget)
         ],
         "packages": [
          {"name": "receptionist", "rule": "title eq \\"Receptionist\\"", "grants": {"ehr": ["scheduling"]}}
         ]}
        """
    }

    func create(_ hub: LiveHub, _ userName: String, title: String = "Receptionist") throws -> String {
        let r = try hub.call("POST", "/scim/v2/Users", body: person(userName, title: title))
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("create: \(r.status) \(r.text)")
        }
        return id
    }

    func accountID(_ userName: String) throws -> String { try #require(try hand.find(userName: userName)).id }

    /// Seven people in every state reconciliation must notice, plus an orphan and a service account.
    func makeDrift(_ hub: LiveHub) throws {
        for n in ["stay", "leaver", "extra", "lacking", "drift", "gone"] { _ = try create(hub, "\(n)@x.org") }
        eventually("all provisioned") {
            ["stay", "leaver", "extra", "lacking", "drift", "gone"].allSatisfy {
                ehr.snapshot()["\($0)@x.org"]?.roles == ["scheduling"]
            }
        }
        let leaver = try #require(
            try hub.call("GET", "/scim/v2/Users?filter=userName%20eq%20%22leaver@x.org%22").object["Resources"]?
                .arrayValue?.first?.objectValue?["id"]?.stringValue)
        let r = try hub.call(
            "PATCH", "/scim/v2/Users/\(leaver)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"active","value":false}]}"#
        )
        #expect(r.status == 200)
        eventually("leaver disabled") { ehr.snapshot()["leaver@x.org"]?.active == false }
        // Changes made in the EHR by hand, behind the hub's back:
        try hand.setEnabled(id: try accountID("leaver@x.org"), true)
        try hand.grant(id: try accountID("extra@x.org"), entitlement: "billing")
        try hand.revoke(id: try accountID("lacking@x.org"), entitlement: "scheduling")
        try hand.update(id: try accountID("drift@x.org"), attributes: ["displayName": "Changed By Hand"])
        ehr.deleteByHand(userName: "gone@x.org")
        _ = try hand.create(
            AccountSpec(
                userName: "intruder@x.org", attributes: ["displayName": "<script>alert(1)</script>"],
                entitlements: ["physician"]))
        _ = try hand.create(AccountSpec(userName: "svc-backup@x.org", entitlements: ["billing"]))
    }

    func start(_ hub: LiveHub, _ body: String) throws -> String {
        let r = try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: body)
        #expect(r.status == 202, "\(r.text)")
        return try #require(r.object["id"]?.stringValue)
    }

    func waitFor(_ hub: LiveHub, _ id: String, state: String = "done") throws -> JSONObject {
        var last = JSONObject()
        eventually("run \(state)", timeout: 20) {
            last = try hub.call("GET", "/admin/reconciliations/\(id)", token: hub.admin).object
            return last["state"]?.stringValue == state
        }
        return last
    }

    func counts(_ run: JSONObject, _ target: String = "ehr") -> [String: Int64] {
        var out: [String: Int64] = [:]
        for m in run["summary"]?.objectValue?["targets"]?.objectValue?[target]?.objectValue?["counts"]?.objectValue?
            .members ?? []
        {
            out[m.key] = m.value.numberValue?.int64 ?? -1
        }
        return out
    }

    @Test func reportRun_findsEveryCategory_leaverFirst_inThreeFormats() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        try makeDrift(hub)
        let id = try start(hub, #"{"mode": "report"}"#)
        let run = try waitFor(hub, id)
        #expect(
            counts(run) == [
                "leaver-enabled": 1, "shared-account": 0, "sod-violation": 0, "break-glass": 0, "orphan": 1,
                "missing": 1,
                "disabled-should-be-enabled": 0, "over-privileged": 1,
                "under-privileged": 1, "attribute-drift": 1, "excluded": 1,
            ])
        #expect(run["summary"]?.objectValue?["targets"]?.objectValue?["ehr"]?.objectValue?["accounts"] == .int(7))

        let json = try hub.call("GET", "/admin/reconciliations/\(id)/report?format=json", token: hub.admin)
        let findings = json.object["findings"]?.arrayValue ?? []
        #expect(findings.first?.objectValue?["category"]?.stringValue == "leaver-enabled")
        #expect(findings.first?.objectValue?["severity"]?.stringValue == "critical")
        #expect(
            findings.contains {
                $0.objectValue?["attribute"]?.stringValue == "displayName"
                    && $0.objectValue?["userName"]?.stringValue == "drift@x.org"
            })
        #expect(
            findings.contains {
                $0.objectValue?["detail"]?.stringValue == "billing"
                    && $0.objectValue?["category"]?.stringValue == "over-privileged"
            })
        #expect(!findings.contains { $0.objectValue?["userName"]?.stringValue == "svc-backup@x.org" })
        // An orphan says what it holds: access nobody answers for.
        let orphan = findings.first { $0.objectValue?["category"]?.stringValue == "orphan" }?.objectValue
        #expect(orphan?["userName"]?.stringValue == "intruder@x.org")
        #expect(
            orphan?["entitlements"] == .array([.string("physician")]) && orphan?["detail"]?.stringValue == "enabled")
        // Permission creep: who holds more than their role, per person (the hand-granted billing role).
        let creep = json.object["permissionCreep"]?.arrayValue ?? []
        #expect(creep.count == 1)
        #expect(creep.first?.objectValue?["userName"]?.stringValue == "extra@x.org")
        #expect(
            creep.first?.objectValue?["beyondRole"]?.arrayValue?.first?.objectValue?["entitlement"]?.stringValue
                == "billing")
        let endpoint = try hub.call("GET", "/admin/permission-creep", token: hub.admin).object
        #expect(endpoint["run"]?.stringValue == id && endpoint["people"]?.arrayValue?.count == 1)
        #expect(try hub.call("GET", "/admin/permission-creep?run=nope", token: hub.admin).status == 404)
        // Only names and ids: the values that drifted never appear.
        #expect(!json.text.contains("Changed By Hand"))

        let csv = try hub.call("GET", "/admin/reconciliations/\(id)/report?format=csv", token: hub.admin)
        #expect(csv.header("Content-Type")?.hasPrefix("text/csv") == true)
        let lines = csv.text.split(separator: "\r\n")
        #expect(lines.first == "target,severity,category,personId,userName,displayName,accountId,detail,entitlements")
        #expect(
            lines.contains { $0.hasPrefix("ehr,normal,orphan,,intruder@x.org,") && $0.hasSuffix(",enabled,physician") })
        #expect(lines.dropFirst().first?.hasPrefix("ehr,critical,leaver-enabled,") == true)
        #expect(lines.count == 1 + 6)

        let html = try hub.call("GET", "/admin/reconciliations/\(id)/report?format=html", token: hub.admin)
        #expect(html.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(html.text.contains("ehr: leaver-enabled (critical)"))
        #expect(html.text.contains("intruder@x.org"))
        #expect(html.text.contains("enabled; holds physician"))
        #expect(html.text.contains("Permission creep by person"))
        #expect(!html.text.contains("<script>"))  // the orphan's display name is not even in the report
        // Nothing was changed by a report run.
        #expect(ehr.snapshot()["leaver@x.org"]?.active == true)
        #expect(
            try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text.contains("reconcile.finish"))
    }

    @Test func remediateRun_fixesWhatPolicyCan_andDisablesOrphans() throws {
        let hub = try LiveHub(policy: policy(orphans: "disable"))
        defer { hub.stop(); ehr.stop() }
        try makeDrift(hub)
        let id = try start(hub, #"{"mode": "remediate"}"#)
        let run = try waitFor(hub, id)
        #expect(
            run["summary"]?.objectValue?["targets"]?.objectValue?["ehr"]?.objectValue?["remediated"] == .int(6),
            "\(run)")
        eventually("everything converged", timeout: 15) {
            let s = ehr.snapshot()
            return s["leaver@x.org"]?.active == false && s["leaver@x.org"]?.roles == []
                && s["extra@x.org"]?.roles == ["scheduling"]
                && s["lacking@x.org"]?.roles == ["scheduling"]
                && s["drift@x.org"]?.attributes["displayName"] == "drift@x.org"
                && s["gone@x.org"]?.roles == ["scheduling"] && s["intruder@x.org"]?.active == false
        }
        #expect(ehr.snapshot()["svc-backup@x.org"]?.active == true)  // allow-listed: never touched
        #expect(
            try hub.call("GET", "/admin/audit?principal=auditor", token: hub.admin).text.contains("reconcile.orphan"))
        // A second run finds nothing left to fix but the disabled orphan.
        let again = try waitFor(hub, try start(hub, #"{"mode": "report"}"#))
        #expect(counts(again).filter { $0.key != "excluded" && $0.key != "orphan" }.values.allSatisfy { $0 == 0 })
    }

    @Test func massChangeGuard_waitsForConfirmation() throws {
        let hub = try LiveHub(policy: policy(orphans: "delete", maxChanges: 1))
        defer { hub.stop(); ehr.stop() }
        try makeDrift(hub)
        let id = try start(hub, #"{"mode": "remediate", "targets": ["ehr"]}"#)
        let held = try waitFor(hub, id, state: "awaiting-confirmation")
        #expect(held["summary"]?.objectValue?["reason"]?.stringValue?.contains("mass-change guard") == true)
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["intruder@x.org"] != nil)  // nothing deleted before confirmation
        #expect(ehr.snapshot()["leaver@x.org"]?.active == true)
        // Confirming needs step-up: the admin token alone is refused.
        #expect(try hub.call("POST", "/admin/reconciliations/\(id)/confirm", token: hub.admin).status == 403)
        let secret = try hub.enrolTOTP(hub.admin)
        let confirmed = try hub.call(
            "POST", "/admin/reconciliations/\(id)/confirm", token: hub.admin,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(confirmed.status == 202, "\(confirmed.text)")
        _ = try waitFor(hub, id)
        eventually("orphan deleted, leaver disabled") {
            ehr.snapshot()["intruder@x.org"] == nil && ehr.snapshot()["leaver@x.org"]?.active == false
        }
        #expect(try hub.call("POST", "/admin/reconciliations/\(id)/confirm", token: hub.admin).status == 409)
        #expect(
            try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text.contains("reconcile.confirm"))
    }

    @Test func unreachableTarget_failsAlone_withItsReason() throws {
        let closed = try freeLoopbackPort()
        let extra =
            #", {"name": "lab", "type": "ehr-rest", "settings": {"baseURL": "http://127.0.0.1:\#(closed)", "#
            + #""auth": {"type": "bearer", "tokenFile": "\#(tokenFile(ehr))"}, "connectTimeoutSeconds": 1}}"#
        let hub = try LiveHub(policy: policy(extraTarget: extra))
        defer { hub.stop(); ehr.stop() }
        _ = try create(hub, "one@x.org")
        eventually("provisioned") { ehr.snapshot()["one@x.org"] != nil }
        let run = try waitFor(hub, try start(hub, "{}"))
        let targets = run["summary"]?.objectValue?["targets"]?.objectValue
        #expect(targets?["ehr"]?.objectValue?["state"]?.stringValue == "done")
        #expect(targets?["lab"]?.objectValue?["state"]?.stringValue == "failed")
        #expect(targets?["lab"]?.objectValue?["reason"]?.stringValue?.isEmpty == false)
    }

    @Test(arguments: [
        (#"{"targets": ["nope"]}"#, 400, "no target named 'nope'"),
        (#"{"categories": ["sideways"]}"#, 400, "unknown category 'sideways'"),
        (#"{"mode": "delete-everything"}"#, 400, "'mode' must be report or remediate"),
        (#"{"targetz": ["ehr"]}"#, 400, "unknown key 'targetz'"),
        (#"{"targets": []}"#, 400, "non-empty array"),
        (#"{"targets": ["ehr", "ehr"]}"#, 400, "twice"),
        (#"[1]"#, 400, "must be a JSON object"),
    ])
    func badRequests_areRefused(body: String, status: Int, fragment: String) throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        let r = try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: body)
        #expect(r.status == status, "\(r.text)")
        #expect(r.object["detail"]?.stringValue?.contains(fragment) == true, "\(r.text)")
        #expect(
            try hub.call("GET", "/admin/reconciliations", token: hub.admin).object["runs"]?.arrayValue?.isEmpty == true)
    }

    @Test func accessAndConcurrency_areEnforced() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        // a feed token
        #expect(try hub.call("POST", "/admin/reconciliations", token: hub.writer, body: "{}").status == 403)
        #expect(try hub.call("GET", "/admin/reconciliations/nope", token: hub.admin).status == 404)
        #expect(try hub.call("GET", "/admin/reconciliations/nope/report", token: hub.admin).status == 404)
        #expect(try hub.call("POST", "/admin/reconciliations/nope/confirm", token: hub.admin).status == 404)
        // A slow target keeps the first run busy; a second run on it is refused, not interleaved.
        ehr.setFault(.timeout, remaining: 1)
        let first = try start(hub, "{}")
        let second = try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}")
        #expect(second.status == 409, "\(second.text)")
        _ = try waitFor(hub, first)
        #expect(
            try hub.call("GET", "/admin/reconciliations/\(first)/report?format=pdf", token: hub.admin).status == 400)
        ehr.setFault(.none)
        _ = try waitFor(hub, try start(hub, "{}"))  // free again afterwards
    }

    @Test func runsLeftRunningByAStoppedHub_areFailedAtStart() throws {
        let hub = try LiveHub(policy: policy())
        defer { ehr.stop() }
        let dir = hub.directory.path
        try hub.server.store.write { w in
            try w.connection.insertRun(
                ReconciliationRunRecord(
                    id: "r1", state: .running, mode: "report", targets: #"["ehr"]"#, categories: "[]",
                    requestedBy: "auditor", created: 1, finished: nil, summary: "{}"))
        }
        hub.server.shutdown()
        let again = try LiveHub(policy: policy()) { $0.dataDirectory = dir }
        defer { again.stop(); hub.directory.remove() }
        let r = try again.call("GET", "/admin/reconciliations/r1", token: again.admin).object
        #expect(r["state"]?.stringValue == "failed")
        #expect(r["summary"]?.objectValue?["reason"]?.stringValue?.contains("interrupted") == true)
    }

    /// A run failed as interrupted while its node still runs it (a node cut off from the
    /// database for longer than the lease is taken for dead): the run's own later progress and
    /// its finish do not turn it back.
    @Test func runFailedAsInterruptedWhileStillRunning_staysFailed() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        // 1,500 accounts, 500 a page, each page half a second late.
        ehr.seed((0..<1500).map { (userName: "acct\($0)@x.org", attributes: [:], roles: ["scheduling"]) })
        ehr.setLatency(0.5)
        let id = try start(hub, "{}")
        var node = ""
        eventually("the run lists accounts", timeout: 20) {
            let r = try hub.call("GET", "/admin/reconciliations/\(id)", token: hub.admin).object
            node = r["summary"]?.objectValue?["node"]?.stringValue ?? ""
            return r["state"]?.stringValue == "running" && r["accountsListed"] != nil
        }
        let runner = node
        #expect(runner == hub.server.coordination.nodeID)
        let reason = "interrupted: node \(runner) stopped during the run"
        #expect(
            try hub.server.store.write {
                try $0.connection.interruptRun(id: id, node: runner, reason: reason, now: Date().timeIntervalSince1970)
            })
        // Failing the run freed its target at once: a new run is accepted while the old one
        // still lists (its lease is gone, so it would not remediate).
        let next = try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}")
        #expect(next.status == 202, "\(next.text)")
        ehr.setLatency(0)
        let runs = try #require(hub.server.reconciliations)
        eventually("the old run's thread has ended", timeout: 30) { !runs.workingOn.contains(id) }
        let r = try hub.call("GET", "/admin/reconciliations/\(id)", token: hub.admin).object
        #expect(r["state"]?.stringValue == "failed")
        #expect(r["summary"]?.objectValue?["reason"]?.stringValue == reason)
        #expect(
            !(try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text.contains("reconcile.finish")))
        if let second = next.object["id"]?.stringValue { _ = try waitFor(hub, second) }
    }

    /// Another process on the same store (a second node, or `scimhub reconcile` on the
    /// hub's data): a target one of them is reconciling is refused to the other until the
    /// run ends.
    @Test func aRunInAnotherProcess_holdsItsTargets_untilItEnds() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        let mine = try #require(hub.server.reconciliations)
        let other = ReconciliationRuns(
            reconciler: mine.reconciler, store: hub.server.store, logger: Logger(label: "t", silent: true))
        ehr.seed((0..<1000).map { (userName: "acct\($0)@x.org", attributes: [:], roles: ["scheduling"]) })
        ehr.setLatency(0.5)
        let elsewhere = try other.start(
            targets: ["ehr"], mode: .report, categories: nil, principal: "cli", requestID: "cli")
        let refused = try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}")
        #expect(refused.status == 409, "\(refused.text)")
        #expect(refused.object["detail"]?.stringValue == "a reconciliation of target 'ehr' is already running")
        // And the other way round, for the run that waits.
        #expect(throws: ReconciliationRequestError.conflict("a reconciliation of target 'ehr' is already running")) {
            try other.start(targets: ["ehr"], mode: .report, categories: nil, principal: "cli", requestID: "cli")
        }
        ehr.setLatency(0)
        _ = try waitFor(hub, elsewhere)
        #expect(try hub.server.store.read { try $0.reconciliationLeases(now: Date().timeIntervalSince1970) } == [:])
        _ = try waitFor(hub, try start(hub, "{}"))
    }

    /// A process that died holding a target (`kill -9` of `scimhub reconcile`): the target is
    /// refused while its lease runs and free once it has lapsed.
    @Test func aTargetHeldByADeadProcess_isFreeWhenItsLeaseLapses() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        let now = Date().timeIntervalSince1970
        #expect(
            try hub.server.store.write {
                try $0.connection.takeReconciliationLeases(targets: ["ehr"], runID: "dead", until: now + 60, now: now)
            } == nil)
        #expect(try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}").status == 409)
        // As if a minute had passed without renewal.
        _ = try hub.server.store.write {
            try $0.connection.renewReconciliationLeases(runID: "dead", until: now - 1, now: now - 2)
        }
        _ = try waitFor(hub, try start(hub, "{}"))
    }

    /// `scimhub reconcile` killed mid-run: its run names no node, so it is failed once its
    /// lease on the targets has lapsed (here, by a hub alone on SQLite); a command still
    /// renewing its lease is left running.
    @Test func aRunOfAKilledCommand_isFailedOnceItsLeaseLapses() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        let now = Date().timeIntervalSince1970
        try hub.server.store.write { (w) throws -> Void in
            for (id, target, until) in [("killed", "ehr", now - 1), ("working", "lab", now + 600)] {
                try w.connection.insertRun(
                    ReconciliationRunRecord(
                        id: id, state: .running, mode: "report", targets: #"["\#(target)"]"#, categories: "[]",
                        requestedBy: "cli", created: now, finished: nil, summary: "{}"))
                #expect(
                    try w.connection.takeReconciliationLeases(targets: [target], runID: id, until: until, now: now - 61)
                        == nil)
            }
        }
        func state(_ id: String) throws -> JSONObject {
            try hub.call("GET", "/admin/reconciliations/\(id)", token: hub.admin).object
        }
        eventually("the killed command's run is failed") { try state("killed")["state"]?.stringValue == "failed" }
        #expect(try state("killed")["summary"]?.objectValue?["reason"]?.stringValue == ReconciliationRuns.lapsedReason)
        #expect(try state("working")["state"]?.stringValue == "running")  // judged in the same pass
        let audit = try hub.call("GET", "/admin/audit?action=reconcile.interrupt", token: hub.admin)
        let entries = audit.object["entries"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(entries.map { $0["resourceId"]?.stringValue } == ["killed"], "\(audit.text)")
        #expect(entries.first?["attributes"] == .array([.string("ehr"), .string("node:none")]))
    }

    /// A run whose lease lapsed while it compared (its process cut off from the database) and
    /// whose target another run took meanwhile does not remediate: the other run's findings
    /// are fresher, and two runs must not change one target at once.
    @Test func aRunThatLostItsLease_doesNotRemediate() throws {
        let hub = try LiveHub(policy: policy())
        defer { hub.stop(); ehr.stop() }
        try makeDrift(hub)  // among others, a leaver enabled again by hand
        ehr.seed((0..<1000).map { (userName: "acct\($0)@x.org", attributes: [:], roles: ["scheduling"]) })
        ehr.setLatency(0.5)
        let id = try start(hub, #"{"mode": "remediate"}"#)
        eventually("the run lists accounts", timeout: 20) {
            try hub.call("GET", "/admin/reconciliations/\(id)", token: hub.admin).object["accountsListed"] != nil
        }
        let now = Date().timeIntervalSince1970
        try hub.server.store.write { (w) throws -> Void in
            #expect(try w.connection.renewReconciliationLeases(runID: id, until: now - 1, now: now) == 1)
            #expect(
                try w.connection.takeReconciliationLeases(targets: ["ehr"], runID: "other", until: now + 600, now: now)
                    == nil)
        }
        ehr.setLatency(0)
        let run = try waitFor(hub, id)
        let entry = run["summary"]?.objectValue?["targets"]?.objectValue?["ehr"]?.objectValue
        #expect(entry?["remediationError"]?.stringValue?.contains("lost its lease") == true, "\(run)")
        #expect(entry?["remediated"] == nil)
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["leaver@x.org"]?.active == true)  // left to the run that holds the target
        // The other run's lease was not touched by this one's end.
        #expect(try hub.server.store.read { try $0.reconciliationLeases(now: now) } == ["ehr": "other"])
    }

    /// Two people confirm the same held run at the same instant (on two nodes): one
    /// remediation runs, the other confirmation is refused.
    @Test func twoConfirmationsAtOnce_oneRemediates() throws {
        let hub = try LiveHub(policy: policy(orphans: "delete", maxChanges: 1))
        defer { hub.stop(); ehr.stop() }
        try makeDrift(hub)
        let id = try start(hub, #"{"mode": "remediate", "targets": ["ehr"]}"#)
        _ = try waitFor(hub, id, state: "awaiting-confirmation")
        let mine = try #require(hub.server.reconciliations)
        let other = ReconciliationRuns(
            reconciler: mine.reconciler, store: hub.server.store, logger: Logger(label: "t", silent: true))
        let outcomes = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = Result { try (i == 0 ? mine : other).confirm(id: id, principal: "cco\(i)", requestID: "c\(i)") }
            outcomes.withLock { $0.append((try? r.get()).map { "ok" } ?? "\(r)") }
        }
        let all = outcomes.withLock { $0 }
        #expect(all.filter { $0 == "ok" }.count == 1, "\(all)")
        #expect(all.filter { $0.contains("not awaiting confirmation") || $0.contains("already running") }.count == 1)
        _ = try waitFor(hub, id)
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(id)&action=reconcile.confirm", token: hub.admin)
        #expect(audit.object["entries"]?.arrayValue?.count == 1, "\(audit.text)")
    }
}
