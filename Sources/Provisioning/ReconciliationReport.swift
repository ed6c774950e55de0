// SPDX-License-Identifier: Apache-2.0
import JSONCore
import Store

/// A run's report as JSON, CSV or one self-contained HTML page. Reports carry only what
/// their purpose needs: person id, user name, display name, target, account id, category,
/// and the entitlement or attribute name; never attribute values or other personal data.
public enum ReconciliationReport {
    public enum Format: String, Sendable { case json, csv, html }

    static var order: [String] { FindingCategory.allCases.map(\.rawValue) }

    public static func render(_ run: ReconciliationRunRecord, format: Format, store: any HubStore) throws -> [UInt8] {
        switch format {
        case .json: return try json(run, store)
        case .csv: return try csv(run, store)
        case .html: return try html(run, store)
        }
    }

    static func json(_ run: ReconciliationRunRecord, _ store: any HubStore) throws -> [UInt8] {
        var items: [JSONValue] = []
        try store.read { conn in
            try conn.findings(runID: run.id, categoryOrder: order) { f in
                var o = JSONObject([
                    "target": .string(f.target), "category": .string(f.category), "userName": .string(f.userName),
                ])
                o["severity"] = .string(
                    FindingCategory(rawValue: f.category)?.isCritical == true ? "critical" : "normal")
                if let v = f.personID { o["personId"] = .string(v) }
                if let v = f.displayName { o["displayName"] = .string(v) }
                if let v = f.accountID { o["accountId"] = .string(v) }
                if let v = f.detail {
                    o[f.category == FindingCategory.attributeDrift.rawValue ? "attribute" : "detail"] = .string(v)
                }
                if !f.entitlements.isEmpty { o["entitlements"] = .array(f.entitlements.map { .string($0) }) }
                items.append(.object(o))
                return true
            }
        }
        var body = ReconciliationRuns.describe(run)
        body["signOff"] = try ReconciliationRuns.signOffJSON(run.id, store)
        body["findings"] = .array(items)
        body["permissionCreep"] = .array(try permissionCreep(run, store: store))
        return JSONWriter().write(.object(body))
    }

    /// Permission creep: per person, what they hold beyond their current packages (entitlements
    /// no package grants, accounts enabled without a package) and break-glass still in force,
    /// from a run's findings. People in user-name order.
    public static func permissionCreep(_ run: ReconciliationRunRecord, store: any HubStore) throws -> [JSONValue] {
        struct Person { var userName: String; var displayName: String?; var items: [JSONValue] = [] }
        var people: [String: Person] = [:]
        try store.read { conn in
            try conn.findings(runID: run.id) { f in
                guard let pid = f.personID,
                    f.category == FindingCategory.overPrivileged.rawValue
                        || f.category == FindingCategory.breakGlass.rawValue
                else { return true }
                var p = people[pid] ?? Person(userName: f.userName, displayName: f.displayName)
                p.items.append(
                    .object(
                        JSONObject([
                            "target": .string(f.target), "kind": .string(f.category),
                            "entitlement": .string(f.detail ?? ""),
                        ])))
                people[pid] = p
                return true
            }
        }
        return people.sorted { $0.value.userName < $1.value.userName }.map { id, p in
            .object(
                JSONObject([
                    "personId": .string(id), "userName": .string(p.userName),
                    "displayName": p.displayName.map { .string($0) } ?? .null,
                    "beyondRole": .array(p.items),
                ]))
        }
    }

    static func csv(_ run: ReconciliationRunRecord, _ store: any HubStore) throws -> [UInt8] {
        var out = "target,severity,category,personId,userName,displayName,accountId,detail,entitlements\r\n"
        try store.read { conn in
            try conn.findings(runID: run.id, categoryOrder: order) { f in
                let severity = FindingCategory(rawValue: f.category)?.isCritical == true ? "critical" : "normal"
                out +=
                    [
                        f.target, severity, f.category, f.personID ?? "", f.userName, f.displayName ?? "",
                        f.accountID ?? "", f.detail ?? "", f.entitlements.joined(separator: "; "),
                    ]
                    .map(csvField).joined(separator: ",") + "\r\n"
                return true
            }
        }
        return Array(out.utf8)
    }

    /// A finding's detail for people: an orphan also says what it holds.
    static func detail(_ f: FindingRecord) -> String {
        guard !f.entitlements.isEmpty else { return f.detail ?? "" }
        return (f.detail.map { $0 + "; " } ?? "") + "holds " + f.entitlements.joined(separator: ", ")
    }

