// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/people?q=`: look a person up; `GET /console/people/{id}`: who they are, what
/// they hold and why, per target what should be, what was applied and the last result, and
/// their audit history; re-converge now. Built on `/admin/people` and `/admin/audit`.
extension ConsoleEndpoints {
    func peoplePage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let q = ctx.request.queryValue("q") ?? ""
            var results: HTML = .empty
            if !q.isEmpty {
                let found =
                    try api.call(.get, "/admin/people", query: [("q", q)], as: s.principal, requestID: ctx.requestID)
                    .json.objectValue?["people"]?.arrayValue ?? []
                let rows: [HTML] = found.compactMap(\.objectValue).map { p in
                    let sites = (p["sites"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                    let (id, user) = (p["id"]?.stringValue ?? "", p["userName"]?.stringValue ?? "")
                    let (name, title) = (p["displayName"]?.stringValue ?? "", p["title"]?.stringValue ?? "")
                    return """
                        <tr><td><a href="/console/people/\(id)">\(user)</a></td><td>\(name)</td><td>\(title)</td>
                        <td>\(sites)</td><td>\(p["active"]?.boolValue == false ? "inactive" : "active")</td></tr>
                        """
                }
                results =
                    rows.isEmpty
                    ? """
                    <p role="status">Nobody matches that: try fewer letters, or another word of the name, title or
                    site.</p>
                    """
                    : """
                    \(Self.tableOpen)<thead><tr><th scope="col">User name</th><th scope="col">Name</th>
                    <th scope="col">Title</th><th scope="col">Sites</th><th scope="col">Status</th></tr></thead>
                    <tbody>\(rows)</tbody></table></div>
                    """
            }
            return page(
                "People", s,
                """
                <form method="get" action="/console/people" role="search" class="stack">
                <label for="q">Name, user name, title, site or e-mail (the start of each word is enough)</label>
                <input id="q" name="q" type="search" value="\(q)" maxlength="256">
                <p><button type="submit">Search</button></p></form>\(results)
                """)
        }
    }

    func personPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let access =
                try api.call(.get, "/admin/people/\(id)/access", as: p, requestID: rid).json.objectValue ?? JSONObject()
            let audit =
                try api.read("/admin/audit", query: [("resourceId", id), ("count", "20")], as: p, requestID: rid)?[
                    "entries"]?.arrayValue ?? []
            let packages: [HTML] = (access["packages"]?.arrayValue ?? []).compactMap(\.objectValue).map { g in
                "<li><strong>\(g["name"]?.stringValue ?? "")</strong>: \(g["why"]?.stringValue ?? "")</li>"
            }
            let targets: [HTML] = (access["targets"]?.objectValue?.members ?? []).map { m in
                let t = m.value.objectValue ?? JSONObject()
                func account(_ key: String) -> String {
                    guard let a = t[key]?.objectValue else { return "none" }
                    let ents = (a["entitlements"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                    return (a["enabled"]?.boolValue == true ? "enabled" : "disabled")
                        + (ents.isEmpty ? "" : ": \(ents)")
                }
                return """
                    <tr><th scope="row">\(m.key)</th><td>\(account("desired"))</td><td>\(account("applied"))</td>
                    <td>\(t["lastResult"]?.stringValue ?? "")</td><td>\(t["pendingJob"]?.stringValue ?? "")</td></tr>
                    """
            }
            let history: [HTML] = audit.compactMap(\.objectValue).map { e in
                let attrs = (e["attributes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                return """
                    <tr><td>\(e["time"]?.stringValue ?? "")</td><td>\(e["action"]?.stringValue ?? "")</td>
                    <td>\(e["principal"]?.stringValue ?? "")</td><td>\(attrs)</td></tr>
                    """
            }
            let action: HTML =
                s.has("admin") || s.has("helpdesk")
                ? """
                <form method="post" action="/console/people/\(id)/reconverge">\(Self.csrfField(s))
                <button type="submit">Re-converge now</button></form>
                """ : .empty
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            return page(
                access["userName"]?.stringValue ?? "Person", s,
                """
                \(done)<p>\(access["active"]?.boolValue == false ? "Inactive" : "Active")</p>
                <h2>Packages and why</h2><ul>\(packages)</ul>
                <h2>Accounts</h2>\(Self.tableOpen)<thead><tr><th scope="col">Target</th>
                <th scope="col">Should be</th><th scope="col">Last applied</th><th scope="col">Last result</th>
                <th scope="col">Queued</th></tr></thead><tbody>\(targets)</tbody></table></div>\(action)
                <h2>History</h2>\(Self.tableOpen)<thead><tr><th scope="col">Time</th>
                <th scope="col">Action</th><th scope="col">By</th><th scope="col">What</th></tr></thead>
                <tbody>\(history)</tbody></table></div>
                """)
        }
    }

    func reconvergePerson(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            _ = try api.call(.post, "/admin/people/\(id)/reconverge", as: s.principal, requestID: ctx.requestID)
            return redirect("/console/people/\(HTTPForm.escape(id))?done=" + HTTPForm.escape("Queued to converge now."))
        }
    }
}
