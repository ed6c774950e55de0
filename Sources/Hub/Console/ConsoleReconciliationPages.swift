// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/reconciliations`: the runs, and (administrators) start one;
/// `GET /console/reconciliations/{id}`: a run's summary per target, its findings with the
/// critical ones first, the policy version it judged by, and the compliance officer's
/// sign-off. The page prints as the evidence (the stylesheet's print rules). Built on
/// `/admin/reconciliations`.
extension ConsoleEndpoints {
    func reconciliationsPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let runs =
                try api.call(.get, "/admin/reconciliations", as: s.principal, requestID: ctx.requestID).json
                .objectValue?["runs"]?.arrayValue ?? []
            let rows: [HTML] = runs.compactMap(\.objectValue).map { r in
                let id = r["id"]?.stringValue ?? ""
                let version = r["policyVersion"]?.numberValue?.int64.map { "v\($0)" } ?? "—"
                return """
                    <tr><td><a href="/console/reconciliations/\(id)">\(r["created"]?.stringValue ?? "")</a></td>
                    <td>\(r["state"]?.stringValue ?? "")</td><td>\(r["mode"]?.stringValue ?? "")</td>
                    <td>\(version)</td><td>\(r["requestedBy"]?.stringValue ?? "")</td></tr>
                    """
            }
            let start: HTML =
                s.has("admin")
                ? """
                <form method="post" action="/console/reconciliations">\(Self.csrfField(s))
                <button type="submit">Start a reconciliation (report only)</button></form>
                """ : .empty
            return page(
                "Reconciliation", s,
                """
                \(start)\(Self.tableOpen)<thead><tr><th scope="col">Started</th><th scope="col">State</th>
                <th scope="col">Mode</th><th scope="col">Policy</th><th scope="col">By</th></tr></thead>
                <tbody>\(rows)</tbody></table></div>
                """)
        }
    }

    func startReconciliationFromPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let r = try api.call(
                .post, "/admin/reconciliations", body: .object(JSONObject(["mode": .string("report")])),
                as: s.principal, requestID: ctx.requestID)
            return redirect("/console/reconciliations/\(HTTPForm.escape(r.json.objectValue?["id"]?.stringValue ?? ""))")
        }
    }

    func reconciliationPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            let run = try api.call(.get, "/admin/reconciliations/\(id)", as: p, requestID: rid).json.objectValue
            let state = run?["state"]?.stringValue ?? ""
            guard state == "done" else {
                return page(
                    "Reconciliation", s,
                    "<p role=\"status\">This run is \(state). <a href=\"/console/reconciliations/\(id)\">Reload</a></p>"
                )
            }
            let report =
                try api.call(
                    .get, "/admin/reconciliations/\(id)/report", query: [("format", "json")], as: p, requestID: rid
                ).json.objectValue ?? JSONObject()
            let version =
                report["policyVersion"]?.numberValue?.int64.map { "policy version \($0)" } ?? "no policy version"
            let content: HTML = """
                <p>Run \(id), started \(report["created"]?.stringValue ?? ""), finished \
                \(report["finished"]?.stringValue ?? ""), judged by \(version).</p>
                \(summaryTable(report["summary"]?.objectValue?["targets"]?.objectValue ?? JSONObject()))
                <h2>Findings</h2>\(findingsTable(report["findings"]?.arrayValue ?? []))
                <h2>Sign-off</h2>\(signOffSection(id, report["signOff"]?.objectValue, s))
                """
            return page("Reconciliation report", s, content)
        }
    }

    private func summaryTable(_ targets: JSONObject) -> HTML {
        let rows: [HTML] = targets.members.map { m in
            let t = m.value.objectValue ?? JSONObject()
            let counts = (t["counts"]?.objectValue?.members ?? []).compactMap { c -> String? in
                let n = c.value.numberValue?.int64 ?? 0
                return n > 0 ? "\(c.key) \(n)" : nil
            }
            return """
                <tr><th scope="row">\(m.key)</th><td>\(t["state"]?.stringValue ?? "")</td>
                <td class="num">\(Int(t["accounts"]?.numberValue?.int64 ?? 0))</td>
                <td>\(counts.isEmpty ? "in sync" : counts.joined(separator: ", "))</td></tr>
                """
        }
        return """
            \(Self.tableOpen)<thead><tr><th scope="col">Target</th><th scope="col">State</th>
            <th scope="col" class="num">Accounts</th><th scope="col">Findings</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }

    private func findingsTable(_ findings: [JSONValue]) -> HTML {
        guard !findings.isEmpty else {
            return "<p class=\"status-ok\">No findings: every account is as it should be.</p>"
        }
        let rows: [HTML] = findings.prefix(2000).compactMap(\.objectValue).map { f in
            let critical = f["severity"]?.stringValue == "critical"
            let severity: HTML =
                critical ? "<span class=\"status-critical\">critical</span>" : "<span class=\"muted\">normal</span>"
            let text = f["detail"]?.stringValue ?? f["attribute"]?.stringValue ?? ""
            // An orphan lists what it holds: access nobody answers for.
            let held = (f["entitlements"]?.arrayValue ?? []).compactMap(\.stringValue)
            let items: [HTML] = held.map { "<li>\($0)</li>" }
            let detail: HTML = held.isEmpty ? "\(text)" : "\(text); holds:<ul class=\"compact\">\(items)</ul>"
            let (category, target) = (f["category"]?.stringValue ?? "", f["target"]?.stringValue ?? "")
            return """
                <tr><td>\(severity)</td><td>\(category)</td><td>\(target)</td>
                <td>\(f["userName"]?.stringValue ?? "")</td><td>\(detail)</td></tr>
                """
        }
        let more: HTML =
            findings.count > 2000 ? "<p>Only the first 2,000 findings are shown; the CSV report has all.</p>" : .empty
        return """
            \(Self.tableOpen)<thead><tr><th scope="col">Severity</th><th scope="col">Category</th>
            <th scope="col">Target</th><th scope="col">Account</th><th scope="col">Detail</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>\(more)
            """
    }

    private func signOffSection(_ id: String, _ signOff: JSONObject?, _ s: ConsoleSessions.Current) -> HTML {
        if let o = signOff {
            return """
                <p>Signed off by <strong>\(o["by"]?.stringValue ?? "")</strong> at \(o["at"]?.stringValue ?? ""):
                \(o["comment"]?.stringValue ?? "")</p>
                """
        }
        guard s.has("auditor") || s.has("admin") else { return "<p>Not signed off yet.</p>" }
        return """
            <form method="post" action="/console/reconciliations/\(id)/sign-off" class="stack">\(Self.csrfField(s))
            <label for="comment">Comment (kept with the report and in the audit log)</label>
            <textarea id="comment" name="comment" rows="3" maxlength="2000" required></textarea>
            <p><button type="submit">Sign off this report</button></p></form>
            """
    }

    func signOffFromPage(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let f = try form(ctx.request)
            _ = try api.call(
                .post, "/admin/reconciliations/\(id)/sign-off",
                body: .object(JSONObject(["comment": .string(f["comment"] ?? "")])), as: s.principal,
                requestID: ctx.requestID)
            return redirect("/console/reconciliations/\(HTTPForm.escape(id))")
        }
    }
}
