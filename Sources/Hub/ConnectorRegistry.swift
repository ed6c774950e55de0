// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import CurlHTTP
import EHRRestConnector
import SCIMOutConnector
import JSONCore
import Provisioning

/// The connector plugin types this build offers, and how each reads its target settings.
enum ConnectorRegistry {
    static let types: Set<String> = ["ehr-rest", "scim"]

    static func make(_ t: Target) throws -> any Connector {
        switch t.type {
        case "ehr-rest": return EHRRestConnector(config: try ehrConfig(t))
        case "scim": return SCIMOutConnector(config: try scimConfig(t))
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
}
