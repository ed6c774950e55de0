// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import CurlHTTP
import JSONCore

/// The `scim` connector plugin.
public struct SCIMOutConnectorFactory: ConnectorFactory {
    public let typeName = "scim"
    public init() {}

    public func make(_ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector {
        SCIMOutConnector(config: try Self.config(target))
    }

    /// `settings` of a `scim` target: `{"baseURL": ".../scim/v2", "auth": {"type": "bearer", "tokenEnv"|"tokenFile"},
    ///   "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    static func config(_ t: TargetSettings) throws(ConnectorSettingsError) -> SCIMOutConfig {
        let s = t.settings, at = t.at
        let base = try t.baseURL()
        guard let auth = s["auth"]?.objectValue, auth["type"]?.stringValue == "bearer",
            let token = auth["token"]?.stringValue
        else {
            throw ConnectorSettingsError("\(at).auth must be {\"type\": \"bearer\", \"tokenEnv\" or \"tokenFile\"}")
        }
        var c = SCIMOutConfig(baseURL: base, bearerToken: token)
        c.transport = t.transport()
        return c
    }
}
