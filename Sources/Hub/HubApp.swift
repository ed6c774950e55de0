// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import HubLog
import JSONCore
import SCIM
import Store
import Provisioning

/// The hub's request handling: authentication, routing, and the mapping of every error
/// to a SCIM error response. One instance serves all worker threads.
public final class HubApp: FeatureEndpoints {
    /// What every feature's endpoints share.
    let hub: HubContext
    let throttle: AuthThrottle
    /// Who the client is behind a trusted reverse proxy.
    let clientAddresses: ClientAddressResolver
    /// Every endpoint: the hub's own (`routes`, in `Routes.swift`) and each feature's.
    let routeTable: RouteTable
    /// The policy feature (its apply lock is state a test can hold).
    let policyEndpoints: PolicyEndpoints
    private let requestCounter = Atomic<UInt64>(0)
    private let requestPrefix: String

    /// The SCIM media type (RFC 7644 §3.1).
    static let scimContentType = "application/scim+json"

    public init(
        config: HubConfig, registry: SchemaRegistry, store: any HubStore, logger: Logger,
        engine: ProvisioningEngine? = nil,
        reconciliations: ReconciliationRuns? = nil, reviews: AccessReviews? = nil, breakGlass: BreakGlass? = nil,
        credentials: CredentialExpiry? = nil, requests: AccessRequests? = nil, sodExceptions: SoDExceptions? = nil,
        connectorTypes: Set<String> = [], checkpointer: AuditCheckpointer? = nil, forwarder: AuditForwarder? = nil,
        coordination: (any Coordination)? = nil
    ) throws {
        guard let u = registry.resourceType(named: "User"), let g = registry.resourceType(named: "Group") else {
            throw ConfigError("schemas must define the User and Group resource types")
        }
        let hub = HubContext(
            config: config, registry: registry, store: store, logger: logger, engine: engine,
            feeds: FeedOwnership(owners: config.feeds, groupOwners: config.feedGroups), userType: u, groupType: g,
            mfaThrottle: AuthThrottle(store: store, scope: "mfa", limit: 5, window: 300), httpMetrics: HTTPMetrics())
        self.hub = hub
        throttle = AuthThrottle(
            store: store, scope: "auth", limit: config.authFailureLimit, window: config.authFailureWindowSeconds)
        clientAddresses = ClientAddressResolver(trusted: config.trustedProxies)
        policyEndpoints = PolicyEndpoints(hub: hub, connectorTypes: connectorTypes)
        // The features, each with its routes and handlers in its own file.
        let features: [any FeatureEndpoints] = [
            HealthEndpoints(hub: hub),
            MetricsEndpoints(hub: hub, forwarder: forwarder),
            SCIMEndpoints(hub: hub),
            MFAEndpoints(hub: hub),
            AdminEndpoints(hub: hub, credentials: credentials, coordination: coordination),
            AuditExportEndpoints(hub: hub, checkpointer: checkpointer),
            TokenEndpoints(hub: hub),
            ReconciliationEndpoints(hub: hub, reconciliations: reconciliations),
            BreakGlassEndpoints(hub: hub, breakGlass: breakGlass, reviews: reviews),
            ReviewEndpoints(hub: hub, reviews: reviews),
            policyEndpoints,
            HoldEndpoints(hub: hub),
            PeopleEndpoints(hub: hub),
            AccessEndpoints(hub: hub),
            RequestEndpoints(hub: hub, requests: requests, exceptions: sodExceptions),
        ]
        let resourceEndpoints = Set(registry.resourceTypes.map { String($0.endpoint.dropFirst()) })
        // The console renders the other features' endpoints, called as the signed-in person.
        let api = ConsoleAPI(
            routes: RouteTable(routes: features.flatMap(\.routes), resourceEndpoints: resourceEndpoints))
        let console = ConsoleEndpoints(
            hub: hub, sessions: ConsoleSessions(store: store, settings: config.console, clock: config.clock), api: api,
            oidc: config.console.oidc.map { OIDCClient(settings: $0) },
            signInThrottle: AuthThrottle(store: store, scope: "sign-in", limit: 5, window: 300),
            clientAddresses: clientAddresses)
        routeTable = RouteTable(
            routes: features.flatMap(\.routes) + console.routes, resourceEndpoints: resourceEndpoints)
        requestPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }

