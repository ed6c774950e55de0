// SPDX-License-Identifier: Apache-2.0
import ConnectorKit

extension ConnectorCatalog {
    /// The connector for a policy target, built by its plugin; a settings error is a policy
    /// error naming the key.
    public func make(_ t: Target) throws(PolicyError) -> any Connector {
        do {
            return try make(
                type: t.type,
                TargetSettings(targetName: t.name, settings: t.settings, mappedFields: t.mapping.map(\.field)))
        } catch {
            throw PolicyError(error.description)
        }
    }
}
