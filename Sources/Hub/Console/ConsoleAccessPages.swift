// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import JSONCore
import SCIM
import Store

/// `GET /console/access`: who has what, per package (what it grants on each target, how
/// many hold it); `GET /console/access/{package}`: its holders and since when. Prints as
/// evidence. Built on `/admin/access/packages`.
extension ConsoleEndpoints {
    func accessPage(_ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let packages =
                try api.call(.get, "/admin/access/packages", as: s.principal, requestID: ctx.requestID).json
                .objectValue?["packages"]?.arrayValue ?? []
            let rows: [HTML] = packages.compactMap(\.objectValue).map { p in
                let name = p["name"]?.stringValue ?? ""
                let grants = (p["grants"]?.objectValue?.members ?? []).map { m in
                    "\(m.key): " + (m.value.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
                }.joined(separator: "; ")
                let holders = Int(p["holders"]?.numberValue?.int64 ?? 0)
                let about = p["description"]?.stringValue ?? ""
                return """
                    <tr><th scope="row"><a href="/console/access/\(name)">\(name)</a></th>
                    <td>\(about)</td><td>\(grants)</td><td class="num">\(holders)</td></tr>
                    """
            }
            return page(
                "Who has what", s,
                """
                \(Self.tableOpen)<thead><tr><th scope="col">Package</th><th scope="col">What it is</th>
                <th scope="col">Grants</th><th scope="col" class="num">People</th></tr></thead>
                <tbody>\(rows)</tbody></table></div>
                """)
        }
    }

    func accessPackagePage(_ name: String, _ ctx: RequestContext) throws -> HTTPResponse {
        try signedIn(ctx) { s in
            let holders =
                try api.call(.get, "/admin/access/packages/\(name)", as: s.principal, requestID: ctx.requestID).json
                .objectValue?["holders"]?.arrayValue ?? []
            let rows: [HTML] = holders.compactMap(\.objectValue).map { h in
                let (id, user) = (h["personId"]?.stringValue ?? "", h["userName"]?.stringValue ?? "")
                return """
                    <tr><td><a href="/console/people/\(id)">\(user)</a></td>
                    <td>\(h["displayName"]?.stringValue ?? "")</td><td>\(h["since"]?.stringValue ?? "")</td></tr>
                    """
            }
            return page(
                "Holders of \(name)", s,
                """
                <p>\(rows.count) people hold it, longest first.</p>
                \(Self.tableOpen)<thead><tr><th scope="col">User name</th><th scope="col">Name</th>
                <th scope="col">Since</th></tr></thead><tbody>\(rows)</tbody></table></div>
                <p><a href="/console/access">Back to who has what</a></p>
                """)
        }
    }
}
