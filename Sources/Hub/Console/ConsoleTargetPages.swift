// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/targets`: each target's health and queue, and the dead letters with the
/// person's name and the reason; retry one or many. Built on `/admin/targets` and `/admin/jobs`.
extension ConsoleEndpoints {
    func targetsPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let targets =
                try api.call(.get, "/admin/targets", as: p, requestID: rid).json.objectValue?["targets"]?
                .arrayValue ?? []
            let dead =
                try api.call(.get, "/admin/jobs", query: [("state", "dead"), ("count", "500")], as: p, requestID: rid)
                .json.objectValue?["jobs"]?.arrayValue ?? []
            let mayRetry = s.has("admin") || s.has("helpdesk")
            let rows: [HTML] = dead.compactMap(\.objectValue).map { j in
                let id = j["id"]?.stringValue ?? ""
                let box: HTML =
                    mayRetry
                    ? """
                    <input type="checkbox" name="job" value="\(id)" id="job-\(id)">
                    <label for="job-\(id)" class="visually-hidden">Select</label>
                    """ : .empty
                let who = j["userName"]?.stringValue ?? "a deleted person"
                return """
                    <tr><td>\(box)</td><td>\(who)</td><td>\(j["target"]?.stringValue ?? "")</td>
                    <td class="num">\(Int(j["attempts"]?.numberValue?.int64 ?? 0))</td>
                    <td>\(j["lastError"]?.stringValue ?? "")</td></tr>
                    """
            }
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            let deadSection: HTML =
                rows.isEmpty
                ? "<p class=\"status-ok\">No dead letters.</p>"
                : """
                <form method="post" action="/console/targets/retry">\(Self.csrfField(s))\(Self.tableOpen)<thead><tr>
                <th scope="col"><input type="checkbox" id="all" data-select-all="job">
                <label for="all" class="visually-hidden">Select every dead letter</label></th>
                <th scope="col">Person</th><th scope="col">Target</th><th scope="col" class="num">Attempts</th>
                <th scope="col">Reason</th></tr></thead><tbody>\(rows)</tbody></table></div>
                \(mayRetry ? "<p><button type=\"submit\">Retry the selected changes</button></p>" : HTML.empty)</form>
                """
            let probe: HTML =
                mayRetry
                ? """
                <form method="post" action="/console/targets/probe">\(Self.csrfField(s))
                <p><button type="submit">Probe every target now</button></p></form>
                """ : .empty
            return page(
                "Targets and jobs", s,
                "\(done)\(targetsTable(targets))\(probe)<h2>Dead letters</h2>\(deadSection)")
        }
    }

    /// `POST /console/targets/retry`: each selected dead letter back in the queue.
    func retryJobs(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let ids = try formFields(ctx.request).filter { $0.name == "job" }.map(\.value)
            guard !ids.isEmpty, ids.count <= 500 else { throw SCIMError.invalidValue("select 1 to 500 changes") }
            var retried = 0
            for id in ids {
                _ = try api.call(.post, "/admin/jobs/\(id)/retry", as: s.principal, requestID: ctx.requestID)
                retried += 1
            }
            return redirect("/console/targets?done=" + HTTPForm.escape("\(retried) change(s) queued again."))
        }
    }

    /// `POST /console/targets/probe`: probes each enabled target now (`POST
    /// /admin/targets/{name}/probe`) and says what answered.
    func probeTargets(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            _ = try formFields(ctx.request)
            let p = s.principal, rid = ctx.requestID
            let targets =
                try api.call(.get, "/admin/targets", as: p, requestID: rid).json.objectValue?["targets"]?
                .arrayValue ?? []
            var said: [String] = []
            for t in targets.compactMap(\.objectValue) where t["enabled"]?.boolValue == true {
                let name = t["name"]?.stringValue ?? ""
                let r = try api.call(.post, "/admin/targets/\(HTTPForm.escape(name))/probe", as: p, requestID: rid)
                let up = r.json.objectValue?["probe"]?.objectValue?["up"]?.boolValue ?? false
                said.append("\(name): \(up ? "up" : "down")")
            }
            let text = said.isEmpty ? "No enabled target to probe." : "Probed: " + said.joined(separator: ", ") + "."
            return redirect("/console/targets?done=" + HTTPForm.escape(text))
        }
    }
}
