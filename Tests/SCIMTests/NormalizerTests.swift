// SPDX-License-Identifier: Apache-2.0
import Testing
import JSONCore
@testable import SCIM

@Suite struct NormalizerTests {
    let n = ResourceNormalizer(type: userType)
    let core = #""schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]"#

    func normalize(_ body: String) throws(SCIMError) -> JSONObject { try n.normalize(json("{" + body + "}")) }

    func assertError(_ body: String, _ type: SCIMType?, _ fragment: String) {
        do {
            let r = try normalize(body)
            Issue.record("accepted: \(r)")
        } catch {
            #expect(error.status == 400)
            #expect(error.scimType == type)
            #expect(error.detail.contains(fragment), "\(error.detail)")
        }
    }

    @Test func roster_userNormalizesToCanonicalForm() throws {
        let r = try normalize(
            core
                + #","USERNAME":"a@b.org","Name":{"GivenName":"Ana"},"ACTIVE":"False","emails":"#
                + #"[{"value":"a@b.org","type":"WORK"}],"#
                + #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:user":{"Department":"Nursing"}"#
        )
        #expect(r["userName"]?.stringValue == "a@b.org")
        #expect(r["name"]?.objectValue?["givenName"]?.stringValue == "Ana")
        #expect(r["active"] == .bool(false))
        #expect(r["emails"]?.arrayValue?.first?.objectValue?["type"]?.stringValue == "work")
        #expect(
            r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["department"]?.stringValue
                == "Nursing")
        #expect(r["schemas"]?.arrayValue?.count == 2)
    }

    @Test func readOnlyAttributes_areIgnored() throws {
        let r = try normalize(core + #","userName":"a","id":"x","meta":{"version":"1"},"groups":[{"value":"g"}]"#)
        #expect(r["id"] == nil && r["meta"] == nil && r["groups"] == nil)
    }

    @Test func managerAsBareString_becomesValueObject() throws {
        let r = try normalize(
            core + #","userName":"a","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m-1"}"#)
        #expect(
            r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["manager"]
                == .object(JSONObject(["value": .string("m-1")])))
    }

    @Test func fullyQualifiedAttributeName_isAccepted() throws {
        let r = try normalize(
            core
                + #","urn:ietf:params:scim:schemas:core:2.0:User:userName":"a","#
                + #""urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"X""#
        )
        #expect(r["userName"]?.stringValue == "a")
        #expect(
            r["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["department"]?.stringValue
                == "X")
    }

    @Test func badInputs_areRefusedNamingTheAttribute() {
        assertError(#""userName":"a""#, .invalidValue, "'schemas' must include")
        assertError(core, .invalidValue, "'userName' is required")
        assertError(core + #","userName":"a","usrName":"typo""#, .invalidValue, "'usrName' is not an attribute")
        assertError(core + #","userName":5"#, .invalidValue, "'userName' must be a string")
        assertError(core + #","userName":"a","active":"yes""#, .invalidValue, "'active' must be a boolean")
        assertError(
            core + #","userName":"a","emails":[{"value":"x","type":"pager"}]"#, .invalidValue,
            "'emails.type' must be one of")
        assertError(
            core + #","userName":"a","emails":[{"value":"x","primary":true},{"value":"y","primary":true}]"#,
            .invalidValue, "more than one primary")
        assertError(core + #","userName":"a","name":"Ana""#, .invalidValue, "'name' must be an object")
        assertError(
            core + #","userName":"a","name":{"first":"Ana"}"#, .invalidValue, "'first' is not a sub-attribute of name")
        assertError(core + #","userName":"a","userName":"b""#, .invalidSyntax, "appears more than once")
        assertError(core + #","userName":"a","displayName":["x"]"#, .invalidValue, "single-valued")
        assertError(
            core
                + #","userName":"a","urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":"#
                + #"{"licenseExpiresAt":"next year"}"#,
            .invalidValue, "xsd:dateTime")
        assertError(
            core
                + #","userName":"a","urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":"#
                + #"{"credentialStatus":"revoked"}"#,
            .invalidValue, "none, pending, active, expired, suspended")
        assertError(#""schemas":["urn:example:unknown"],"userName":"a""#, .invalidValue, "not supported")
        assertError(core + #","userName":"a","x509Certificates":[{"value":"not base64!"}]"#, .invalidValue, "base64")
    }

    @Test func canonicalValues_matchCaseInsensitively() throws {
        let r = try normalize(
            core
                + #","userName":"a","urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":"#
                + #"{"credentialStatus":"ACTIVE","sites":"CLN-CEN"}"#
        )
        let hc = r["urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"]?.objectValue
        #expect(hc?["credentialStatus"]?.stringValue == "active")
        #expect(hc?["sites"] == .array([.string("CLN-CEN")]))
    }

    @Test func nullAndEmpty_meanUnassigned() throws {
        let r = try normalize(core + #","userName":"a","displayName":null,"emails":[],"name":{}"#)
        #expect(r["displayName"] == nil && r["emails"] == nil && r["name"] == nil)
    }
}
