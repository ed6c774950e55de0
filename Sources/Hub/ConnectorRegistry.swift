// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import CurlHTTP
import EHRRestConnector
import LDAPConnector
import SCIMOutConnector
import SQLConnector
import JSONCore
import Provisioning

/// The connector plugin types this build offers, and how each reads its target settings.
enum ConnectorRegistry {
    static let types: Set<String> = ["ehr-rest", "scim", "ldap", "sql"]

    static func make(_ t: Target) throws -> any Connector {
        switch t.type {
        case "ehr-rest": return EHRRestConnector(config: try ehrConfig(t))
        case "scim": return SCIMOutConnector(config: try scimConfig(t))
        case "ldap": return LDAPConnector(config: try ldapConfig(t))
        case "sql":
            do { return try SQLConnector(config: try sqlConfig(t)) } catch let e as SQLConfigError { throw PolicyError("target '\(t.name)' settings: \(e)") }
        default: throw PolicyError("target '\(t.name)': no connector plugin '\(t.type)'")
        }
    }

    /// The `baseURL` setting of an HTTP target: only http(s) (libcurl is limited to them too).
    static func baseURL(_ s: JSONObject, _ at: String) throws -> String {
        guard let base = s["baseURL"]?.stringValue, base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw PolicyError("\(at).baseURL must be an http(s) URL")
        }
        return base
    }

    /// Transport settings shared by HTTP targets: `verifyTLS`, `caFile`, `connectTimeoutSeconds`, `timeoutSeconds`.
    static func transport(_ s: JSONObject) -> CurlClient.Options {
        var o = CurlClient.Options()
        if let v = s["verifyTLS"]?.boolValue { o.verifyTLS = v }
        if let f = s["caFile"]?.stringValue { o.caFile = f }
        if let n = s["connectTimeoutSeconds"]?.numberValue?.double, n > 0 { o.connectTimeout = n }
        if let n = s["timeoutSeconds"]?.numberValue?.double, n > 0 { o.totalTimeout = n }
        return o
    }

    /// `settings` of a `scim` target: `{"baseURL": ".../scim/v2", "auth": {"type": "bearer", "tokenEnv"|"tokenFile"},
    ///   "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    static func scimConfig(_ t: Target) throws -> SCIMOutConfig {
        let s = t.settings
        let at = "target '\(t.name)' settings"
        let base = try baseURL(s, at)
        guard let auth = s["auth"]?.objectValue, auth["type"]?.stringValue == "bearer", let token = auth["token"]?.stringValue else {
            throw PolicyError("\(at).auth must be {\"type\": \"bearer\", \"tokenEnv\" or \"tokenFile\"}")
        }
        var c = SCIMOutConfig(baseURL: base, bearerToken: token)
        c.transport = transport(s)
        return c
    }

    /// `settings` of an `ehr-rest` target:
    /// `{"baseURL", "auth": {"type": "bearer", "tokenEnv"|"tokenFile"} | {"type": "oauth2", "tokenURL", "clientId", "clientSecretEnv"|"clientSecretFile"},
    ///   "usersPath"?, "fields"?: {"id", "userName", "enabled", "entitlements", "list", "next"},
    ///   "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    static func ehrConfig(_ t: Target) throws -> EHRRestConfig {
        let s = t.settings
        let at = "target '\(t.name)' settings"
        let base = try baseURL(s, at)
        guard let auth = s["auth"]?.objectValue, let kind = auth["type"]?.stringValue else { throw PolicyError("\(at).auth.type is required") }
        let a: EHRRestConfig.Auth
        switch kind {
        case "bearer":
            guard let token = auth["token"]?.stringValue else { throw PolicyError("\(at).auth needs tokenEnv or tokenFile") }
            a = .bearer(token)
        case "oauth2":
            guard let url = auth["tokenURL"]?.stringValue, let id = auth["clientId"]?.stringValue, let secret = auth["clientSecret"]?.stringValue else {
                throw PolicyError("\(at).auth needs tokenURL, clientId and clientSecretEnv or clientSecretFile")
            }
            a = .oauth2(tokenURL: url, clientID: id, clientSecret: secret)
        default:
            throw PolicyError("\(at).auth.type must be bearer or oauth2")
        }
        var c = EHRRestConfig(baseURL: base, auth: a)
        if let p = s["usersPath"]?.stringValue {
            guard p.hasPrefix("/") else { throw PolicyError("\(at).usersPath must start with '/'") }
            c.usersPath = p
        }
        // JSON field names, for EHRs that spell them differently.
        if let f = s["fields"] {
            guard let fo = f.objectValue else { throw PolicyError("\(at).fields must be an object") }
            for m in fo.members {
                guard let name = m.value.stringValue, !name.isEmpty else { throw PolicyError("\(at).fields.\(m.key) must be a field name") }
                switch m.key {
                case "id": c.idField = name
                case "userName": c.userNameField = name
                case "enabled": c.enabledField = name
                case "entitlements": c.entitlementsField = name
                case "list": c.listField = name
                case "next": c.nextField = name
                default: throw PolicyError("\(at).fields: unknown field '\(m.key)' (id, userName, enabled, entitlements, list, next)")
                }
            }
        }
        c.transport = transport(s)
        return c
    }

    /// Refuses settings keys the plugin does not know (a typo must not silently fall back to a default).
    static func onlyKnownKeys(_ s: JSONObject, _ known: [String], _ at: String) throws {
        for k in s.keys where !known.contains(k) {
            throw PolicyError("\(at): unknown key '\(k)' (known: \(known.joined(separator: ", ")))")
        }
    }

    /// An LDAP attribute name (RFC 4512 §1.4 descr): it is spliced into filters, so nothing else passes.
    static func attributeName(_ v: JSONValue?, _ at: String) throws -> String? {
        guard let v else { return nil }
        guard let n = v.stringValue, let first = n.utf8.first, (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A, n.utf8.count <= 64,
              n.utf8.allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }) else {
            throw PolicyError("\(at) must be an LDAP attribute name (a letter, then letters, digits or '-')")
        }
        return n
    }

    /// `settings` of an `ldap` target:
    /// `{"url": "ldap://host" | "ldaps://host", "startTLS"?, "bindDN", "bindPasswordEnv"|"bindPasswordFile", "usersBase", "groupsBase",
    ///   "objectClasses"?, "rdnAttribute"?, "userNameAttribute"?, "groupObjectClass"?: "groupOfNames"|"groupOfUniqueNames",
    ///   "groupNameAttribute"?, "emptyGroupMember"?, "disable"?: {"method": "lock"} | {"method": "attribute", "attribute", "value"} | {"method": "move", "base"},
    ///   "pageSize"?, "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    /// The mapping's field names are LDAP attribute names.
    static func ldapConfig(_ t: Target) throws -> LDAPConfig {
        let s = t.settings
        let at = "target '\(t.name)' settings"
        try onlyKnownKeys(s, ["url", "startTLS", "bindDN", "bindPassword", "usersBase", "groupsBase", "objectClasses", "rdnAttribute", "userNameAttribute",
                              "groupObjectClass", "groupNameAttribute", "emptyGroupMember", "disable", "pageSize", "verifyTLS", "caFile",
                              "connectTimeoutSeconds", "timeoutSeconds"], at)
        guard let url = s["url"]?.stringValue, url.lowercased().hasPrefix("ldap://") || url.lowercased().hasPrefix("ldaps://") else {
            throw PolicyError("\(at).url must be an ldap:// or ldaps:// URL")
        }
        guard let bindDN = s["bindDN"]?.stringValue, !bindDN.isEmpty else { throw PolicyError("\(at).bindDN is required") }
        guard let password = s["bindPassword"]?.stringValue else { throw PolicyError("\(at) needs bindPasswordEnv or bindPasswordFile") }
        guard let users = s["usersBase"]?.stringValue, !users.isEmpty else { throw PolicyError("\(at).usersBase is required") }
        guard let groups = s["groupsBase"]?.stringValue, !groups.isEmpty else { throw PolicyError("\(at).groupsBase is required") }
        var c = LDAPConfig(url: url, bindDN: bindDN, bindPassword: password, usersBase: users, groupsBase: groups)
        if let v = s["startTLS"] {
            guard let b = v.boolValue else { throw PolicyError("\(at).startTLS must be true or false") }
            c.startTLS = b
        }
        if let v = s["objectClasses"] {
            let names = try (v.arrayValue ?? []).map { try attributeName($0, "\(at).objectClasses[]") ?? "" }
            guard !names.isEmpty else { throw PolicyError("\(at).objectClasses must be a non-empty array of object class names") }
            c.objectClasses = names
        }
        if let n = try attributeName(s["rdnAttribute"], "\(at).rdnAttribute") { c.rdnAttribute = n }
        if let n = try attributeName(s["userNameAttribute"], "\(at).userNameAttribute") { c.userNameAttribute = n }
        if let n = try attributeName(s["groupNameAttribute"], "\(at).groupNameAttribute") { c.groupNameAttribute = n }
        if let g = s["groupObjectClass"] {
            guard let n = g.stringValue, ["groupofnames", "groupofuniquenames"].contains(n.lowercased()) else {
                throw PolicyError("\(at).groupObjectClass must be groupOfNames or groupOfUniqueNames")
            }
            c.groupObjectClass = n
        }
        if let m = s["emptyGroupMember"]?.stringValue { c.emptyGroupMember = m }
        if let d = s["disable"] {
            guard let o = d.objectValue, let method = o["method"]?.stringValue else { throw PolicyError("\(at).disable must be {\"method\": \"lock\" | \"attribute\" | \"move\"}") }
            switch method {
            case "lock": c.disable = .lock
            case "attribute":
                guard let name = try attributeName(o["attribute"], "\(at).disable.attribute"), let value = o["value"]?.stringValue, !value.isEmpty else {
                    throw PolicyError("\(at).disable needs 'attribute' and a non-empty 'value'")
                }
                c.disable = .attribute(name: name, value: value)
            case "move":
                guard let base = o["base"]?.stringValue, !base.isEmpty else { throw PolicyError("\(at).disable needs 'base' (the disabled subtree)") }
                c.disable = .move(base: base)
            default: throw PolicyError("\(at).disable.method must be lock, attribute or move")
            }
        }
        if let p = s["pageSize"] {
            guard let n = p.numberValue?.int64, (1...10_000).contains(n) else { throw PolicyError("\(at).pageSize must be an integer in 1...10000") }
            c.pageSize = Int(n)
        }
        if let v = s["verifyTLS"]?.boolValue { c.verifyTLS = v }
        if let f = s["caFile"]?.stringValue { c.caFile = f }
        if let n = s["connectTimeoutSeconds"]?.numberValue?.double, n > 0 { c.connectTimeout = n }
        if let n = s["timeoutSeconds"]?.numberValue?.double, n > 0 { c.timeout = n }
        c.attributes = try t.mapping.map { try attributeName(.string($0.field), "target '\(t.name)' mapping key '\($0.field)'") ?? $0.field }
        return c
    }

    /// `settings` of a `sql` target:
    /// `{"dialect": "postgresql", "connection": "host=… port=… dbname=… user=…", "passwordEnv"|"passwordFile"?, "schema"?: [DDL], "statements": {…}}`
    /// or `{"dialect": "sqlite", "path": "admin.db", "schema"?, "statements"}`. Statement keys and
    /// parameters are in `SQLConnector`; the mapping's field names are the parameter and column names.
    static func sqlConfig(_ t: Target) throws -> SQLConfig {
        let s = t.settings
        let at = "target '\(t.name)' settings"
        try onlyKnownKeys(s, ["dialect", "connection", "password", "path", "schema", "statements"], at)
        let database: SQLConfig.Database
        switch s["dialect"]?.stringValue {
        case "postgresql":
            guard let conninfo = s["connection"]?.stringValue, !conninfo.isEmpty else { throw PolicyError("\(at).connection (a libpq connection string) is required") }
            guard !conninfo.lowercased().contains("password") else { throw PolicyError("\(at).connection must not hold the password: use passwordEnv or passwordFile") }
            database = .postgresql(conninfo: conninfo, password: s["password"]?.stringValue)
        case "sqlite":
            guard let path = s["path"]?.stringValue, !path.isEmpty else { throw PolicyError("\(at).path (the database file) is required") }
            database = .sqlite(path: path)
        default:
            throw PolicyError("\(at).dialect must be postgresql or sqlite")
        }
        guard let so = s["statements"]?.objectValue else { throw PolicyError("\(at).statements must be an object of name: SQL") }
        var statements: [String: String] = [:]
        for m in so.members {
            guard let text = m.value.stringValue else { throw PolicyError("\(at).statements.\(m.key) must be a string") }
            statements[m.key] = text
        }
        var c = SQLConfig(database: database, statements: statements)
        c.schema = try (s["schema"]?.arrayValue ?? []).map { v throws -> String in
            guard let ddl = v.stringValue else { throw PolicyError("\(at).schema must be an array of SQL statements") }
            return ddl
        }
        c.attributes = t.mapping.map(\.field)
        for a in c.attributes where !a.utf8.allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }) {
            throw PolicyError("target '\(t.name)' mapping key '\(a)' must be a parameter name (letters, digits, '_')")
        }
        return c
    }
}
