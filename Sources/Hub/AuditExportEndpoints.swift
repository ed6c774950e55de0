// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import HubBase
import HubCrypto
import JSONCore
import SCIM
import Store

/// The audit chain for a SIEM: `GET /admin/audit/export?after=SEQ&count=N` streams entries
/// after `after` as NDJSON, each with its predecessor's hash and its own, so the receiver
/// can check the chain link by link; the cursor to resume from is in `X-ScimHub-Next-After`
/// (and a `Link: rel="next"` while pages are full). `GET /admin/audit/checkpoint` is the
/// last signed checkpoint of the head, to keep beside the export: a tail cut later no
/// longer reaches it (`scimhub audit verify --checkpoint HASH@SEQ`).
struct AuditExportEndpoints: FeatureEndpoints {
    let hub: HubContext
    let checkpointer: AuditCheckpointer?

    static let maxCount = 10_000

    var routes: [Route] {
        [
            Route.make("GET", "/admin/audit/export", .admin, query: ["after", "count"]) { ctx, _ in
                try self.export(ctx.request)
            },
            Route.make("GET", "/admin/audit/checkpoint", .admin) { _, _ in try self.checkpoint() },
        ]
    }

    func export(_ q: HTTPRequest) throws -> HTTPResponse {
        var after: Int64 = 0, count = 1000
        if let a = q.queryValue("after") {
            guard let n = Int64(a), n >= 0 else {
                throw SCIMError.invalidValue("'after' must be a non-negative integer")
            }
            after = n
        }
        if let c = q.queryValue("count") {
            guard let n = Int(c), (1...Self.maxCount).contains(n) else {
                throw SCIMError.invalidValue("'count' must be an integer in 1...\(Self.maxCount)")
            }
            count = n
        }
        let entries = try store.read {
            try $0.auditEntries(
                since: nil, until: nil, principal: nil, resourceID: nil, action: nil, afterSeq: after, limit: count)
        }
        var body: [UInt8] = []
        for e in entries {
            guard case .object(var o) = e.json else { continue }
            o["prevHash"] = .string(hexString(e.prevHash))
            body += JSONWriter().write(.object(o))
            body.append(0x0A)
        }
        let next = entries.last?.seq ?? after
        var r = HTTPResponse(status: 200, body: body)
        r.headers.append(("Content-Type", "application/x-ndjson"))
        r.headers.append(("X-ScimHub-Next-After", String(next)))
        if entries.count == count {
            r.headers.append(("Link", "</admin/audit/export?after=\(next)&count=\(count)>; rel=\"next\""))
        }
        return r
    }

    func checkpoint() throws -> HTTPResponse {
        guard let checkpointer else {
            throw SCIMError(status: 404, detail: "no signed checkpoints: the hub runs without --audit-key")
        }
        guard let c = checkpointer.latest else {
            throw SCIMError(status: 404, detail: "no checkpoint yet: the first is signed once the chain grows")
        }
        var r = HTTPResponse(status: 200, body: Array(c.line.utf8))
        r.headers.append(("Content-Type", "application/json"))
        return r
    }
}
