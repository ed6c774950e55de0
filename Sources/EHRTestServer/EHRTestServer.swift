// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import HubLog
import JSONCore

/// A small, realistic EHR user API for tests, benchmarks and the demo, served by the
/// project's own HTTP module. It holds users with roles and an active flag, checks a
/// bearer token (static or issued by its OAuth2 client-credentials endpoint), validates
/// input like a real system, and can be told to misbehave.
///
/// API (JSON):
/// - `POST /oauth/token` (form `grant_type=client_credentials&client_id=…&client_secret=…`)
/// - `POST /api/users` `{userName, displayName?, email?, active?, roles?}` → 201 user; 409 duplicate; 400 invalid
/// - `GET /api/users/{id}` · `GET /api/users?userName=…` · `GET /api/users?page=N&pageSize=M`
///   → `{users, nextPage}`
/// - `PUT /api/users/{id}` attributes · `PATCH /api/users/{id}` `{active?, userName?}` · `DELETE /api/users/{id}`
/// - `PUT|DELETE /api/users/{id}/roles/{role}` (idempotent; unknown roles are 400)
/// - `POST /_control/faults` `{mode: none|error5xx|rateLimit|timeout|reject|garbage, retryAfter?, remaining?}`
///   (no auth)
/// - `GET /_control/stats` → `{users, calls}`
public final class EHRTestServer: Sendable {
    public enum FaultMode: String, Sendable { case none, error5xx, rateLimit, timeout, reject, garbage }

    struct User {
        var id: String
        var userName: String
        var attributes: [String: String]
        var active: Bool
        var roles: Set<String>
        var seq: Int
    }

    struct State {
        var users: [String: User] = [:]
        var byUserName: [String: String] = [:]
        /// Ids in creation order, for paging without sorting every time.
        var order: [String] = []
        var nextSeq = 1
        var issuedTokens: [String: Double] = [:]
        var fault: FaultMode = .none
        var retryAfter = 1
        /// Faulty answers left before the fault clears by itself (nil: until told).
        var faultsRemaining: Int? = nil
        var calls = 0
        /// Seconds every API call waits before it is answered (a slow EHR keeps jobs in flight).
        var latency: Double = 0
        /// API calls being answered now, and the most at once since the last reset.
        var inFlight = 0
        var maxInFlight = 0
    }

    /// Roles the EHR knows; granting anything else is a validation error. A role may be
    /// limited to one site as `role@SITE` (site codes are upper-case letters, digits, '-').
    public static let knownRoles: Set<String> = [
        "physician", "physician-readonly", "nurse", "lab-results", "scheduling", "billing", "clinic-reporting",
    ]

    static func isKnownRole(_ role: String) -> Bool {
        let parts = role.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        guard knownRoles.contains(String(parts[0])) else { return false }
        return parts.count == 1
            || (!parts[1].isEmpty && parts[1].allSatisfy { $0.isUppercase || $0.isNumber || $0 == "-" })
    }

    public let staticToken: String
    public let clientID: String
    public let clientSecret: String
    /// Seconds a "timeout" fault sleeps before answering.
    public let timeoutDelay: Double
    private let state = Mutex(State())
    private let http: HTTPServer

    /// The bound port.
    public var port: UInt16 { http.port }
    public var baseURL: String { "http://127.0.0.1:\(http.port)" }

    public init(
        port: UInt16 = 0, staticToken: String = "ehr-static-token", clientID: String = "scimhub",
        clientSecret: String = "ehr-secret",
        timeoutDelay: Double = 3, logger: Logger = Logger(label: "ehr", minimumLevel: .error, silent: true)
    ) throws {
        self.staticToken = staticToken
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.timeoutDelay = timeoutDelay
        var box: EHRTestServer? = nil
        let handlerBox = HandlerBox()
        guard let address = ListenAddress("127.0.0.1:\(port)") else {
            throw SocketError(call: "listen address", errno: 22)
        }
        http = try HTTPServer(address: address, readThreads: 4, writeThreads: 8, logger: logger) { req in
            handlerBox.server?.handle(req) ?? HTTPResponse(status: 503)
        }
        box = self
        handlerBox.server = box
    }

    /// Serves on a new thread.
    public func start() {
        let h = http
        Thread { h.run() }.start()
    }

    public func stop() {
        http.shutdown()
        http.waitUntilStopped()
    }

