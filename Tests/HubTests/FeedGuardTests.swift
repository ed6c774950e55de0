// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import Hub
import JSONCore
import Provisioning
import Store
import TestSupport

/// The guard on a feed: a burst of leavers past the limit is stored and acknowledged, but
/// the removals past the limit wait in a hold until an administrator decides.
@Suite struct FeedGuardTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr, packages: #"{"name": "desk", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}"#)
    }

    /// A hub whose feeds may take all access from 3 people per window; six provisioned receptionists.
    func staffedHub(dir: String? = nil) throws -> (LiveHub, [String: String]) {
        let hub = try LiveHub(policy: policy) {
            $0.engine.feedGuard.limit = PolicyChangeLimit(people: 3, share: 0)
            if let dir { $0.dataDirectory = dir }
        }
        var ids: [String: String] = [:]
        for i in 1...6 {
            let r = try hub.call("POST", "/scim/v2/Users", body: person("desk\(i)@x.org", title: "Receptionist"))
            ids["desk\(i)@x.org"] = try #require(r.object["id"]?.stringValue)
        }
        eventually("six receptionists provisioned") {
            (1...6).allSatisfy { ehr.snapshot()["desk\($0)@x.org"]?.active == true }
        }
        #expect(hub.server.engine?.waitUntilIdle() == true)  // every creation recorded before anyone leaves
        return (hub, ids)
    }

    func leave(_ hub: LiveHub, _ id: String, active: Bool = false) throws {
        let body =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"active","value":\#(active)}]}"#
        #expect(try hub.call("PATCH", "/scim/v2/Users/\(id)", body: body).status == 200)
    }

    func stillActive() -> Int { (1...6).filter { ehr.snapshot()["desk\($0)@x.org"]?.active == true }.count }

    @Test func leaversPastTheLimit_areHeld_untilReleasedWithStepUp() throws {
        let (hub, ids) = try staffedHub()
        defer { hub.stop(); ehr.stop() }
        for i in 1...6 { try leave(hub, ids["desk\(i)@x.org"]!) }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(stillActive() == 3)  // three flowed; the other three are held
        let holds = try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue ?? []
        let hold = try #require(holds.first?.objectValue)
        #expect(holds.count == 1 && hold["state"]?.stringValue == "open" && hold["people"] == .int(3))
        #expect(
            hold["feed"]?.stringValue == "hr"
                && hold["reason"]?.stringValue?.contains("4 of 6 people lost access") == true)
        #expect(hold["held"]?.arrayValue?.count == 3)
        let target = try hub.call("GET", "/admin/targets", token: hub.admin).object["targets"]?.arrayValue?.first?
            .objectValue
        #expect(target?["heldJobs"] == .int(3))
        let id = try #require(hold["id"]?.stringValue)
        #expect(try hub.call("POST", "/admin/holds/\(id)/release", token: hub.admin).status == 403)  // step-up
        let secret = try hub.enrolTOTP(hub.admin)
        let released = try hub.call(
            "POST", "/admin/holds/\(id)/release", token: hub.admin, headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(released.status == 200 && released.object["jobs"] == .int(3), "\(released.text)")
        eventually("the held removals ran") { stillActive() == 0 }
        let again = try hub.call(
            "POST", "/admin/holds/\(id)/release", token: hub.admin,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret, stepOffset: 1))])
        #expect(again.status == 409)
        #expect(try hub.call("POST", "/admin/holds/nope/release", token: hub.admin).status == 404)
        let audit = try hub.call("GET", "/admin/audit?count=1000", token: hub.admin).text
        #expect(audit.contains("feed.hold") && audit.contains("hold.release"))
    }

    @Test func aReleasedHold_isNotUndone_whenTheFeedSendsThePeopleAgain() throws {
        let (hub, ids) = try staffedHub()
        defer { hub.stop(); ehr.stop() }
        for i in 1...6 { try leave(hub, ids["desk\(i)@x.org"]!) }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        let hold = try #require(
            try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue?.first?.objectValue)
        let held = (hold["held"]?.arrayValue ?? []).compactMap { $0.objectValue?["userName"]?.stringValue }
        ehr.setFault(.error5xx)  // the target is down when the hold is released: the removals wait in the queue
        let secret = try hub.enrolTOTP(hub.admin)
        let released = try hub.call(
            "POST", "/admin/holds/\(try #require(hold["id"]?.stringValue))/release", token: hub.admin,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(released.status == 200)
        // The feed's next sync sends the same leavers with another change.
        let rename =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"displayName","value":"Left"}]}"#
        for name in held {
            #expect(try hub.call("PATCH", "/scim/v2/Users/\(ids[name]!)", body: rename).status == 200)
        }
        #expect(try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue?.count == 1)
        ehr.setFault(.none)
        eventually("the released removals ran", timeout: 20) { stillActive() == 0 }
    }

    @Test func discard_judgesEachPersonAgain_fromTheirCurrentState() throws {
        let (hub, ids) = try staffedHub()
        defer { hub.stop(); ehr.stop() }
        for i in 1...6 { try leave(hub, ids["desk\(i)@x.org"]!) }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        let hold = try #require(
            try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue?.first?.objectValue)
        let held = (hold["held"]?.arrayValue ?? []).compactMap { $0.objectValue?["userName"]?.stringValue }.sorted()
        #expect(held.count == 3)
        // HR fixes its export for two of the held people; the third is really leaving.
        for name in held.prefix(2) { try leave(hub, ids[name]!, active: true) }
        let secret = try hub.enrolTOTP(hub.admin)
        let id = try #require(hold["id"]?.stringValue)
        let discarded = try hub.call(
            "POST", "/admin/holds/\(id)/discard", token: hub.admin, headers: [("X-ScimHub-TOTP", LiveHub.totp(secret))])
        #expect(discarded.status == 200 && discarded.object["people"] == .int(3), "\(discarded.text)")
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(held.prefix(2).allSatisfy { ehr.snapshot()[$0]?.active == true })  // never lost access
        #expect(ehr.snapshot()[held[2]]?.active == true)  // still past the limit: held again
        let holds = try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue ?? []
        #expect(holds.count == 2)
        #expect(
            holds.first?.objectValue?["state"]?.stringValue == "open" && holds.first?.objectValue?["people"] == .int(1))
    }

    @Test func deadlinesThatFallTogether_areGuardedToo() throws {
        let clock = ManualClock()
        let hub = try LiveHub(policy: policy) {
            $0.engine.feedGuard.limit = PolicyChangeLimit(people: 3, share: 0)
            $0.clock = clock
        }
        defer { hub.stop(); ehr.stop() }
        // A bad export: six contractors whose engagement ends in the same minute.
        let ends = Timestamp.format(clock.now() + 60)
        for i in 1...6 {
            let body = person("desk\(i)@x.org", title: "Receptionist").replacingOccurrences(
                of: #""credentialStatus":"active""#, with: #""credentialStatus":"active","contractEndsAt":"\#(ends)""#)
            #expect(try hub.call("POST", "/scim/v2/Users", body: body).status == 201)
        }
        eventually("six provisioned") { (1...6).allSatisfy { ehr.snapshot()["desk\($0)@x.org"]?.active == true } }
        // Every creation recorded: a leaver whose account the hub has not yet recorded has, as
        // far as the hub knows, no access to lose, and is not counted (seen under load).
        #expect(hub.server.engine?.waitUntilIdle() == true)
        clock.advance(by: 120)
        eventually("the deadlines were processed") {
            try hub.server.store.read { try $0.credentialScheduleSize() } == 0
        }
        eventually("three removed, three held") { stillActive() == 3 }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(stillActive() == 3)
        let hold = try hub.call("GET", "/admin/holds", token: hub.admin).object["holds"]?.arrayValue?.first?.objectValue
        #expect(hold?["feed"]?.stringValue == "deadlines" && hold?["people"] == .int(3))
    }

    @Test func anOpenHold_survivesKill9_ofTheRealProcess() throws {
        let binary = repoRoot + "/.build/debug/scimhub"
        let dir = TemporaryDirectory()
        defer { dir.remove(); ehr.stop() }
        let policyFile = dir.path + "/policy.json", configFile = dir.path + "/hub.json"
        _ = FileManager.default.createFile(atPath: policyFile, contents: Data(policy.utf8))
        _ = FileManager.default.createFile(
            atPath: configFile, contents: Data(#"{"feedGuard": {"people": 3, "share": 0}}"#.utf8))
        let token = try HubProcess.createToken(binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
        let admin = try HubProcess.createToken(binary, data: dir.path, principal: "auditor", scopes: "admin")
        let args = ["--policy", policyFile, "--config", configFile]
        func call(_ port: UInt16, _ method: String, _ path: String, _ t: String, _ body: String? = nil) throws
            -> RawResponse
        {
            let c = try RawHTTPClient(port: port)
            var h = [("Authorization", "Bearer \(t)")]
            if body != nil { h.append(("Content-Type", "application/scim+json")) }
            return try #require(c.request(method, path, headers: h, body: body.map { Array($0.utf8) }))
        }
        let hub = try HubProcess(binary: binary, data: dir.path, extraArguments: args)
        var ids: [String] = []
        for i in 1...6 {
            let r = try call(hub.port, "POST", "/scim/v2/Users", token, person("desk\(i)@x.org", title: "Receptionist"))
            ids.append(try #require(r.object["id"]?.stringValue))
        }
        eventually("provisioned") { stillActive() == 6 }
        let leave =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"#
            + #""Operations":[{"op":"replace","path":"active","value":false}]}"#
        for id in ids { #expect(try call(hub.port, "PATCH", "/scim/v2/Users/\(id)", token, leave).status == 200) }
        eventually("three removals flowed, three held") { stillActive() == 3 }
        hub.kill9()
        let again = try HubProcess(binary: binary, data: dir.path, extraArguments: args)
        defer { _ = again.stop() }
        let holds = try call(again.port, "GET", "/admin/holds", admin).object["holds"]?.arrayValue ?? []
        #expect(holds.count == 1 && holds.first?.objectValue?["state"]?.stringValue == "open", "\(holds)")
        #expect(holds.first?.objectValue?["people"] == .int(3))
        // The held jobs are still held (not pending): nothing will remove those three.
        let targets = try call(again.port, "GET", "/admin/targets", admin).object["targets"]?.arrayValue
        let ehrTarget = targets?.first?.objectValue
        #expect(ehrTarget?["heldJobs"] == .int(3) && ehrTarget?["queueDepth"] == .int(0), "\(targets ?? [])")
        #expect(stillActive() == 3)
    }

    @Test func anOpenHold_survivesARestart_andItsRemovalsStayHeld() throws {
        let (hub, ids) = try staffedHub()
        defer { ehr.stop() }
        for i in 1...6 { try leave(hub, ids["desk\(i)@x.org"]!) }
        #expect(hub.server.engine?.waitUntilIdle() == true)
        let dir = hub.directory
        hub.server.shutdown()
        let again = try LiveHub(policy: policy) {
            $0.dataDirectory = dir.path
            $0.engine.feedGuard.limit = PolicyChangeLimit(people: 3, share: 0)
        }
        defer { again.stop(); dir.remove() }
        #expect(again.server.engine?.waitUntilIdle() == true)
        #expect(stillActive() == 3)
        let holds = try again.call("GET", "/admin/holds", token: again.admin).object["holds"]?.arrayValue ?? []
        #expect(
            holds.first?.objectValue?["state"]?.stringValue == "open" && holds.first?.objectValue?["people"] == .int(3))
    }
}
