// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import TestSupport

/// Every bad input named in the issue: the right status and scimType, a SCIM error body,
/// and stored data unchanged. None may produce a 500, a crash, a hang or a partial write.
@Suite struct BadInputTests {
    let hub: LiveHub
    let userID: String
    let before: String

    init() throws {
        hub = try LiveHub { c in
            c.http.maxBodyBytes = 64 * 1024
            c.bulkMaxPayloadBytes = 64 * 1024
            c.bulkMaxOperations = 5
            c.http.headerReadTimeout = 1
        }
        userID = try hub.createUser("ana@x.org", extra: #""title":"Nurse","active":true"#)
        before = try hub.snapshot()
    }

    /// Sends, then checks the error and that nothing changed.
    func assertRefused(
        _ method: String, _ path: String, body: String? = nil, rawBody: [UInt8]? = nil, token: String? = nil,
        headers: [(String, String)] = [], contentType: String? = "application/scim+json",
        status: Int, scimType: String? = nil, detail: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let r: RawResponse
        if let raw = rawBody {
            let c = try RawHTTPClient(port: hub.port)
            var h = headers + [("Authorization", "Bearer \(token ?? hub.writer)")]
            if let ct = contentType { h.append(("Content-Type", ct)) }
            r = try #require(c.request(method, path, headers: h, body: raw), sourceLocation: sourceLocation)
        } else {
            r = try hub.call(method, path, token: token, body: body, headers: headers, contentType: contentType)
        }
        #expect(r.status == status, "\(r.text)", sourceLocation: sourceLocation)
        #expect(r.header("Content-Type") == "application/scim+json", sourceLocation: sourceLocation)
        #expect(r.object["status"]?.stringValue == String(status), sourceLocation: sourceLocation)
        #expect(r.object["scimType"]?.stringValue == scimType, sourceLocation: sourceLocation)
        if let d = detail {
            #expect(r.object["detail"]?.stringValue?.contains(d) == true, "\(r.text)", sourceLocation: sourceLocation)
        }
        #expect(try hub.snapshot() == before, "stored data changed", sourceLocation: sourceLocation)
    }

    var users: String { "/scim/v2/Users" }
    var me: String { "/scim/v2/Users/\(userID)" }
    let core = #""schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]"#
    func patchBody(_ ops: String) -> String {
        #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"# + ops + "}"
    }

    @Test func malformedJSON() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: #"{"schemas":["#, status: 400, scimType: "invalidSyntax", detail: "not valid JSON")
        try assertRefused(
            "POST", users, body: "[]", status: 400, scimType: "invalidSyntax", detail: "must be a JSON object")
        try assertRefused("POST", users, body: "", status: 400, scimType: "invalidSyntax")
    }

    @Test func invalidUTF8() throws {
        defer { hub.stop() }
        let raw = Array("{\(core),\"userName\":\"".utf8) + [0xC3, 0x28] + Array("\"}".utf8)
        try assertRefused("POST", users, rawBody: raw, status: 400, scimType: "invalidSyntax", detail: "UTF-8")
    }

    @Test func jsonNested10000Deep() throws {
        defer { hub.stop() }
        let deep =
            "{\(core),\"userName\":\"x\",\"name\":" + String(repeating: "[", count: 10_000)
            + String(repeating: "]", count: 10_000) + "}"
        try assertRefused(
            "POST", users, body: deep, status: 400, scimType: "invalidSyntax", detail: "nested too deeply")
    }

