// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import EHRTestServer
import Store
import TestSupport

/// Group memberships grant access packages, so Group writes are owned like attributes:
/// only feeds configured with Group patterns create, change or delete Groups, on every path.
@Suite struct GroupOwnershipTests {
    let hub: LiveHub
    let credentialing: String
    let wards: String
    let stranger: String
    let ehr: EHRTestServer

    static let healthcare = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
        let policy = singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "billing", "groups": ["finance"], "grants": {"ehr": ["billing"]}}, "#
                + #"{"name": "front-desk", "rule": "title eq \"Receptionist\"", "#
                + #""grants": {"ehr": ["scheduling"]}}"#
        )
        hub = try LiveHub(policy: policy) { c in
            c.feeds = ["hr": ["*"], "credentialing": ["\(Self.healthcare):*"], "wards": []]
            c.feedGroups = ["hr": ["*"], "wards": ["ward-*"]]
        }
        credentialing = try hub.makeToken("credentialing", [.scimRead, .scimWrite])
        wards = try hub.makeToken("wards", [.scimRead, .scimWrite])
        stranger = try hub.makeToken("contractors", [.scimRead, .scimWrite])
    }

    func groupBody(_ name: String, members: [String]) -> String {
        #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"\#(name)","members":"#
            + #"[\#(members.map { #"{"value":"\#($0)"}"# }.joined(separator: ","))]}"#
    }

    @Test func feedWithoutGroups_cannotGrantAccessThroughAGroup_onAnyPath() throws {
        defer { hub.stop(); ehr.stop() }
        let r0 = try hub.call("POST", "/scim/v2/Users", body: person("rita@x.org", title: "Receptionist"))
        let receptionist = try #require(r0.object["id"]?.stringValue)
        eventually("provisioned") { ehr.snapshot()["rita@x.org"]?.roles == ["scheduling"] }
        let before = try hub.snapshot()
        for token in [credentialing, stranger] {
            let r = try hub.call(
                "POST", "/scim/v2/Groups", token: token, body: groupBody("finance", members: [receptionist]))
            #expect(r.status == 403, "\(r.text)")
            let bulk = try hub.call(
                "POST", "/scim/v2/Bulk", token: token,
                body:
                    #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                    + #"[{"method":"POST","path":"/Groups","bulkId":"g","#
                    + #""data":\#(groupBody("finance", members: [receptionist]))}]}"#
            )
            #expect(bulk.text.contains("\"403\""), "\(bulk.text)")
        }
        #expect(try hub.snapshot() == before)
        // HR owns every Group: its finance group exists; the others may not change or delete it.
        let created = try hub.call("POST", "/scim/v2/Groups", body: groupBody("finance", members: []))
        #expect(created.status == 201)
        let gid = try #require(created.object["id"]?.stringValue)
        let owned = try hub.snapshot()
        let addMember =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
            + #"[{"op":"add","path":"members","value":[{"value":"\#(receptionist)"}]}]}"#
        for token in [credentialing, stranger, wards] {
            #expect(try hub.call("PATCH", "/scim/v2/Groups/\(gid)", token: token, body: addMember).status == 403)
            #expect(
                try hub.call(
                    "PUT", "/scim/v2/Groups/\(gid)", token: token, body: groupBody("finance", members: [receptionist])
                ).status == 403)
            #expect(try hub.call("DELETE", "/scim/v2/Groups/\(gid)", token: token).status == 403)
            let bulk = try hub.call(
                "POST", "/scim/v2/Bulk", token: token,
                body:
                    #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                    + #"[{"method":"PATCH","path":"/Groups/\#(gid)","data":\#(addMember)},"#
                    + #"{"method":"DELETE","path":"/Groups/\#(gid)"}]}"#
            )
            #expect(!bulk.text.contains("\"200\"") && !bulk.text.contains("\"204\""), "\(bulk.text)")
        }
        #expect(try hub.snapshot() == owned)
        // The control: HR adding her does grant billing, so the refusals above were what kept it away.
        #expect(try hub.call("PATCH", "/scim/v2/Groups/\(gid)", body: addMember).status == 200)
        eventually("billing through HR's group") { ehr.snapshot()["rita@x.org"]?.roles == ["scheduling", "billing"] }
        #expect(
            try hub.call("GET", "/admin/audit?principal=credentialing", token: hub.admin).text.contains("failure 403"))
    }

    @Test func feedWithAPattern_writesOnlyMatchingGroups_andCannotRenameOutOfIt() throws {
        defer { hub.stop(); ehr.stop() }
        let r = try hub.call("POST", "/scim/v2/Groups", token: wards, body: groupBody("Ward-3", members: []))
        #expect(r.status == 201, "\(r.text)")
        let gid = try #require(r.object["id"]?.stringValue)
        let refused = try hub.call("POST", "/scim/v2/Groups", token: wards, body: groupBody("finance", members: []))
        #expect(refused.status == 403)
        #expect(
            refused.object["detail"]?.stringValue == "feed 'wards' does not own the Group 'finance'; nothing was stored"
        )
        // Renaming its own group into a name it does not own is refused too.
        let rename =
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
            + #"[{"op":"replace","path":"displayName","value":"finance"}]}"#
        #expect(try hub.call("PATCH", "/scim/v2/Groups/\(gid)", token: wards, body: rename).status == 403)
        #expect(try hub.call("DELETE", "/scim/v2/Groups/\(gid)", token: wards).status == 204)
    }
}
