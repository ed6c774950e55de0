// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import ConnectorKit
import EHRRestConnector
import EHRTestServer

/// The EHR REST connector against the project's EHR test server on a loopback port.
@Suite struct EHRRestConnectorTests {
    let ehr: EHRTestServer

    init() throws {
        ehr = try EHRTestServer(timeoutDelay: 2)
        ehr.start()
    }

    func connector(_ auth: EHRRestConfig.Auth? = nil, timeout: Double = 30) -> EHRRestConnector {
        var c = EHRRestConfig(baseURL: ehr.baseURL, auth: auth ?? .bearer(ehr.staticToken))
        c.transport.totalTimeout = timeout
        return EHRRestConnector(config: c)
    }

    func kit(_ c: EHRRestConnector, _ name: String = "conformance@x.org") -> ConformanceKit {
        ConformanceKit(
            connector: c, userName: name, entitlements: ("nurse", "scheduling"),
            attributes: ["displayName": "Ana Silva", "email": "ana@x.org"],
            updatedAttributes: ["displayName": "Ana S. Silva", "email": "ana.silva@x.org"])
    }

    @Test func conformanceKit_staticBearer_passes() {
        defer { ehr.stop() }
        let failures = kit(connector()).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func conformanceKit_oauth2ClientCredentials_passes() {
        defer { ehr.stop() }
        let failures = kit(
            connector(
                .oauth2(tokenURL: ehr.baseURL + "/oauth/token", clientID: ehr.clientID, clientSecret: ehr.clientSecret))
        ).run()
        #expect(failures.isEmpty, "\(failures)")
    }

    /// The probe: up when the target answers, retryable when it does not, permanent when it
    /// refuses the hub's credentials.
    @Test func probe_saysUp_down_orRefused() throws {
        defer { ehr.stop() }
        try connector().probe()
        ehr.setFault(.error5xx)
        #expect(throws: ConnectorError.self) { try connector().probe() }
        do { try connector().probe() } catch { #expect(error.isRetryable, "\(error)") }
        ehr.setFault(.none)
        do { try connector(.bearer("wrong")).probe(); Issue.record("accepted") } catch {
            #expect(!error.isRetryable && error.reason.contains("credentials"), "\(error)")
        }
    }

    @Test func wrongCredentials_arePermanentWithAClearReason() {
        defer { ehr.stop() }
        do { _ = try connector(.bearer("wrong")).find(userName: "x"); Issue.record("accepted") } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("credentials"))
        }
        do {
            _ = try connector(
                .oauth2(tokenURL: ehr.baseURL + "/oauth/token", clientID: "scimhub", clientSecret: "nope")
            ).find(userName: "x")
            Issue.record("accepted")
        } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("client credentials"))
        }
    }

    @Test func faults_areClassified() {
        defer { ehr.stop() }
        let c = connector(timeout: 0.5)
        ehr.setFault(.error5xx)
        #expect(throws: ConnectorError.retryable("find: HTTP 503")) { try c.find(userName: "x") }
        ehr.setFault(.rateLimit, retryAfter: 7)
        do { _ = try c.find(userName: "x"); Issue.record("accepted") } catch {
            #expect(error.isRetryable)
            #expect(error.retryAfter == 7)
        }
        ehr.setFault(.timeout)
        do { _ = try c.find(userName: "x"); Issue.record("accepted") } catch {
            #expect(error.isRetryable)
            #expect(error.reason.contains("transport"))
        }
        ehr.setFault(.reject)
        do { _ = try c.create(AccountSpec(userName: "y")); Issue.record("accepted") } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("422"))
        }
        ehr.setFault(.garbage)
        do { _ = try c.find(userName: "x"); Issue.record("accepted") } catch {
            #expect(error.isRetryable)
            #expect(error.reason.contains("invalid JSON"))
        }
        ehr.setFault(.none)
        do { _ = try c.create(AccountSpec(userName: "z", entitlements: ["surgeon"])); Issue.record("accepted") } catch {
            #expect(!error.isRetryable)
            #expect(error.reason.contains("unknown role"))
        }
    }

    @Test func targetDown_isRetryable() {
        ehr.stop()
        do { _ = try connector().find(userName: "x"); Issue.record("accepted") } catch {
            #expect(error.isRetryable)
        }
    }

    @Test func namesWithSpecialCharacters_roundTrip() throws {
        defer { ehr.stop() }
        let c = connector()
        for name in ["joão.d'ávila@x.org", "smith, jr.@x.org", "a+b/c?d&e=f#g@x.org", "\"quoted\" (x) *@x.org"] {
            let a = try c.create(AccountSpec(userName: name, attributes: ["displayName": name]))
            #expect(try c.find(userName: name)?.id == a.id)
            #expect(try c.read(id: a.id)?.attributes["displayName"] == name)
        }
    }
}
