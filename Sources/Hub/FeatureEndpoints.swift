// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubLog
import JSONCore
import Provisioning
import SCIM
import Store

/// What every feature's endpoints share: configuration, schemas, the store, the engine (when
/// a policy is loaded), feed ownership and the step-up throttle.
struct HubContext: Sendable {
    let config: HubConfig
    let registry: SchemaRegistry
    let store: any HubStore
    let logger: Logger
    let engine: ProvisioningEngine?
    /// Which feed owns which User attributes and Groups.
    let feeds: FeedOwnership
    let userType: SCIMResourceType
    let groupType: SCIMResourceType
    /// Failed step-up codes per principal (5 in 5 minutes, then 429).
    let mfaThrottle: AuthThrottle
    /// Requests by route, method and status, for `/metrics`.
    let httpMetrics: HTTPMetrics
}

/// A feature's HTTP side: its routes and their handlers, in the feature's own file, over
/// the shared `HubContext`. `HubApp` only composes features into one route table.
protocol FeatureEndpoints: Sendable {
    var hub: HubContext { get }
    /// The feature's endpoints; `HubApp` puts every feature's routes in one table.
    var routes: [Route] { get }
}

extension FeatureEndpoints {
    var config: HubConfig { hub.config }
    var registry: SchemaRegistry { hub.registry }
    var store: any HubStore { hub.store }
    var logger: Logger { hub.logger }
    var engine: ProvisioningEngine? { hub.engine }
    var feeds: FeedOwnership { hub.feeds }
    var userType: SCIMResourceType { hub.userType }
    var groupType: SCIMResourceType { hub.groupType }
    var mfaThrottle: AuthThrottle { hub.mfaThrottle }
    var httpMetrics: HTTPMetrics { hub.httpMetrics }

    /// The SCIM base URL: configured, or from the Host header when it is a plain host[:port].
    func baseURL(_ request: HTTPRequest) -> String {
        if let b = config.baseURL { return b.hasSuffix("/") ? String(b.dropLast()) : b }
        if let host = request.headers["Host"], !host.isEmpty, host.utf8.count <= 255,
            host.utf8.allSatisfy({
                ($0 >= 0x30 && $0 <= 0x3A) || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A) || $0 == 0x2D || $0 == 0x2E
                    || $0 == 0x5B || $0 == 0x5D
            })
        {
            return "\(request.isSecure ? "https" : "http")://\(host)/scim/v2"
        }
        return "\(request.isSecure ? "https" : "http")://\(config.listen)/scim/v2"
    }

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

    /// A governance service's refusal as a SCIM error with the same status.
    func scimError(_ e: GovernanceError) -> SCIMError {
        switch e {
        case .invalid(let d): return SCIMError.invalidValue(d)
        case .notFound(let d): return SCIMError.notFound(d)
        case .forbidden(let d): return SCIMError(status: 403, detail: d)
        case .conflict(let d): return SCIMError(status: 409, detail: d)
        }
    }
}
