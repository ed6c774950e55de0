// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import Testing
import EHRTestServer
import JSONCore
import SCIM
import Store
import TestSupport

/// Credential-driven access: a lapsed licence takes clinical packages away at the moment it
/// lapses, with no HR change, also when the hub was down at that moment.
@Suite struct CredentialExpiryTests {
    let ehr: EHRTestServer
    /// The hub's clock: tests move it past a deadline instead of waiting for it.
    let clock = ManualClock()

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
    }

    var policy: String {
        singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "physician", "rule": "title eq \"Physician\"", "grants": {"ehr": ["physician"]}, "#
                + #""requiresCredential": true}, {"name": "staff", "rule": "title eq \"Receptionist\"", "#
                + #""grants": {"ehr": ["scheduling"]}}"#
        )
    }

    func physician(_ hub: LiveHub, _ userName: String, expiresIn seconds: Double, status: String = "active") throws
        -> String
    {
        let expires = Timestamp.format(clock.now() + seconds)
        let body = person(userName, title: "Physician", status: status)
            .replacingOccurrences(
                of: #""credentialStatus":"\#(status)""#,
                with: #""credentialStatus":"\#(status)","licenseExpiresAt":"\#(expires)""#)
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        #expect(r.status == 201, "\(r.text)")
        return try #require(r.object["id"]?.stringValue)
    }

    @Test func lapsedLicence_takesThePackageAway_withNoHRChange() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        let id = try physician(hub, "dr.lapse@x.org", expiresIn: 3)
        _ = try physician(hub, "dr.valid@x.org", expiresIn: 3600)
        eventually("both provisioned") {
            ehr.snapshot()["dr.lapse@x.org"]?.roles == ["physician"]
                && ehr.snapshot()["dr.valid@x.org"]?.roles == ["physician"]
        }
        let expiring =
            try hub.call("GET", "/admin/credentials/expiring?within=1m", token: hub.admin).object["people"]?.arrayValue
            ?? []
        #expect(expiring.count == 1)
        #expect(expiring.first?.objectValue?["userName"]?.stringValue == "dr.lapse@x.org")
        #expect(expiring.first?.objectValue?["packagesAtRisk"] == .array([.string("physician")]))
        #expect(
            try hub.call("GET", "/admin/credentials/expiring?within=2h", token: hub.admin).object["people"]?.arrayValue?
                .count == 2)
        // The total without the list (the dashboard's figure), and a bounded list.
        let totalOnly = try hub.call("GET", "/admin/credentials/expiring?within=2h&count=0", token: hub.admin).object
        #expect(totalOnly["total"] == .int(2) && totalOnly["people"] == .array([]))
        let one = try hub.call("GET", "/admin/credentials/expiring?within=2h&count=1", token: hub.admin).object
        #expect(one["total"] == .int(2) && one["people"]?.arrayValue?.count == 1)
        #expect(try hub.call("GET", "/admin/credentials/expiring?count=1001", token: hub.admin).status == 400)
        clock.advance(by: 4)
        eventually("access gone when the licence lapsed") {
            ehr.snapshot()["dr.lapse@x.org"]?.roles == [] && ehr.snapshot()["dr.lapse@x.org"]?.active == false
        }
        #expect(ehr.snapshot()["dr.valid@x.org"]?.roles == ["physician"])
        let audit = try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text
        #expect(audit.contains("deadline.reached") && audit.contains("licenseExpiresAt"))
    }

    @Test func contractEnd_disablesTheContractorLikeALeaver() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        let ends = Timestamp.format(clock.now() + 2)
        let body = person("locum@agency.example", title: "Receptionist")
            .replacingOccurrences(
                of: #""credentialStatus":"active""#, with: #""credentialStatus":"active","contractEndsAt":"\#(ends)""#)
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        #expect(r.status == 201, "\(r.text)")
        eventually("provisioned") {
            ehr.snapshot()["locum@agency.example"]?.roles == ["scheduling"]
                && ehr.snapshot()["locum@agency.example"]?.active == true
        }
        clock.advance(by: 3)
        eventually("disabled at the contract end, with no HR change") {
            ehr.snapshot()["locum@agency.example"]?.active == false
                && ehr.snapshot()["locum@agency.example"]?.roles == []
        }
        let id = try #require(r.object["id"]?.stringValue)
        #expect(try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin).text.contains("contractEndsAt"))
    }

    @Test func renewedLicence_beforeTheOldDate_keepsAccess() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        let id = try physician(hub, "dr.renew@x.org", expiresIn: 2)
        eventually("provisioned") { ehr.snapshot()["dr.renew@x.org"]?.roles == ["physician"] }
        let later = Timestamp.format(clock.now() + 86400 * 365)
        let patch = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","#
                + #""path":"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:licenseExpiresAt","#
                + #""value":"\#(later)"}]}"#
        )
        #expect(patch.status == 200, "\(patch.text)")
        clock.advance(by: 3)  // past the old date
        #expect(try hub.server.credentials?.processDue() == 0)  // the schedule moved with the renewal
        #expect(hub.server.engine?.waitUntilIdle() == true)
        #expect(ehr.snapshot()["dr.renew@x.org"]?.roles == ["physician"])
    }

    @Test func lapsedOrSuspended_atCreation_getNothing() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { hub.stop(); ehr.stop() }
        _ = try physician(hub, "dr.past@x.org", expiresIn: -60)
        _ = try physician(hub, "dr.suspended@x.org", expiresIn: 3600, status: "suspended")
        _ = try hub.call("POST", "/scim/v2/Users", body: person("desk@x.org", title: "Receptionist"))
        eventually("the receptionist is provisioned") { ehr.snapshot()["desk@x.org"] != nil }
        #expect(hub.server.engine?.waitUntilIdle() == true)  // everything due has run: nothing more will come
        #expect(ehr.snapshot()["dr.past@x.org"] == nil)
        #expect(ehr.snapshot()["dr.suspended@x.org"] == nil)
        #expect(try hub.call("GET", "/admin/credentials/expiring?within=soon", token: hub.admin).status == 400)
        #expect(try hub.call("GET", "/admin/credentials/expiring?within=400d", token: hub.admin).status == 400)
    }

    @Test func hubDownAtTheLapse_takesAccessAwayAtStartUp() throws {
        let hub = try LiveHub(policy: policy) { $0.clock = clock }
        defer { ehr.stop() }
        _ = try physician(hub, "dr.down@x.org", expiresIn: 2)
        eventually("provisioned") { ehr.snapshot()["dr.down@x.org"]?.roles == ["physician"] }
        let dir = hub.directory.path
        hub.server.shutdown()
        clock.advance(by: 3)  // the licence lapses while the hub is down
        let again = try LiveHub(policy: policy) {
            $0.dataDirectory = dir; $0.clock = clock
        }
        defer { again.stop(); hub.directory.remove() }
        #expect(try again.server.store.read { try $0.credentialScheduleSize() } == 0)  // processed during start-up
        eventually("revoked after the restart") { ehr.snapshot()["dr.down@x.org"]?.roles == [] }
    }
}