    /// Sets the fault mode (tests call this directly; others use `/_control/faults`).
    public func setFault(_ mode: FaultMode, retryAfter: Int = 1, remaining: Int? = nil) {
        state.withLock {
            $0.fault = mode
            $0.retryAfter = retryAfter
            $0.faultsRemaining = remaining
        }
    }

    /// Makes every API call take `seconds` longer (0: as fast as it can).
    public func setLatency(_ seconds: Double) { state.withLock { $0.latency = seconds } }

    /// Number of API calls served (faulty ones included).
    public var calls: Int { state.withLock { $0.calls } }

    /// The most API calls answered at once since the start or `resetConcurrency()`, faulty
    /// ones and their latency included (a client's limit on concurrent calls shows here).
    public var maxConcurrentCalls: Int { state.withLock { $0.maxInFlight } }

    /// API calls being answered now.
    public var callsInFlight: Int { state.withLock { $0.inFlight } }

    /// Starts counting `maxConcurrentCalls` afresh from the calls under way now.
    public func resetConcurrency() { state.withLock { $0.maxInFlight = $0.inFlight } }

    /// Users held, by user name: (active, roles).
    public func snapshot() -> [String: (active: Bool, roles: Set<String>, attributes: [String: String])] {
        state.withLock { s in
            var out: [String: (Bool, Set<String>, [String: String])] = [:]
            for u in s.users.values { out[u.userName] = (u.active, u.roles, u.attributes) }
            return out
        }
    }

    /// One account by user name: (active, roles), without copying the whole store.
    public func account(userName: String) -> (active: Bool, roles: Set<String>)? {
        state.withLock { s in s.byUserName[userName.lowercased()].flatMap { s.users[$0] }.map { ($0.active, $0.roles) }
        }
    }

    /// Deletes a user behind the hub's back (tests of drift and recreation).
    public func deleteByHand(userName: String) {
        state.withLock { s in
            if let id = s.byUserName.removeValue(forKey: userName.lowercased()) {
                s.users[id] = nil
                s.order.removeAll { $0 == id }
            }
        }
    }

    /// Loads accounts directly (benchmarks: a target already holding 100,000 accounts).
    public func seed(_ accounts: [(userName: String, attributes: [String: String], roles: Set<String>)]) {
        state.withLock { s in
            for a in accounts where s.byUserName[a.userName.lowercased()] == nil {
                let u = User(
                    id: "ehr-\(s.nextSeq)", userName: a.userName, attributes: a.attributes, active: true,
                    roles: a.roles, seq: s.nextSeq)
                s.nextSeq += 1
                s.users[u.id] = u
                s.byUserName[a.userName.lowercased()] = u.id
                s.order.append(u.id)
            }
        }
    }

    // MARK: - Handling

    private func json(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")], body: JSONWriter().write(value))
    }

    private func error(_ status: Int, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        var r = json(status, .object(JSONObject(["error": .string(message)])))
        r.headers += headers
        return r
    }

    private func userJSON(_ u: User) -> JSONValue {
        var o = JSONObject(["id": .string(u.id), "userName": .string(u.userName)])
        for (k, v) in u.attributes.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
        o["active"] = .bool(u.active)
        o["roles"] = .array(u.roles.sorted().map { .string($0) })
        return .object(o)
    }

