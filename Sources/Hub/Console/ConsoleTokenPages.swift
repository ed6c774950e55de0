// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/tokens`: the machines' bearer tokens (never a secret), when each expires
/// and was last used; create one (shown once; tokens that can change access wait for a
/// second administrator) and revoke one, both with an authenticator code. Built on
/// `/admin/tokens`.
extension ConsoleEndpoints {
    func tokensPage(_ ctx: RequestContext, created: HTML = .empty) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let tokens =
                try api.call(.get, "/admin/tokens", as: s.principal, requestID: ctx.requestID).json.objectValue?[
                    "tokens"]?.arrayValue ?? []
            let rows: [HTML] = tokens.compactMap(\.objectValue).map { t in
                let id = t["id"]?.stringValue ?? ""
                let scopes = (t["scopes"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                let revoked = t["revoked"]?.stringValue
                let action: HTML =
                    revoked == nil && s.has("admin")
                    ? """
                    <form method="post" action="/console/tokens/\(id)/revoke" class="inline">\(Self.csrfField(s))
                    <label for="code-\(id)" class="visually-hidden">Authenticator code</label>
                    <input id="code-\(id)" name="code" type="text" inputmode="numeric" size="6" required>
                    <button type="submit" class="danger">Revoke</button></form>
                    """ : .empty
                let (principal, created) = (t["principal"]?.stringValue ?? "", t["created"]?.stringValue ?? "")
                return """
                    <tr><td>\(principal)</td><td>\(scopes)</td><td>\(created)</td>
                    <td>\(t["expires"]?.stringValue ?? "never")</td><td>\(t["lastUsed"]?.stringValue ?? "")</td>
                    <td>\(revoked.map { "revoked \($0)" } ?? "active")</td><td>\(action)</td></tr>
                    """
            }
            let scopeBoxes: [HTML] = Scope.known.map { sc in
                """
                <label><input type="checkbox" name="scope" value="\(sc.rawValue)"> \(sc.rawValue)</label>
                """
            }
            let form: HTML =
                s.has("admin")
                ? """
                <h2>Create a token</h2>
                <form method="post" action="/console/tokens" class="stack">\(Self.csrfField(s))
                <label for="principal">Principal (a machine's name)</label>
                <input id="principal" name="principal" type="text" maxlength="256" required>
                <fieldset><legend>Scopes</legend>\(scopeBoxes)</fieldset>
                <label for="days">Expires after (days; empty: never)</label>
                <input id="days" name="days" type="number" min="1" max="3650">
                <label for="code">Authenticator code</label>
                <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
                <p><button type="submit">Create</button></p></form>
                """ : .empty
            return page(
                "Tokens", s,
                """
                \(created)\(Self.tableOpen)<thead><tr><th scope="col">Principal</th><th scope="col">Scopes</th>
                <th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Last used</th>
                <th scope="col">State</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
                <tbody>\(rows)</tbody></table></div>\(form)
                """)
        }
    }

    func createTokenFromPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let fields = try formFields(ctx.request)
            let f = try form(ctx.request)
            var body = JSONObject([
                "principal": .string(f["principal"] ?? ""),
                "scopes": .array(fields.filter { $0.name == "scope" }.map { .string($0.value) }),
            ])
            if let d = f["days"], !d.isEmpty {
                guard let days = Double(d), days.isFinite else {
                    throw SCIMError.invalidValue("'days' must be a number")
                }
                body["expiresInDays"] = .number(JSONNumber(days))
            }
            let r = try api.call(
                .post, "/admin/tokens", body: .object(body), as: s.principal, requestID: ctx.requestID,
                headers: [("X-ScimHub-TOTP", f["code"] ?? "")])
            let o = r.json.objectValue ?? JSONObject()
            let shown: HTML =
                o["token"]?.stringValue.map { t in
                    """
                    <p class="notice" role="status">The token, shown once: copy it now.</p><p><code>\(t)</code></p>
                    """
                }
                    ?? """
                    <p class="notice" role="status">A token that can change access waits for a second administrator:
                    request \(o["request"]?.stringValue ?? "").</p>
                    """
            return try tokensPage(ctx, created: shown)
        }
    }

    func revokeTokenFromPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            _ = try api.call(
                .post, "/admin/tokens/\(id)/revoke", as: s.principal, requestID: ctx.requestID,
                headers: [("X-ScimHub-TOTP", f["code"] ?? "")])
            return redirect("/console/tokens")
        }
    }
}
