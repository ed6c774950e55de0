// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import Store
import TestSupport

/// Several authoritative feeds: HR owns the identity and the job, credentialing owns the
/// licence; each is refused (403, naming the attribute, nothing stored) on the other's.
@Suite struct FeedOwnershipTests {
    static let healthcare = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
    let hub: LiveHub
    let credentialing: String

    init() throws {
        hub = try LiveHub(policy: #"{"targets": [{"name": "t", "type": "ldap", "enabled": false}], "packages": []}"#) {
            c in
            c.feeds = [
                "hr": [
                    "userName", "name", "displayName", "title", "active", "emails", "externalId",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:*",
                ],
                "credentialing": ["\(Self.healthcare):*"],
            ]
        }
        credentialing = try hub.makeToken("credentialing", [.scimRead, .scimWrite])
    }

    func patch(_ id: String, _ token: String, path: String, value: String) throws -> RawResponse {
        try hub.call(
            "PATCH", "/scim/v2/Users/\(id)", token: token,
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"\#(path)","value":\#(value)}]}"#
        )
    }

    func stored(_ id: String) throws -> JSONObject { try hub.call("GET", "/scim/v2/Users/\(id)").object }

    @Test func eachFeedWritesOnlyWhatItOwns_andPUTKeepsTheOthers() throws {
        defer { hub.stop() }
        let r = try hub.call(
            "POST", "/scim/v2/Users",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                + #""userName":"lia@x.org","title":"Physician","active":true}"#
        )
        #expect(r.status == 201, "\(r.text)")
        let id = try #require(r.object["id"]?.stringValue)
        // The credentialing feed enriches the person HR created.
        #expect(
            try patch(id, credentialing, path: "\(Self.healthcare):credentialStatus", value: #""active""#).status == 200
        )
        // Each is refused on the other's attributes, naming it; nothing changes.
        let refused = try patch(id, credentialing, path: "title", value: #""Radiologist""#)
        #expect(refused.status == 403)
        #expect(refused.object["detail"]?.stringValue?.contains("does not own attribute 'title'") == true)
        #expect(try patch(id, credentialing, path: "active", value: "false").status == 403)
        #expect(
            try patch(id, hub.writer, path: "\(Self.healthcare):credentialStatus", value: #""suspended""#).status == 403
        )
        let now = try stored(id)
        #expect(now["title"]?.stringValue == "Physician" && now["active"]?.boolValue == true)
        #expect(now[Self.healthcare]?.objectValue?["credentialStatus"]?.stringValue == "active")
        // HR's full PUT without the licence data keeps it (it is not HR's to erase).
        let put = try hub.call(
            "PUT", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                + #""userName":"lia@x.org","title":"Senior Physician","active":true}"#
        )
        #expect(put.status == 200, "\(put.text)")
        #expect(try stored(id)[Self.healthcare]?.objectValue?["credentialStatus"]?.stringValue == "active")
        #expect(try stored(id)["title"]?.stringValue == "Senior Physician")
        // The access view says which feed set what.
        let sources = try hub.call("GET", "/admin/people/\(id)/access", token: hub.admin).object["attributeSources"]?
            .objectValue
        #expect(sources?["title"]?.objectValue?["feed"]?.stringValue == "hr")
        #expect(sources?["\(Self.healthcare):credentialStatus"]?.objectValue?["feed"]?.stringValue == "credentialing")
        // Deleting the person is the identity owner's call.
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(id)", token: credentialing).status == 403)
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(id)").status == 204)
    }

    @Test func createWithForeignAttributes_orByAnUnknownFeed_storesNothing() throws {
        defer { hub.stop() }
        let body =
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","\#(Self.healthcare)"],"#
            + #""userName":"max@x.org","\#(Self.healthcare)":{"credentialStatus":"active"}}"#
        let r = try hub.call("POST", "/scim/v2/Users", body: body)
        #expect(r.status == 403, "\(r.text)")
        #expect(r.object["detail"]?.stringValue?.contains("credentialStatus") == true)
        let contractors = try hub.makeToken("contractors", [.scimWrite, .scimRead])
        let c = try hub.call(
            "POST", "/scim/v2/Users", token: contractors,
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"tmp@x.org"}"#)
        #expect(c.status == 403)
        #expect(c.object["detail"]?.stringValue?.contains("not a configured feed") == true)
        #expect(try hub.call("GET", "/scim/v2/Users?count=0").object["totalResults"] == .int(0))
        // the refusal is audited
        #expect(try hub.call("GET", "/admin/audit?principal=contractors", token: hub.admin).text.contains("create"))
    }
}
