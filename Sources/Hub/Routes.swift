// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import JSONCore
import SCIM
import Store

/// Who may call a route.
enum RouteAccess: Sendable {
    /// No token (`/healthz`).
    case open
    /// Any valid token.
    case authenticated
    /// A token holding any of these scopes; a refusal names the first.
    case anyOf([Scope])
}

/// One segment of a route's path: a fixed name, a SCIM resource type's endpoint
/// (`Users`, `Groups`: only those the schemas define), or any value.
enum RouteSegment: Sendable {
    case literal(String)
    case resourceType
    case parameter
}

/// One endpoint: method, path pattern, who may call it, the query parameters it reads, and
/// its handler. 404 and 405 (with `Allow`) come from the table, not from each handler.
struct Route: Sendable {
    let method: HTTPMethod
    let pattern: [RouteSegment]
    let access: RouteAccess
    /// Known query parameters; another one is a 400 naming it. nil: not checked (SCIM
    /// endpoints, where clients send what RFC 7644 and their own habits suggest).
    let query: Set<String>?
    /// Gets the path's resource types and parameters in order.
    let handler: @Sendable (HubApp, RequestContext, [String]) throws -> HTTPResponse
}

/// The hub's endpoints in one table.
struct RouteTable: Sendable {
    let routes: [Route]
    let resourceEndpoints: Set<String>
    /// Routes by their number of segments: matching runs on every request, so it looks only
    /// at patterns that can fit.
    private let bySegmentCount: [Int: [Route]]

    init(routes: [Route], resourceEndpoints: Set<String>) {
        self.routes = routes
        self.resourceEndpoints = resourceEndpoints
        bySegmentCount = Dictionary(grouping: routes, by: \.pattern.count)
    }

    enum Match {
        case found(Route, [String])
        case methodNotAllowed([HTTPMethod])
        case notFound
    }

    /// The route for a request. When several patterns fit, the one with the most fixed
    /// segments wins (`/Users/.search` over `/Users/{id}`); its path's other methods make the 405.
    func match(method: HTTPMethod, path: String) -> Match {
        var segments = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        if segments.first?.isEmpty == true { segments.removeFirst() }
        if segments.count > 1, segments.last?.isEmpty == true { segments.removeLast() }  // a trailing slash
        guard let candidates = bySegmentCount[segments.count] else { return .notFound }
        var best: [Route] = []
        var bestScore = -1
        for r in candidates {
            var score = 0
            var fits = true
            for (p, s) in zip(r.pattern, segments) {
                switch p {
                case .literal(let l): if l.utf8.elementsEqual(s) { score += 1 } else { fits = false }
                case .resourceType: fits = resourceEndpoints.contains(String(decoding: s, as: UTF8.self))
                case .parameter: fits = !s.isEmpty
                }
                if !fits { break }
            }
            guard fits, score >= bestScore else { continue }
            if score > bestScore { best.removeAll(keepingCapacity: true); bestScore = score }
            best.append(r)
        }
        guard !best.isEmpty else { return .notFound }
        let wanted: [HTTPMethod] = method == .head ? [.head, .get] : [method]
        for m in wanted {
            guard let hit = best.first(where: { $0.method == m }) else { continue }
            var params: [String] = []
            for (p, s) in zip(hit.pattern, segments) {
                if case .literal = p { continue }
                params.append(String(decoding: s, as: UTF8.self))
            }
            return .found(hit, params)
        }
        var allowed: [HTTPMethod] = []
        for r in best where !allowed.contains(r.method) { allowed.append(r.method) }
        return .methodNotAllowed(allowed)
    }
}

