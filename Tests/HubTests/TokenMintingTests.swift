// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Testing
import EHRTestServer
import JSONCore
import Provisioning
import Store
import TestSupport

/// Separation of duties for tokens minted over the API: no reserved or feed principal, a
/// second administrator for break-glass and multi-role tokens, the minter recorded, and a
/// break-glass use never reviewed by the grantee, the granter or the granter's minter.
@Suite struct TokenMintingTests {
    let ehr: EHRTestServer
    let hub: LiveHub
    let alice: String
    let aliceSecret: [UInt8]

    init() throws {
        ehr = try EHRTestServer()
        ehr.start()
        let policy = singleEHRPolicy(
            ehr,
            packages:
                #"{"name": "receptionist", "rule": "title eq \"Receptionist\"", "grants": {"ehr": ["scheduling"]}}, "#
                + #"{"name": "emergency-physician", "groups": ["Emergency Roster"], "#
                + #""grants": {"ehr": ["physician"]}, "breakGlass": {"maxHours": 8}}"#
        )
        hub = try LiveHub(policy: policy) { c in
            c.feeds = ["hr": ["*"], "credentialing": ["title"]]; c.feedGroups = ["hr": ["*"]]
        }
        alice = try hub.makeToken("alice", [.admin])
        aliceSecret = try hub.enrolTOTP(alice)
    }

