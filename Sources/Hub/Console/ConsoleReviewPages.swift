// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/reviews`: the reviewer's inbox across campaigns; `GET /console/reviews/{id}`:
/// their items with the context to decide (what the package means, title and site, how long
/// it is held, what peers hold) and a recommendation that is shown, never applied; several
/// items approved or revoked at once with one reason. Built on `/reviews`.
extension ConsoleEndpoints {
    func reviewsPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let campaigns =
                try api.read("/reviews", as: s.principal, requestID: ctx.requestID)?["campaigns"]?.arrayValue ?? []
            let rows: [HTML] = campaigns.compactMap(\.objectValue).map { c in
                let undecided = Int(c["undecided"]?.numberValue?.int64 ?? 0)
                let total = Int(c["items"]?.numberValue?.int64 ?? 0)
                let (id, name) = (c["id"]?.stringValue ?? "", c["name"]?.stringValue ?? "")
                return """
                    <tr><td><a href="/console/reviews/\(id)">\(name)</a></td>
                    <td>\(c["due"]?.stringValue ?? "")</td><td class="num">\(total - undecided) of \(total)</td></tr>
                    """
            }
            let content: HTML =
                rows.isEmpty
                ? "<p>No access review is waiting for you.</p>"
                : """
                \(Self.tableOpen)<thead><tr><th scope="col">Review</th><th scope="col">Due</th>
                <th scope="col" class="num">Decided</th></tr></thead><tbody>\(rows)</tbody></table></div>
                """
            return page("Access reviews", s, content)
        }
    }

    func reviewPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let r = try api.call(.get, "/reviews/\(id)/items", as: s.principal, requestID: ctx.requestID).json
            let review = r.objectValue ?? JSONObject()
            let items = (review["items"]?.arrayValue ?? []).compactMap(\.objectValue)
            let rows: [HTML] = items.map { reviewRow($0) }
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            let content: HTML = """
                \(done)<p>Due \(review["due"]?.stringValue ?? ""). Decide each item: keep the access, or revoke it
                with a reason. The recommendation compares the person with colleagues of the same title and site;
                it is never applied by itself.</p>
                <form method="post" action="/console/reviews/\(id)/decide">\(Self.csrfField(s))
                \(Self.tableOpen)<thead><tr>
                <th scope="col"><input type="checkbox" id="all" data-select-all="item">
                <label for="all" class="visually-hidden">Select every undecided item</label></th>
                <th scope="col">Person</th><th scope="col">Package</th><th scope="col">Context</th>
                <th scope="col">Recommendation</th><th scope="col">Decision</th></tr></thead>
                <tbody>\(rows)</tbody></table></div>
                <p><label for="reason">Reason (kept in the report)</label>
                <input id="reason" name="reason" type="text" maxlength="1000" required></p>
                <p><button type="submit" name="decision" value="approve">Keep the selected access</button>
                <button type="submit" name="decision" value="revoke" class="danger"
                data-confirm="Revoke the selected access? Where it is someone's last package on a system, their \
                account there is disabled.">Revoke the selected access</button></p></form>
                """
            return page(review["name"]?.stringValue ?? "Access review", s, content)
        }
    }

    private func reviewRow(_ i: JSONObject) -> HTML {
        let seq = Int(i["seq"]?.numberValue?.int64 ?? 0)
        let c = i["context"]?.objectValue ?? JSONObject()
        let peers = c["peers"]?.objectValue ?? JSONObject()
        let share = peers["share"]?.numberValue?.double ?? 0
        let peopleCount = Int(peers["people"]?.numberValue?.int64 ?? 0)
        let recommendation: HTML =
            peopleCount < 3
            ? "<span class=\"muted\">too few colleagues to compare</span>"
            : share >= 0.7
                ? "<span class=\"status-ok\">keep: \(Int((share * 100).rounded()))% of colleagues hold it</span>"
                : "<span class=\"status-warning\">check: \(Int((share * 100).rounded()))% of colleagues hold it</span>"
        let held = c["heldDays"]?.numberValue?.double.map { "held \(Int($0)) days" } ?? "held since before tracking"
        let decision = i["decision"]?.stringValue
        let select: HTML =
            decision == nil
            ? """
            <input type="checkbox" name="item" value="\(seq)" id="item-\(seq)">
            <label for="item-\(seq)" class="visually-hidden">Select item \(seq)</label>
            """ : .empty
        let who = i["displayName"]?.stringValue ?? i["userName"]?.stringValue ?? ""
        let (package, about) = (i["package"]?.stringValue ?? "", c["packageDescription"]?.stringValue ?? "")
        return """
            <tr><td>\(select)</td><td>\(who)<br><span class="muted">\(i["userName"]?.stringValue ?? "")</span></td>
            <td><strong>\(package)</strong><br>\(about)</td>
            <td>\(c["title"]?.stringValue ?? "") · \(c["site"]?.stringValue ?? "") · \(held)</td>
            <td>\(recommendation)</td><td>\(decision ?? "undecided")\(decisionReason(i))</td></tr>
            """
    }

    private func decisionReason(_ i: JSONObject) -> HTML {
        guard let r = i["reason"]?.stringValue, !r.isEmpty else { return .empty }
        return "<br><span class=\"muted\">\(r)</span>"
    }

    /// `POST /console/reviews/{id}/decide`: one decision and reason for the selected items.
    func decideReview(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let fields = try formFields(ctx.request)
            let items: [JSONValue] = fields.filter { $0.name == "item" }.compactMap { Int64($0.value) }.map {
                .number(JSONNumber(Int($0)))
            }
            guard !items.isEmpty else { throw SCIMError.invalidValue("select at least one item") }
            let f = try form(ctx.request)
            let body: JSONValue = .object(
                JSONObject([
                    "items": .array(items), "decision": .string(f["decision"] ?? ""),
                    "reason": .string(f["reason"] ?? ""),
                ]))
            let r = try api.call(
                .post, "/reviews/\(id)/decisions", body: body, as: s.principal, requestID: ctx.requestID)
            let decided = Int(r.json.objectValue?["decided"]?.numberValue?.int64 ?? 0)
            return redirect(
                "/console/reviews/\(HTTPForm.escape(id))?done="
                    + HTTPForm.escape("\(decided) of \(items.count) decided."))
        }
    }
}
