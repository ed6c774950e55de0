// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/requests`: ask for a package (justification, duration), follow one's own
/// requests, and, for approvers, the inbox with approve and deny. Built on `/admin/requests`.
extension ConsoleEndpoints {
    func requestsPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let packages =
                try api.read("/admin/requests/packages", as: p, requestID: rid)?["packages"]?.arrayValue ?? []
            let all = try api.read("/admin/requests", as: p, requestID: rid)?["requests"]?.arrayValue ?? []
            let inbox =
                try api.read("/admin/requests", query: [("awaiting", "me")], as: p, requestID: rid)?["requests"]?
                .arrayValue ?? []
            let me = Identifier.canonical(p.name)
            let mine = all.compactMap(\.objectValue).filter {
                Identifier.canonical($0["userName"]?.stringValue ?? "") == me
                    || Identifier.canonical($0["requestedBy"]?.stringValue ?? "") == me
            }
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            let content: HTML = """
                \(done)\(requestForm(packages.compactMap(\.objectValue), s))
                <h2 id="inbox">Waiting for your approval</h2>\(inboxTable(inbox.compactMap(\.objectValue), s))
                <h2>Your requests</h2>\(mineTable(mine, s))
                """
            return page("Requests", s, content)
        }
    }

    private func requestForm(_ packages: [JSONObject], _ s: ConsoleSessions.Current) -> HTML {
        guard !packages.isEmpty else { return "<p>No package can be requested.</p>" }
        let options: [HTML] = packages.map { p in
            let name = p["name"]?.stringValue ?? ""
            let days = Int(p["maxDays"]?.numberValue?.double ?? 0)
            let about = p["description"]?.stringValue ?? ""
            return "<option value=\"\(name)\">\(name): \(about) (up to \(days) days)</option>"
        }
        return """
            <h2>Request access</h2>
            <form method="post" action="/console/requests" class="stack">\(Self.csrfField(s))
            <label for="package">Package</label><select id="package" name="package" required>\(options)</select>
            <label for="justification">Why you need it</label>
            <textarea id="justification" name="justification" rows="3" maxlength="1000" required></textarea>
            <label for="days">For how many days</label>
            <input id="days" name="days" type="number" min="1" max="366" value="30" required>
            <p><button type="submit">Send the request</button></p></form>
            """
    }

    private func inboxTable(_ items: [JSONObject], _ s: ConsoleSessions.Current) -> HTML {
        guard !items.isEmpty else { return "<p>Nothing is waiting for you.</p>" }
        let rows: [HTML] = items.map { r in
            let id = r["id"]?.stringValue ?? ""
            return """
                <tr><td>\(r["userName"]?.stringValue ?? "")</td><td>\(r["package"]?.stringValue ?? "")</td>
                <td>\(r["justification"]?.stringValue ?? "")</td><td class="num">\(days(r))</td>
                <td><form method="post" action="/console/requests/\(id)/decide" class="stack">\(Self.csrfField(s))
                <label for="reason-\(id)">Reason</label>
                <input id="reason-\(id)" name="reason" type="text" maxlength="1000" required>
                <button type="submit" name="decision" value="approve">Approve</button>
                <button type="submit" name="decision" value="deny" class="danger">Deny</button></form></td></tr>
                """
        }
        return """
            \(Self.tableOpen)<thead><tr><th scope="col">Person</th><th scope="col">Package</th>
            <th scope="col">Justification</th><th scope="col" class="num">Days</th><th scope="col">Decision</th></tr>
            </thead><tbody>\(rows)</tbody></table></div>
            """
    }

    private func mineTable(_ items: [JSONObject], _ s: ConsoleSessions.Current) -> HTML {
        guard !items.isEmpty else { return "<p>You have no requests.</p>" }
        let rows: [HTML] = items.map { r in
            let id = r["id"]?.stringValue ?? "", state = r["state"]?.stringValue ?? ""
            let status: HTML =
                state == "pending"
                ? "pending: awaiting \(r["awaiting"]?.stringValue ?? "")"
                : state == "granted" ? "granted until \(r["expires"]?.stringValue ?? "")" : "\(state)"
            let action: HTML =
                state == "pending"
                ? """
                <form method="post" action="/console/requests/\(id)/decide">\(Self.csrfField(s))
                <input type="hidden" name="reason" value="withdrawn in the console">
                <button type="submit" name="decision" value="cancel" class="secondary">Withdraw</button></form>
                """ : .empty
            return """
                <tr><td>\(r["userName"]?.stringValue ?? "")</td><td>\(r["package"]?.stringValue ?? "")</td>
                <td>\(status)</td><td>\(action)</td></tr>
                """
        }
        return """
            \(Self.tableOpen)<thead><tr><th scope="col">For</th><th scope="col">Package</th>
            <th scope="col">State</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }

    private func days(_ r: JSONObject) -> Int { Int(r["days"]?.numberValue?.double ?? 0) }

    /// `POST /console/requests`: files a request through `POST /admin/requests`.
    func submitRequest(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            guard let d = Double(f["days"] ?? ""), d.isFinite else {
                throw SCIMError.invalidValue("'days' must be a number of days")
            }
            let body: JSONValue = .object(
                JSONObject([
                    "package": .string(f["package"] ?? ""), "justification": .string(f["justification"] ?? ""),
                    "days": .number(JSONNumber(d)),
                ]))
            _ = try api.call(.post, "/admin/requests", body: body, as: s.principal, requestID: ctx.requestID)
            return redirect("/console/requests?done=" + HTTPForm.escape("Your request was sent for approval."))
        }
    }

    /// `POST /console/requests/{id}/decide`: approve, deny or cancel with a reason.
    func decideRequest(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            let decision = f["decision"] ?? ""
            guard ["approve", "deny", "cancel"].contains(decision) else {
                throw SCIMError.invalidValue("'decision' must be approve, deny or cancel")
            }
            let body: JSONValue = .object(JSONObject(["reason": .string(f["reason"] ?? "")]))
            let result = try api.call(
                .post, "/admin/requests/\(id)/\(decision)", body: body, as: s.principal, requestID: ctx.requestID)
            let state = result.json.objectValue?["state"]?.stringValue ?? decision
            return redirect("/console/requests?done=" + HTTPForm.escape("The request is now \(state)."))
        }
    }
}
