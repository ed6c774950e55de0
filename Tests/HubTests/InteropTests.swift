// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import TestSupport

/// Each point of ../shared/docs/interop.md, against a live hub.
@Suite struct InteropTests {
    let hub: LiveHub
    init() throws { hub = try LiveHub() }

    func patch(_ id: String, _ ops: String, type: String = "Users") throws -> RawResponse {
        try hub.call(
            "PATCH", "/scim/v2/\(type)/\(id)",
            body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}")
    }

    @Test func point1_stringBooleansInPatch() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org", extra: #""active":true"#)
        let r = try patch(id, #"[{"op":"Replace","path":"active","value":"False"}]"#)
        #expect(r.status == 200)
        #expect(r.object["active"] == .bool(false))
    }

    @Test func point2_capitalisedOpsAndAddOnSingleValued() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org", extra: #""title":"Nurse""#)
        let r = try patch(id, #"[{"op":"Add","path":"title","value":"Physician"},{"op":"Remove","path":"nickName"}]"#)
        #expect(r.status == 200)
        #expect(r.object["title"]?.stringValue == "Physician")
    }

    @Test func point3_noPathObjectValue_OktaDeactivation() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org", extra: #""active":true,"name":{"familyName":"Silva"}"#)
        let r = try patch(
            id,
            #"[{"op":"replace","value":{"active":false,"name.givenName":"Ana","id":"x","meta":{},"#
                + #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"ICU"}}]"#
        )
        #expect(r.status == 200)
        #expect(r.object["active"] == .bool(false))
        #expect(r.object["name"]?.objectValue?["givenName"]?.stringValue == "Ana")
        #expect(r.object["id"]?.stringValue == id)
        #expect(
            r.object["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["department"]?
                .stringValue == "ICU")
    }

    @Test func point4_memberRemovalByValueArray_removesOnlyThose() throws {
        defer { hub.stop() }
        let ids = try (0..<3).map { try hub.createUser("u\($0)@x.org") }
        let g = try hub.call(
            "POST", "/scim/v2/Groups",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Nurses","members":"#
                + #"[{"value":"\#(ids[0])"},{"value":"\#(ids[1])"},{"value":"\#(ids[2])"}]}"#
        )
        #expect(g.status == 201)
        let gid = try #require(g.object["id"]?.stringValue)
        var r = try patch(gid, #"[{"op":"Remove","path":"members","value":[{"value":"\#(ids[1])"}]}]"#, type: "Groups")
        #expect(r.status == 200)
        #expect(
            Set(r.object["members"]?.arrayValue?.compactMap { $0.objectValue?["value"]?.stringValue } ?? []) == [
                ids[0], ids[2],
            ])
        r = try patch(gid, #"[{"op":"remove","path":"members[value eq \"\#(ids[0])\"]"}]"#, type: "Groups")
        #expect(r.object["members"]?.arrayValue?.compactMap { $0.objectValue?["value"]?.stringValue } == [ids[2]])
    }

    @Test func point5_valuePathReplaceWithoutMatch_adds() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org")
        let r = try patch(id, #"[{"op":"replace","path":"emails[type eq \"work\"].value","value":"a@work.org"}]"#)
        #expect(r.status == 200)
        #expect(
            r.object["emails"]
                == .array([.object(JSONObject(["value": .string("a@work.org"), "type": .string("work")]))]))
    }

    @Test func point6_managerAsBareString() throws {
        defer { hub.stop() }
        let m = try hub.createUser("boss@x.org")
        let id = try hub.createUser(
            "a@x.org", extra: #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"\#(m)"}"#)
        let got = try hub.call("GET", "/scim/v2/Users/\(id)")
        #expect(
            got.object["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["manager"]?
                .objectValue?["value"]?.stringValue == m)
        let r = try patch(
            id,
            #"[{"op":"replace","value":"#
                + #"{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"\#(id)"}}]"#
        )
        #expect(
            r.object["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["manager"]?
                .objectValue?["value"]?.stringValue == id)
    }

    @Test func point7_caseInsensitiveNamesURNsAndUserNameUniqueness() throws {
        defer { hub.stop() }
        let r = try hub.call(
            "POST", "/scim/v2/Users",
            body:
                #"{"SCHEMAS":["URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"],"USERNAME":"Ana@X.org","NAME":"#
                + #"{"GIVENNAME":"Ana"}}"#
        )
        #expect(r.status == 201)
        #expect(r.object["userName"]?.stringValue == "Ana@X.org")
        #expect(r.object["name"]?.objectValue?["givenName"]?.stringValue == "Ana")
        let dup = try hub.call(
            "POST", "/scim/v2/Users",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ana@x.ORG"}"#)
        #expect(dup.status == 409)
        #expect(dup.object["scimType"]?.stringValue == "uniqueness")
        let f = try hub.call("GET", "/scim/v2/Users?filter=USERNAME%20EQ%20%22ANA@x.org%22")
        #expect(f.object["totalResults"] == .int(1))
    }

    @Test func point8_filtersClientsSend_andNoMatchIsEmptyList() throws {
        defer { hub.stop() }
        _ = try hub.createUser("a@x.org", extra: #""externalId":"E1","emails":[{"value":"A@Work.org","type":"work"}]"#)
        _ = try hub.call(
            "POST", "/scim/v2/Groups",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Radiology"}"#)
        for (path, total) in [
            ("/scim/v2/Users?filter=userName+eq+%22a@x.org%22&startIndex=1&count=100", 1),
            ("/scim/v2/Users?filter=externalId%20eq%20%22E1%22", 1),
            ("/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%5D.value%20eq%20%22a@work.org%22", 1),
            ("/scim/v2/Groups?filter=displayName%20eq%20%22radiology%22&excludedAttributes=members", 1),
            ("/scim/v2/Users?filter=userName%20eq%20%22nobody@x.org%22", 0),
        ] {
            let r = try hub.call("GET", path)
            #expect(r.status == 200, "\(path)")
            #expect(r.object["totalResults"] == .int(total), "\(path)")
            #expect(r.object["Resources"]?.arrayValue?.count == total)
        }
    }

    @Test func point9_paginationIsOneBasedStableAndIntegral() throws {
        defer { hub.stop() }
        for i in 0..<7 { try hub.createUser("user\(i)@x.org") }
        var seen: [String] = []
        for start in [1, 4, 7] {
            let r = try hub.call("GET", "/scim/v2/Users?startIndex=\(start)&count=3")
            #expect(r.object["totalResults"] == .int(7))
            #expect(r.object["startIndex"] == .int(start))
            let page = r.object["Resources"]?.arrayValue ?? []
            #expect(r.object["itemsPerPage"] == .int(page.count))
            seen += page.compactMap { $0.objectValue?["userName"]?.stringValue }
        }
        #expect(seen == (0..<7).map { "user\($0)@x.org" })
        let out = try hub.call("GET", "/scim/v2/Users?startIndex=-5&count=-1")
        #expect(out.object["startIndex"] == .int(1))
        #expect(out.object["itemsPerPage"] == .int(0))
        #expect(out.object["totalResults"] == .int(7))
        let beyond = try hub.call("GET", "/scim/v2/Users?startIndex=100")
        #expect(beyond.object["itemsPerPage"] == .int(0))
    }

    @Test func point10_softDeleteReactivationPutAndErrorMediaType() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org", extra: #""active":true,"title":"Nurse""#)
        _ = try patch(id, #"[{"op":"replace","path":"active","value":false}]"#)
        let list = try hub.call("GET", "/scim/v2/Users?filter=active%20eq%20false")
        #expect(list.object["totalResults"] == .int(1))
        #expect(try hub.call("GET", "/scim/v2/Users/\(id)").object["active"] == .bool(false))
        let put = try hub.call(
            "PUT", "/scim/v2/Users/\(id)",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x.org","active":true}"#)
        #expect(put.status == 200)
        #expect(put.object["active"] == .bool(true))
        #expect(put.object["title"] == nil)  // PUT is a full replace
        let err = try hub.call("GET", "/scim/v2/Users/nope")
        #expect(err.status == 404)
        #expect(err.header("Content-Type") == "application/scim+json")
        #expect(err.object["schemas"] == .array([.string("urn:ietf:params:scim:api:messages:2.0:Error")]))
        #expect(err.object["status"] == .string("404"))
    }

    @Test func point11_mediaTypesAccepted_answerIsSCIM() throws {
        defer { hub.stop() }
        for ct in [
            "application/scim+json", "application/json", "application/json; charset=utf-8",
            "Application/SCIM+JSON;charset=UTF-8",
        ] {
            let r = try hub.call(
                "POST", "/scim/v2/Users",
                body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"\#(UUID().uuidString)"}"#,
                contentType: ct)
            #expect(r.status == 201, "\(ct)")
            #expect(r.header("Content-Type") == "application/scim+json")
        }
    }

    @Test func point12_patchAnswers200WithResource_orLessWhenAsked() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org")
        let r = try patch(id, #"[{"op":"add","path":"title","value":"Nurse"}]"#)
        #expect(r.status == 200)
        #expect(r.object["userName"]?.stringValue == "a@x.org")
        let narrow = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)?attributes=title",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"add","path":"nickName","value":"Ju"}]}"#
        )
        #expect(narrow.status == 200)
        #expect(Set(narrow.object.keys) == ["schemas", "id", "title"])
    }
}