    /// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet
    /// does not run a name as a formula (CSV injection).
    public static func csvField(_ s: String) -> String {
        var v = s
        if let first = v.first, "=+-@\t\r".contains(first) { v = "'" + v }
        guard v.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return v }
        return "\"" + v.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func html(_ run: ReconciliationRunRecord, _ store: any HubStore) throws -> [UInt8] {
        let d = ReconciliationRuns.describe(run)
        let summary = d["summary"]?.objectValue ?? JSONObject()
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>ScimHub reconciliation \(esc(run.id))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}\
            h2{font-size:1.15em;margin-top:2em}
            table{border-collapse:collapse;margin:.5em 0 1em}\
            th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left}
            th{background:#eee}td.n{text-align:right}.critical{background:#fde2e2;font-weight:600}.muted{color:#666}
            @media print{body{margin:0}h2{page-break-before:auto}}
            </style></head><body>
            <h1>Reconciliation report</h1>
            <p>Run <code>\(esc(run.id))</code> · mode \(esc(run.mode)) · state \(esc(run.state.rawValue)) \
            · policy version \(run.policyVersion.map(String.init) ?? "unknown") \
            · requested by \(esc(run.requestedBy))
            · started \(esc(d["created"]?.stringValue ?? "")) \
            · finished \(esc(d["finished"]?.stringValue ?? "—"))</p>
            """
        if let reason = summary["reason"]?.stringValue { h += "<p class=\"critical\">\(esc(reason))</p>\n" }
        h += "<h2>Summary</h2>\n<table><tr><th>target</th><th>state</th><th>accounts</th>"
        for c in FindingCategory.allCases { h += "<th>\(esc(c.rawValue))</th>" }
        h += "</tr>\n"
        for m in summary["targets"]?.objectValue?.members ?? [] {
            let t = m.value.objectValue ?? JSONObject()
            let counts = t["counts"]?.objectValue ?? JSONObject()
            h +=
                "<tr><td>\(esc(m.key))</td><td>"
                + "\(esc(t["state"]?.stringValue ?? ""))"
                + "\(t["reason"]?.stringValue.map { ": " + esc($0) } ?? "")</td>"
            h += "<td class=\"n\">\(t["accounts"]?.numberValue?.int64 ?? 0)</td>"
            for c in FindingCategory.allCases {
                let n = counts[c.rawValue]?.numberValue?.int64 ?? 0
                h += "<td class=\"n\(c.isCritical && n > 0 ? " critical" : "")\">\(n)</td>"
            }
            h += "</tr>\n"
        }
        h += "</table>\n"
        var current: (String, String)? = nil
        try store.read { conn in
            try conn.findings(runID: run.id, categoryOrder: order) { f in
                if current == nil || current! != (f.target, f.category) {
                    if current != nil { h += "</table>\n" }
                    current = (f.target, f.category)
                    let critical = FindingCategory(rawValue: f.category)?.isCritical == true
                    h +=
                        "<h2\(critical ? " class=\"critical\"" : "")>\(esc(f.target)): "
                        + "\(esc(f.category))\(critical ? " (critical)" : "")</h2>\n"
                    h +=
                        "<table><tr><th>user name</th><th>display name</th><th>person id</th><th>account id</th>"
                        + "<th>\(f.category == FindingCategory.attributeDrift.rawValue ? "attribute" : "detail")"
                        + "</th></tr>\n"
                }
                h +=
                    "<tr><td>\(esc(f.userName))</td><td>\(esc(f.displayName ?? ""))</td>"
                    + "<td class=\"muted\">\(esc(f.personID ?? "—"))</td>"
                h += "<td class=\"muted\">\(esc(f.accountID ?? "—"))</td><td>\(esc(Self.detail(f)))</td></tr>\n"
                return true
            }
        }
        if current != nil { h += "</table>\n" } else { h += "<p>No findings.</p>\n" }
        let creep = try permissionCreep(run, store: store)
        h += "<h2>Permission creep by person</h2>\n"
        if creep.isEmpty {
            h += "<p>Nobody holds more than their current role grants.</p>\n"
        } else {
            h += "<table><tr><th>user name</th><th>display name</th><th>beyond the current role</th></tr>\n"
            for c in creep {
                let o = c.objectValue ?? JSONObject()
                let items = (o["beyondRole"]?.arrayValue ?? []).compactMap(\.objectValue).map {
                    "\($0["target"]?.stringValue ?? ""): \($0["entitlement"]?.stringValue ?? "")"
                        + "\($0["kind"]?.stringValue == "break-glass" ? " (break-glass)" : "")"
                }
                h +=
                    "<tr><td>\(esc(o["userName"]?.stringValue ?? ""))</td>"
                    + "<td>\(esc(o["displayName"]?.stringValue ?? ""))</td>"
                    + "<td>\(esc(items.joined(separator: "; ")))</td></tr>\n"
            }
            h += "</table>\n"
        }
        h +=
            "<p class=\"muted\">Excluded accounts (allow-list) are counted in the summary and not listed. "
            + "Generated by ScimHub.</p>\n</body></html>\n"
        return Array(h.utf8)
    }

    /// HTML text escaping (names may hold any character).
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }
}
