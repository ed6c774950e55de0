// SPDX-License-Identifier: Apache-2.0
import Testing
import JSONCore
@testable import SCIM

@Suite struct PatchTests {
    var stored: JSONObject {
        var d = nurse
        d["id"] = nil
        return d
    }

    func patch(_ ops: String, on doc: JSONObject? = nil, type: SCIMResourceType = userType) throws(SCIMError)
        -> JSONObject
    {
        let body = json(#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}")
        return try PatchRequest(body).apply(to: doc ?? stored, type: type)
    }

    func assertError(
        _ ops: String, _ status: Int, _ type: SCIMType?, _ fragment: String, on doc: JSONObject? = nil,
        as t: SCIMResourceType = userType
    ) {
        do {
            _ = try patch(ops, on: doc, type: t)
            Issue.record("accepted \(ops)")
        } catch {
            #expect(error.status == status)
            #expect(error.scimType == type)
            #expect(error.detail.contains(fragment), "\(error.detail)")
        }
    }

    static let hc = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
    static let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

    @Test func replaceActiveWithStringBoolean_interop1() throws {
        #expect(try patch(#"[{"op":"Replace","path":"active","value":"False"}]"#)["active"] == .bool(false))
        #expect(try patch(#"[{"op":"replace","path":"active","value":"TRUE"}]"#)["active"] == .bool(true))
    }

    @Test func capitalisedOps_andAddOnSingleValuedReplaces_interop2() throws {
        let r = try patch(#"[{"op":"Add","path":"title","value":"Physician"},{"op":"REMOVE","path":"nickName"}]"#)
        #expect(r["title"]?.stringValue == "Physician")
    }

    @Test func noPathObjectValue_dottedKeysAndURNsAndReadOnlyIgnored_interop3() throws {
        let r = try patch(
            #"[{"op":"replace","value":{"active":false,"name.givenName":"Ju","id":"evil","meta":{"x":1},"#
                + #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"ICU","#
                + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":"#
                + #"{"credentialStatus":"suspended"}}}]"#
        )
        #expect(r["active"] == .bool(false))
        #expect(r["name"]?.objectValue?["givenName"]?.stringValue == "Ju")
        #expect(r["name"]?.objectValue?["familyName"]?.stringValue == "Silva")
        #expect(r[Self.ent]?.objectValue?["department"]?.stringValue == "ICU")
        #expect(r[Self.ent]?.objectValue?["employeeNumber"]?.stringValue == "E100000")
        #expect(r[Self.hc]?.objectValue?["credentialStatus"]?.stringValue == "suspended")
        #expect(r["id"] == nil)
    }

    @Test func groupMemberRemovalByValueArray_removesOnlyThose_interop4() throws {
        let g = json(
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"G","#
                + #""members":[{"value":"a"},{"value":"b"},{"value":"c"}]}"#
        )
        let r = try patch(#"[{"op":"Remove","path":"members","value":[{"value":"b"}]}]"#, on: g, type: groupType)
        #expect(r["members"]?.arrayValue?.compactMap { $0.objectValue?["value"]?.stringValue } == ["a", "c"])
        let r2 = try patch(#"[{"op":"remove","path":"members[value eq \"a\"]"}]"#, on: g, type: groupType)
        #expect(r2["members"]?.arrayValue?.compactMap { $0.objectValue?["value"]?.stringValue } == ["b", "c"])
    }

    @Test func valuePathUpsert_addsMissingEntry_interop5() throws {
        var d = stored
        d["emails"] = nil
        let r = try patch(#"[{"op":"replace","path":"emails[type eq \"work\"].value","value":"new@x.org"}]"#, on: d)
        #expect(r["emails"] == .array([.object(JSONObject(["value": .string("new@x.org"), "type": .string("work")]))]))
        let r2 = try patch(#"[{"op":"replace","path":"emails[type eq \"work\"].value","value":"w@x.org"}]"#)
        #expect(r2["emails"]?.arrayValue?.first?.objectValue?["value"]?.stringValue == "w@x.org")
        #expect(r2["emails"]?.arrayValue?.count == 2)
    }

    @Test func managerBareString_interop6() throws {
        let r = try patch(
            #"[{"op":"replace","#
                + #""path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"m-2"}]"#
        )
        #expect(r[Self.ent]?.objectValue?["manager"]?.objectValue?["value"]?.stringValue == "m-2")
    }

    @Test func addToMultiValued_appendsAndMovesPrimary() throws {
        let r = try patch(
            #"[{"op":"add","path":"emails","value":[{"value":"p@x.org","type":"other","primary":true}]}]"#)
        let emails = r["emails"]?.arrayValue ?? []
        #expect(emails.count == 3)
        #expect(emails.filter { $0.objectValue?["primary"] == .bool(true) }.count == 1)
        #expect(emails.last?.objectValue?["primary"] == .bool(true))
    }

    @Test func replaceMultiValued_withoutFilter_replacesAll() throws {
        let r = try patch(
            #"[{"op":"replace","#
                + #""path":"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:sites","value":["DXC-NOR"]}]"#
        )
        #expect(r[Self.hc]?.objectValue?["sites"] == .array([.string("DXC-NOR")]))
    }

    @Test func removeSubAttribute_andWholeExtension() throws {
        let r = try patch(
            #"[{"op":"remove","path":"name.givenName"},{"op":"remove","#
                + #""path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]"#
        )
        #expect(r["name"]?.objectValue?["givenName"] == nil)
        #expect(r[Self.ent] == nil)
        #expect(r["schemas"]?.arrayValue?.contains(.string(Self.ent)) == false)
    }

    @Test func badPatches_areRefusedWithTheRightError() {
        assertError(#"[{"op":"move","path":"title","value":"x"}]"#, 400, .invalidSyntax, "unknown 'op'")
        assertError(#"[{"op":"remove"}]"#, 400, .noTarget, "remove needs a 'path'")
        assertError(#"[{"op":"add","path":"title"}]"#, 400, .invalidValue, "needs a 'value'")
        assertError(#"[{"op":"replace","path":"bogus","value":"x"}]"#, 400, .invalidPath, "not an attribute")
        assertError(#"[{"op":"replace","path":"emails[type eq ","value":"x"}]"#, 400, .invalidPath, "unclosed '['")
        assertError(
            #"[{"op":"replace","path":"emails[type xx \"a\"]","value":"x"}]"#, 400, .invalidPath, "invalid value filter"
        )
        assertError(#"[{"op":"remove","path":"emails[type eq \"fax\"]"}]"#, 400, .noTarget, "matched no value")
        assertError(
            #"[{"op":"replace","path":"emails[type eq \"fax\"]","value":{"value":"x"}}]"#, 400, .noTarget,
            "matched no value")
        assertError(#"[{"op":"replace","path":"id","value":"x"}]"#, 400, .mutability, "read-only")
        assertError(#"[{"op":"replace","path":"groups","value":[{"value":"g"}]}]"#, 400, .mutability, "read-only")
        assertError(#"[{"op":"remove","path":"userName"}]"#, 400, .invalidValue, "'userName' is required")
        assertError(#"[{"op":"replace","path":"active","value":"maybe"}]"#, 400, .invalidValue, "must be a boolean")
        assertError(#"[{"op":"replace","value":{"nosuch":1}}]"#, 400, .invalidValue, "'nosuch' is not an attribute")
        assertError(#"[]"#, 400, .invalidSyntax, "non-empty")
        let g = json(
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"G","members":"#
                + #"[{"value":"a","type":"User"}]}"#
        )
        assertError(
            #"[{"op":"replace","path":"members[value eq \"a\"].value","value":"b"}]"#, 400, .mutability, "immutable",
            on: g, as: groupType)
    }

    @Test func patchOpSchemaMissing_isInvalidSyntax() {
        do {
            _ = try PatchRequest(json(#"{"Operations":[{"op":"add","path":"title","value":"x"}]}"#));
            Issue.record("accepted")
        } catch {
            #expect(error.scimType == .invalidSyntax)
        }
    }

    @Test func changedAttributes_namesOnly() throws {
        let r = try patch(
            #"[{"op":"replace","path":"title","value":"Physician"},"#
                + #"{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","#
                + #""value":"ICU"}]"#
        )
        let names = ResourceNormalizer(type: userType).changedAttributes(from: stored, to: r)
        #expect(names == ["title", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"])
    }
}
