// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HTTPServer
import HubCrypto
import JSONCore
import SCIM
import Store

/// Tokens and the requests for them that wait for a second administrator.
struct TokenEndpoints: FeatureEndpoints {
    let hub: HubContext
}

/// Tokens over the admin API, with separation of duties: one administrator must not hold
/// every role. The API never mints tokens for the hub's reserved principals (`engine`, …)
/// or for configured feeds (their tokens come from the host: `scimhub token create`).
/// Every token that can change access (`scim:write`, `admin`, `review`, `break-glass`)
/// waits for a second administrator's approval and is then issued to the token that asked
/// for it; only read-only `scim:read` tokens are minted at once. Otherwise one
/// administrator could mint a second admin identity, a feed to edit their own record, or
/// a reviewer named after their manager, and act as two people. Every token records who
/// minted it (principal and token) and who approved it, and `Tokens.people` follows that
/// chain, so separation holds however many hops apart two tokens are.
extension TokenEndpoints {
    /// `POST /admin/tokens` `{"principal", "scopes": [...]}` with step-up: 201 with the token
    /// (shown once), or 202 with a request that a second administrator approves.
    func createToken(_ ctx: RequestContext) throws -> HTTPResponse {
        let body = try jsonBody(ctx.request)
        for k in body.keys where !["principal", "scopes", "expiresInDays"].contains(k) {
            throw SCIMError.invalidValue("unknown key '\(k)' (principal, scopes, expiresInDays)")
        }
        let days = try body["expiresInDays"].map { v throws -> Double in
            guard let d = v.numberValue?.double, d > 0, d <= 3650 else {
                throw SCIMError.invalidValue("'expiresInDays' must be a number of days in (0, 3650]")
            }
            return d
        }
        guard let principal = body["principal"]?.stringValue else {
            throw SCIMError.invalidValue("'principal' is required")
        }
        do { try PrincipalName.validate(principal, what: "'principal'") } catch {
            throw SCIMError.invalidValue(error.description)
        }
        guard let names = body["scopes"]?.arrayValue, !names.isEmpty else {
            throw SCIMError.invalidValue("'scopes' must be a non-empty array")
        }
        var asked: [Scope] = []
        for v in names {
            guard let n = v.stringValue, let s = Scope.known.first(where: { $0.rawValue == n }) else {
                throw SCIMError.invalidValue(
                    "'scopes': unknown scope (\(Scope.known.map(\.rawValue).joined(separator: ", ")))")
            }
            if !asked.contains(s) { asked.append(s) }
        }
        let scopes = asked
        if PrincipalName.isReserved(principal) {
            throw SCIMError(
                status: 403, detail: "principal '\(principal)' is reserved for the hub itself; no token may carry it")
        }
        if config.feeds[principal] != nil || config.feedGroups[principal] != nil {
            throw SCIMError(
                status: 403,
                detail:
                    "'\(principal)' is a configured feed: its tokens are minted on the host with `scimhub token create`"
            )
        }
        try requireStepUp(ctx, action: "creating a token")
        let by = ctx.principal.name, requester = ctx.principal, requestID = ctx.requestID,
            now = Date().timeIntervalSince1970
        if scopes.contains(where: { $0 != .scimRead }) {
            let id = UUIDv7.make()
            try store.write { w in
                try Tokens.request(
                    w, id: id, principal: principal, scopes: scopes, requestedBy: requester, now: now,
                    expiresInDays: days)
                try AuditLog.append(
                    w,
                    .now(
                        principal: by, action: "token.request", resourceType: "TokenRequest", resourceID: id,
                        attributes: [principal] + scopes.map(\.rawValue), requestID: requestID))
            }
            logger.notice("token awaits a second administrator", ["request": id])
            return jsonResponse(
                202,
                .object(
                    JSONObject([
                        "request": .string(id), "state": .string("awaiting-approval"), "principal": .string(principal),
                        "scopes": .array(scopes.map { .string($0.rawValue) }),
                        "detail": .string(
                            "a token that can change access needs a second administrator: "
                                + "POST /admin/token-requests/\(id)/approve, "
                                + "then the requesting token takes it "
                                + "with POST /admin/token-requests/\(id)/issue (step-up)"
                        ),
                    ])), contentType: "application/json")
        }
        let token = try store.write { w -> String in
            let t = try Tokens.create(
                w, principal: principal, scopes: scopes, now: now, mintedBy: by, mintedByToken: requester.tokenID,
                expires: days.map { now + $0 * 86400 })
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "token.create", resourceType: "Token", resourceID: t.id,
                    attributes: [principal] + scopes.map(\.rawValue), requestID: requestID))
            return t.token
        }
        return tokenResponse(principal, token)
    }

    /// `GET /admin/tokens`: every token's record (never a secret), with who minted and approved it.
    func listTokens() throws -> HTTPResponse {
        let tokens = try store.read { try Tokens.list($0) }
        return jsonResponse(
            200,
            .object(
                JSONObject([
                    "tokens": .array(
                        tokens.map { t in
                            .object(
                                JSONObject([
                                    "id": .string(t.id), "principal": .string(t.principal),
                                    "scopes": .array(t.scopes.map { .string($0) }),
                                    "created": .string(Timestamp.format(t.created)),
                                    "revoked": t.revoked.map { .string(Timestamp.format($0)) } ?? .null,
                                    "mintedBy": t.mintedBy.map { .string($0) } ?? .null,
                                    "approvedBy": t.approvedBy.map { .string($0) } ?? .null,
                                    "expires": t.expires.map { .string(Timestamp.format($0)) } ?? .null,
                                    "lastUsed": t.lastUsed.map { .string(Timestamp.format($0)) } ?? .null,
                                ]))
                        })
                ])), contentType: "application/json")
    }

    /// `POST /admin/tokens/{id}/revoke` (step-up): the token stops working at once; audited.
    /// Not one's own token (that would lock the administrator out mid-request).
    func revokeToken(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        guard id != ctx.principal.tokenID else {
            throw SCIMError(status: 409, detail: "a token cannot revoke itself; use another administrator's")
        }
        guard try store.read({ try $0.token(id: id) }) != nil else { throw SCIMError.notFound("no token with this id") }
        try requireStepUp(ctx, action: "revoking a token")
        let by = ctx.principal.name, requestID = ctx.requestID, now = Date().timeIntervalSince1970
        let revoked = try store.write { w -> Bool in
            guard try Tokens.revoke(w, id: id, now: now) else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "token.revoke", resourceType: "Token", resourceID: id, requestID: requestID))
            return true
        }
        guard revoked else { throw SCIMError(status: 409, detail: "this token was revoked already") }
        return jsonResponse(
            200, .object(JSONObject(["id": .string(id), "state": .string("revoked")])), contentType: "application/json")
    }

    /// `GET /admin/token-requests`: requests not yet issued (24 hours at most).
    func listTokenRequests() throws -> HTTPResponse {
        let requests = try store.read { try Tokens.openRequests($0, now: Date().timeIntervalSince1970) }
        return jsonResponse(
            200, .object(JSONObject(["requests": .array(requests.map(Self.json))])), contentType: "application/json")
    }

    /// `POST /admin/token-requests/{id}/approve` with step-up, by a second person: nobody
    /// behind the approving token (its principal and the chain of its minters) may be behind
    /// the requesting token, nor be the new token's principal.
    func approveTokenRequest(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let now = Date().timeIntervalSince1970
        guard let r = try store.read({ try Tokens.request($0, id: id, now: now) }) else {
            throw SCIMError.notFound("no open token request with this id")
        }
        let me = ctx.principal
        let (mine, theirs) = try store.read { c in
            (try Tokens.people(c, tokenID: me.tokenID), try Tokens.people(c, tokenID: r.requestedByToken))
        }
        guard mine.isDisjoint(with: theirs), !mine.contains(Identifier.canonical(r.principal)) else {
            throw SCIMError(
                status: 403,
                detail: "a second administrator approves: not the requester, not the token's principal, "
                    + "and not with a token minted by or for either of them")
        }
        guard r.approvedBy == nil else { throw SCIMError(status: 409, detail: "this request was approved already") }
        try requireStepUp(ctx, action: "approving a token")
        let requestID = ctx.requestID
        let approved = try store.write { w -> Bool in
            guard try Tokens.approve(w, requestID: id, by: me.name, now: now) else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: me.name, action: "token.approve", resourceType: "TokenRequest", resourceID: id,
                    attributes: [r.principal] + r.scopes.map(\.rawValue), requestID: requestID))
            return true
        }
        guard approved else { throw SCIMError(status: 409, detail: "this request was approved already") }
        guard let updated = try store.read({ try Tokens.request($0, id: id, now: now) }) else {
            throw SCIMError.notFound("no open token request with this id")
        }
        return jsonResponse(200, Self.json(updated), contentType: "application/json")
    }

    /// `POST /admin/token-requests/{id}/issue` with step-up: the token that asked takes the
    /// approved token, once (not another token carrying the same name).
    func issueTokenRequest(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let now = Date().timeIntervalSince1970
        guard let r = try store.read({ try Tokens.request($0, id: id, now: now) }) else {
            throw SCIMError.notFound("no open token request with this id")
        }
        guard ctx.principal.tokenID == r.requestedByToken else {
            throw SCIMError(status: 403, detail: "only the token that asked for it takes the new token")
        }
        guard let approver = r.approvedBy else {
            throw SCIMError(status: 409, detail: "this request awaits a second administrator's approval")
        }
        guard r.tokenID == nil else { throw SCIMError(status: 409, detail: "this token was issued already") }
        try requireStepUp(ctx, action: "taking an approved token")
        let requestID = ctx.requestID
        let token = try store.write { w -> String? in
            let t = try Tokens.create(
                w, principal: r.principal, scopes: r.scopes, now: now, mintedBy: r.requestedBy,
                mintedByToken: r.requestedByToken, approvedBy: approver,
                expires: r.expiresInDays.map { now + $0 * 86400 })
            guard try Tokens.markIssued(w, requestID: id, tokenID: t.id, now: now) else {
                throw SCIMError(status: 409, detail: "this token was issued already")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: r.requestedBy, action: "token.create", resourceType: "Token", resourceID: t.id,
                    attributes: [r.principal] + r.scopes.map(\.rawValue) + ["approved by \(approver)"],
                    requestID: requestID))
            return t.token
        }
        guard let t = token else { throw SCIMError(status: 409, detail: "this token was issued already") }
        return tokenResponse(r.principal, t)
    }

    private func tokenResponse(_ principal: String, _ token: String) -> HTTPResponse {
        jsonResponse(
            201, .object(JSONObject(["principal": .string(principal), "token": .string(token)])),
            headers: [("Cache-Control", "no-store")],
            contentType: "application/json")
    }

    static func json(_ r: TokenRequest) -> JSONValue {
        .object(
            JSONObject([
                "id": .string(r.id), "principal": .string(r.principal),
                "scopes": .array(r.scopes.map { .string($0.rawValue) }),
                "requestedBy": .string(r.requestedBy), "created": .string(Timestamp.format(r.created)),
                "approvedBy": r.approvedBy.map { .string($0) } ?? .null,
                "state": .string(r.tokenID != nil ? "issued" : r.approvedBy != nil ? "approved" : "awaiting-approval"),
            ]))
    }
}

extension TokenEndpoints {
    /// Tokens and the requests that wait for a second administrator.
    var routes: [Route] {
        [
            Route.make("GET", "/admin/tokens", .admin) { _, _ in try self.listTokens() },
            Route.make("POST", "/admin/tokens", .admin) { ctx, _ in try self.createToken(ctx) },
            Route.make("POST", "/admin/tokens/{id}/revoke", .admin) { ctx, p in try self.revokeToken(p[0], ctx) },
            Route.make("GET", "/admin/token-requests", .admin) { _, _ in try self.listTokenRequests() },
            Route.make("POST", "/admin/token-requests/{id}/approve", .admin) { ctx, p in
                try self.approveTokenRequest(p[0], ctx)
            },
            Route.make("POST", "/admin/token-requests/{id}/issue", .admin) { ctx, p in
                try self.issueTokenRequest(p[0], ctx)
            },
        ]
    }
}
