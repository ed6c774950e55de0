// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import JSONCore

/// Settings every HTTP connector reads the same way.
extension TargetSettings {
    /// `baseURL`: only http(s) (libcurl is limited to them too).
    public func baseURL() throws(ConnectorSettingsError) -> String {
        guard let base = self["baseURL"]?.stringValue, base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw ConnectorSettingsError("\(at).baseURL must be an http(s) URL")
        }
        return base
    }

    /// `verifyTLS`, `caFile`, `connectTimeoutSeconds`, `timeoutSeconds`.
    public func transport() -> CurlClient.Options {
        var o = CurlClient.Options()
        if let v = self["verifyTLS"]?.boolValue { o.verifyTLS = v }
        if let f = self["caFile"]?.stringValue { o.caFile = f }
        if let n = self["connectTimeoutSeconds"]?.numberValue?.double, n > 0 { o.connectTimeout = n }
        if let n = self["timeoutSeconds"]?.numberValue?.double, n > 0 { o.totalTimeout = n }
        return o
    }
}
