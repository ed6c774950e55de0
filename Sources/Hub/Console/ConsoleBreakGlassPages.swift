// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/break-glass`: grant emergency access (the named granter signed in, with an
/// authenticator code), the grants in force with the time left, end one early, and
/// (administrators) the post-use reviews. `GET /console/mfa`: enrol the authenticator those
/// codes come from. Built on `/admin/break-glass` and `/mfa/enrol`.
extension ConsoleEndpoints {
    func breakGlassPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let active =
                try api.read("/admin/break-glass", query: [("state", "active")], as: p, requestID: rid)?["grants"]?
                .arrayValue ?? []
            let now = clock.now()
            let rows: [HTML] = active.compactMap(\.objectValue).map { g in
                let id = g["id"]?.stringValue ?? ""
                let left = (g["expires"]?.stringValue).flatMap(Timestamp.parse).map { max(0, Int(($0 - now) / 60)) }
                return """
                    <tr><td>\(g["userName"]?.stringValue ?? "")</td><td>\(g["package"]?.stringValue ?? "")</td>
                    <td>\(g["grantedBy"]?.stringValue ?? "")</td><td>\(left.map { "\($0) min" } ?? "")</td>
                    <td><form method="post" action="/console/break-glass/\(id)/end">\(Self.csrfField(s))
                    <button type="submit" class="secondary">End now</button></form></td></tr>
                    """
            }
            let grants: HTML =
                rows.isEmpty
                ? "<p>No break-glass grant is in force.</p>"
                : """
                \(Self.tableOpen)<thead><tr><th scope="col">Person</th><th scope="col">Package</th>
                <th scope="col">Granted by</th><th scope="col">Time left</th>
                <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead><tbody>\(rows)</tbody>
                </table></div>
                """
            let done: HTML =
                ctx.request.queryValue("done").map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? .empty
            let reviews: HTML = s.has("admin") ? try reviewSection(s, ctx) : .empty
            return page(
                "Break-glass", s,
                "\(done)\(s.has("break-glass") ? grantForm(s) : .empty)<h2>In force</h2>\(grants)\(reviews)")
        }
    }

    /// Ended grants whose use awaits its review (by someone other than the person and the granter).
    private func reviewSection(_ s: ConsoleSessions.Current, _ ctx: RequestContext) throws -> HTML {
        let pending =
            try api.read(
                "/admin/break-glass", query: [("state", "pending-review")], as: s.principal, requestID: ctx.requestID
            )?["grants"]?.arrayValue ?? []
        let rows: [HTML] = pending.compactMap(\.objectValue).filter { $0["state"]?.stringValue == "ended" }.map { g in
            let id = g["id"]?.stringValue ?? ""
            return """
                <tr><td>\(g["userName"]?.stringValue ?? "")</td><td>\(g["package"]?.stringValue ?? "")</td>
                <td>\(g["grantedBy"]?.stringValue ?? "")</td><td>\(g["reason"]?.stringValue ?? "")</td>
                <td><form method="post" action="/console/break-glass/\(id)/review" class="stack">\(Self.csrfField(s))
                <label for="why-\(id)">Review note</label>
                <input id="why-\(id)" name="reason" type="text" maxlength="1000" required>
                <button type="submit" name="decision" value="justified">Justified</button>
                <button type="submit" name="decision" value="unjustified" class="danger">Not justified</button>
                </form></td></tr>
                """
        }
        guard !rows.isEmpty else { return "<h2>Awaiting review</h2><p>No use awaits its review.</p>" }
        return """
            <h2>Awaiting review</h2>\(Self.tableOpen)<thead><tr><th scope="col">Person</th><th scope="col">Package</th>
            <th scope="col">Granted by</th><th scope="col">Reason given</th><th scope="col">Review</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }

    func reviewBreakGlassFromPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            _ = try api.call(
                .post, "/admin/break-glass/\(id)/review",
                body: .object(
                    JSONObject(["decision": .string(f["decision"] ?? ""), "reason": .string(f["reason"] ?? "")])),
                as: s.principal, requestID: ctx.requestID)
            return redirect("/console/break-glass?done=" + HTTPForm.escape("The use was reviewed."))
        }
    }

    private func grantForm(_ s: ConsoleSessions.Current) -> HTML {
        let packages: [HTML] = (engine?.policy.packages ?? []).compactMap { p in
            p.breakGlassMaxHours.map { h in
                "<option value=\"\(p.name)\">\(p.name): \(p.description) (up to \(Int(h)) h)</option>"
            }
        }
        return """
            <h2>Grant emergency access</h2>
            <p>Every grant is provisioned at once, ends by itself, is announced, and is reviewed afterwards.
            <a href="/console/mfa">Set up your authenticator</a> first.</p>
            <form method="post" action="/console/break-glass" class="stack">\(Self.csrfField(s))
            <label for="userName">Colleague's user name</label>
            <input id="userName" name="userName" type="text" required maxlength="256">
            <label for="package">Package</label><select id="package" name="package">\(packages)</select>
            <label for="reason">Reason (no patient details)</label>
            <textarea id="reason" name="reason" rows="2" maxlength="1000" required></textarea>
            <label for="hours">Hours</label><input id="hours" name="hours" type="number" min="1" max="72" value="1">
            <label for="code">Authenticator code</label>
            <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
            <p><button type="submit" class="danger">Grant now</button></p></form>
            """
    }

    func grantBreakGlassFromPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            guard let hours = Double(f["hours"] ?? "1"), hours.isFinite else {
                throw SCIMError.invalidValue("'hours' must be a number")
            }
            let body: JSONValue = .object(
                JSONObject([
                    "userName": .string(f["userName"] ?? ""), "package": .string(f["package"] ?? ""),
                    "reason": .string(f["reason"] ?? ""), "hours": .number(JSONNumber(hours)),
                ]))
            _ = try api.call(
                .post, "/admin/break-glass", body: body, as: s.principal, requestID: ctx.requestID,
                headers: [("X-ScimHub-TOTP", f["code"] ?? "")])
            return redirect("/console/break-glass?done=" + HTTPForm.escape("Granted; provisioning now."))
        }
    }

    func endBreakGlassFromPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            _ = try api.call(.post, "/admin/break-glass/\(id)/end", as: s.principal, requestID: ctx.requestID)
            return redirect("/console/break-glass?done=" + HTTPForm.escape("Ended; the access is being taken back."))
        }
    }

    /// `GET /console/mfa`: the form; `POST /console/mfa`: enrols and shows the secret once.
    func mfaPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            if ctx.request.method == .post {
                let r = try api.call(.post, "/mfa/enrol", as: s.principal, requestID: ctx.requestID)
                let uri = r.json.objectValue?["otpauth"]?.stringValue ?? ""
                return page(
                    "Authenticator", s,
                    """
                    <p class="notice" role="status">Add this to your authenticator app now: it is shown once.</p>
                    <p><code id="otpauth">\(uri)</code></p>
                    """)
            }
            return page(
                "Authenticator", s,
                """
                <p>Privileged actions (a break-glass grant) need a code from an authenticator app (TOTP).</p>
                <form method="post" action="/console/mfa">\(Self.csrfField(s))
                <button type="submit">Set up my authenticator</button></form>
                """)
        }
    }
}
