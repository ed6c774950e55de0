// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// A target's settings as a connector plugin receives them: the policy's `settings` object
/// (secret references such as `tokenEnv` already resolved into `token`) and the keys of
/// its `mapping` (the target's own attribute or column names).
public struct TargetSettings: Sendable {
    public let targetName: String
    public let settings: JSONObject
    public let mappedFields: [String]

    public init(targetName: String, settings: JSONObject, mappedFields: [String]) {
        self.targetName = targetName
        self.settings = settings
        self.mappedFields = mappedFields
    }

    /// The prefix of every settings error: `target 'imaging' settings`.
    public var at: String { "target '\(targetName)' settings" }

    public subscript(key: String) -> JSONValue? { settings[key] }

    /// Refuses keys the plugin does not know: a typo must not silently fall back to a default.
    public func onlyKnownKeys(_ known: [String]) throws(ConnectorSettingsError) {
        for k in settings.keys where !known.contains(k) {
            throw ConnectorSettingsError("\(at): unknown key '\(k)' (known: \(known.joined(separator: ", ")))")
        }
    }
}

/// Settings a plugin cannot use; the message names the key, never a secret.
public struct ConnectorSettingsError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A connector plugin: the `type` name targets give in the policy, and how to build a
/// connector from a target's settings. Adding a connector is its own folder plus one line
/// where the executable lists its plugins (`ConnectorCatalog`).
public protocol ConnectorFactory: Sendable {
    var typeName: String { get }
    func make(_ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector
}

/// The plugins a build offers, by type name.
public struct ConnectorCatalog: Sendable {
    private let factories: [String: any ConnectorFactory]

    public init(_ factories: [any ConnectorFactory]) {
        self.factories = Dictionary(factories.map { ($0.typeName, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public var types: Set<String> { Set(factories.keys) }

    public func make(type: String, _ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector {
        guard let f = factories[type] else {
            throw ConnectorSettingsError("target '\(target.targetName)': no connector plugin '\(type)'")
        }
        return try f.make(target)
    }
}
