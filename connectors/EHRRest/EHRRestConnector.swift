// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import ConnectorKit
import CurlHTTP
import JSONCore

/// Settings for one EHR target.
///
/// The EHR's REST shape, relative to `baseURL` + `usersPath` (all JSON):
/// `POST {users}` create · `GET {users}/{id}` read · `GET {users}?userName=` find ·
/// `PUT {users}/{id}` attributes · `PATCH {users}/{id}` `{"<enabledField>": bool}` ·
/// `DELETE {users}/{id}` · `PUT|DELETE {users}/{id}/roles/{role}` ·
/// `GET {users}?page=N&pageSize=M` → `{"<listField>": [...], "<nextField>": N+1|null}`.
/// Field names are configurable for EHRs that spell them differently.
public struct EHRRestConfig: Sendable {
    public enum Auth: Sendable, Equatable {
        /// A static bearer token (read from an environment variable or file by the caller).
        case bearer(String)
        /// OAuth2 client credentials (RFC 6749 §4.4): tokens are cached until shortly before expiry.
        case oauth2(tokenURL: String, clientID: String, clientSecret: String)
    }

    public var baseURL: String
    public var auth: Auth
    public var usersPath = "/api/users"
    public var idField = "id"
    public var userNameField = "userName"
    public var enabledField = "active"
    public var entitlementsField = "roles"
    public var listField = "users"
    public var nextField = "nextPage"
    /// Timeouts and TLS.
    public var transport = CurlClient.Options()

    public init(baseURL: String, auth: Auth) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.auth = auth
    }
}

/// The EHR over REST: a `Connector` on libcurl.
public final class EHRRestConnector: Connector {
    public let config: EHRRestConfig
    private let client: CurlClient
    private let cachedToken = Mutex<(token: String, expires: Date)?>(nil)

    public init(config: EHRRestConfig) {
        self.config = config
        client = CurlClient(options: config.transport)
    }

    public var capabilities: ConnectorCapabilities { ConnectorCapabilities(entitlementKinds: ["role"]) }

    // MARK: - Connector

    public func read(id: String) throws(ConnectorError) -> Account? {
        let r = try call("GET", "/\(escape(id))")
        if r.status == 404 { return nil }
        try expectSuccess(r, "read")
        return try account(from: parse(r.body))
    }

    public func find(userName: String) throws(ConnectorError) -> Account? {
        let r = try call("GET", "?\(config.userNameField)=\(escape(userName))")
        try expectSuccess(r, "find")
        let list = try parse(r.body).objectValue?[config.listField]?.arrayValue ?? []
        return try list.first.map { v throws(ConnectorError) in try account(from: v) }
    }

    public func create(_ spec: AccountSpec) throws(ConnectorError) -> Account {
        var o = JSONObject([config.userNameField: .string(spec.userName)])
        for (k, v) in spec.attributes.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
        o[config.enabledField] = .bool(spec.enabled)
        o[config.entitlementsField] = .array(spec.entitlements.sorted().map { .string($0) })
        let r = try call("POST", "", body: .object(o))
        try expectSuccess(r, "create")
        return try account(from: parse(r.body))
    }

    public func update(id: String, attributes: [String: String]) throws(ConnectorError) {
        var o = JSONObject()
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { o[k] = .string(v) }
        try expectSuccess(try call("PUT", "/\(escape(id))", body: .object(o)), "update")
    }

