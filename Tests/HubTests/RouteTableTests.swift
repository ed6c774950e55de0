// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import JSONCore
import TestSupport

/// One route table: 404 and 405 (with Allow) come from it, scopes are checked from it, and
/// admin endpoints refuse query parameters they do not read.
@Suite struct RouteTableTests {
    let hub: LiveHub
    init() throws { hub = try LiveHub() }

    @Test(arguments: [
        (
            "/admin/audit?principal=hr&princpal=x",
            "unknown query parameter 'princpal' (known: action, after, count, format, principal, resourceId, since, "
                + "until)"
        ),
        ("/admin/jobs?stat=dead", "unknown query parameter 'stat' (known: count, state, target)"),
        ("/admin/targets?verbose=1", "unknown query parameter 'verbose' (this endpoint takes none)"),
    ])
    func unknownQueryParameters_onAdminEndpoints_areRefusedByName(path: String, detail: String) throws {
        defer { hub.stop() }
        let r = try hub.call("GET", path, token: hub.admin)
        #expect(r.status == 400)
        #expect(r.object["detail"]?.stringValue == detail, "\(r.text)")
    }

    @Test func notFound_methodNotAllowed_andScopes_comeFromTheTable() throws {
        defer { hub.stop() }
        #expect(try hub.call("GET", "/admin/nothing", token: hub.admin).status == 404)
        #expect(try hub.call("GET", "/scim/v2/Devices").status == 404)  // not a resource type the schemas define
        // authentication before 404: no anonymous probing
        #expect(try hub.call("GET", "/nowhere", token: "shub_bad").status == 401)
        let r = try hub.call("PUT", "/admin/tokens", token: hub.admin, body: "{}")
        #expect(r.status == 405)
        #expect(r.header("Allow") == "GET, POST, HEAD")
        #expect(try hub.call("GET", "/admin/audit", token: hub.writer).status == 403)  // a feed token
        // needs the break-glass scope
        #expect(try hub.call("POST", "/admin/break-glass", token: hub.admin, body: "{}").status == 403)
        // Monitors' cache-busting parameters are fine on /healthz.
        #expect(try hub.call("GET", "/healthz?ts=123", token: "").status == 200)
        // SCIM endpoints stay lenient about query parameters (RFC 7644 clients send their own).
        #expect(try hub.call("GET", "/scim/v2/Users?startIndex=1&count=5&foo=bar").status == 200)
        // HEAD wherever GET is served, without a body.
        let c = try RawHTTPClient(port: hub.port)
        let head = try #require(
            c.request("HEAD", "/scim/v2/Users", headers: [("Authorization", "Bearer \(hub.writer)")]))
        #expect(head.status == 200 && head.body.isEmpty)
    }
}