    /// Every feature's routes.
    var routes: [Route] { routeTable.routes }

    /// Handles one request; never throws, never crashes on input.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        let requestID = makeRequestID(request)
        var principalName = "anonymous"
        var routeLabel = "unmatched"
        var response: HTTPResponse
        do {
            response = try route(request, requestID: requestID, onRoute: { routeLabel = $0 }) {
                principalName = $0.name
            }
        } catch let e as SCIMError {
            response = errorResponse(e)
            if e.status == 413 { response.closeConnection = true }
        } catch let e as StoreError {
            logger.error("storage failure", ["error": e.description, "request.id": requestID])
            response = errorResponse(
                SCIMError(status: 503, detail: "storage is unavailable; retry later", headers: ["Retry-After": "5"]))
        } catch {
            // Anything unexpected: log the type (never values) and answer without detail.
            logger.error(
                "unexpected error",
                [
                    "error.type": String(describing: type(of: error)),
                    "error": String(describing: error).prefix(300).description,
                    "request.id": requestID,
                ])
            response = errorResponse(SCIMError(status: 500, detail: "internal error; the request id is \(requestID)"))
        }
        response.headers.append(("X-Request-Id", requestID))
        Self.addSecurityHeaders(&response)
        hub.httpMetrics.record(
            route: routeLabel, method: request.method.rawValue, status: response.status,
            seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        if logger.minimumLevel <= .debug {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            logger.debug(
                "request",
                [
                    "http.method": request.method.rawValue, "http.path": request.path,
                    "http.status": String(response.status),
                    "duration.ms": String(format: "%.2f", ms), "request.id": requestID, "principal": principalName,
                ])
        }
        return response
    }

    /// Headers every response carries, HTML reports and protocol errors included: no MIME
    /// sniffing, no framing, no referrer, and (unless the response sets its own) a CSP that
    /// allows nothing, so a JSON body opened in a browser can never run as a page. Responses
    /// hold personal data: nothing is cached unless a handler says otherwise.
    static func addSecurityHeaders(_ response: inout HTTPResponse) {
        var hasCSP = false, hasCache = false, hasReferrer = false
        for h in response.headers {
            let n = h.name.utf8.count  // lengths first: most names match neither
            if n == 23 && asciiCaseInsensitiveEquals(h.name, "Content-Security-Policy") { hasCSP = true }
            if n == 13 && asciiCaseInsensitiveEquals(h.name, "Cache-Control") { hasCache = true }
            if n == 15 && asciiCaseInsensitiveEquals(h.name, "Referrer-Policy") { hasReferrer = true }
        }
        response.headers.reserveCapacity(response.headers.count + 5)
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        response.headers.append(("X-Frame-Options", "DENY"))
        if !hasReferrer { response.headers.append(("Referrer-Policy", "no-referrer")) }
        if !hasCSP {
            response.headers.append(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
        }
        if !hasCache { response.headers.append(("Cache-Control", "no-store")) }
    }

    private func makeRequestID(_ request: HTTPRequest) -> String {
        if let given = request.headers["X-Request-Id"], !given.isEmpty, given.utf8.count <= 64,
            given.utf8.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x39) || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A) || $0 == 0x2D || $0 == 0x5F
                    || $0 == 0x2E
            })
        {
            return given
        }
        let n = requestCounter.add(1, ordering: .relaxed).newValue
        return "\(requestPrefix)-\(n)"
    }

    // MARK: - Routing

    /// Finds the request's route in the table (`Routes.swift`), authenticates unless the
    /// route is open (before a 404 or 405, so paths are not probed anonymously), checks the
    /// route's scope and query parameters, and runs the handler.
    private func route(
        _ request: HTTPRequest, requestID: String, onRoute: (String) -> Void, onAuth: (Principal) -> Void
    ) throws -> HTTPResponse {
        let match = routeTable.match(method: request.method, path: request.path)
        if case .found(let r, _) = match { onRoute(r.path) }
        if case .found(let r, let params) = match, case .open = r.access {
            try r.checkQuery(request)
            let anonymous = Principal(name: "anonymous", scopes: [], tokenID: "")
            return try r.handler(
                RequestContext(principal: anonymous, requestID: requestID, request: request, baseURL: baseURL(request)),
                params)
        }
        let principal = try authenticate(request)
        onAuth(principal)
        switch match {
        case .notFound:
            throw SCIMError.notFound("no endpoint at this path")
        case .methodNotAllowed(let allowed):
            throw methodNotAllowed(
                (allowed.contains(.get) && !allowed.contains(.head) ? allowed + [.head] : allowed).map(\.rawValue))
        case .found(let r, let params):
            try r.authorize(request, principal)
            try r.checkQuery(request)
            return try r.handler(
                RequestContext(principal: principal, requestID: requestID, request: request, baseURL: baseURL(request)),
                params)
        }
    }

    func methodNotAllowed(_ allowed: [String]) -> SCIMError {
        SCIMError(
            status: 405, detail: "method not allowed here; use \(allowed.joined(separator: ", "))",
            headers: ["Allow": allowed.joined(separator: ", ")])
    }

}

