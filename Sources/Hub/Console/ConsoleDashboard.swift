// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console`: the person's work first (approvals waiting, their requests), then what an
/// administrator or auditor watches (targets, holds, break-glass in force, reconciliations).
/// Each section renders one admin endpoint and is left out when the person may not read it.
extension ConsoleEndpoints {
    func dashboard(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let p = s.principal, rid = ctx.requestID
            var sections: [HTML] = []
            if let awaiting = try api.read("/admin/requests", query: [("awaiting", "me")], as: p, requestID: rid) {
                let n = awaiting["requests"]?.arrayValue?.count ?? 0
                sections.append(
                    """
                    <section class="card" aria-labelledby="approvals"><h2 id="approvals">Approvals waiting for you</h2>
                    <p class="figure">\(n)</p><p><a href="/console/requests#inbox">Open the approvals</a></p></section>
                    """)
            }
            if let mine = try api.read("/admin/requests", as: p, requestID: rid) {
                let open = (mine["requests"]?.arrayValue ?? []).filter {
                    $0.objectValue?["userName"]?.stringValue.map(Identifier.canonical) == Identifier.canonical(p.name)
                        && ["pending", "granted"].contains($0.objectValue?["state"]?.stringValue ?? "")
                }
                sections.append(
                    """
                    <section class="card" aria-labelledby="mine"><h2 id="mine">Your requests in progress</h2>
                    <p class="figure">\(open.count)</p><p><a href="/console/requests">Request access</a></p></section>
                    """)
            }
            if let inbox = try api.read("/reviews", as: p, requestID: rid) {
                let undecided = (inbox["campaigns"]?.arrayValue ?? []).reduce(0) {
                    $0 + Int($1.objectValue?["undecided"]?.numberValue?.int64 ?? 0)
                }
                sections.append(
                    card(
                        "reviews", "Review items waiting for you", "\(undecided)", "/console/reviews",
                        "Open your reviews"))
            }
            if let runs = try api.read("/admin/reconciliations", as: p, requestID: rid) {
                sections.append(lastRun(runs["runs"]?.arrayValue?.first?.objectValue))
            }
            if let expiring = try api.read(
                "/admin/credentials/expiring", query: [("within", "30d"), ("count", "0")], as: p, requestID: rid)
            {
                let n = Int(expiring["total"]?.numberValue?.int64 ?? 0)
                sections.append(card("licences", "Licences expiring in 30 days", "\(n)", nil, nil))
            }
            if let nodes = try api.read("/admin/nodes", as: p, requestID: rid) {
                let all = nodes["nodes"]?.arrayValue?.compactMap(\.objectValue) ?? []
                let alive = all.filter { $0["alive"] == .bool(true) }.count
                sections.append(card("nodes", "Hub nodes alive", "\(alive) of \(all.count)", nil, nil))
            }
            var content: HTML = "<div class=\"cards\">\(sections)</div>"
            if let targets = try api.read("/admin/targets", as: p, requestID: rid) {
                content = "\(content)\(targetsTable(targets["targets"]?.arrayValue ?? []))"
            }
            if let holds = try api.read("/admin/holds", as: p, requestID: rid) {
                let open = (holds["holds"]?.arrayValue ?? []).compactMap(\.objectValue).filter {
                    $0["state"]?.stringValue == "open"
                }
                content = "\(content)\(holdsSection(open))"
            }
            if let grants = try api.read("/admin/break-glass", query: [("state", "active")], as: p, requestID: rid) {
                content = "\(content)\(breakGlassSection(grants["grants"]?.arrayValue ?? []))"
            }
            return page("Dashboard", s, content)
        }
    }

    private func card(_ id: String, _ title: String, _ figure: String, _ link: String?, _ label: String?) -> HTML {
        let action: HTML = link.map { "<p><a href=\"\($0)\">\(label ?? "Open")</a></p>" } ?? .empty
        return """
            <section class="card" aria-labelledby="\(id)"><h2 id="\(id)">\(title)</h2>
            <p class="figure">\(figure)</p>\(action)</section>
            """
    }

    /// The last reconciliation: when, and its critical findings (leavers enabled, SoD, shared accounts).
    private func lastRun(_ run: JSONObject?) -> HTML {
        guard let run else {
            return card("last-run", "Last reconciliation", "none yet", "/console/reconciliations", "Start one")
        }
        var critical = 0
        for t in run["summary"]?.objectValue?["targets"]?.objectValue?.members ?? [] {
            for c in ["leaver-enabled", "sod-violation", "shared-account"] {
                critical += Int(t.value.objectValue?["counts"]?.objectValue?[c]?.numberValue?.int64 ?? 0)
            }
        }
        let id = run["id"]?.stringValue ?? ""
        return """
            <section class="card" aria-labelledby="last-run"><h2 id="last-run">Last reconciliation</h2>
            <p>\(run["created"]?.stringValue ?? "") (\(run["state"]?.stringValue ?? ""))</p>
            <p class="\(critical > 0 ? "status-critical" : "status-ok")">\(critical) critical finding(s)</p>
            <p><a href="/console/reconciliations/\(id)">Read the report</a></p></section>
            """
    }

    /// "up, 12 ms at 10:42:07" or "down: the reason", from `GET /admin/targets`' probe.
    static func probeCell(_ p: JSONObject?) -> HTML {
        guard let p, let up = p["up"]?.boolValue else { return "not yet probed" }
        let at = p["checkedAt"]?.stringValue ?? ""
        let time = at.count >= 19 ? String(at.dropFirst(11).prefix(8)) : at
        guard up else { return "<span class=\"status-critical\">down</span>: \(p["error"]?.stringValue ?? "")" }
        return "up, \(Int(p["milliseconds"]?.numberValue?.int64 ?? 0)) ms at \(time)"
    }

    func targetsTable(_ targets: [JSONValue]) -> HTML {
        let rows: [HTML] = targets.compactMap(\.objectValue).map { t in
            let health = t["health"]?.stringValue ?? "unknown"
            let cls = health == "healthy" ? "status-ok" : health == "degraded" ? "status-warning" : "status-critical"
            let oldest = t["oldestPendingSeconds"]?.numberValue?.double.map { "\(Int($0)) s" } ?? "none"
            return """
                <tr><th scope="row">\(t["name"]?.stringValue ?? "")</th><td class="\(cls)">\(health)</td>
                <td>\(Self.probeCell(t["probe"]?.objectValue))</td>
                <td class="num">\(Int(t["queueDepth"]?.numberValue?.int64 ?? 0))</td>
                <td class="num">\(Int(t["deadLetters"]?.numberValue?.int64 ?? 0))</td>
                <td class="num">\(Int(t["heldJobs"]?.numberValue?.int64 ?? 0))</td><td>\(oldest)</td></tr>
                """
        }
        return """
            <h2>Targets</h2>\(Self.tableOpen)<thead><tr><th scope="col">Target</th>
            <th scope="col">Health</th><th scope="col">Last probe</th><th scope="col" class="num">Queued</th>
            <th scope="col" class="num">Dead letters</th>
            <th scope="col" class="num">Held</th><th scope="col">Oldest pending change</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }

    private func holdsSection(_ open: [JSONObject]) -> HTML {
        guard !open.isEmpty else { return "<h2>Feed holds</h2><p class=\"status-ok\">No access removals are held.</p>" }
        let items: [HTML] = open.map { h in
            "<li class=\"status-critical\">\(h["feed"]?.stringValue ?? ""): \(h["reason"]?.stringValue ?? "")</li>"
        }
        return "<h2>Feed holds</h2><ul>\(items)</ul>"
    }

    private func breakGlassSection(_ grants: [JSONValue]) -> HTML {
        let rows: [HTML] = grants.compactMap(\.objectValue).map { g in
            """
            <tr><td>\(g["userName"]?.stringValue ?? "")</td><td>\(g["package"]?.stringValue ?? "")</td>
            <td>\(g["grantedBy"]?.stringValue ?? "")</td><td>\(g["expires"]?.stringValue ?? "")</td></tr>
            """
        }
        guard !rows.isEmpty else { return "<h2>Break-glass in force</h2><p>None.</p>" }
        return """
            <h2>Break-glass in force</h2>\(Self.tableOpen)<thead><tr><th scope="col">Person</th>
            <th scope="col">Package</th><th scope="col">Granted by</th><th scope="col">Until</th></tr></thead>
            <tbody>\(rows)</tbody></table></div>
            """
    }
}
