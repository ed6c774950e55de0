// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// The `scimType` of an error response (RFC 7644 §3.12, Table 9).
public struct SCIMType: RawRepresentable, Sendable, Equatable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let invalidFilter = SCIMType(rawValue: "invalidFilter")
    public static let tooMany = SCIMType(rawValue: "tooMany")
    public static let uniqueness = SCIMType(rawValue: "uniqueness")
    public static let mutability = SCIMType(rawValue: "mutability")
    public static let invalidSyntax = SCIMType(rawValue: "invalidSyntax")
    public static let invalidPath = SCIMType(rawValue: "invalidPath")
    public static let noTarget = SCIMType(rawValue: "noTarget")
    public static let invalidValue = SCIMType(rawValue: "invalidValue")
    public static let invalidVers = SCIMType(rawValue: "invalidVers")
    public static let sensitive = SCIMType(rawValue: "sensitive")
}

/// An error the hub answers with a SCIM error body. `detail` names attributes and
/// parameters, never their values: values are personal data.
public struct SCIMError: Error, Sendable, Equatable, CustomStringConvertible {
    public let status: Int
    public let scimType: SCIMType?
    public let detail: String
    /// Extra response headers (`Allow`, `Retry-After`, `WWW-Authenticate`).
    public var headers: [String: String]

    public init(status: Int, scimType: SCIMType? = nil, detail: String, headers: [String: String] = [:]) {
        self.status = status
        self.scimType = scimType
        self.detail = detail
        self.headers = headers
    }

    public var description: String { "\(status) \(scimType?.rawValue ?? "-"): \(detail)" }

    /// The error resource (RFC 7644 §3.12); `status` is a string there.
    public var json: JSONValue {
        var o = JSONObject()
        o["schemas"] = .array([.string(SCIMSchemaURN.error)])
        if let t = scimType { o["scimType"] = .string(t.rawValue) }
        o["detail"] = .string(detail)
        o["status"] = .string(String(status))
        return .object(o)
    }

    // MARK: - Common errors

    public static func invalidValue(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .invalidValue, detail: detail)
    }
    public static func invalidSyntax(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .invalidSyntax, detail: detail)
    }
    public static func invalidFilter(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .invalidFilter, detail: detail)
    }
    public static func invalidPath(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .invalidPath, detail: detail)
    }
    public static func noTarget(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .noTarget, detail: detail)
    }
    public static func mutability(_ detail: String) -> SCIMError {
        SCIMError(status: 400, scimType: .mutability, detail: detail)
    }
    public static func uniqueness(_ detail: String) -> SCIMError {
        SCIMError(status: 409, scimType: .uniqueness, detail: detail)
    }
    public static func notFound(_ detail: String) -> SCIMError { SCIMError(status: 404, detail: detail) }
    public static func preconditionFailed(_ detail: String) -> SCIMError { SCIMError(status: 412, detail: detail) }
}

/// Schema and message URNs (RFC 7643 §3, RFC 7644 §3.x).
public enum SCIMSchemaURN {
    public static let user = "urn:ietf:params:scim:schemas:core:2.0:User"
    public static let group = "urn:ietf:params:scim:schemas:core:2.0:Group"
    public static let enterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    public static let healthcareUser = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
    public static let listResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    public static let searchRequest = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    public static let patchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    public static let bulkRequest = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
    public static let bulkResponse = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    public static let error = "urn:ietf:params:scim:api:messages:2.0:Error"
    public static let serviceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
    public static let resourceType = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
    public static let schema = "urn:ietf:params:scim:schemas:core:2.0:Schema"
}