/// Liveness, readiness, and the SCIM `/Me` endpoint the hub does not offer.
struct HealthEndpoints: FeatureEndpoints {
    let hub: HubContext

    var routes: [Route] {
        var table: [Route] = [
            // Monitors add their own parameters (cache busting): not checked here.
            Route.make("GET", "/healthz", .open, query: nil) { _, _ in
                jsonResponse(200, .object(JSONObject(["status": .string("ok")])), contentType: "application/json")
            },
            Route.make("GET", "/readyz", .authenticated, query: nil) { _, _ in try ready() },
        ]
        // RFC 7644 §3.11: the hub authenticates feeds, not people; /Me has no subject.
        for m: HTTPMethod in [.get, .post, .put, .patch, .delete] {
            table.append(
                Route.make(m, "/scim/v2/Me", .authenticated, query: nil) { _, _ in
                    throw SCIMError(
                        status: 501, detail: "/Me is not supported: bearer tokens identify feeds, not users")
                })
        }
        return table
    }

    /// `GET /readyz`: ready means the store answers (a store that fails answers 503 through
    /// the usual error path). Targets are reported, not gating: a load balancer must not take
    /// every node out because the EHR is down.
    func ready() throws -> HTTPResponse {
        _ = try store.read { try $0.count(type: .user) }
        // A node that cannot run the policy in force (its writes answer 503) leaves the pool.
        if let behind = engine?.policyBehind {
            return jsonResponse(
                503,
                .object(JSONObject(["status": .string("not ready"), "policy": .string(behind)])),
                headers: [("Retry-After", "5")], contentType: "application/json")
        }
        var targets = JSONObject()
        for t in engine?.policy.enabledTargets ?? [] {
            let probe = engine?.probes.last(t.name)
            targets[t.name] = .object(
                JSONObject([
                    "circuit": .string((engine?.circuit(t.name) ?? .closed).rawValue),
                    "probe": .string(probe.map { $0.up ? "up" : "down" } ?? "unknown"),
                ]))
        }
        return jsonResponse(
            200,
            .object(JSONObject(["status": .string("ready"), "store": .string("ok"), "targets": .object(targets)])),
            contentType: "application/json")
    }
}

/// Per-request facts handlers need.
struct RequestContext {
    let principal: Principal
    let requestID: String
    let request: HTTPRequest
    let baseURL: String
}
