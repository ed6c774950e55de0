// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import HubCrypto
import JSONCore
import Store
import TestSupport

/// Step-up MFA (RFC 6238 TOTP) for privileged actions: enrolment shown once, codes checked
/// with one step of skew, used once, failures audited and rate-limited.
@Suite struct StepUpTests {
    let hub: LiveHub

    init() throws {
        hub = try LiveHub(policy: #"{"targets": [{"name": "t", "type": "ldap", "enabled": false}], "packages": []}"#)
    }

    func createToken(
        _ code: String?, token: String? = nil, body: String = #"{"principal": "new-feed", "scopes": ["scim:read"]}"#
    ) throws -> RawResponse {
        try hub.call(
            "POST", "/admin/tokens", token: token ?? hub.admin, body: body,
            headers: code.map { [("X-ScimHub-TOTP", $0)] } ?? [])
    }

    @Test func tokenCreation_needsACurrentUnusedCode() throws {
        defer { hub.stop() }
        // Not enrolled: refused with how to enrol.
        let before = try createToken("123456")
        #expect(before.status == 403)
        #expect(before.object["detail"]?.stringValue?.contains("POST /mfa/enrol") == true)
        let enrol = try hub.call("POST", "/mfa/enrol", token: hub.admin)
        #expect(enrol.status == 201)
        #expect(enrol.object["otpauth"]?.stringValue?.hasPrefix("otpauth://totp/ScimHub:auditor?secret=") == true)
        #expect(try hub.call("POST", "/mfa/enrol", token: hub.admin).status == 409)  // shown once; no second secret
        let secret = try #require(
            TOTP.base32Decode(
                String(enrol.object["otpauth"]!.stringValue!.split(separator: "=")[1].prefix { $0 != "&" })))
        // Two steps away (one minute of skew) is refused; missing or malformed too.
        #expect(try createToken(LiveHub.totp(secret, stepOffset: -2)).status == 403)
        #expect(try createToken(nil).status == 403)
        #expect(try createToken("12345a").status == 403)
        // Validation comes first and does not use the code up.
        #expect(try createToken(LiveHub.totp(secret), body: #"{"principal": "x", "scopes": ["root"]}"#).status == 400)
        let code = LiveHub.totp(secret)
        let ok = try createToken(code)
        #expect(ok.status == 201, "\(ok.text)")
        let newToken = try #require(ok.object["token"]?.stringValue)
        #expect(try hub.call("GET", "/scim/v2/Users?count=0", token: newToken).status == 200)
        // The same code again is refused (replay), and the failures are in the audit log.
        #expect(try createToken(code).status == 403)
        let audit = try hub.call("GET", "/admin/audit?principal=auditor", token: hub.admin).text
        #expect(audit.contains("mfa.failure") && audit.contains("mfa.enrol") && audit.contains("token.create"))
    }

    @Test func oneStepOfSkew_isAccepted() throws {
        defer { hub.stop() }
        let secret = try hub.enrolTOTP(hub.admin)
        #expect(try createToken(LiveHub.totp(secret, stepOffset: -1)).status == 201)
    }

    @Test func repeatedFailures_areRateLimited() throws {
        defer { hub.stop() }
        _ = try hub.enrolTOTP(hub.admin)
        for _ in 0..<5 { #expect(try createToken("000000").status == 403) }
        let limited = try createToken("000000")
        #expect(limited.status == 429)
        #expect(limited.header("Retry-After") != nil)
    }

    @Test func feedTokens_cannotEnrolOrCreateTokens() throws {
        defer { hub.stop() }
        #expect(try hub.call("POST", "/mfa/enrol", token: hub.writer).status == 403)
        #expect(try createToken("123456", token: hub.writer).status == 403)
    }
}
