// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import EHRRestConnector
import LDAPConnector
import SCIMOutConnector
import SQLConnector

/// The connector plugins this build offers. A new connector is its folder under
/// `connectors/`, its target in Package.swift, and one entry here.
let connectorCatalog = ConnectorCatalog([
    EHRRestConnectorFactory(), SCIMOutConnectorFactory(), LDAPConnectorFactory(), SQLConnectorFactory(),
])