    func handle(_ req: HTTPRequest) -> HTTPResponse {
        if req.path.hasPrefix("/_control/") { return control(req) }
        if req.path == "/oauth/token" { return token(req) }
        // Faults apply to the API, as a real outage would.
        let latency = state.withLock { s in
            s.inFlight += 1
            s.maxInFlight = max(s.maxInFlight, s.inFlight)
            return s.latency
        }
        defer { state.withLock { $0.inFlight -= 1 } }
        if latency > 0 { Thread.sleep(forTimeInterval: latency) }
        let fault: (FaultMode, Int) = state.withLock { s in
            s.calls += 1
            var mode = s.fault
            if mode != .none, let r = s.faultsRemaining {
                if r <= 0 { s.fault = .none; mode = .none } else { s.faultsRemaining = r - 1 }
            }
            return (mode, s.retryAfter)
        }
        switch fault.0 {
        case .error5xx: return error(503, "service unavailable")
        case .rateLimit: return error(429, "too many requests", headers: [("Retry-After", String(fault.1))])
        case .timeout: Thread.sleep(forTimeInterval: timeoutDelay); return error(504, "gateway timeout")
        case .reject: return error(422, "rejected by EHR policy")
        case .garbage:
            return HTTPResponse(
                status: 200, headers: [("Content-Type", "application/json")], body: Array("<html>proxy error".utf8))
        case .none: break
        }
        guard authorized(req) else { return error(401, "invalid token", headers: [("WWW-Authenticate", "Bearer")]) }
        let parts = req.path.split(separator: "/").map(String.init)
        guard parts.count >= 2, parts[0] == "api", parts[1] == "users" else { return error(404, "no such endpoint") }
        switch (req.method, parts.count) {
        case ("POST", 2): return create(req)
        case ("GET", 2): return list(req)
        case ("GET", 3): return read(parts[2])
        case ("PUT", 3): return update(parts[2], req)
        case ("PATCH", 3): return patch(parts[2], req)
        case ("DELETE", 3): return delete(parts[2])
        case ("PUT", 5) where parts[3] == "roles": return role(parts[2], parts[4], grant: true)
        case ("DELETE", 5) where parts[3] == "roles": return role(parts[2], parts[4], grant: false)
        default: return error(405, "method not allowed")
        }
    }

    private func authorized(_ req: HTTPRequest) -> Bool {
        guard let h = req.headers["Authorization"], h.hasPrefix("Bearer ") else { return false }
        let t = String(h.dropFirst(7))
        if t == staticToken { return true }
        return state.withLock { s in (s.issuedTokens[t] ?? 0) > Date().timeIntervalSince1970 }
    }

    private func token(_ req: HTTPRequest) -> HTTPResponse {
        guard req.method == "POST" else { return error(405, "method not allowed") }
        let form = String(decoding: req.body, as: UTF8.self).split(separator: "&").reduce(into: [String: String]()) {
            d, pair in
            let kv = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if kv.count == 2 { d[kv[0]] = kv[1] }
        }
        guard form["grant_type"] == "client_credentials", form["client_id"] == clientID,
            form["client_secret"] == clientSecret
        else {
            return error(401, "invalid_client")
        }
        let t = "ehr-oauth-" + UUID().uuidString
        state.withLock { $0.issuedTokens[t] = Date().timeIntervalSince1970 + 3600 }
        return json(
            200,
            .object(
                JSONObject(["access_token": .string(t), "token_type": .string("Bearer"), "expires_in": .int(3600)])))
    }

    private func body(_ req: HTTPRequest) -> JSONObject? { (try? JSONParser().parse(req.body))?.objectValue }

    /// String attributes a user may carry; anything else in a body is a 400, as in a strict EHR.
    private static let attributeFields: Set<String> = [
        "displayName", "email", "givenName", "familyName", "title", "department", "sites", "externalId",
    ]

    struct Invalid: Error { let message: String }

    private func attributes(_ o: JSONObject) -> Result<[String: String], Invalid> {
        var out: [String: String] = [:]
        for m in o.members where !["userName", "active", "roles", "id"].contains(m.key) {
            guard Self.attributeFields.contains(m.key) else {
                return .failure(Invalid(message: "unknown field \(m.key)"))
            }
            guard let s = m.value.stringValue else {
                return .failure(Invalid(message: "field \(m.key) must be a string"))
            }
            out[m.key] = s
        }
        return .success(out)
    }

    private func create(_ req: HTTPRequest) -> HTTPResponse {
        guard let o = body(req), let userName = o["userName"]?.stringValue, !userName.isEmpty,
            userName.utf8.count <= 256
        else {
            return error(400, "userName is required")
        }
        let attrs: [String: String]
        switch attributes(o) {
        case .success(let a): attrs = a
        case .failure(let m): return error(400, m.message)
        }
        let roles = Set((o["roles"]?.arrayValue ?? []).compactMap(\.stringValue))
        guard roles.allSatisfy(Self.isKnownRole) else { return error(400, "unknown role") }
        let active = o["active"]?.boolValue ?? true
        return state.withLock { s in
            if s.byUserName[userName.lowercased()] != nil { return error(409, "userName already exists") }
            let u = User(
                id: "ehr-\(s.nextSeq)", userName: userName, attributes: attrs, active: active, roles: roles,
                seq: s.nextSeq)
            s.nextSeq += 1
            s.users[u.id] = u
            s.byUserName[userName.lowercased()] = u.id
            s.order.append(u.id)
            return json(201, userJSON(u))
        }
    }

