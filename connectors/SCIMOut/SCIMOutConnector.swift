// SPDX-License-Identifier: Apache-2.0
import Foundation
import ConnectorKit
import CurlHTTP
import JSONCore

/// Settings for a SCIM 2.0 service provider target.
public struct SCIMOutConfig: Sendable {
    /// Base URL of the SCIM API, e.g. `https://app.example.org/scim/v2`.
    public var baseURL: String
    public var bearerToken: String
    /// Timeouts and TLS.
    public var transport = CurlClient.Options()

    public init(baseURL: String, bearerToken: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.bearerToken = bearerToken
    }
}

/// Provisions into any SCIM 2.0 service provider (RFC 7644): accounts are Users, found by
/// `userName eq` filter; attributes are SCIM attribute paths (`displayName`, `title`,
/// `name.givenName`); enable/disable is `PATCH active`; entitlements are memberships of
/// Groups named by `displayName` (created when missing).
public final class SCIMOutConnector: Connector {
    public let config: SCIMOutConfig
    private let client: CurlClient

    static let userSchema = "urn:ietf:params:scim:schemas:core:2.0:User"
    static let groupSchema = "urn:ietf:params:scim:schemas:core:2.0:Group"
    static let patchSchema = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

    public init(config: SCIMOutConfig) {
        self.config = config
        client = CurlClient(options: config.transport)
    }

    public var capabilities: ConnectorCapabilities { ConnectorCapabilities(entitlementKinds: ["group"]) }

    // MARK: - Connector

    public func read(id: String) throws(ConnectorError) -> Account? {
        let r = try call("GET", "/Users/\(escape(id))")
        if r.status == 404 { return nil }
        try expectSuccess(r, "read")
        return try account(try parse(r.body))
    }

    public func find(userName: String) throws(ConnectorError) -> Account? {
        let r = try call("GET", "/Users?filter=\(escape("userName eq \(quote(userName))"))")
        try expectSuccess(r, "find")
        guard let first = try parse(r.body).objectValue?["Resources"]?.arrayValue?.first else { return nil }
        return try account(first)
    }

    public func create(_ spec: AccountSpec) throws(ConnectorError) -> Account {
        var o = JSONObject([
            "schemas": .array([.string(Self.userSchema)]), "userName": .string(spec.userName),
            "active": .bool(spec.enabled),
        ])
        for (path, value) in spec.attributes.sorted(by: { $0.key < $1.key }) { Self.set(&o, path, value) }
        let r = try call("POST", "/Users", body: .object(o))
        try expectSuccess(r, "create")
        let created = try account(try parse(r.body))
        for e in spec.entitlements.sorted() { try grant(id: created.id, entitlement: e) }
        return try read(id: created.id) ?? created
    }

    public func update(id: String, attributes: [String: String]) throws(ConnectorError) {
        let ops: [JSONValue] = attributes.sorted(by: { $0.key < $1.key }).map {
            .object(JSONObject(["op": .string("replace"), "path": .string($0.key), "value": .string($0.value)]))
        }
        guard !ops.isEmpty else { return }
        try expectSuccess(try patch("/Users/\(escape(id))", ops), "update")
    }

