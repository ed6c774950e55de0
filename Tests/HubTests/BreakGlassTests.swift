// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import JSONCore
import Store
import TestSupport

/// Break-glass end to end: granted at once downstream, taken back at expiry (also when the
/// hub was down at that moment), flagged everywhere, reviewed after use by someone else.
@Suite struct BreakGlassTests {
    let ehr: EHRTestServer
    /// The hub's clock: expiry tests move it past the grant's end instead of waiting.
    let clock = ManualClock()

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "emergency-physician", "groups": ["Emergency Roster"], "#
                + #""grants": {"ehr": ["physician"]}, "breakGlass": {"maxHours": 8}}"#
        )
    }

    func receptionist(_ hub: LiveHub, _ userName: String = "rosa@x.org") throws -> String {
        let r = try hub.call("POST", "/scim/v2/Users", body: person(userName, title: "Receptionist"))
        let id = try #require(r.object["id"]?.stringValue)
        eventually("provisioned") { ehr.snapshot()[userName]?.roles == ["scheduling"] }
        return id
    }

    /// A grant with a current step-up code when `secret` is given.
    func grant(_ hub: LiveHub, _ token: String, _ body: String, totp secret: [UInt8]? = nil) throws -> RawResponse {
        try hub.call(
            "POST", "/admin/break-glass", token: token, body: body,
            headers: secret.map { [("X-ScimHub-TOTP", LiveHub.totp($0))] } ?? [])
    }

    /// The on-call doctor's break-glass token, enrolled for step-up.
    func doctor(_ hub: LiveHub) throws -> (token: String, secret: [UInt8]) {
        let t = try hub.makeToken("dr.oncall", [.breakGlass])
        return (t, try hub.enrolTOTP(t))
    }

    @Test func grant_isUsableAtOnce_flaggedEverywhere_andTakenBackAtExpiry() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        let id = try receptionist(hub)
        let (doctor, secret) = try doctor(hub)
        let t0 = Date()
        let r = try grant(
            hub, doctor,
            #"{"personId": "\#(id)", "package": "emergency-physician", "#
                + #""reason": "cardiac arrest in bay 3, no physician on site", "hours": 1}"#,
            totp: secret)
        #expect(r.status == 201, "\(r.text)")
        let grantID = try #require(r.object["id"]?.stringValue)
        eventually("physician role downstream") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling", "physician"] }
        #expect(Date().timeIntervalSince(t0) < 1.5)
        let access = try hub.call("GET", "/admin/people/\(id)/access", token: hub.admin).object
        #expect(access["breakGlass"]?.arrayValue?.count == 1)
        #expect(
            access["packages"]?.arrayValue?.contains {
                $0.objectValue?["why"]?.stringValue?.hasPrefix("break-glass: cardiac arrest") == true
            } == true)
        // Reconciliation flags it while it lasts.
        let run = try #require(
            try hub.call("POST", "/admin/reconciliations", token: hub.admin, body: "{}").object["id"]?.stringValue)
        eventually("run done") {
            try hub.call("GET", "/admin/reconciliations/\(run)", token: hub.admin).object["state"]?.stringValue
                == "done"
        }
        let report =
            try hub.call("GET", "/admin/reconciliations/\(run)/report", token: hub.admin).object["findings"]?.arrayValue
            ?? []
        #expect(
            report.contains {
                $0.objectValue?["category"]?.stringValue == "break-glass"
                    && $0.objectValue?["detail"]?.stringValue == "emergency-physician"
            })
        let creep = try hub.call("GET", "/admin/permission-creep", token: hub.admin).object["people"]?.arrayValue?
            .first?.objectValue
        #expect(creep?["beyondRole"]?.arrayValue?.first?.objectValue?["kind"]?.stringValue == "break-glass")
        // An hour after the grant it is gone downstream, by the stored expiry, with no one asking.
        clock.advance(by: 3601)
        eventually("taken back at expiry") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
        let listed = try hub.call("GET", "/admin/break-glass?state=pending-review", token: hub.admin).object["grants"]?
            .arrayValue?.first?.objectValue
        #expect(listed?["state"]?.stringValue == "ended")
        #expect(listed?["review"]?.stringValue == "pending")
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text
        #expect(audit.contains("break-glass.grant") && audit.contains("break-glass.expire"))
        // Post-use review: not by whoever granted it; once.
        let granterAdmin = try hub.makeToken("dr.oncall", [.admin])
        #expect(
            try hub.call(
                "POST", "/admin/break-glass/\(grantID)/review", token: granterAdmin,
                body: #"{"decision": "justified", "reason": "ok"}"#
            ).status == 403)
        #expect(
            try hub.call(
                "POST", "/admin/break-glass/\(grantID)/review", token: hub.admin,
                body: #"{"decision": "fine", "reason": "ok"}"#
            ).status == 400)
        let reviewed = try hub.call(
            "POST", "/admin/break-glass/\(grantID)/review", token: hub.admin,
            body: #"{"decision": "justified", "reason": "arrest documented in the notes"}"#)
        #expect(reviewed.status == 200, "\(reviewed.text)")
        #expect(reviewed.object["review"]?.objectValue?["decision"]?.stringValue == "justified")
        #expect(
            try hub.call(
                "POST", "/admin/break-glass/\(grantID)/review", token: hub.admin,
                body: #"{"decision": "justified", "reason": "again"}"#
            ).status == 409)
    }

    @Test func hubDownAtExpiry_takesTheAccessBackAtStartUp() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { ehr.stop() }
        let id = try receptionist(hub)
        let (doctor, secret) = try doctor(hub)
        #expect(
            try grant(
                hub, doctor,
                #"{"personId": "\#(id)", "package": "emergency-physician", "reason": "mass casualty", "hours": 1}"#,
                totp: secret
            ).status == 201)
        eventually("granted downstream") { ehr.snapshot()["rosa@x.org"]?.roles.contains("physician") == true }
        let dir = hub.directory.path
        hub.server.shutdown()
        clock.advance(by: 3601)  // expires while the hub is down
        let again = try LiveHub(policy: policy) {
            $0.dataDirectory = dir; $0.clock = clock
        }
        defer { again.stop(); hub.directory.remove() }
        // Ended during start-up, before the first request was served.
        let grants = try again.server.store.read { try $0.breakGlassGrants(state: nil, limit: 10) }
        #expect(grants.count == 1 && grants.first?.ended != nil)
        eventually("revoked downstream after the restart") { ehr.snapshot()["rosa@x.org"]?.roles == ["scheduling"] }
    }

    @Test(arguments: [
        (#"{"package": "emergency-physician", "reason": "x"}"#, 400, "'personId' or 'userName' is required"),
        (#"{"personId": "PID", "package": "emergency-physician"}"#, 400, "'reason' is required"),
        (#"{"personId": "PID", "package": "emergency-physician", "reason": "   "}"#, 400, "'reason' is required"),
        (#"{"personId": "PID", "package": "emergency-physician", "reason": "x", "hours": 9}"#, 400, "at most 8.0"),
        (#"{"personId": "PID", "package": "emergency-physician", "reason": "x", "hours": 0}"#, 400, "'hours'"),
        (#"{"personId": "PID", "package": "nope", "reason": "x"}"#, 400, "no package named 'nope'"),
        (#"{"personId": "PID", "package": "receptionist", "reason": "x"}"#, 400, "not available for break-glass"),
        (#"{"personId": "no-such-person", "package": "emergency-physician", "reason": "x"}"#, 404, "no person"),
        (
            #"{"personId": "PID", "package": "emergency-physician", "reason": "x", "approver": "me"}"#, 400,
            "unknown key 'approver'"
        ),
    ])
    func badGrants_areRefused_andNothingIsGranted(body: String, status: Int, fragment: String) throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let id = try receptionist(hub)
        let (doctor, secret) = try doctor(hub)
        let r = try grant(hub, doctor, body.replacingOccurrences(of: "PID", with: id), totp: secret)
        #expect(r.status == status, "\(r.text)")
        #expect(r.object["detail"]?.stringValue?.contains(fragment) == true, "\(r.text)")
        #expect(
            try hub.call("GET", "/admin/break-glass", token: hub.admin).object["grants"]?.arrayValue?.isEmpty == true)
    }

    @Test func scopeAndLeavers_areEnforced() throws {
        let hub = try LiveHub(policy: policy)
        defer { hub.stop(); ehr.stop() }
        let id = try receptionist(hub)
        let body = #"{"personId": "\#(id)", "package": "emergency-physician", "reason": "x"}"#
        #expect(try grant(hub, hub.admin, body).status == 403)  // admin alone is not enough
        #expect(try grant(hub, hub.writer, body).status == 403)  // nor a feed
        let leaver = try receptionist(hub, "gone@x.org")
        _ = try hub.call(
            "PATCH", "/scim/v2/Users/\(leaver)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"active","value":false}]}"#
        )
        let (doctor, secret) = try doctor(hub)
        #expect(try grant(hub, doctor, body.replacingOccurrences(of: id, with: leaver), totp: secret).status == 409)
        #expect(
            try hub.call("GET", "/admin/break-glass", token: hub.admin).object["grants"]?.arrayValue?.isEmpty == true)
    }
}
