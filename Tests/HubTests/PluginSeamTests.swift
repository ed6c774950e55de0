// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import JSONCore
import Provisioning
import TestSupport

/// Connectors are plugins: the hub knows only ConnectorKit's factory protocol; the
/// executable lists the plugins.
@Suite struct PluginSeamTests {
    @Test func theHubImportsNoConnector() throws {
        let dir = repoRoot + "/Sources/Hub"
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) where file.hasSuffix(".swift") {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            for module in ["EHRRestConnector", "SCIMOutConnector", "LDAPConnector", "SQLConnector", "CurlHTTP"] {
                #expect(!text.contains("import \(module)"), "\(file) imports \(module)")
            }
        }
    }

    @Test func settingsErrorsNameTheKey_andUnknownTypesNameThePlugin() {
        let bad = TargetSettings(
            targetName: "imaging", settings: JSONObject(["url": .string("http://x")]), mappedFields: [])
        let error = #expect(throws: ConnectorSettingsError.self) { _ = try testConnectors.make(type: "ldap", bad) }
        #expect(error?.description == "target 'imaging' settings.url must be an ldap:// or ldaps:// URL")
        let unknown = #expect(throws: ConnectorSettingsError.self) { _ = try testConnectors.make(type: "fax", bad) }
        #expect(unknown?.description == "target 'imaging': no connector plugin 'fax'")
        #expect(testConnectors.types == ["ehr-rest", "scim", "ldap", "sql"])
    }
}
