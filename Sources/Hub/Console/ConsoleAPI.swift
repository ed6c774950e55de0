// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import JSONCore
import SCIM
import Store

/// The admin API as the console calls it: the same route table, scope checks and handlers
/// as a bearer token gets, with the signed-in person's principal. A page renders what its
/// endpoint returns, so everything on a page is also reachable as JSON, and a page can
/// never show or do more than the API allows the same person.
struct ConsoleAPI: Sendable {
    let routes: RouteTable

    /// Calls `method path` with `query` and a JSON `body` as `principal`; returns the status
    /// and the parsed JSON (an empty object for an empty body). Refusals throw as the API would.
    /// `bytes`: a body sent as it is (a policy's text keeps its own layout and hash).
    func call(
        _ method: HTTPMethod, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil,
        bytes: [UInt8]? = nil, as principal: Principal, requestID: String, headers: [(String, String)] = []
    ) throws -> (status: Int, json: JSONValue) {
        var h = HTTPHeaders()
        for (k, v) in headers { h.add(k, v) }
        if body != nil || bytes != nil { h.add("Content-Type", "application/json") }
        let request = HTTPRequest(
            method: method, target: path, path: path, query: query.map { (name: $0.0, value: $0.1) }, headers: h,
            body: bytes ?? body.map { JSONWriter().write($0) } ?? [])
        guard case .found(let route, let params) = routes.match(method: method, path: path) else {
            throw SCIMError.notFound("no endpoint at \(path)")
        }
        try route.authorize(request, principal)
        try route.checkQuery(request)
        let response = try route.handler(
            RequestContext(principal: principal, requestID: requestID, request: request, baseURL: ""), params)
        let json = response.body.isEmpty ? .object(JSONObject()) : try JSONParser().parse(response.body)
        if response.status >= 400 {
            throw SCIMError(status: response.status, detail: json.objectValue?["detail"]?.stringValue ?? "refused")
        }
        return (response.status, json)
    }

    /// GET, returning the JSON object; nil when the person may not read it (403).
    func read(_ path: String, query: [(String, String)] = [], as p: Principal, requestID: String) throws -> JSONObject?
    {
        do {
            return try call(.get, path, query: query, as: p, requestID: requestID).json.objectValue
        } catch let e as SCIMError where e.status == 403 || e.status == 409 {
            return nil
        }
    }
}
