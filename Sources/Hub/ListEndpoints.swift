// SPDX-License-Identifier: Apache-2.0
import HubBase
import HTTPServer
import JSONCore
import SCIM
import Store

/// Listing, filtering, sorting and paging (RFC 7644 §3.4.2, §3.4.3).
extension SCIMEndpoints {
    func list(_ type: SCIMResourceType, _ query: ListQuery, _ ctx: RequestContext) throws -> HTTPResponse {
        try runQuery([type], query, ctx, strict: true)
    }

    func search(_ type: SCIMResourceType, _ ctx: RequestContext) throws -> HTTPResponse {
        try runQuery([type], try ListQuery(searchRequest: try jsonBody(ctx.request)), ctx, strict: true)
    }

    /// `POST /.search` at the root: every resource type (RFC 7644 §3.4.3). A filter that
    /// names an attribute one type lacks matches nothing of that type.
    func searchAll(_ ctx: RequestContext) throws -> HTTPResponse {
        try runQuery(
            registry.resourceTypes, try ListQuery(searchRequest: try jsonBody(ctx.request)), ctx, strict: false)
    }

    /// Sort key of one resource; missing values sort after all others.
    private enum SortKey: Comparable {
        case number(Double), string(String), missing
    }

    private struct Plan {
        let type: SCIMResourceType
        let filter: SCIMFilter?
        let sortPath: AttributePath?
    }

    private func runQuery(_ types: [SCIMResourceType], _ query: ListQuery, _ ctx: RequestContext, strict: Bool) throws
        -> HTTPResponse
    {
        var plans: [Plan] = []
        var firstError: SCIMError? = nil
        for type in types {
            do {
                let filter = try query.filterText.map { try SCIMFilter.parse($0, for: type) }
                var sortPath: AttributePath? = nil
                if let s = query.sortBy {
                    do { sortPath = try AttributePath.resolve(s, in: type) } catch {
                        throw SCIMError.invalidValue("sortBy: \(error.detail)")
                    }
                    if sortPath?.leaf.returned == .never {
                        throw SCIMError.invalidValue("sortBy: '\(s.prefix(100))' cannot be sorted on")
                    }
                }
                plans.append(Plan(type: type, filter: filter, sortPath: sortPath))
            } catch let e as SCIMError {
                if strict { throw e }
                firstError = firstError ?? e
            }
        }
        if plans.isEmpty, let e = firstError { throw e }

        let start = query.effectiveStartIndex
        let count = query.effectiveCount(default: config.listDefaultCount, max: config.listMaxCount)
        let sorted = query.sortBy != nil
        let (total, resources) = try store.read { conn -> (Int, [JSONValue]) in
            // Fast path: one type, no filter, no sort: the database pages directly.
            if plans.count == 1, plans[0].filter == nil, !sorted {
                let type = plans[0].type
                let total = try conn.count(type: type.kind)
                let page = count == 0 ? [] : try conn.page(type: type.kind, offset: start - 1, limit: count)
                let projection = Projection(
                    attributes: query.attributes, excludedAttributes: query.excludedAttributes, type: type)
                return (total, try page.map { .object(try render($0, type, conn, projection, ctx.baseURL)) })
            }
            // Otherwise collect (plan, seq, key) for every match, then fetch only the page.
            var matches: [(plan: Int, seq: Int64, key: SortKey)] = []
            for (pi, plan) in plans.enumerated() {
                let needsComputed = plan.filter.map { $0.references("groups") || $0.references("members") } ?? false
                let needsMeta = plan.filter?.references("meta") ?? false
                let consider = { (r: StoredResource) throws in
                    var doc: JSONObject? = nil
                    if let f = plan.filter {
                        let d = try self.evaluationDoc(
                            r, plan.type, conn, ctx.baseURL, computed: needsComputed, meta: needsMeta)
                        guard f.matches(d) else { return }
                        doc = d
                    }
                    var key = SortKey.missing
                    if let sp = plan.sortPath {
                        let d =
                            try doc
                            ?? self.evaluationDoc(
                                r, plan.type, conn, ctx.baseURL,
                                computed: sp.attribute.name == "groups" || sp.attribute.name == "members",
                                meta: sp.attribute.name == "meta")
                        key = Self.sortKey(d, sp)
                    }
                    matches.append((pi, r.seq, key))
                }
                if let f = plan.filter, let hint = IndexHint.from(f, type: plan.type.name) {
                    for r in try conn.candidates(type: plan.type.kind, hint: hint) { try consider(r) }
                } else {
                    try conn.scan(type: plan.type.kind) {
                        try consider($0); return true
                    }
                }
            }
            if sorted {
                let descending = query.sortOrder == .descending
                // Stable: ties keep listing order. Missing values go last either way.
                matches.sort { a, b in
                    if a.key == b.key { return (a.plan, a.seq) < (b.plan, b.seq) }
                    if a.key == .missing { return false }
                    if b.key == .missing { return true }
                    return descending ? a.key > b.key : a.key < b.key
                }
            }
            let from = min(start - 1, matches.count)
            let to = min(from + count, matches.count)
            var page: [JSONValue] = []
            for m in matches[from..<to] {
                let type = plans[m.plan].type
                guard let r = try conn.fetch(seq: m.seq) else { continue }
                let projection = Projection(
                    attributes: query.attributes, excludedAttributes: query.excludedAttributes, type: type)
                page.append(.object(try render(r, type, conn, projection, ctx.baseURL)))
            }
            return (matches.count, page)
        }
        // RFC 7644 §3.4.2: integers; itemsPerPage is the number returned.
        let body = JSONObject([
            "schemas": .array([.string(SCIMSchemaURN.listResponse)]),
            "totalResults": .int(total),
            "startIndex": .int(start),
            "itemsPerPage": .int(resources.count),
            "Resources": .array(resources),
        ])
        return jsonResponse(200, .object(body))
    }

    /// The document a filter is evaluated on: stored attributes plus `id`, and computed
    /// attributes or `meta` only when the filter mentions them.
    private func evaluationDoc(
        _ r: StoredResource, _ type: SCIMResourceType, _ conn: any StoreSession, _ baseURL: String,
        computed: Bool, meta needsMeta: Bool
    ) throws -> JSONObject {
        var d: JSONObject
        if computed {
            d = try fullResource(r, type, conn, baseURL, computed: true)
        } else {
            d = r.doc
            d["id"] = .string(r.id)
        }
        if needsMeta { d["meta"] = meta(r, type, baseURL) }
        return d
    }

    private static func sortKey(_ doc: JSONObject, _ path: AttributePath) -> SortKey {
        guard var v = doc.topValue(path) else { return .missing }
        if let arr = v.arrayValue {
            // Multi-valued: the primary value, else the first (RFC 7644 §3.4.2.3).
            guard let chosen = arr.first(where: { $0.objectValue?["primary"]?.boolValue == true }) ?? arr.first else {
                return .missing
            }
            v = chosen
        }
        var leaf = path.leaf
        if let sub = path.subAttribute ?? (path.attribute.type == .complex ? path.attribute.subAttribute("value") : nil)
        {
            guard let inner = v.objectValue?[sub.name] else { return .missing }
            v = inner
            leaf = sub
        }
        switch v {
        case .string(let s):
            if leaf.type == .dateTime, let t = Timestamp.parse(s) { return .number(t) }
            return .string(leaf.caseExact ? s : s.lowercased())
        case .number(let n): return n.double.map { .number($0) } ?? .missing
        case .bool(let b): return .number(b ? 1 : 0)
        default: return .missing
        }
    }
}