    /// `POST /admin/tokens` as `token` with a fresh code `offset` steps ahead (each step is accepted once).
    func mint(_ body: String, token: String? = nil, secret: [UInt8]? = nil, offset: Int64 = 0) throws -> RawResponse {
        try hub.call(
            "POST", "/admin/tokens", token: token ?? alice, body: body,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(secret ?? aliceSecret, stepOffset: offset))])
    }

    @Test(arguments: [
        (#"{"principal": "engine", "scopes": ["scim:write"]}"#, 403, "reserved"),
        (#"{"principal": "cli", "scopes": ["admin"]}"#, 403, "reserved"),
        (#"{"principal": "Engine", "scopes": ["review"]}"#, 403, "reserved"),
        (#"{"principal": "\uFF45ngine", "scopes": ["review"]}"#, 403, "reserved"),  // fullwidth e
        (#"{"principal": "hr", "scopes": ["scim:write"]}"#, 403, "configured feed"),
        (#"{"principal": "credentialing", "scopes": ["scim:read"]}"#, 403, "configured feed"),
        (#"{"principal": "ward,nurse", "scopes": ["review"]}"#, 400, "only letters, digits"),
        (#"{"principal": "ward nurse", "scopes": ["review"]}"#, 400, "only letters, digits"),
        (#"{"principal": "", "scopes": ["review"]}"#, 400, "1 to 256"),
    ])
    func forbiddenPrincipals_areRefused_andNothingIsMinted(body: String, status: Int, fragment: String) throws {
        defer { hub.stop(); ehr.stop() }
        let before = try hub.server.store.read { try Tokens.list($0).count }
        let r = try mint(body)
        #expect(r.status == status, "\(r.text)")
        #expect(r.object["detail"]?.stringValue?.contains(fragment) == true, "\(r.text)")
        #expect(try hub.server.store.read { try Tokens.list($0).count } == before)
    }

    @Test func tokens_mayExpire_andRecordTheirLastUse() throws {
        defer { hub.stop(); ehr.stop() }
        let minted = try hub.call(
            "POST", "/admin/tokens", token: alice,
            body: #"{"principal": "dashboards", "scopes": ["scim:read"], "expiresInDays": 30}"#,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(aliceSecret))])
        #expect(minted.status == 201, "\(minted.text)")
        let text = try #require(minted.object["token"]?.stringValue)
        #expect(try hub.call("GET", "/scim/v2/Users?count=1", token: text).status == 200)
        let listed = try hub.call("GET", "/admin/tokens", token: hub.admin).object["tokens"]?.arrayValue?
            .compactMap(\.objectValue).first { $0["principal"]?.stringValue == "dashboards" }
        let expires = try #require(listed?["expires"]?.stringValue.flatMap(Timestamp.parse))
        #expect(abs(expires - (Date().timeIntervalSince1970 + 30 * 86400)) < 120)
        #expect(listed?["lastUsed"]?.stringValue != nil, "its use was recorded")
        // Past its end it authenticates nothing.
        let old = try hub.server.store.write { w in
            try Tokens.create(
                w, principal: "old-dash", scopes: [.scimRead], now: 0, mintedBy: "cli",
                expires: Date().timeIntervalSince1970 - 1
            ).token
        }
        #expect(try hub.call("GET", "/scim/v2/Users?count=1", token: old).status == 401)
        let bad = try hub.call(
            "POST", "/admin/tokens", token: alice,
            body: #"{"principal": "x", "scopes": ["scim:read"], "expiresInDays": 0}"#,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(aliceSecret, stepOffset: 1))])
        #expect(bad.status == 400 && bad.text.contains("expiresInDays"), "\(bad.text)")
    }

    @Test func oneAdmin_cannotHoldEveryRole() throws {
        defer { hub.stop(); ehr.stop() }
        // A read-only token is minted at once and records its minter.
        let carol = try hub.makeToken("carol", [.admin])
        let carolSecret = try hub.enrolTOTP(carol)
        let reader = try mint(
            #"{"principal": "dashboard", "scopes": ["scim:read"]}"#, token: carol, secret: carolSecret)
        #expect(reader.status == 201, "\(reader.text)")
        let listed = try hub.call("GET", "/admin/tokens", token: carol).object["tokens"]?.arrayValue ?? []
        #expect(
            listed.contains {
                $0.objectValue?["principal"]?.stringValue == "dashboard"
                    && $0.objectValue?["mintedBy"]?.stringValue == "carol"
            })
        // Anything that can change access waits for a second administrator: a second admin
        // identity, a feed (to edit one's own record), a reviewer named after one's manager.
        let dan = try hub.makeToken("dan", [.admin])
        let danSecret = try hub.enrolTOTP(dan)
        for (token, secret, offset, body) in [
            (carol, carolSecret, Int64(1), #"{"principal": "mallory", "scopes": ["admin"]}"#),
            (dan, danSecret, 0, #"{"principal": "self-feed", "scopes": ["scim:write"]}"#),
            (dan, danSecret, 1, #"{"principal": "boss@x.org", "scopes": ["review"]}"#),
        ] {
            let held = try mint(body, token: token, secret: secret, offset: offset)
            #expect(held.status == 202, "\(held.text)")
            #expect(held.object["token"] == nil)
        }
        // Break-glass tokens wait for a second administrator.
        let bg = try mint(#"{"principal": "alice-emergency", "scopes": ["break-glass"]}"#)
        #expect(bg.status == 202, "\(bg.text)")
        #expect(bg.object["token"] == nil)
        let requestID = try #require(bg.object["request"]?.stringValue)
        // not approved yet
        #expect(try hub.call("POST", "/admin/token-requests/\(requestID)/issue", token: alice).status == 409)
        // Alice cannot approve her own request, nor with an admin token she minted (as the
        // host could have done before), nor can one whose token she minted.
        #expect(
            try hub.call(
                "POST", "/admin/token-requests/\(requestID)/approve", token: alice,
                headers: [("X-ScimHub-TOTP", LiveHub.totp(aliceSecret, stepOffset: -1))]
            ).status == 403)
        let sock = try hub.server.store.write { w in
            try Tokens.create(w, principal: "mallory", scopes: [.admin], now: 0, mintedBy: "alice").token
        }
        let sockSecret = try hub.enrolTOTP(sock)
        let byPuppet = try hub.call(
            "POST", "/admin/token-requests/\(requestID)/approve", token: sock,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(sockSecret))])
        #expect(byPuppet.status == 403, "\(byPuppet.text)")
        // Bob, a second administrator, approves; only Alice's token takes the new one, once,
        // not Bob, and not another token that carries Alice's name.
        let bob = try hub.makeToken("bob", [.admin])
        let bobSecret = try hub.enrolTOTP(bob)
        let approved = try hub.call(
            "POST", "/admin/token-requests/\(requestID)/approve", token: bob,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(bobSecret))])
        #expect(approved.status == 200, "\(approved.text)")
        #expect(try hub.call("POST", "/admin/token-requests/\(requestID)/issue", token: bob).status == 403)
        let aliceTwin = try hub.makeToken("alice", [.admin])
        #expect(try hub.call("POST", "/admin/token-requests/\(requestID)/issue", token: aliceTwin).status == 403)
        // step-up needed
        #expect(try hub.call("POST", "/admin/token-requests/\(requestID)/issue", token: alice).status == 403)
        let issued = try hub.call(
            "POST", "/admin/token-requests/\(requestID)/issue", token: alice,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(aliceSecret, stepOffset: 1))])
        #expect(issued.status == 201, "\(issued.text)")
        let breakGlassToken = try #require(issued.object["token"]?.stringValue)
        // issued once
        #expect(try hub.call("POST", "/admin/token-requests/\(requestID)/issue", token: alice).status == 409)
        let record = try hub.server.store.read { try Tokens.list($0) }.first { $0.principal == "alice-emergency" }
        #expect(record?.mintedBy == "alice" && record?.approvedBy == "bob")

        // Alice's emergency token grants break-glass; she may not review that use: she minted
        // the granter's token. Nor may the puppet admin she minted, nor the grantee.
        let r = try hub.call("POST", "/scim/v2/Users", body: person("rosa@x.org", title: "Receptionist"))
        let personID = try #require(r.object["id"]?.stringValue)
        let bgSecret = try hub.enrolTOTP(breakGlassToken)
        let grant = try hub.call(
            "POST", "/admin/break-glass", token: breakGlassToken,
            body: #"{"personId": "\#(personID)", "package": "emergency-physician", "reason": "test of separation"}"#,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(bgSecret))])
        #expect(grant.status == 201, "\(grant.text)")
        let grantID = try #require(grant.object["id"]?.stringValue)
        let verdict = #"{"decision": "justified", "reason": "fine"}"#
        #expect(try hub.call("POST", "/admin/break-glass/\(grantID)/review", token: alice, body: verdict).status == 403)
        // a token Alice minted
        #expect(try hub.call("POST", "/admin/break-glass/\(grantID)/review", token: sock, body: verdict).status == 403)
        let rosa = try hub.makeToken("rosa@x.org", [.admin])
        // the grantee
        #expect(try hub.call("POST", "/admin/break-glass/\(grantID)/review", token: rosa, body: verdict).status == 403)
        #expect(
            try hub.call("POST", "/admin/break-glass/\(grantID)/review", token: hub.admin, body: verdict).status == 200)
        let audit = try hub.call("GET", "/admin/audit?principal=bob", token: hub.admin).text
        #expect(audit.contains("token.approve"))
    }
}

/// Nobody reviews their own access: not by name, not as a look-alike name, and not through
/// a review token they minted for someone else's name (their manager's).
@Suite struct SelfReviewTests {
    let campaign = ReviewCampaignRecord(
        id: "c", name: "q3", scopeKind: "target", scopeValue: "ehr", reviewers: [], due: 0,
        defaultDecision: "approve", state: "open", createdBy: "alice", created: 0, closed: nil)
    let item = ReviewItemRecord(
        seq: 1, personID: "p", userName: "ana@x.org", displayName: nil, package: "nurse", reviewer: "boss@x.org")

    @Test func theManager_decides_butNotWithATokenThePersonMinted() {
        let manager = Principal(name: "boss@x.org", scopes: [.review], tokenID: "t1")
        #expect(AccessReviews.mayDecide(manager, people: ["boss@x.org"], campaign, item))
        // a token Ana minted
        #expect(!AccessReviews.mayDecide(manager, people: ["boss@x.org", "ana@x.org"], campaign, item))
        #expect(
            !AccessReviews.mayDecide(
                Principal(name: "Ana@x.org", scopes: [.review], tokenID: "t2"), people: ["ana@x.org"], campaign, item))
        #expect(
            !AccessReviews.mayDecide(
                Principal(name: "someone@x.org", scopes: [.review], tokenID: "t3"), people: ["someone@x.org"], campaign,
                item))
    }
}

/// Separation holds however many hops apart two tokens are: Alice's token took "carol" and
/// "dave" (approved by Bob, as onboarding goes); carol may not approve dave's requests.
@Suite struct TokenLineageTests {
    @Test func tokensMintedForTheSamePerson_cannotApproveEachOther() throws {
        let hub = try LiveHub()
        defer { hub.stop() }
        let (alice, carol, dave) = try hub.server.store.write { w -> (String, String, String) in
            let a = try Tokens.create(w, principal: "alice", scopes: [.admin], now: 0, mintedBy: "cli")
            let c = try Tokens.create(
                w, principal: "carol", scopes: [.admin], now: 0, mintedBy: "alice", mintedByToken: a.id,
                approvedBy: "bob")
            let d = try Tokens.create(
                w, principal: "dave", scopes: [.admin], now: 0, mintedBy: "alice", mintedByToken: a.id,
                approvedBy: "bob")
            return (a.token, c.token, d.token)
        }
        let daveSecret = try hub.enrolTOTP(dave)
        let request = try hub.call(
            "POST", "/admin/tokens", token: dave, body: #"{"principal": "dave-emergency", "scopes": ["break-glass"]}"#,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(daveSecret))])
        let id = try #require(request.object["request"]?.stringValue, "\(request.text)")
        let carolSecret = try hub.enrolTOTP(carol)
        let byCarol = try hub.call(
            "POST", "/admin/token-requests/\(id)/approve", token: carol,
            headers: [("X-ScimHub-TOTP", LiveHub.totp(carolSecret))])
        #expect(byCarol.status == 403, "\(byCarol.text)")
        let aliceSecret = try hub.enrolTOTP(alice)
        #expect(
            try hub.call(
                "POST", "/admin/token-requests/\(id)/approve", token: alice,
                headers: [("X-ScimHub-TOTP", LiveHub.totp(aliceSecret))]
            ).status == 403)
        // A different person approves.
        let erin = try hub.makeToken("erin", [.admin])
        let erinSecret = try hub.enrolTOTP(erin)
        #expect(
            try hub.call(
                "POST", "/admin/token-requests/\(id)/approve", token: erin,
                headers: [("X-ScimHub-TOTP", LiveHub.totp(erinSecret))]
            ).status == 200)
        let people = try hub.server.store.read { c in
            try Tokens.people(c, tokenID: try #require(Tokens.publicID(carol)))
        }
        #expect(people == ["carol", "alice"])
    }
}