    @Test func hugeNumbers() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"x\",\"n\":" + String(repeating: "9", count: 400) + "}",
            status: 400, scimType: "invalidValue")
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":1e999}", status: 400, scimType: "invalidValue",
            detail: "'userName' must be a string")
    }

    @Test func nulBytesInStrings() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"a\\u0000b\"}", status: 400, scimType: "invalidValue",
            detail: "NUL")
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"replace","path":"title","value":"a\u0000"}]"#), status: 400,
            scimType: "invalidValue", detail: "NUL")
    }

    @Test func wrongAttributeTypes() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"b\",\"active\":\"perhaps\"}", status: 400,
            scimType: "invalidValue", detail: "'active' must be a boolean")
        try assertRefused(
            "PUT", me, body: "{\(core),\"userName\":[\"a\"]}", status: 400, scimType: "invalidValue", detail: "userName"
        )
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"b\",\"emails\":{\"value\":5}}", status: 400,
            scimType: "invalidValue", detail: "emails.value")
    }

    @Test func missingRequiredAttributes() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"title\":\"x\"}", status: 400, scimType: "invalidValue",
            detail: "'userName' is required")
        try assertRefused(
            "POST", "/scim/v2/Groups", body: #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]}"#,
            status: 400, scimType: "invalidValue", detail: "'displayName' is required")
        try assertRefused(
            "POST", users, body: #"{"userName":"b"}"#, status: 400, scimType: "invalidValue", detail: "'schemas'")
    }

    @Test func unknownAttributes() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"b\",\"titel\":\"typo\"}", status: 400,
            scimType: "invalidValue", detail: "'titel' is not an attribute")
        try assertRefused(
            "PUT", me,
            body:
                "{\(core),\"userName\":\"ana@x.org\",\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":"
                + "{\"departmnt\":\"x\"}}",
            status: 400, scimType: "invalidValue", detail: "'departmnt'")
    }

    @Test func invalidAndOverlongFilters() throws {
        defer { hub.stop() }
        try assertRefused("GET", "/scim/v2/Users?filter=userName%20eq", status: 400, scimType: "invalidFilter")
        try assertRefused(
            "GET", "/scim/v2/Users?filter=nosuch%20eq%20%22x%22", status: 400, scimType: "invalidFilter",
            detail: "nosuch")
        let long = "/scim/v2/Users?filter=userName%20eq%20%22" + String(repeating: "a", count: 5000) + "%22"
        try assertRefused("GET", long, status: 400, scimType: "invalidFilter", detail: "longer than")
        try assertRefused(
            "POST", "/scim/v2/Users/.search",
            body: #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"((("}"#,
            status: 400, scimType: "invalidFilter")
    }

    @Test func patchWithUnknownOpInvalidPathOrNoTarget() throws {
        defer { hub.stop() }
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"copy","path":"title","value":"x"}]"#), status: 400,
            scimType: "invalidSyntax", detail: "unknown 'op'")
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"replace","path":"ti tle","value":"x"}]"#), status: 400,
            scimType: "invalidPath")
        try assertRefused(
            "PATCH", me,
            body: patchBody(#"[{"op":"replace","path":"emails[type eq \"home\"]","value":{"value":"a"}}]"#),
            status: 400, scimType: "noTarget")
        try assertRefused("PATCH", me, body: patchBody(#"[{"op":"remove"}]"#), status: 400, scimType: "noTarget")
        // A valid first operation is not applied when a later one fails.
        try assertRefused(
            "PATCH", me,
            body: patchBody(
                #"[{"op":"replace","path":"title","value":"Boss"},{"op":"replace","path":"nope","value":"x"}]"#),
            status: 400, scimType: "invalidPath")
    }

    @Test func patchOfReadOnlyOrImmutable() throws {
        defer { hub.stop() }
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"replace","path":"id","value":"x"}]"#), status: 400,
            scimType: "mutability")
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"add","path":"groups","value":[{"value":"g"}]}]"#), status: 400,
            scimType: "mutability")
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"replace","path":"meta.created","value":"2020-01-01T00:00:00Z"}]"#),
            status: 400, scimType: "mutability")
    }

    @Test func bodyOverTheLimit() throws {
        defer { hub.stop() }
        let big = "{\(core),\"userName\":\"" + String(repeating: "a", count: 70_000) + "\"}"
        let c = try RawHTTPClient(port: hub.port)
        let r = try #require(
            c.request(
                "POST", users,
                headers: [("Authorization", "Bearer \(hub.writer)"), ("Content-Type", "application/scim+json")],
                body: Array(big.utf8)))
        #expect(r.status == 413)
        #expect(r.header("Content-Type") == "application/scim+json")
        #expect(r.object["status"]?.stringValue == "413")
        #expect(try hub.snapshot() == before)
    }

    @Test func badFraming_getsASCIMErrorToo() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        c.send("POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(r.header("Content-Type") == "application/scim+json")
        #expect(r.object["schemas"] == .array([.string("urn:ietf:params:scim:api:messages:2.0:Error")]))
        #expect(try hub.snapshot() == before)
    }

    @Test func filterOnPassword_isRefused() throws {
        defer { hub.stop() }
        try assertRefused(
            "GET", "/scim/v2/Users?filter=password%20pr", status: 400, scimType: "invalidFilter",
            detail: "cannot be used in a filter")
        try assertRefused("GET", "/scim/v2/Users?sortBy=password", status: 400, scimType: "invalidValue")
    }

    @Test func bulkOverMaxOperations() throws {
        defer { hub.stop() }
        let ops = (0..<6).map {
            #"{"method":"POST","path":"/Users","bulkId":"b\#($0)","data":{"schemas":"#
                + #"["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bulk\#($0)"}}"#
        }
        try assertRefused(
            "POST", "/scim/v2/Bulk",
            body:
                #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":"#
                + #"[\#(ops.joined(separator: ","))]}"#,
            status: 413, detail: "maxOperations is 5")
    }

    @Test func unsupportedMediaType() throws {
        defer { hub.stop() }
        try assertRefused("POST", users, body: "{\(core),\"userName\":\"b\"}", contentType: "text/plain", status: 415)
        try assertRefused("PATCH", me, body: patchBody("[]"), contentType: "application/xml", status: 415)
    }

    @Test func staleIfMatch() throws {
        defer { hub.stop() }
        try assertRefused(
            "PUT", me, body: "{\(core),\"userName\":\"ana@x.org\"}", headers: [("If-Match", "W/\"99\"")], status: 412)
        try assertRefused(
            "PATCH", me, body: patchBody(#"[{"op":"replace","path":"title","value":"x"}]"#),
            headers: [("If-Match", "W/\"0\"")], status: 412)
        try assertRefused("DELETE", me, headers: [("If-Match", "\"7\"")], status: 412)
    }

    @Test func duplicateUserName() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"ANA@X.ORG\"}", status: 409, scimType: "uniqueness")
        let other = try hub.createUser("bob@x.org")
        let snap = try hub.snapshot()
        let r = try hub.call(
            "PATCH", "/scim/v2/Users/\(other)",
            body: patchBody(#"[{"op":"replace","path":"userName","value":"Ana@x.org"}]"#))
        #expect(r.status == 409)
        #expect(r.object["scimType"]?.stringValue == "uniqueness")
        #expect(try hub.snapshot() == snap)
    }

    @Test func unknownID() throws {
        defer { hub.stop() }
        for m in ["GET", "DELETE"] { try assertRefused(m, "/scim/v2/Users/no-such-id", status: 404) }
        try assertRefused("PUT", "/scim/v2/Users/no-such-id", body: "{\(core),\"userName\":\"z\"}", status: 404)
        try assertRefused(
            "PATCH", "/scim/v2/Groups/\(userID)", body: patchBody(#"[{"op":"add","path":"displayName","value":"x"}]"#),
            status: 404)
        try assertRefused("GET", "/scim/v2/Nothing", status: 404)
    }

    @Test func wrongMethod() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        let r = try #require(c.request("DELETE", users, headers: [("Authorization", "Bearer \(hub.writer)")]))
        #expect(r.status == 405)
        #expect(r.header("Allow") == "GET, POST, HEAD")  // HEAD is served wherever GET is (RFC 9110 §9.3.2)
        try assertRefused("POST", me, body: "{}", status: 405)
        try assertRefused("GET", "/scim/v2/Bulk", status: 405)
    }

    @Test func missingOrBadToken() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        let r = try #require(c.request("GET", users))
        #expect(r.status == 401)
        #expect(r.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
        try assertRefused("GET", users, token: "shub_0000000000000000_nope", status: 401)
        try assertRefused("POST", users, body: "{\(core),\"userName\":\"z\"}", token: hub.writer + "x", status: 401)
        try assertRefused("GET", users, headers: [("Authorization", "Basic Zm9vOmJhcg==")], status: 401)
    }

    @Test func missingScope() throws {
        defer { hub.stop() }
        try assertRefused(
            "POST", users, body: "{\(core),\"userName\":\"z\"}", token: hub.reader, status: 403, detail: "scim:write")
        try assertRefused("GET", users, token: hub.admin, status: 403)
        try assertRefused("GET", "/admin/audit", token: hub.writer, status: 403, detail: "admin")
    }

    @Test func headersOneByteASecond_areCutOff() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        let start = Date()
        var closed = false
        for b in "GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n".utf8 {
            if !c.send([b]) { closed = true; break }
            Thread.sleep(forTimeInterval: 0.3)
            if Date().timeIntervalSince(start) > 4 { break }
        }
        #expect(closed || c.readResponse()?.status == 408 || c.isClosedByPeer())
        #expect(Date().timeIntervalSince(start) < 5)
        #expect(try hub.call("GET", users).status == 200)  // others are still served
    }

    @Test func tenThousandHeaders() throws {
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port)
        c.send("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-A: b\r\n", count: 10_000) + "\r\n")
        let r = c.readResponse()
        #expect(r?.status == 431)
        #expect(r?.object["status"]?.stringValue == "431")
        #expect(try hub.call("GET", users).status == 200)
    }

    @Test func repeatedBadTokens_areThrottled() throws {
        defer { hub.stop() }
        for _ in 0..<10 { _ = try hub.call("GET", users, token: "shub_0000000000000000_guess") }
        let r = try hub.call("GET", users, token: "shub_0000000000000000_guess")
        #expect(r.status == 429)
        #expect(r.header("Retry-After") != nil)
    }
}
