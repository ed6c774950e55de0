// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession: TokenStore {
    private static func scopes(_ text: String?) -> [Scope] {
        (text ?? "").split(separator: ",").map { Scope(rawValue: String($0)) }
    }

    public func insertToken(_ t: StoredToken) throws {
        try db.run(
            """
            INSERT INTO tokens(id, principal, scopes, hash, created, minted_by, minted_by_token, approved_by, expires)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(t.id), .text(t.principal), .text(t.scopes.map(\.rawValue).joined(separator: ",")), .bytes(t.hash),
                .real(t.created),
                .text(t.mintedBy), t.mintedByToken.map { .text($0) } ?? .null, t.approvedBy.map { .text($0) } ?? .null,
                t.expires.map { .real($0) } ?? .null,
            ])
    }

    public func token(id: String) throws -> StoredToken? {
        var out: StoredToken?
        try db.query(
            "SELECT principal, scopes, hash, created, revoked, minted_by, minted_by_token, approved_by, expires, "
                + "last_used FROM tokens WHERE id = ?",
            [.text(id)]
        ) { r in
            out = StoredToken(
                id: id, principal: r.text(0) ?? "", scopes: Self.scopes(r.text(1)), hash: r.bytes(2),
                created: r.double(3),
                revoked: r.isNull(4) ? nil : r.double(4), mintedBy: r.text(5) ?? "cli", mintedByToken: r.text(6),
                approvedBy: r.text(7), expires: r.isNull(8) ? nil : r.double(8),
                lastUsed: r.isNull(9) ? nil : r.double(9))
        }
        return out
    }

    public func tokens() throws -> [TokenInfo] {
        var out: [TokenInfo] = []
        try db.query(
            "SELECT id, principal, scopes, created, revoked, minted_by, approved_by, expires, last_used FROM tokens "
                + "ORDER BY created DESC"
        ) { r in
            out.append(
                TokenInfo(
                    id: r.text(0) ?? "", principal: r.text(1) ?? "",
                    scopes: (r.text(2) ?? "").split(separator: ",").map(String.init),
                    created: r.double(3), revoked: r.isNull(4) ? nil : r.double(4), mintedBy: r.text(5),
                    approvedBy: r.text(6), expires: r.isNull(7) ? nil : r.double(7),
                    lastUsed: r.isNull(8) ? nil : r.double(8)))
        }
        return out
    }

    public func recordTokenUse(id: String, now: Double) throws {
        try db.run("UPDATE tokens SET last_used = ? WHERE id = ?", [.real(now), .text(id)])
    }

    public func revokeToken(id: String, now: Double) throws -> Bool {
        try db.run("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", [.real(now), .text(id)]) == 1
    }

    public func insertTokenRequest(_ r: TokenRequest) throws {
        try db.run(
            "INSERT INTO token_requests(id, principal, scopes, requested_by, requested_by_token, created, "
                + "expires_in_days) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                .text(r.id), .text(r.principal), .text(r.scopes.map(\.rawValue).joined(separator: ",")),
                .text(r.requestedBy),
                .text(r.requestedByToken), .real(r.created), r.expiresInDays.map { .real($0) } ?? .null,
            ])
    }

    public func tokenRequest(id: String, createdAfter: Double) throws -> TokenRequest? {
        try tokenRequests("id = ? AND created > ?", [.text(id), .real(createdAfter)]).first
    }

    public func openTokenRequests(createdAfter: Double) throws -> [TokenRequest] {
        try tokenRequests("token_id IS NULL AND created > ? ORDER BY created", [.real(createdAfter)])
    }

    private func tokenRequests(_ clause: String, _ params: [PostgresValue]) throws -> [TokenRequest] {
        var out: [TokenRequest] = []
        try db.query(
            """
            SELECT id, principal, scopes, requested_by, requested_by_token, created, approved_by, token_id,
            expires_in_days FROM token_requests WHERE \(clause)
            """, params
        ) { r in
            var request = TokenRequest(
                id: r.text(0) ?? "", principal: r.text(1) ?? "", scopes: Self.scopes(r.text(2)),
                requestedBy: r.text(3) ?? "", requestedByToken: r.text(4) ?? "", created: r.double(5),
                approvedBy: r.text(6), tokenID: r.text(7))
            request.expiresInDays = r.isNull(8) ? nil : r.double(8)
            out.append(request)
        }
        return out
    }

    public func approveTokenRequest(id: String, by: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE token_requests SET approved_by = ?, approved = ? WHERE id = ? AND approved_by IS NULL",
            [.text(by), .real(now), .text(id)]) == 1
    }

    public func markTokenRequestIssued(id: String, tokenID: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE token_requests SET token_id = ?, issued = ? "
                + "WHERE id = ? AND token_id IS NULL AND approved_by IS NOT NULL",
            [.text(tokenID), .real(now), .text(id)]) == 1
    }
}