    public func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
        try expectSuccess(
            try call("PATCH", "/\(escape(id))", body: .object(JSONObject([config.enabledField: .bool(enabled)]))),
            "enable/disable")
    }

    public func rename(id: String, userName: String) throws(ConnectorError) {
        try expectSuccess(
            try call("PATCH", "/\(escape(id))", body: .object(JSONObject([config.userNameField: .string(userName)]))),
            "rename")
    }

    public func delete(id: String) throws(ConnectorError) {
        let r = try call("DELETE", "/\(escape(id))")
        if r.status == 404 { return }  // already gone: deleting is idempotent
        try expectSuccess(r, "delete")
    }

    public func grant(id: String, entitlement: String) throws(ConnectorError) {
        try expectSuccess(try call("PUT", "/\(escape(id))/roles/\(escape(entitlement))"), "grant")
    }

    public func revoke(id: String, entitlement: String) throws(ConnectorError) {
        try expectSuccess(try call("DELETE", "/\(escape(id))/roles/\(escape(entitlement))"), "revoke")
    }

    public func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
        let page = Int(cursor ?? "1") ?? 1
        let r = try call("GET", "?page=\(page)&pageSize=\(max(1, pageSize))")
        try expectSuccess(r, "list")
        let o = try parse(r.body).objectValue
        var accounts: [Account] = []
        for v in o?[config.listField]?.arrayValue ?? [] { accounts.append(try account(from: v)) }
        let next = o?[config.nextField]?.numberValue?.int64.map { String($0) }
        return AccountPage(accounts: accounts, next: next)
    }

    // MARK: - HTTP

    private func call(_ method: String, _ suffix: String, body: JSONValue? = nil) throws(ConnectorError) -> CurlResponse
    {
        let url = config.baseURL + config.usersPath + suffix
        var r = try send(method, url, body)
        if r.status == 401, case .oauth2 = config.auth {
            // The cached token may have been revoked or expired early: fetch one more, once.
            cachedToken.withLock { $0 = nil }
            r = try send(method, url, body)
        }
        return r
    }

    private func send(_ method: String, _ url: String, _ body: JSONValue?) throws(ConnectorError) -> CurlResponse {
        var headers = ["Accept: application/json", "Authorization: Bearer \(try bearer())"]
        if body != nil { headers.append("Content-Type: application/json") }
        return try client.perform(method: method, url: url, headers: headers, body: body.map { JSONWriter().write($0) })
    }

    private func bearer() throws(ConnectorError) -> String {
        switch config.auth {
        case .bearer(let t): return t
        case .oauth2(let tokenURL, let id, let secret):
            if let t = cachedToken.withLock({ $0 }), t.expires > Date() { return t.token }
            let form = "grant_type=client_credentials&client_id=\(formEscape(id))&client_secret=\(formEscape(secret))"
            let r = try client.perform(
                method: "POST", url: tokenURL,
                headers: ["Content-Type: application/x-www-form-urlencoded", "Accept: application/json"],
                body: Array(form.utf8))
            if r.status == 401 || r.status == 400 {
                throw ConnectorError.permanent(
                    "OAuth2 token endpoint refused the client credentials (HTTP \(r.status))")
            }
            try expectSuccess(r, "token")
            guard let o = try parse(r.body).objectValue, let token = o["access_token"]?.stringValue else {
                throw ConnectorError.retryable("OAuth2 token response has no access_token")
            }
            let lifetime = o["expires_in"]?.numberValue?.double ?? 300
            // Refresh 30 s early so a token never expires mid-request.
            cachedToken.withLock { $0 = (token, Date().addingTimeInterval(max(0, lifetime - 30))) }
            return token
        }
    }

    private func expectSuccess(_ r: CurlResponse, _ what: String) throws(ConnectorError) {
        try r.requireSuccess(what, detail: errorText)
    }

    /// The EHR's own short error message, if it sent one (never echoes request values).
    private func errorText(_ r: CurlResponse) -> String {
        guard let e = (try? JSONParser().parse(r.body))?.objectValue?["error"]?.stringValue else { return "" }
        return " " + String(e.prefix(200))
    }

    private func parse(_ body: [UInt8]) throws(ConnectorError) -> JSONValue {
        do { return try JSONParser().parse(body) } catch {
            throw ConnectorError.retryable("EHR answered with invalid JSON")
        }
    }

    private func account(from v: JSONValue) throws(ConnectorError) -> Account {
        guard let o = v.objectValue, let id = o[config.idField]?.stringValue,
            let userName = o[config.userNameField]?.stringValue
        else {
            throw ConnectorError.retryable("EHR answered with an account lacking id or userName")
        }
        var attrs: [String: String] = [:]
        for m in o.members
        where ![config.idField, config.userNameField, config.enabledField, config.entitlementsField].contains(m.key) {
            if let s = m.value.stringValue { attrs[m.key] = s }
        }
        let roles = Set((o[config.entitlementsField]?.arrayValue ?? []).compactMap(\.stringValue))
        return Account(
            id: id, userName: userName, attributes: attrs, enabled: o[config.enabledField]?.boolValue ?? true,
            entitlements: roles)
    }

    private func escape(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    private func formEscape(_ s: String) -> String { escape(s) }
}