    public func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
        try expectSuccess(
            try patch(
                "/Users/\(escape(id))",
                [.object(JSONObject(["op": .string("replace"), "path": .string("active"), "value": .bool(enabled)]))]),
            "enable/disable")
    }

    public func rename(id: String, userName: String) throws(ConnectorError) {
        try expectSuccess(
            try patch(
                "/Users/\(escape(id))",
                [
                    .object(
                        JSONObject(["op": .string("replace"), "path": .string("userName"), "value": .string(userName)]))
                ]), "rename")
    }

    public func delete(id: String) throws(ConnectorError) {
        let r = try call("DELETE", "/Users/\(escape(id))")
        if r.status == 404 { return }
        try expectSuccess(r, "delete")
    }

    public func grant(id: String, entitlement: String) throws(ConnectorError) {
        guard try read(id: id) != nil else { throw ConnectorError.permanent("grant: HTTP 404 no such account") }
        let groupID = try group(named: entitlement, create: true) ?? ""
        let op: JSONValue = .object(
            JSONObject([
                "op": .string("add"), "path": .string("members"),
                "value": .array([.object(JSONObject(["value": .string(id)]))]),
            ]))
        try expectSuccess(try patch("/Groups/\(escape(groupID))", [op]), "grant")
    }

    public func revoke(id: String, entitlement: String) throws(ConnectorError) {
        guard let groupID = try group(named: entitlement, create: false) else { return }
        // RFC 7644 §3.5.2.2 with a value: removes only this member (no error if absent).
        let op: JSONValue = .object(
            JSONObject([
                "op": .string("remove"), "path": .string("members"),
                "value": .array([.object(JSONObject(["value": .string(id)]))]),
            ]))
        try expectSuccess(try patch("/Groups/\(escape(groupID))", [op]), "revoke")
    }

    public func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
        let start = Int(cursor ?? "1") ?? 1
        let size = max(1, pageSize)
        let r = try call("GET", "/Users?startIndex=\(start)&count=\(size)")
        try expectSuccess(r, "list")
        let o = try parse(r.body).objectValue
        var accounts: [Account] = []
        for v in o?["Resources"]?.arrayValue ?? [] { accounts.append(try account(v)) }
        let total = Int(o?["totalResults"]?.numberValue?.int64 ?? 0)
        let next = start - 1 + accounts.count < total && !accounts.isEmpty ? String(start + accounts.count) : nil
        return AccountPage(accounts: accounts, next: next)
    }

    // MARK: - Helpers

    /// The id of the group with `displayName`, creating it when asked.
    private func group(named name: String, create: Bool) throws(ConnectorError) -> String? {
        let r = try call("GET", "/Groups?filter=\(escape("displayName eq \(quote(name))"))&excludedAttributes=members")
        try expectSuccess(r, "group lookup")
        if let id = try parse(r.body).objectValue?["Resources"]?.arrayValue?.first?.objectValue?["id"]?.stringValue {
            return id
        }
        guard create else { return nil }
        let c = try call(
            "POST", "/Groups",
            body: .object(JSONObject(["schemas": .array([.string(Self.groupSchema)]), "displayName": .string(name)])))
        try expectSuccess(c, "group create")
        guard let id = try parse(c.body).objectValue?["id"]?.stringValue else {
            throw ConnectorError.retryable("group create: answer has no id")
        }
        return id
    }

    private func patch(_ path: String, _ ops: [JSONValue]) throws(ConnectorError) -> CurlResponse {
        try call(
            "PATCH", path,
            body: .object(JSONObject(["schemas": .array([.string(Self.patchSchema)]), "Operations": .array(ops)])))
    }

    private func call(_ method: String, _ path: String, body: JSONValue? = nil) throws(ConnectorError) -> CurlResponse {
        var headers = ["Accept: application/scim+json", "Authorization: Bearer \(config.bearerToken)"]
        if body != nil { headers.append("Content-Type: application/scim+json") }
        return try client.perform(
            method: method, url: config.baseURL + path, headers: headers, body: body.map { JSONWriter().write($0) })
    }

    private func expectSuccess(_ r: CurlResponse, _ what: String) throws(ConnectorError) {
        // SCIM errors carry scimType (RFC 7644 §3.12); keep it, not the detail (it may echo values).
        try r.requireSuccess(what) { r in
            (try? JSONParser().parse(r.body))?.objectValue?["scimType"]?.stringValue.map { " \($0)" } ?? ""
        }
    }

    private func parse(_ body: [UInt8]) throws(ConnectorError) -> JSONValue {
        do { return try JSONParser().parse(body) } catch {
            throw ConnectorError.retryable("SCIM target answered with invalid JSON")
        }
    }

    private func account(_ v: JSONValue) throws(ConnectorError) -> Account {
        guard let o = v.objectValue, let id = o["id"]?.stringValue, let userName = o["userName"]?.stringValue else {
            throw ConnectorError.retryable("SCIM target answered with a User lacking id or userName")
        }
        var attrs: [String: String] = [:]
        for m in o.members
        where !["id", "userName", "active", "schemas", "meta", "groups", "externalId"].contains(m.key) {
            if let s = m.value.stringValue { attrs[m.key] = s }
            if let sub = m.value.objectValue, !m.key.hasPrefix("urn:") {
                for sm in sub.members { if let s = sm.value.stringValue { attrs["\(m.key).\(sm.key)"] = s } }
            }
        }
        let groups = Set((o["groups"]?.arrayValue ?? []).compactMap { $0.objectValue?["display"]?.stringValue })
        return Account(
            id: id, userName: userName, attributes: attrs, enabled: o["active"]?.boolValue ?? true, entitlements: groups
        )
    }

    /// Sets `a` or `a.b` in a resource body.
    private static func set(_ o: inout JSONObject, _ path: String, _ value: String) {
        let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
        if parts.count == 2 {
            var inner = o[parts[0]]?.objectValue ?? JSONObject()
            inner[parts[1]] = .string(value)
            o[parts[0]] = .object(inner)
        } else {
            o[path] = .string(value)
        }
    }

    /// A SCIM filter string literal (RFC 7644 §3.4.2.2: JSON string).
    private func quote(_ s: String) -> String { JSONWriter().string(.string(s)) }

    private func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }
}
