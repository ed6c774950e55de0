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
public final class HubApp: Sendable {
    public let config: HubConfig
    public let registry: SchemaRegistry
    public let store: any HubStore
    let logger: Logger
    let throttle: AuthThrottle
    /// Who the client is behind a trusted reverse proxy.
    let clientAddresses: ClientAddressResolver
    let userType: SCIMResourceType
    let groupType: SCIMResourceType
    /// The provisioning engine, when a policy is configured.
    let engine: ProvisioningEngine?
    /// Reconciliation runs, when a policy is configured.
    let reconciliations: ReconciliationRuns?
    /// Access reviews, when a policy is configured.
    let reviews: AccessReviews?
    /// Break-glass grants, when a policy is configured.
    let breakGlass: BreakGlass?
    /// The licence-expiry schedule, when a policy is configured.
    let credentials: CredentialExpiry?
    /// Which feed owns which User attributes.
    let feeds: FeedOwnership
    /// Failed step-up codes per principal (5 in 5 minutes, then 429).
    let mfaThrottle = AuthThrottle(limit: 5, window: 300)
    /// Every endpoint (`Routes.swift`).
    let routeTable: RouteTable
    private let requestCounter = Atomic<UInt64>(0)
    private let requestPrefix: String

    /// The SCIM media type (RFC 7644 §3.1).
    static let scimContentType = "application/scim+json"

    public init(
        config: HubConfig, registry: SchemaRegistry, store: any HubStore, logger: Logger,
        engine: ProvisioningEngine? = nil,
        reconciliations: ReconciliationRuns? = nil, reviews: AccessReviews? = nil, breakGlass: BreakGlass? = nil,
        credentials: CredentialExpiry? = nil
    ) throws {
        self.config = config
        self.engine = engine
        self.reconciliations = reconciliations
        self.reviews = reviews
        self.breakGlass = breakGlass
        self.credentials = credentials
        feeds = FeedOwnership(owners: config.feeds, groupOwners: config.feedGroups)
        self.registry = registry
        self.store = store
        self.logger = logger
        throttle = AuthThrottle(limit: config.authFailureLimit, window: config.authFailureWindowSeconds)
        clientAddresses = ClientAddressResolver(trusted: config.trustedProxies)
        guard let u = registry.resourceType(named: "User"), let g = registry.resourceType(named: "Group") else {
            throw ConfigError("schemas must define the User and Group resource types")
        }
        userType = u
        groupType = g
        routeTable = RouteTable(
            routes: Self.routes(),
            resourceEndpoints: Set(registry.resourceTypes.map { String($0.endpoint.dropFirst()) }))
        requestPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }

    /// Handles one request; never throws, never crashes on input.
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let start = DispatchTime.now().uptimeNanoseconds
        let requestID = makeRequestID(request)
        var principalName = "anonymous"
        var response: HTTPResponse
        do {
            response = try route(request, requestID: requestID) { principalName = $0.name }
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
        var hasCSP = false, hasCache = false
        for h in response.headers {
            let n = h.name.utf8.count  // lengths first: most names match neither
            if n == 23 && asciiCaseInsensitiveEquals(h.name, "Content-Security-Policy") { hasCSP = true }
            if n == 13 && asciiCaseInsensitiveEquals(h.name, "Cache-Control") { hasCache = true }
        }
        response.headers.reserveCapacity(response.headers.count + 5)
        response.headers.append(("X-Content-Type-Options", "nosniff"))
        response.headers.append(("X-Frame-Options", "DENY"))
        response.headers.append(("Referrer-Policy", "no-referrer"))
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
    private func route(_ request: HTTPRequest, requestID: String, onAuth: (Principal) -> Void) throws -> HTTPResponse {
        let match = routeTable.match(method: request.method, path: request.path)
        if case .found(let r, let params) = match, case .open = r.access {
            try checkQuery(r, request)
            let anonymous = Principal(name: "anonymous", scopes: [], tokenID: "")
            return try r.handler(
                self,
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
            if case .anyOf(let scopes) = r.access, !scopes.contains(where: principal.scopes.contains),
                let first = scopes.first
            {
                try require(first, principal)
            }
            try checkQuery(r, request)
            return try r.handler(
                self,
                RequestContext(principal: principal, requestID: requestID, request: request, baseURL: baseURL(request)),
                params)
        }
    }

    /// `GET /readyz`: the store answers.
    func ready() throws -> HTTPResponse {
        _ = try store.read { try $0.count(type: .user) }
        return jsonResponse(200, .object(JSONObject(["status": .string("ready")])), contentType: "application/json")
    }

    func methodNotAllowed(_ allowed: [String]) -> SCIMError {
        SCIMError(
            status: 405, detail: "method not allowed here; use \(allowed.joined(separator: ", "))",
            headers: ["Allow": allowed.joined(separator: ", ")])
    }

    /// The SCIM base URL: configured, or from the Host header when it is a plain host[:port].
    func baseURL(_ request: HTTPRequest) -> String {
        if let b = config.baseURL { return b.hasSuffix("/") ? String(b.dropLast()) : b }
        if let host = request.headers["Host"], !host.isEmpty, host.utf8.count <= 255,
            host.utf8.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x3A) || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A) || $0 == 0x2D || $0 == 0x2E
                    || $0 == 0x5B || $0 == 0x5D
            })
        {
            return "http://\(host)/scim/v2"
        }
        return "http://\(config.listen)/scim/v2"
    }

    // MARK: - Responses

    func jsonResponse(
        _ status: Int, _ value: JSONValue, headers: [(String, String)] = [],
        contentType: String = HubApp.scimContentType
    ) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("Content-Type", contentType)] + headers, body: JSONWriter().write(value))
    }

    func errorResponse(_ e: SCIMError) -> HTTPResponse {
        var r = jsonResponse(e.status, e.json)
        for (k, v) in e.headers.sorted(by: { $0.key < $1.key }) { r.headers.append((k, v)) }
        return r
    }

    /// Parses a JSON request body after checking its media type (RFC 7644 §3.1).
    func jsonBody(_ request: HTTPRequest) throws -> JSONObject {
        if let ct = request.headers["Content-Type"] {
            let media =
                ct.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
            guard media == "application/scim+json" || media == "application/json" else {
                throw SCIMError(status: 415, detail: "Content-Type must be application/scim+json or application/json")
            }
        }
        guard !request.body.isEmpty else { throw SCIMError.invalidSyntax("the request needs a JSON body") }
        let value: JSONValue
        do {
            value = try JSONParser().parse(request.body)
        } catch {
            switch error.kind {
            case .nulCharacter:
                throw SCIMError.invalidValue("the body contains a NUL character in a string (byte \(error.offset))")
            case .tooDeep: throw SCIMError.invalidSyntax("the body is nested too deeply")
            case .numberTooLong:
                throw SCIMError.invalidValue("the body contains a number too long to represent (byte \(error.offset))")
            case .invalidUTF8: throw SCIMError.invalidSyntax("the body is not valid UTF-8 (byte \(error.offset))")
            default:
                throw SCIMError.invalidSyntax("the body is not valid JSON: \(error.message) at byte \(error.offset)")
            }
        }
        guard let o = value.objectValue else { throw SCIMError.invalidSyntax("the body must be a JSON object") }
        return o
    }
}

/// Per-request facts handlers need.
struct RequestContext {
    let principal: Principal
    let requestID: String
    let request: HTTPRequest
    let baseURL: String
}
