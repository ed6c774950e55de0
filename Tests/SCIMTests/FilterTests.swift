// SPDX-License-Identifier: Apache-2.0
import Testing
import JSONCore
@testable import SCIM

@Suite struct FilterTests {
    /// RFC 7644 §3.4.2.2 examples (those that apply to our schemas), then our own.
    @Test(arguments: [
        (#"userName Eq "juliana.silva@clinicas-exemplo.org""#, true),
        (#"userName eq "JULIANA.SILVA@CLINICAS-EXEMPLO.ORG""#, true),
        (#"name.familyName co "ilv""#, true),
        (#"userName sw "J""#, true),
        (#"userName ew ".org""#, true),
        (#"title pr"#, true),
        (#"nickName pr"#, false),
        (#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
        (#"title pr and userType eq "Employee""#, false),
        (#"title pr or userType eq "Intern""#, true),
        (#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#, false),
        (#"userType ne "Employee" and not (emails co "example.com" or emails.value co "clinicas")"#, false),
        (#"userType ne "Employee" and not (emails co "example.com" or emails.value co "nowhere.org")"#, true),
        (#"emails[type eq "work" and value co "@clinicas-exemplo.org"]"#, true),
        (#"emails[type eq "work"].value eq "juliana.silva@clinicas-exemplo.org""#, true),
        (#"emails[type eq "home"].value eq "juliana.silva@clinicas-exemplo.org""#, false),
        (#"emails.type eq "home""#, true),
        (#"externalId eq "E100000""#, true),
        (#"externalId eq "e100000""#, false),
        (#"id eq "u1""#, true),
        (#"active eq true"#, true),
        (#"active eq false"#, false),
        (#"active ne false"#, true),
        (#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "nursing""#, true),
        (#"URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:Department eq "Nursing""#, true),
        (#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#, true),
        (#"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:sites eq "CLN-BAT""#, true),
        (
            #"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:licenseExpiresAt gt "#
                + #""2028-10-19T23:59:58Z""#,
            true
        ),
        (
            #"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:licenseExpiresAt lt "#
                + #""2028-10-20T01:59:59+02:00""#,
            false
        ),
        (
            #"title eq "Registered Nurse" and "#
                + #"urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User:credentialStatus eq "active""#,
            true
        ),
        (#"title eq "x" or title eq "y" and active eq true"#, false),
        (#"title eq "Registered Nurse" or title eq "y" and active eq false"#, true),
        (#"not (active eq false)"#, true),
        (#"((((title pr))))"#, true),
        (#"displayName gt "J" and displayName lt "K""#, true),
        (#"nickName eq null"#, true),
        (#"title ne null"#, true),
    ])
    func evaluate_onNurse(text: String, expected: Bool) throws {
        let f = try SCIMFilter.parse(text, for: userType)
        #expect(f.matches(nurse) == expected, "\(text)")
    }

    @Test(arguments: [
        (#"userName eq"#, "missing value"),
        (#"userName xx "a""#, "unknown operator"),
        (#"bogus eq "a""#, "not an attribute"),
        (#"name.bogus eq "a""#, "not a sub-attribute"),
        (#"active eq "true""#, "boolean"),
        (#"active gt true"#, "only eq and ne"),
        (#"userName eq 5"#, "string"),
        (#"meta.lastModified gt "yesterday""#, "dateTime"),
        (#"meta.lastModified co "2020-01-01T00:00:00Z""#, "co, sw and ew"),
        (#"(userName eq "a""#, "missing ')'"),
        (#"userName eq "a")"#, "unexpected"),
        (#"emails[type eq "work""#, "missing ']'"),
        (#"userName[value eq "x"]"#, "not a complex attribute"),
        (#"emails[type eq "work" and x[y eq "z"]]"#, "cannot be nested"),
        (#"not userName eq "a""#, "'not' must be followed by '('"),
        (#"userName eq "a" and"#, "ends where"),
        (#"urn:nope:x eq "a""#, "unknown schema"),
        (#"emails eq "a" or"#, "ends where"),
        (#"userName eq "unterminated"#, "unterminated"),
        (#"userName gt null"#, "null"),
    ])
    func parse_invalid_throwsInvalidFilterNamingProblem(text: String, fragment: String) {
        do {
            _ = try SCIMFilter.parse(text, for: userType)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.status == 400)
            #expect(error.scimType == .invalidFilter)
            #expect(error.detail.contains(fragment), "\(error.detail)")
        }
    }

    @Test func parse_overLongOrDeep_isRefused() {
        let long = "userName eq \"" + String(repeating: "a", count: 5000) + "\""
        #expect(throws: SCIMError.invalidFilter("filter is longer than 4096 characters")) {
            try SCIMFilter.parse(long, for: userType)
        }
        let deep = String(repeating: "(", count: 40) + "title pr" + String(repeating: ")", count: 40)
        do { _ = try SCIMFilter.parse(deep, for: userType); Issue.record("accepted deep filter") } catch {
            #expect(error.scimType == .invalidFilter)
            #expect(error.detail.contains("deeper"))
        }
    }

    @Test func groupDisplayName_caseInsensitive() throws {
        let g = json(#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Nurses CLN-BOT"}"#)
        #expect(try SCIMFilter.parse(#"displayName eq "nurses cln-bot""#, for: groupType).matches(g))
        #expect(throws: SCIMError.self) { try SCIMFilter.parse(#"userName eq "x""#, for: groupType) }
    }
}
