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

    static let admin = RouteAccess.anyOf([.admin])
    static let read = RouteAccess.anyOf([.scimRead])
    static let write = RouteAccess.anyOf([.scimWrite])
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
    /// The template as written (`/scim/v2/{type}/{id}`): the route's name in metrics.
    let path: String
    let pattern: [RouteSegment]
    let access: RouteAccess
    /// Known query parameters; another one is a 400 naming it. nil: not checked (SCIM
    /// endpoints, where clients send what RFC 7644 and their own habits suggest).
    let query: Set<String>?
    /// Gets the path's resource types and parameters in order.
    let handler: @Sendable (RequestContext, [String]) throws -> HTTPResponse

    /// A route for `path`, where `{type}` is a SCIM resource type's endpoint and any other
    /// `{name}` a parameter. `query`: the parameters it reads (default none; nil: unchecked).
    static func make(
        _ method: HTTPMethod, _ path: String, _ access: RouteAccess, query: Set<String>? = [],
        _ handler: @escaping @Sendable (RequestContext, [String]) throws -> HTTPResponse
    ) -> Route {
        let pattern: [RouteSegment] = path.split(separator: "/").map { s in
            s == "{type}" ? .resourceType : s.hasPrefix("{") ? .parameter : .literal(String(s))
        }
        return Route(method: method, path: path, pattern: pattern, access: access, query: query, handler: handler)
    }
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

extension Route {
    /// Refuses query parameters the route does not read, naming the first (a misspelt
    /// filter must not silently return everything).
    func checkQuery(_ request: HTTPRequest) throws {
        guard let known = query else { return }
        for q in request.query where !known.contains(q.name) {
            let list = known.isEmpty ? "this endpoint takes none" : "known: " + known.sorted().joined(separator: ", ")
            throw SCIMError.invalidValue("unknown query parameter '\(q.name.prefix(64))' (\(list))")
        }
    }

    /// Throws 403 unless the principal holds one of the route's scopes. An auditor reads what
    /// an administrator reads, and changes nothing.
    func authorize(_ request: HTTPRequest, _ principal: Principal) throws {
        let reads = request.method == .get || request.method == .head
        guard case .anyOf(let scopes) = access, !scopes.contains(where: principal.scopes.contains),
            !(reads && scopes.contains(.admin) && principal.scopes.contains(.auditor)), let scope = scopes.first
        else { return }
        throw SCIMError(
            status: 403, detail: "this token lacks the '\(scope.rawValue)' scope",
            headers: [
                "WWW-Authenticate":
                    "Bearer realm=\"scimhub\", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\""
            ])
    }
}
