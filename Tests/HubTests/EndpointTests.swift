// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import Store
import TestSupport

@Suite struct EndpointTests {
    let hub: LiveHub
    init() throws { hub = try LiveHub() }

    func patchBody(_ ops: String) -> String {
        #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}"
    }

    @Test func create_returnsLocationETagAndMeta() throws {
        defer { hub.stop() }
        let r = try hub.call(
            "POST", "/scim/v2/Users",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x.org"}"#)
        #expect(r.status == 201)
        let id = try #require(r.object["id"]?.stringValue)
        #expect(r.header("Location") == "http://127.0.0.1/scim/v2/Users/\(id)")
        #expect(r.header("ETag") == "W/\"1\"")
        let meta = try #require(r.object["meta"]?.objectValue)
        #expect(meta["resourceType"]?.stringValue == "User")
        #expect(meta["version"]?.stringValue == "W/\"1\"")
        #expect(meta["location"]?.stringValue == r.header("Location"))
        #expect(meta["created"] == meta["lastModified"])
    }

    @Test func etags_ifNoneMatch304_ifMatchAllowsCurrent_versionBumpsOnlyOnChange() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org")
        let r304 = try hub.call("GET", "/scim/v2/Users/\(id)", headers: [("If-None-Match", "W/\"1\"")])
        #expect(r304.status == 304)
        #expect(r304.body.isEmpty)
        let p = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)", body: patchBody(#"[{"op":"add","path":"title","value":"Nurse"}]"#),
            headers: [("If-Match", "W/\"1\"")])
        #expect(p.status == 200)
        #expect(p.header("ETag") == "W/\"2\"")
        let same = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)", body: patchBody(#"[{"op":"replace","path":"title","value":"Nurse"}]"#))
        #expect(same.header("ETag") == "W/\"2\"")  // no change, no new version
        #expect(try hub.call("GET", "/scim/v2/Users/\(id)", headers: [("If-None-Match", "W/\"1\"")]).status == 200)
    }

    @Test func password_isHashedNeverReturnedAndKeptAcrossPut() throws {
        defer { hub.stop() }
        let id = try hub.createUser("a@x.org", extra: #""password":"S3cret-pass""#)
        let r = try hub.call("GET", "/scim/v2/Users/\(id)?attributes=password,userName")
        #expect(r.object["password"] == nil)
        let stored = try hub.server.store.read { try $0.fetch(type: .user, id: id) }
        let hash = try #require(stored?.doc["password"]?.stringValue)
        #expect(hash.hasPrefix("$pbkdf2-sha256$"))
        #expect(!hash.contains("S3cret-pass"))
        _ = try hub.call(
            "PUT", "/scim/v2/Users/\(id)",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x.org","title":"x"}"#)
        #expect(try hub.server.store.read { try $0.fetch(type: .user, id: id) }?.doc["password"]?.stringValue == hash)
        let audit = try hub.call("GET", "/admin/audit", token: hub.admin)
        #expect(!audit.text.contains("S3cret-pass"))
    }

    @Test func groups_membershipShowsInUserGroups_andDeleteCleansUp() throws {
        defer { hub.stop() }
        let u = try hub.createUser("a@x.org")
        let g = try hub.call(
            "POST", "/scim/v2/Groups",
            body:
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Nurses","members":"#
                + #"[{"value":"\#(u)","display":"Ana"}]}"#
        )
        #expect(g.status == 201)
        let gid = try #require(g.object["id"]?.stringValue)
        let member = try #require(g.object["members"]?.arrayValue?.first?.objectValue)
        #expect(member["$ref"]?.stringValue?.hasSuffix("/Users/\(u)") == true)
        #expect(member["type"]?.stringValue == "User")
        #expect(member["display"]?.stringValue == "Ana")
        let user = try hub.call("GET", "/scim/v2/Users/\(u)")
        #expect(user.object["groups"]?.arrayValue?.first?.objectValue?["value"]?.stringValue == gid)
        #expect(user.object["groups"]?.arrayValue?.first?.objectValue?["display"]?.stringValue == "Nurses")
        let byGroup = try hub.call("GET", "/scim/v2/Users?filter=groups.value%20eq%20%22\(gid)%22")
        #expect(byGroup.object["totalResults"] == .int(1))
        let excluded = try hub.call("GET", "/scim/v2/Groups/\(gid)?excludedAttributes=members")
        #expect(excluded.object["members"] == nil)
        #expect(try hub.call("DELETE", "/scim/v2/Users/\(u)").status == 204)
        #expect(try hub.call("GET", "/scim/v2/Users/\(u)").status == 404)
        let after = try hub.call("GET", "/scim/v2/Groups/\(gid)")
        #expect(after.object["members"] == nil)
        #expect(after.header("ETag") == "W/\"2\"")
    }

    @Test func sortAndSearch_workAcrossTypes() throws {
        defer { hub.stop() }
        for n in ["carla", "Bruno", "ana"] { try hub.createUser("\(n)@x.org", extra: #""displayName":"\#(n)""#) }
        let asc = try hub.call("GET", "/scim/v2/Users?sortBy=userName&sortOrder=ascending")
        #expect(
            asc.object["Resources"]?.arrayValue?.compactMap { $0.objectValue?["userName"]?.stringValue } == [
                "ana@x.org", "Bruno@x.org", "carla@x.org",
            ])
        let desc = try hub.call(
            "POST", "/scim/v2/Users/.search",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"#
                + #""sortBy":"userName","sortOrder":"descending","count":2,"attributes":["userName"]}"#
        )
        #expect(
            desc.object["Resources"]?.arrayValue?.compactMap { $0.objectValue?["userName"]?.stringValue } == [
                "carla@x.org", "Bruno@x.org",
            ])
        #expect(desc.object["totalResults"] == .int(3))
        _ = try hub.call(
            "POST", "/scim/v2/Groups",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"ana"}"#)
        let all = try hub.call(
            "POST", "/scim/v2/.search",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"#
                + #""filter":"displayName eq \"ana\""}"#
        )
        #expect(all.status == 200)
        #expect(all.object["totalResults"] == .int(2))
        let bad = try hub.call("GET", "/scim/v2/Users?sortBy=nosuch")
        #expect(bad.status == 400)
    }

    @Test func bulk_bulkIdReferencesResolve_andFailuresStayIsolated() throws {
        defer { hub.stop() }
        let body = #"""
            {"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[
              {"method":"POST","path":"/Groups","bulkId":"g",\#
            "data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Nurses",\#
            "members":[{"value":"bulkId:u1"},{"value":"bulkId:u2"}]}},
              {"method":"POST","path":"/Users","bulkId":"u1",\#
            "data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"one@x.org"}},
              {"method":"POST","path":"/Users","bulkId":"u2",\#
            "data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"two@x.org"}},
              {"method":"POST","path":"/Users","bulkId":"dup",\#
            "data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ONE@x.org"}},
              {"method":"PATCH","path":"/Users/bulkId:u1",\#
            "data":{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add",\#
            "path":"title","value":"Nurse"}]}},
              {"method":"DELETE","path":"/Users/missing"}
            ]}
            """#
        let r = try hub.call("POST", "/scim/v2/Bulk", body: body)
        #expect(r.status == 200)
        let ops = r.object["Operations"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(ops.map { $0["status"]?.stringValue ?? "" } == ["201", "201", "201", "409", "200", "404"])
        #expect(ops[3]["response"]?.objectValue?["scimType"]?.stringValue == "uniqueness")
        let groups = try hub.call("GET", "/scim/v2/Groups?filter=displayName%20eq%20%22Nurses%22")
        #expect(groups.object["Resources"]?.arrayValue?.first?.objectValue?["members"]?.arrayValue?.count == 2)
        let one = try hub.call("GET", "/scim/v2/Users?filter=userName%20eq%20%22one@x.org%22")
        #expect(one.object["Resources"]?.arrayValue?.first?.objectValue?["title"]?.stringValue == "Nurse")
    }

    @Test func bulk_failOnErrorsStopsProcessing() throws {
        defer { hub.stop() }
        let ops = ["a", "a", "b", "c"].enumerated().map {
            #"{"method":"POST","path":"/Users","bulkId":"b\#($0.offset)","data":{"schemas":"#
                + #"["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"\#($0.element)"}}"#
        }
        let r = try hub.call(
            "POST", "/scim/v2/Bulk",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"failOnErrors":1,"Operations":"#
                + #"[\#(ops.joined(separator: ","))]}"#
        )
        #expect(r.object["Operations"]?.arrayValue?.count == 2)
        #expect(try hub.call("GET", "/scim/v2/Users").object["totalResults"] == .int(1))
    }

    @Test func discovery_advertisesWhatIsEnforced() throws {
        defer { hub.stop() }
        let spc = try hub.call("GET", "/scim/v2/ServiceProviderConfig", token: hub.reader).object
        #expect(spc["bulk"]?.objectValue?["maxOperations"] == .int(1000))
        #expect(spc["patch"]?.objectValue?["supported"] == .bool(true))
        #expect(spc["etag"]?.objectValue?["supported"] == .bool(true))
        let types = try hub.call("GET", "/scim/v2/ResourceTypes").object
        #expect(types["totalResults"] == .int(2))
        let schemas = try hub.call("GET", "/scim/v2/Schemas").object
        #expect(schemas["totalResults"] == .int(4))
        let hc = try hub.call("GET", "/scim/v2/Schemas/urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User")
            .object
        let status = hc["attributes"]?.arrayValue?.compactMap(\.objectValue).first {
            $0["name"]?.stringValue == "credentialStatus"
        }
        #expect(
            status?["canonicalValues"]
                == .array(["none", "pending", "active", "expired", "suspended"].map { .string($0) }))
        #expect(try hub.call("GET", "/scim/v2/Schemas/urn:nope").status == 404)
        #expect(try hub.call("GET", "/scim/v2/Me").status == 501)
    }

    @Test func auditEndpoint_listsWritesWithNamesNotValues() throws {
        defer { hub.stop() }
        let id = try hub.createUser("secret.person@x.org", extra: #""title":"Nurse""#)
        _ = try hub.call(
            "PATCH", "/scim/v2/Users/\(id)", body: patchBody(#"[{"op":"replace","path":"title","value":"Physician"}]"#),
            headers: [("X-Request-Id", "req-42")])
        _ = try hub.call(
            "POST", "/scim/v2/Users",
            body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"secret.person@x.org"}"#)
        let r = try hub.call("GET", "/admin/audit?resourceId=\(id)", token: hub.admin)
        #expect(r.status == 200)
        let entries = r.object["entries"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(entries.map { $0["action"]?.stringValue ?? "" } == ["create", "patch"])
        #expect(entries[1]["attributes"] == .array([.string("title")]))
        #expect(entries[1]["requestId"]?.stringValue == "req-42")
        #expect(entries[1]["principal"]?.stringValue == "hr")
        let all = try hub.call("GET", "/admin/audit?principal=hr", token: hub.admin)
        #expect(
            all.object["entries"]?.arrayValue?.last?.objectValue?["outcome"]?.stringValue == "failure 409 uniqueness")
        #expect(!all.text.contains("secret.person"))
        #expect(!all.text.contains("Physician"))
        let v = try hub.server.store.read { try AuditLog.verify($0) }
        #expect(v.intact && v.entries == 3)
        #expect(try hub.call("GET", "/admin/audit?since=yesterday", token: hub.admin).status == 400)
    }

    @Test func healthAndReadiness() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        #expect(c.request("GET", "/healthz")?.status == 200)
        #expect(try hub.call("GET", "/readyz", token: hub.reader).status == 200)
        let anon = try RawHTTPClient(port: hub.port)
        #expect(anon.request("GET", "/readyz")?.status == 401)
    }

    @Test func everyResponse_carriesSecurityHeaders() throws {
        defer { hub.stop() }
        var responses = [
            try hub.call("GET", "/scim/v2/Users"), try hub.call("GET", "/scim/v2/Users", token: "shub_bad"),
            try hub.call("GET", "/nowhere"), try hub.call("GET", "/healthz"),
        ]
        // A protocol error rendered by the HTTP layer before any handler ran.
        let c = try RawHTTPClient(port: hub.port)
        c.send("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        responses.append(try #require(c.readResponse()))
        for r in responses {
            #expect(r.header("X-Content-Type-Options") == "nosniff", "\(r.status)")
            #expect(r.header("X-Frame-Options") == "DENY")
            #expect(r.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
            #expect(r.header("Cache-Control") == "no-store")
        }
    }
}
