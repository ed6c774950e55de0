// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import SCIMOutConnector
import TestSupport

/// The outbound SCIM connector against a second ScimHub instance on a loopback port.
@Suite struct SCIMOutConnectorTests {
    let target: LiveHub

    init() throws { target = try LiveHub() }

    func connector(token: String? = nil) -> SCIMOutConnector {
        SCIMOutConnector(
            config: SCIMOutConfig(
                baseURL: "http://127.0.0.1:\(target.port)/scim/v2", bearerToken: token ?? target.writer))
    }

    @Test func conformanceKit_passesAgainstAnotherScimHub() {
        defer { target.stop() }
        let failures = ConformanceKit(
            connector: connector(), userName: "kit@x.org", entitlements: ("Nurses CLN-CEN", "Front Desk"),
            attributes: ["displayName": "Ana Silva", "title": "Registered Nurse"],
            updatedAttributes: ["displayName": "Ana S. Silva", "title": "Receptionist"]
        ).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func wrongToken_isPermanent() {
        defer { target.stop() }
        do { _ = try connector(token: "shub_0000000000000000_x").find(userName: "a"); Issue.record("accepted") } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("credentials"))
        }
    }

    @Test func namesThatLookLikeFilterSyntax_cannotInject() throws {
        defer { target.stop() }
        let c = connector()
        let a = try c.create(AccountSpec(userName: "a@x.org"))
        // A user name crafted to widen the filter must match nothing, not "a@x.org".
        #expect(try c.find(userName: #"x" or userName pr or userName eq "y"#) == nil)
        let tricky = #"smith, jr. "q" (x) \ * @x.org"#
        let b = try c.create(AccountSpec(userName: tricky, attributes: ["displayName": "João D'Ávila"]))
        #expect(try c.find(userName: tricky)?.id == b.id)
        #expect(try c.read(id: b.id)?.attributes["displayName"] == "João D'Ávila")
        #expect(try c.find(userName: "a@x.org")?.id == a.id)
    }
}
