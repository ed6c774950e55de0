// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/policy`: the version in force and the history; a candidate pasted in is
/// previewed (who gains and loses what, new separation-of-duties conflicts, whether the
/// change guard would hold it) with nothing stored, then applied with an authenticator code.
/// Built on `/admin/policy`, `/admin/policy/versions`, `POST /admin/policy/preview` and
/// `PUT /admin/policy`.
extension ConsoleEndpoints {
    func policyPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let current = try api.read("/admin/policy", as: p, requestID: rid)
            let versions = try api.read("/admin/policy/versions", as: p, requestID: rid)?["versions"]?.arrayValue ?? []
            let rows: [HTML] = versions.compactMap(\.objectValue).map { v in
                let (number, created) = (Int(v["version"]?.numberValue?.int64 ?? 0), v["created"]?.stringValue ?? "")
                return """
                    <tr><td class="num">\(number)</td><td>\(created)</td>
                    <td>\(v["author"]?.stringValue ?? "")</td><td>\(v["state"]?.stringValue ?? "")</td>
                    <td>\(v["heldReason"]?.stringValue ?? "")</td></tr>
                    """
            }
            let inForce: HTML =
                current.map { c in
                    """
                    <p>In force: version \(Int(c["version"]?.numberValue?.int64 ?? 0)) by
                    \(c["author"]?.stringValue ?? ""),
                    \(c["created"]?.stringValue ?? "").</p>
                    """
                } ?? "<p>No policy version is stored.</p>"
            let candidate: HTML =
                s.has("admin")
                ? """
                <h2>Preview a change</h2>
                <form method="post" action="/console/policy/preview" class="stack">\(Self.csrfField(s))
                <label for="policy">Candidate policy (JSON)</label>
                <textarea id="policy" name="policy" rows="12" required></textarea>
                <p><button type="submit">Preview: nothing is changed</button></p></form>
                """ : .empty
            return page(
                "Policy", s,
                """
                \(inForce)\(candidate)<h2>History</h2>\(Self.tableOpen)<thead><tr>
                <th scope="col" class="num">Version</th><th scope="col">Stored</th><th scope="col">By</th>
                <th scope="col">State</th><th scope="col">Held because</th>
                </tr></thead><tbody>\(rows)</tbody></table></div>
                """)
        }
    }

    /// `POST /console/policy/preview`: the preview, and the form that applies the same text.
    func previewPolicyFromPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let text = try form(ctx.request)["policy"] ?? ""
            let r =
                try api.call(
                    .post, "/admin/policy/preview", bytes: Array(text.utf8), as: s.principal, requestID: ctx.requestID
                ).json.objectValue ?? JSONObject()
            func n(_ k: String) -> Int { Int(r[k]?.numberValue?.int64 ?? 0) }
            let packages: [HTML] = (r["packages"]?.objectValue?.members ?? []).compactMap { m in
                let o = m.value.objectValue ?? JSONObject()
                let (gained, lost) = (o["gained"]?.numberValue?.int64 ?? 0, o["lost"]?.numberValue?.int64 ?? 0)
                guard gained + lost > 0 else { return nil }
                return """
                    <tr><th scope="row">\(m.key)</th><td class="num">\(Int(gained))</td>
                    <td class="num">\(Int(lost))</td></tr>
                    """
            }
            let held = r["guard"]?.objectValue?["wouldHold"]?.boolValue == true
            let why = r["guard"]?.objectValue?["reason"]?.stringValue ?? ""
            let verdict: HTML =
                held
                ? "<p class=\"status-critical\" role=\"alert\">The change guard would hold it: \(why)</p>"
                : "<p class=\"status-ok\">Within the change guard's limit.</p>"
            let conflicts = r["newSoDConflicts"]?.objectValue?.members.map(\.key) ?? []
            return page(
                "Policy preview", s,
                """
                <p>\(n("people")) people: \(n("gainingAccess")) would gain access, \(n("losingAccess")) would lose
                access.</p>
                \(verdict)
                <p>New separation-of-duties conflicts:
                \(conflicts.isEmpty ? "none" : conflicts.joined(separator: ", ")).</p>
                \(Self.tableOpen)<thead><tr><th scope="col">Package</th><th scope="col" class="num">Gain</th>
                <th scope="col" class="num">Lose</th></tr></thead><tbody>\(packages)</tbody></table></div>
                <h2>Apply it</h2>
                <form method="post" action="/console/policy/apply" class="stack">\(Self.csrfField(s))
                <input type="hidden" name="policy" value="\(text)">
                <label for="code">Authenticator code</label>
                <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
                <p><button type="submit" class="danger">Apply this policy</button></p></form>
                """)
        }
    }

    /// `POST /console/policy/apply`: `PUT /admin/policy` with the step-up code.
    func applyPolicyFromPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            let r = try api.call(
                .put, "/admin/policy", bytes: Array((f["policy"] ?? "").utf8), as: s.principal,
                requestID: ctx.requestID, headers: [("X-ScimHub-TOTP", f["code"] ?? "")])
            let o = r.json.objectValue ?? JSONObject()
            let version = Int(o["version"]?.numberValue?.int64 ?? 0)
            let state = o["state"]?.stringValue ?? ""
            let held = state == "held" ? " It waits for a confirmation: the change guard held it." : ""
            return page(
                "Policy applied", s,
                """
                <p role="status">Stored as version \(version) (\(state)).\(held)</p>
                <p><a href="/console/policy">Back to the policy</a></p>
                """)
        }
    }
}
