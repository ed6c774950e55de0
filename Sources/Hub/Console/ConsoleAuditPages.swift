// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/audit`: the audit log searched by person (resource id), principal, action
/// and time, a CSV export of the same search, and a verification of the whole hash chain
/// showing the head to publish. Built on `/admin/audit` and `/admin/audit/verify`.
extension ConsoleEndpoints {
    private static let auditFilters = ["principal", "resourceId", "action", "since", "until"]

    private func auditQuery(_ request: HTTPRequest) -> [(String, String)] {
        Self.auditFilters.compactMap { k in request.queryValue(k).flatMap { $0.isEmpty ? nil : (k, $0) } }
    }

    func auditPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let query = auditQuery(ctx.request)
            let entries =
                try api.call(
                    .get, "/admin/audit", query: query + [("count", "200")], as: s.principal, requestID: ctx.requestID
                ).json.objectValue?["entries"]?.arrayValue ?? []
            let fields: [HTML] = Self.auditFilters.map { k in
                let label =
                    [
                        "principal": "Principal", "resourceId": "Person or resource id", "action": "Action",
                        "since": "From (e.g. 2026-12-01T00:00:00Z)", "until": "Until",
                    ][k] ?? k
                return """
                    <label for="\(k)">\(label)</label>
                    <input id="\(k)" name="\(k)" type="text" value="\(ctx.request.queryValue(k) ?? "")" maxlength="256">
                    """
            }
            let rows: [HTML] = entries.compactMap(\.objectValue).map { e in
                let attrs = (e["attributes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                let (seq, time) = (Int(e["seq"]?.numberValue?.int64 ?? 0), e["time"]?.stringValue ?? "")
                return """
                    <tr><td class="num">\(seq)</td><td>\(time)</td>
                    <td>\(e["principal"]?.stringValue ?? "")</td><td>\(e["action"]?.stringValue ?? "")</td>
                    <td>\(e["resourceId"]?.stringValue ?? "")</td><td>\(attrs)</td>
                    <td>\(e["outcome"]?.stringValue ?? "")</td></tr>
                    """
            }
            let csv = "/console/audit.csv?" + query.map { "\($0.0)=\(HTTPForm.escape($0.1))" }.joined(separator: "&")
            return page(
                "Audit log", s,
                """
                <form method="get" action="/console/audit" class="stack" role="search">\(fields)
                <p><button type="submit">Search</button></p></form>
                <p><a href="\(csv)">Export these entries as CSV</a> ·
                <a href="/console/audit/verify">Verify the whole chain</a></p>
                \(Self.tableOpen)<thead><tr><th scope="col" class="num">#</th><th scope="col">Time</th>
                <th scope="col">Principal</th><th scope="col">Action</th><th scope="col">Resource</th>
                <th scope="col">What</th><th scope="col">Outcome</th></tr></thead><tbody>\(rows)</tbody></table></div>
                """)
        }
    }

    func auditCSV(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            guard case .found(let route, let params) = api.routes.match(method: .get, path: "/admin/audit") else {
                throw SCIMError.notFound("no audit endpoint")
            }
            let request = HTTPRequest(
                method: .get, target: "/admin/audit", path: "/admin/audit",
                query: (auditQuery(ctx.request) + [("count", "1000"), ("format", "csv")]).map {
                    (name: $0.0, value: $0.1)
                })
            try route.authorize(request, s.principal)
            return try route.handler(
                RequestContext(principal: s.principal, requestID: ctx.requestID, request: request, baseURL: ""), params)
        }
    }

    func auditVerifyPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let v =
                try api.call(.get, "/admin/audit/verify", as: s.principal, requestID: ctx.requestID).json.objectValue
                ?? JSONObject()
            let intact = v["intact"]?.boolValue == true
            let breaks: [HTML] = (v["breaks"]?.arrayValue ?? []).compactMap(\.objectValue).map { b in
                "<li>entry \(Int(b["seq"]?.numberValue?.int64 ?? 0)): \(b["reason"]?.stringValue ?? "")</li>"
            }
            let verdict: HTML =
                intact
                ? "<p class=\"status-ok\" role=\"status\">The chain is intact.</p>"
                : "<p class=\"status-critical\" role=\"alert\">The chain is broken.</p><ul>\(breaks)</ul>"
            return page(
                "Audit chain", s,
                """
                \(verdict)<p>\(Int(v["entries"]?.numberValue?.int64 ?? 0)) entries; the head is entry
                \(Int(v["headSeq"]?.numberValue?.int64 ?? 0)) with hash
                <code>\(v["headHash"]?.stringValue ?? "")</code>.
                Keep this pair somewhere the hub cannot write: it proves later that nothing before it changed.</p>
                <p><a href="/console/audit">Back to the audit log</a></p>
                """)
        }
    }
}