extension HubApp {
    /// Every endpoint. A feature's handlers live in its own file; this is the one map.
    static func routes() -> [Route] {
        let admin = RouteAccess.anyOf([.admin])
        let read = RouteAccess.anyOf([.scimRead]), write = RouteAccess.anyOf([.scimWrite])
        func r(_ method: HTTPMethod, _ path: String, _ access: RouteAccess, query: Set<String>? = [],
               _ handler: @escaping @Sendable (HubApp, RequestContext, [String]) throws -> HTTPResponse) -> Route {
            let pattern: [RouteSegment] = path.split(separator: "/").map { s in
                s == "{type}" ? .resourceType : s.hasPrefix("{") ? .parameter : .literal(String(s))
            }
            return Route(method: method, pattern: pattern, access: access, query: query, handler: handler)
        }
        var table: [Route] = [
            // Monitors add their own parameters (cache busting): not checked here.
            r("GET", "/healthz", .open, query: nil) { app, _, _ in app.jsonResponse(200, .object(JSONObject(["status": .string("ok")])), contentType: "application/json") },
            r("GET", "/readyz", .authenticated, query: nil) { app, _, _ in try app.ready() },
            r("POST", "/mfa/enrol", .anyOf([.admin, .breakGlass])) { app, ctx, _ in try app.enrolMFA(ctx) },

            // SCIM (RFC 7644 §3); query parameters as the RFC and clients use them.
            r("GET", "/scim/v2/ServiceProviderConfig", .anyOf([.scimRead, .admin]), query: nil) { app, ctx, _ in app.jsonResponse(200, app.serviceProviderConfig(ctx)) },
            r("GET", "/scim/v2/ResourceTypes", .anyOf([.scimRead, .admin]), query: nil) { app, ctx, _ in try app.discoveryList("ResourceTypes", ctx) },
            r("GET", "/scim/v2/Schemas", .anyOf([.scimRead, .admin]), query: nil) { app, ctx, _ in try app.discoveryList("Schemas", ctx) },
            r("GET", "/scim/v2/ResourceTypes/{id}", .anyOf([.scimRead, .admin]), query: nil) { app, ctx, p in try app.discoveryItem("ResourceTypes", p[0], ctx) },
            r("GET", "/scim/v2/Schemas/{id}", .anyOf([.scimRead, .admin]), query: nil) { app, ctx, p in try app.discoveryItem("Schemas", p[0], ctx) },
            r("POST", "/scim/v2/.search", read, query: nil) { app, ctx, _ in try app.searchAll(ctx) },
            r("POST", "/scim/v2/Bulk", write, query: nil) { app, ctx, _ in try app.bulk(ctx) },
            r("GET", "/scim/v2/{type}", read, query: nil) { app, ctx, p in try app.list(try app.resourceType(p[0]), ListQuery(query: ctx.request.query), ctx) },
            r("POST", "/scim/v2/{type}", write, query: nil) { app, ctx, p in try app.create(try app.resourceType(p[0]), ctx) },
            r("POST", "/scim/v2/{type}/.search", read, query: nil) { app, ctx, p in try app.search(try app.resourceType(p[0]), ctx) },
            r("GET", "/scim/v2/{type}/{id}", read, query: nil) { app, ctx, p in try app.get(try app.resourceType(p[0]), p[1], ctx) },
            r("PUT", "/scim/v2/{type}/{id}", write, query: nil) { app, ctx, p in try app.replace(try app.resourceType(p[0]), p[1], ctx) },
            r("PATCH", "/scim/v2/{type}/{id}", write, query: nil) { app, ctx, p in try app.patch(try app.resourceType(p[0]), p[1], ctx) },
            r("DELETE", "/scim/v2/{type}/{id}", write, query: nil) { app, ctx, p in try app.delete(try app.resourceType(p[0]), p[1], ctx) },

            // Administration.
            r("GET", "/admin/audit", admin, query: ["since", "until", "principal", "resourceId", "after", "count"]) { app, ctx, _ in try app.listAudit(ctx) },
            r("GET", "/admin/targets", admin) { app, ctx, _ in try app.listTargets(ctx) },
            r("GET", "/admin/jobs", admin, query: ["target", "state", "count"]) { app, ctx, _ in try app.listJobs(ctx) },
            r("POST", "/admin/jobs/{id}/retry", admin) { app, ctx, p in try app.retryJob(p[0], ctx) },
            r("GET", "/admin/people/{id}/access", admin) { app, ctx, p in try app.personAccess(p[0], ctx) },
            r("DELETE", "/admin/people/{id}/revocations/{package}", admin) { app, ctx, p in try app.liftRevocation(person: p[0], package: p[1], ctx) },
            r("GET", "/admin/credentials/expiring", admin, query: ["within"]) { app, ctx, _ in try app.expiringCredentials(ctx) },
            r("GET", "/admin/tokens", admin) { app, _, _ in try app.listTokens() },
            r("POST", "/admin/tokens", admin) { app, ctx, _ in try app.createToken(ctx) },
            r("GET", "/admin/token-requests", admin) { app, _, _ in try app.listTokenRequests() },
            r("POST", "/admin/token-requests/{id}/approve", admin) { app, ctx, p in try app.approveTokenRequest(p[0], ctx) },
            r("POST", "/admin/token-requests/{id}/issue", admin) { app, ctx, p in try app.issueTokenRequest(p[0], ctx) },
            r("GET", "/admin/permission-creep", admin, query: ["run"]) { app, ctx, _ in try app.permissionCreep(ctx) },
            r("GET", "/admin/break-glass", admin, query: ["state"]) { app, ctx, _ in try app.listBreakGlass(ctx) },
            // Emergency access has its own scope: an admin token alone cannot grant it.
            r("POST", "/admin/break-glass", .anyOf([.breakGlass])) { app, ctx, _ in try app.grantBreakGlass(ctx) },
            r("POST", "/admin/break-glass/{id}/review", admin) { app, ctx, p in try app.reviewBreakGlass(p[0], ctx) },
            r("GET", "/admin/reviews", admin) { app, _, _ in try app.listReviews() },
            r("POST", "/admin/reviews", admin) { app, ctx, _ in try app.createReview(ctx) },
            r("GET", "/admin/reviews/{id}", admin) { app, _, p in try app.reviewStatus(p[0]) },
            r("GET", "/admin/reviews/{id}/report", admin, query: ["format"]) { app, ctx, p in try app.reviewReport(p[0], ctx) },
            r("GET", "/admin/reconciliations", admin) { app, ctx, _ in try app.listReconciliations(ctx) },
            r("POST", "/admin/reconciliations", admin) { app, ctx, _ in try app.startReconciliation(ctx) },
            r("GET", "/admin/reconciliations/{id}", admin) { app, _, p in try app.reconciliationStatus(p[0]) },
            r("GET", "/admin/reconciliations/{id}/report", admin, query: ["format"]) { app, ctx, p in try app.reconciliationReport(p[0], ctx) },
            r("POST", "/admin/reconciliations/{id}/confirm", admin) { app, ctx, p in try app.confirmReconciliation(p[0], ctx) },

            // Reviewers (managers) decide their own items.
            r("GET", "/reviews/{id}/items", .anyOf([.review, .admin])) { app, ctx, p in try app.myItems(p[0], ctx) },
            r("POST", "/reviews/{id}/items/{seq}/decision", .anyOf([.review, .admin])) { app, ctx, p in
                guard let seq = Int64(p[1]), seq > 0 else { throw SCIMError.notFound("no such item") }
                return try app.decideItem(p[0], seq, ctx)
            },
        ]
        // RFC 7644 §3.11: the hub authenticates feeds, not people; /Me has no subject.
        for m: HTTPMethod in [.get, .post, .put, .patch, .delete] {
            table.append(r(m, "/scim/v2/Me", .authenticated, query: nil) { _, _, _ in
                throw SCIMError(status: 501, detail: "/Me is not supported: bearer tokens identify feeds, not users")
            })
        }
        return table
    }

    /// The resource type served at `/scim/v2/{endpoint}` (the table only matches known ones).
    func resourceType(_ endpoint: String) throws -> SCIMResourceType {
        guard let t = registry.resourceType(endpoint: "/" + endpoint) else { throw SCIMError.notFound("no endpoint at this path") }
        return t
    }

    /// Refuses query parameters the route does not read, naming the first (a misspelt
    /// filter must not silently return everything).
    func checkQuery(_ route: Route, _ request: HTTPRequest) throws {
        guard let known = route.query else { return }
        for q in request.query where !known.contains(q.name) {
            let list = known.isEmpty ? "this endpoint takes none" : "known: " + known.sorted().joined(separator: ", ")
            throw SCIMError.invalidValue("unknown query parameter '\(q.name.prefix(64))' (\(list))")
        }
    }
}
