// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import TestSupport

/// Look-alike user names are one identity at the hub (409 uniqueness, nothing stored), so
/// no target can fold two people into one account; unsafe identifiers and over-long
/// values are refused with 400 naming the attribute.
@Suite struct IdentityTests {
    let hub: LiveHub
    init() throws {
        hub = try LiveHub { c in c.attributeLimits.overrides = ["title": 40] }
    }

    func post(_ userName: String, extra: String = "") throws -> RawResponse {
        let name = JSONValue.string(userName).jsonString
        return try hub.call(
            "POST", "/scim/v2/Users",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":\#(name)\#(extra)}"#)
    }

    @Test(arguments: [
        ("ana.silva@x.org", "\u{FF41}na.silva@x.org"),
        ("fiona@x.org", "\u{FB01}ona@x.org"),
        ("jos\u{E9}@x.org", "jose\u{301}@x.org"),
        ("ana.silva@x.org", "ANA.SILVA@X.ORG"),
    ])
    func lookAlikeUserName_isAUniquenessConflict(first: String, second: String) throws {
        defer { hub.stop() }
        #expect(try post(first).status == 201)
        let before = try hub.snapshot()
        let r = try post(second)
        #expect(r.status == 409, "\(r.text)")
        #expect(r.object["scimType"]?.stringValue == "uniqueness")
        #expect(try hub.snapshot() == before)
        // A rename onto the look-alike is refused the same way.
        let other = try hub.createUser("someone.else@x.org")
        let patch = try hub.call(
            "PATCH", "/scim/v2/Users/\(other)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"userName","value":\#(JSONValue.string(second).jsonString)}]}"#
        )
        #expect(patch.status == 409, "\(patch.text)")
        // And the filter a client checks existence with finds the stored person.
        let q = try hub.call(
            "GET",
            "/scim/v2/Users?filter=" + "userName eq \(JSONValue.string(second).jsonString)".addingPercentEncoding(
                withAllowedCharacters: .alphanumerics)!)
        #expect(q.object["totalResults"] == .int(1), "\(q.text)")
    }

    @Test(arguments: [
        ("ana.silva@x.org ", "'userName' has leading or trailing white space"),
        ("ana\u{200B}.silva@x.org", "'userName' contains an invisible character (U+200B)"),
        ("ana\u{0007}@x.org", "'userName' contains a control character (U+0007)"),
    ])
    func unsafeUserName_isRefusedNamingTheAttribute(userName: String, detail: String) throws {
        defer { hub.stop() }
        let r = try post(userName)
        #expect(r.status == 400)
        #expect(r.object["detail"]?.stringValue == detail, "\(r.text)")
        #expect(try hub.snapshot().isEmpty)
    }

    @Test func overlongValues_areRefusedNamingTheAttribute_everywhere() throws {
        defer { hub.stop() }
        let longName = String(repeating: "a", count: 1_000_000)
        var r = try post(longName)
        #expect(r.status == 400)
        #expect(r.object["detail"]?.stringValue == "'userName' is longer than 256 characters")
        r = try post("ok@x.org", extra: #","displayName":"\#(String(repeating: "d", count: 1025))""#)
        #expect(r.object["detail"]?.stringValue == "'displayName' is longer than 1024 characters", "\(r.text)")
        // Multi-byte characters count as characters, not bytes: 256 of them are fine.
        #expect(try post(String(repeating: "\u{E9}", count: 250) + "@x.org").status == 201)
        // A configured limit applies (title: 40), also through PATCH and to extensions.
        r = try post("t@x.org", extra: #","title":"\#(String(repeating: "t", count: 41))""#)
        #expect(r.object["detail"]?.stringValue == "'title' is longer than 40 characters", "\(r.text)")
        let id = try hub.createUser("p@x.org")
        let before = try hub.snapshot()
        r = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"add","path":"emails","value":"#
                + #"[{"value":"\#(String(repeating: "e", count: 300))@x.org"}]}]}"#
        )
        #expect(r.status == 400)
        #expect(
            r.object["detail"]?.stringValue?.hasSuffix("'emails.value' is longer than 256 characters") == true,
            "\(r.text)")
        r = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","#
                + #""value":"\#(String(repeating: "x", count: 2000))"}]}"#
        )
        #expect(r.status == 400)
        #expect(
            r.object["detail"]?.stringValue?.contains("department' is longer than 1024 characters") == true, "\(r.text)"
        )
        // A limit set in the schema file (healthcare sites: 64).
        let hc = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
        r = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"add","path":"\#(hc):sites","value":["\#(String(repeating: "S", count: 65))"]}]}"#
        )
        #expect(r.status == 400)
        #expect(
            r.object["detail"]?.stringValue?.hasSuffix("\(hc):sites' is longer than 64 characters") == true, "\(r.text)"
        )
        #expect(try hub.snapshot() == before)
    }

    @Test func limitsForUnknownAttributes_areRefusedAtStart() throws {
        defer { hub.stop() }
        #expect(throws: (any Error).self) { try LiveHub { $0.attributeLimits.overrides = ["titel": 10] } }
    }

    @Test func valuesStoredBeforeTheRules_doNotBlockALeaverPatch() throws {
        defer { hub.stop() }
        // A person stored by an earlier version: trailing space, an over-long title.
        let legacy = JSONObject([
            "schemas": .array([.string("urn:ietf:params:scim:schemas:core:2.0:User")]),
            "userName": .string("jdoe@x.org "),
            "title": .string(String(repeating: "t", count: 2000)), "active": .bool(true),
        ])
        try hub.server.store.write { w in
            _ = try w.connection.insert(type: .user, id: "legacy-1", doc: legacy, members: [], now: 1)
        }
        let leave = try hub.call(
            "PATCH", "/scim/v2/Users/legacy-1",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"active","value":false}]}"#
        )
        #expect(leave.status == 200, "\(leave.text)")
        #expect(leave.object["active"]?.boolValue == false)
        // A full PUT that repeats them (HR systems send everything) goes through too.
        let put = try hub.call(
            "PUT", "/scim/v2/Users/legacy-1",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                + #""userName":"jdoe@x.org ","title":"\#(String(repeating: "t", count: 2000))","active":false}"#
        )
        #expect(put.status == 200, "\(put.text)")
        // A change to one of those values is checked as any new value is.
        let retitle = try hub.call(
            "PATCH", "/scim/v2/Users/legacy-1",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"title","value":"\#(String(repeating: "u", count: 2000))"}]}"#
        )
        #expect(retitle.status == 400)
    }
}
