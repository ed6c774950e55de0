// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import JSONCore
import SCIM
import Store

/// `/admin` endpoints (admin scope).
extension HubApp {
    /// `GET /admin/audit?since=&until=&principal=&resourceId=&after=&count=`: entries oldest
    /// first; `after` is the last `seq` seen, for paging.
    func listAudit(_ ctx: RequestContext) throws -> HTTPResponse {
        let q = ctx.request
        func time(_ name: String) throws -> String? {
            guard let v = q.queryValue(name) else { return nil }
            guard let t = SCIMDateTime.parse(v) else { throw SCIMError.invalidValue("'\(name)' must be an xsd:dateTime such as 2026-01-31T00:00:00Z") }
            return SCIMDateTime.format(t)
        }
        let since = try time("since"), until = try time("until")
        var after: Int64 = 0
        if let a = q.queryValue("after") {
            guard let n = Int64(a), n >= 0 else { throw SCIMError.invalidValue("'after' must be a non-negative integer") }
            after = n
        }
        var count = 100
        if let c = q.queryValue("count") {
            guard let n = Int(c) else { throw SCIMError.invalidValue("'count' must be an integer") }
            count = min(1000, max(0, n))
        }
        let entries = try store.read {
            try AuditLog.list($0, since: since, until: until, principal: q.queryValue("principal"), resourceID: q.queryValue("resourceId"),
                              afterSeq: after, limit: count)
        }
        var body = JSONObject(["itemsPerPage": .int(entries.count), "entries": .array(entries.map(\.json))])
        if let last = entries.last, entries.count == count { body["next"] = .string("after=\(last.seq)") }
        return jsonResponse(200, .object(body), contentType: "application/json")
    }
}