    private func read(_ id: String) -> HTTPResponse {
        state.withLock { s in s.users[id].map { json(200, userJSON($0)) } ?? error(404, "no such user") }
    }

    private func list(_ req: HTTPRequest) -> HTTPResponse {
        if let name = req.queryValue("userName") {
            return state.withLock { s in
                let found = s.byUserName[name.lowercased()].flatMap { s.users[$0] }
                return json(200, .object(JSONObject(["users": .array(found.map { [userJSON($0)] } ?? [])])))
            }
        }
        let page = max(1, Int(req.queryValue("page") ?? "1") ?? 1)
        let size = min(1000, max(1, Int(req.queryValue("pageSize") ?? "100") ?? 100))
        return state.withLock { s in
            let from = (page - 1) * size
            let slice =
                from < s.order.count ? s.order[from..<min(s.order.count, from + size)].compactMap { s.users[$0] } : []
            let next: JSONValue = from + size < s.order.count ? .int(page + 1) : .null
            return json(200, .object(JSONObject(["users": .array(slice.map(userJSON)), "nextPage": next])))
        }
    }

    private func update(_ id: String, _ req: HTTPRequest) -> HTTPResponse {
        guard let o = body(req) else { return error(400, "body must be a JSON object") }
        let attrs: [String: String]
        switch attributes(o) {
        case .success(let a): attrs = a
        case .failure(let m): return error(400, m.message)
        }
        return state.withLock { s in
            guard var u = s.users[id] else { return error(404, "no such user") }
            u.attributes = attrs
            s.users[id] = u
            return json(200, userJSON(u))
        }
    }

    private func patch(_ id: String, _ req: HTTPRequest) -> HTTPResponse {
        guard let o = body(req), o["active"]?.boolValue != nil || o["userName"]?.stringValue != nil else {
            return error(400, "active or userName is required")
        }
        if let n = o["userName"]?.stringValue, n.isEmpty || n.utf8.count > 256 {
            return error(400, "userName is invalid")
        }
        return state.withLock { s in
            guard var u = s.users[id] else { return error(404, "no such user") }
            if let active = o["active"]?.boolValue { u.active = active }
            if let newName = o["userName"]?.stringValue, newName.lowercased() != u.userName.lowercased() {
                if s.byUserName[newName.lowercased()] != nil { return error(409, "userName already exists") }
                s.byUserName[u.userName.lowercased()] = nil
                s.byUserName[newName.lowercased()] = id
                u.userName = newName
            }
            s.users[id] = u
            return json(200, userJSON(u))
        }
    }

    private func delete(_ id: String) -> HTTPResponse {
        state.withLock { s in
            guard let u = s.users.removeValue(forKey: id) else { return error(404, "no such user") }
            s.byUserName[u.userName.lowercased()] = nil
            s.order.removeAll { $0 == id }
            return HTTPResponse(status: 204)
        }
    }

    private func role(_ id: String, _ role: String, grant: Bool) -> HTTPResponse {
        guard Self.isKnownRole(role) else { return error(400, "unknown role") }
        return state.withLock { s in
            guard var u = s.users[id] else { return error(404, "no such user") }
            if grant { u.roles.insert(role) } else { u.roles.remove(role) }
            s.users[id] = u
            return HTTPResponse(status: 204)
        }
    }

    private func control(_ req: HTTPRequest) -> HTTPResponse {
        switch (req.method, req.path) {
        case ("POST", "/_control/faults"):
            guard let o = body(req), let m = o["mode"]?.stringValue, let mode = FaultMode(rawValue: m) else {
                return error(400, "mode is required")
            }
            setFault(
                mode, retryAfter: Int(o["retryAfter"]?.numberValue?.int64 ?? 1),
                remaining: o["remaining"]?.numberValue?.int64.map { Int($0) })
            return HTTPResponse(status: 204)
        case ("GET", "/_control/stats"):
            return state.withLock { s in
                json(200, .object(JSONObject(["users": .int(s.users.count), "calls": .int(s.calls)])))
            }
        default:
            return error(404, "no such control endpoint")
        }
    }
}

/// Lets the HTTP handler reach the server once it exists.
private final class HandlerBox: @unchecked Sendable {
    // @unchecked Sendable: set once in init before the server starts serving.
    var server: EHRTestServer?
}
