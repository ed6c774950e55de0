// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import EHRRestConnector
import LDAPConnector
import SCIMOutConnector
import SQLConnector

/// Every connector plugin, as the `scimhub` executable registers them.
public let testConnectors = ConnectorCatalog([
    EHRRestConnectorFactory(), SCIMOutConnectorFactory(), LDAPConnectorFactory(), SQLConnectorFactory(),
])
