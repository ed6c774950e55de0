// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import CurlHTTP
import JSONCore

/// The `ehr-rest` connector plugin.
public struct EHRRestConnectorFactory: ConnectorFactory {
    public let typeName = "ehr-rest"
    public init() {}

    public func make(_ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector {
        EHRRestConnector(config: try Self.config(target))
    }

    /// `settings` of an `ehr-rest` target:
    /// `{"baseURL", "auth": {"type": "bearer", "tokenEnv"|"tokenFile"}
    ///   | {"type": "oauth2", "tokenURL", "clientId", "clientSecretEnv"|"clientSecretFile"},
    ///   "usersPath"?, "fields"?: {"id", "userName", "enabled", "entitlements", "list", "next"},
    ///   "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    static func config(_ t: TargetSettings) throws(ConnectorSettingsError) -> EHRRestConfig {
        let s = t.settings, at = t.at
        let base = try t.baseURL()
        guard let auth = s["auth"]?.objectValue, let kind = auth["type"]?.stringValue else {
            throw ConnectorSettingsError("\(at).auth.type is required")
        }
        let a: EHRRestConfig.Auth
        switch kind {
        case "bearer":
            guard let token = auth["token"]?.stringValue else {
                throw ConnectorSettingsError("\(at).auth needs tokenEnv or tokenFile")
            }
            a = .bearer(token)
        case "oauth2":
            guard let url = auth["tokenURL"]?.stringValue, let id = auth["clientId"]?.stringValue,
                let secret = auth["clientSecret"]?.stringValue
            else {
                throw ConnectorSettingsError(
                    "\(at).auth needs tokenURL, clientId and clientSecretEnv or clientSecretFile")
            }
            a = .oauth2(tokenURL: url, clientID: id, clientSecret: secret)
        default:
            throw ConnectorSettingsError("\(at).auth.type must be bearer or oauth2")
        }
        var c = EHRRestConfig(baseURL: base, auth: a)
        if let p = s["usersPath"]?.stringValue {
            guard p.hasPrefix("/") else { throw ConnectorSettingsError("\(at).usersPath must start with '/'") }
            c.usersPath = p
        }
        // JSON field names, for EHRs that spell them differently.
        if let f = s["fields"] {
            guard let fo = f.objectValue else { throw ConnectorSettingsError("\(at).fields must be an object") }
            for m in fo.members {
                guard let name = m.value.stringValue, !name.isEmpty else {
                    throw ConnectorSettingsError("\(at).fields.\(m.key) must be a field name")
                }
                switch m.key {
                case "id": c.idField = name
                case "userName": c.userNameField = name
                case "enabled": c.enabledField = name
                case "entitlements": c.entitlementsField = name
                case "list": c.listField = name
                case "next": c.nextField = name
                default:
                    throw ConnectorSettingsError(
                        "\(at).fields: unknown field '\(m.key)' (id, userName, enabled, entitlements, list, next)")
                }
            }
        }
        c.transport = t.transport()
        return c
    }
}
