// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import JSONCore
import Provisioning
import SCIM
import Store

/// "Who has what": every package with what it grants on each target and how many people
/// hold it, and the holders of one package with since when (as the hub decided it:
/// `package_holdings`). For auditors and administrators; the evidence beside a report.
struct AccessEndpoints: FeatureEndpoints {
    let hub: HubContext
}

extension AccessEndpoints {
    /// `GET /admin/access/packages`.
    func packages() throws -> HTTPResponse {
        guard let engine else { throw SCIMError(status: 409, detail: "no policy is loaded") }
        let counts = try store.read { try $0.holdingCounts() }
        let list: [JSONValue] = engine.policy.packages.map { p in
            var grants = JSONObject()
            for (t, items) in p.grants.sorted(by: { $0.key < $1.key }) { grants[t] = .array(items.map { .string($0) }) }
            return .object(
                JSONObject([
                    "name": .string(p.name), "description": .string(p.description), "grants": .object(grants),
                    "holders": .int(counts[p.name] ?? 0),
                ]))
        }
        return jsonResponse(200, .object(JSONObject(["packages": .array(list)])), contentType: "application/json")
    }

    /// `GET /admin/access/packages/{name}?count=`: the holders, longest held first (at most 5,000).
    func holders(_ name: String, _ ctx: RequestContext) throws -> HTTPResponse {
        guard let engine else { throw SCIMError(status: 409, detail: "no policy is loaded") }
        guard engine.policy.packages.contains(where: { $0.name == name }) else {
            throw SCIMError.notFound("no package named \(name.prefix(64))")
        }
        var count = 1000
        if let c = ctx.request.queryValue("count") {
            guard let n = Int(c), (1...5000).contains(n) else {
                throw SCIMError.invalidValue("'count' must be an integer in 1...5000")
            }
            count = n
        }
        let people: [JSONValue] = try store.read { conn in
            try conn.holders(package: name, limit: count).map { h in
                let doc = try conn.fetch(type: .user, id: h.personID)?.doc
                return .object(
                    JSONObject([
                        "personId": .string(h.personID), "userName": doc?["userName"] ?? .null,
                        "displayName": doc?["displayName"] ?? .null, "since": .string(Timestamp.format(h.since)),
                    ]))
            }
        }
        return jsonResponse(
            200, .object(JSONObject(["package": .string(name), "holders": .array(people)])),
            contentType: "application/json")
    }

    var routes: [Route] {
        [
            Route.make("GET", "/admin/access/packages", .admin) { _, _ in try self.packages() },
            Route.make("GET", "/admin/access/packages/{name}", .admin, query: ["count"]) { ctx, p in
                try self.holders(p[0], ctx)
            },
        ]
    }
}
