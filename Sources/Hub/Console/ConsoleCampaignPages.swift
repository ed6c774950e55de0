// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/campaigns`: administrators open access reviews (a target or a package,
/// managers or named reviewers, the due date and what undecided items become), follow them,
/// extend or cancel one, and give an item to another reviewer. Built on `/admin/reviews`.
extension ConsoleEndpoints {
    func campaignsPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let campaigns =
                try api.call(.get, "/admin/reviews", as: s.principal, requestID: ctx.requestID).json.objectValue?[
                    "campaigns"]?.arrayValue ?? []
            let rows: [HTML] = campaigns.compactMap(\.objectValue).map { c in campaignRow(c, s) }
            let targets: [HTML] = (engine?.policy.enabledTargets ?? []).map {
                "<option value=\"target:\($0.name)\">target \($0.name)</option>"
            }
            let packages: [HTML] = (engine?.policy.packages ?? []).map {
                "<option value=\"package:\($0.name)\">package \($0.name)</option>"
            }
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            let create: HTML =
                s.has("admin")
                ? """
                <h2>Open a review</h2>
                <form method="post" action="/console/campaigns" class="stack">\(Self.csrfField(s))
                <label for="name">Name</label><input id="name" name="name" type="text" maxlength="200" required>
                <label for="scope">What to review</label><select id="scope" name="scope">\(targets)\(packages)</select>
                <label for="reviewers">Reviewers (user names, comma-separated; empty: each person's manager)</label>
                <input id="reviewers" name="reviewers" type="text" maxlength="2000">
                <label for="dueDays">Days to decide</label>
                <input id="dueDays" name="dueDays" type="number" min="1" max="366" value="14">
                <label for="defaultDecision">Undecided at the due date</label>
                <select id="defaultDecision" name="defaultDecision"><option value="keep-and-flag">keep and flag</option>
                <option value="keep">keep</option>
                <option value="revoke">revoke (waits for confirmation if risky)</option>
                </select><p><button type="submit">Open the review</button></p></form>
                """ : .empty
            return page(
                "Review campaigns", s,
                """
                \(done)\(Self.tableOpen)<thead><tr><th scope="col">Review</th><th scope="col">Due</th>
                <th scope="col">State</th><th scope="col" class="num">Decided</th><th scope="col">Actions</th>
                </tr></thead>
                <tbody>\(rows)</tbody></table></div>\(create)
                """)
        }
    }

    private func campaignRow(_ c: JSONObject, _ s: ConsoleSessions.Current) -> HTML {
        let id = c["id"]?.stringValue ?? "", state = c["state"]?.stringValue ?? ""
        let (items, decided) = (Int(c["items"]?.numberValue?.int64 ?? 0), Int(c["decided"]?.numberValue?.int64 ?? 0))
        let open = state == "open" || state == "awaiting-confirmation"
        let actions: HTML =
            open && s.has("admin")
            ? """
            <form method="post" action="/console/campaigns/\(id)/extend" class="inline">\(Self.csrfField(s))
            <label for="days-\(id)" class="visually-hidden">Days</label>
            <input id="days-\(id)" name="dueDays" type="number" min="1" max="366" value="7" size="3">
            <button type="submit" class="secondary">Extend</button></form>
            <form method="post" action="/console/campaigns/\(id)/reassign" class="inline">\(Self.csrfField(s))
            <label for="seq-\(id)" class="visually-hidden">Item</label>
            <input id="seq-\(id)" name="seq" type="number" min="1" size="3" placeholder="item">
            <label for="to-\(id)" class="visually-hidden">New reviewer</label>
            <input id="to-\(id)" name="reviewer" type="text" size="12" placeholder="reviewer">
            <button type="submit" class="secondary">Reassign</button></form>
            <form method="post" action="/console/campaigns/\(id)/cancel" class="inline">\(Self.csrfField(s))
            <button type="submit" class="danger" data-confirm="Cancel this review? Nothing more is decided.">
            Cancel</button>
            </form>
            """ : .empty
        return """
            <tr><td><a href="/console/reviews/\(id)">\(c["name"]?.stringValue ?? "")</a></td>
            <td>\(c["due"]?.stringValue ?? "")</td><td>\(state)</td><td class="num">\(decided) of \(items)</td>
            <td>\(actions)</td></tr>
            """
    }

    /// `POST /console/campaigns`: `POST /admin/reviews`.
    func createCampaign(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            let scope = (f["scope"] ?? "").split(separator: ":", maxSplits: 1).map(String.init)
            guard scope.count == 2, ["target", "package"].contains(scope[0]) else {
                throw SCIMError.invalidValue("choose a target or a package to review")
            }
            guard let days = Double(f["dueDays"] ?? ""), days.isFinite else {
                throw SCIMError.invalidValue("'dueDays' must be a number of days")
            }
            var body = JSONObject([
                "name": .string(f["name"] ?? ""), scope[0]: .string(scope[1]), "dueDays": .number(JSONNumber(days)),
                "defaultDecision": .string(f["defaultDecision"] ?? "keep-and-flag"),
            ])
            let reviewers = (f["reviewers"] ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty }
            if !reviewers.isEmpty { body["reviewers"] = .array(reviewers.map { .string($0) }) }
            let r = try api.call(
                .post, "/admin/reviews", body: .object(body), as: s.principal, requestID: ctx.requestID)
            let items = Int(r.json.objectValue?["items"]?.numberValue?.int64 ?? 0)
            return redirect("/console/campaigns?done=" + HTTPForm.escape("Opened with \(items) item(s)."))
        }
    }

    /// `POST /console/campaigns/{id}/extend|cancel|reassign`.
    func changeCampaign(_ id: String, _ action: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            switch action {
            case "extend":
                guard let d = Double(f["dueDays"] ?? ""), d.isFinite else {
                    throw SCIMError.invalidValue("'dueDays' must be a number of days")
                }
                _ = try api.call(
                    .post, "/admin/reviews/\(id)/extend",
                    body: .object(JSONObject(["dueDays": .number(JSONNumber(d))])),
                    as: s.principal, requestID: ctx.requestID)
            case "reassign":
                guard let seq = Int(f["seq"] ?? ""), seq > 0 else {
                    throw SCIMError.invalidValue("give the item number")
                }
                _ = try api.call(
                    .post, "/admin/reviews/\(id)/items/\(seq)/reassign",
                    body: .object(JSONObject(["reviewer": .string(f["reviewer"] ?? "")])), as: s.principal,
                    requestID: ctx.requestID)
            default:
                _ = try api.call(.post, "/admin/reviews/\(id)/cancel", as: s.principal, requestID: ctx.requestID)
            }
            return redirect("/console/campaigns?done=" + HTTPForm.escape("Done: \(action)."))
        }
    }
}
