// SPDX-License-Identifier: Apache-2.0
import HubCrypto
import SQLite

/// What a token may do.
public struct Scope: RawRepresentable, Sendable, Hashable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    /// Read Users, Groups and the discovery endpoints.
    public static let scimRead = Scope(rawValue: "scim:read")
    /// Create, replace, patch and delete Users and Groups; Bulk.
    public static let scimWrite = Scope(rawValue: "scim:write")
    /// The `/admin` endpoints.
    public static let admin = Scope(rawValue: "admin")
    /// `/reviews`: decide the access-review items assigned to this principal.
    public static let review = Scope(rawValue: "review")
    /// `POST /admin/break-glass`: grant a package for a bounded time in an emergency.
    public static let breakGlass = Scope(rawValue: "break-glass")
    public static let known: [Scope] = [.scimRead, .scimWrite, .admin, .review, .breakGlass]
}

/// A caller, as established by its bearer token.
public struct Principal: Sendable, Equatable {
    public let name: String
    public let scopes: Set<Scope>
    public let tokenID: String

    public init(name: String, scopes: Set<Scope>, tokenID: String) {
        self.name = name
        self.scopes = scopes
        self.tokenID = tokenID
    }
}

/// A token's record, as listed (never its secret or hash).
public struct TokenInfo: Sendable {
    public let id: String
    public let principal: String
    public let scopes: [String]
    public let created: Double
    public let revoked: Double?
}

/// Bearer tokens: `shub_<id>_<secret>`, 32 random bytes of secret. Only the SHA-256 of the
/// whole token is stored; verification looks the record up by its public id and compares
/// hashes in constant time.
public enum Tokens {
    static let prefix = "shub_"

    /// Creates a token and returns its text, shown once.
    public static func create(_ ctx: WriteContext, principal: String, scopes: [Scope], now: Double) throws -> (id: String, token: String) {
        let id = hexString(Crypto.randomBytes(8))
        let token = prefix + id + "_" + base64URLString(Crypto.randomBytes(32))
        try ctx.connection.db.run("INSERT INTO tokens(id, principal, scopes, hash, created) VALUES (?, ?, ?, ?, ?)",
                                  [.text(id), .text(principal), .text(scopes.map(\.rawValue).joined(separator: ",")),
                                   .blob(Crypto.sha256(token)), .real(now)])
        return (id, token)
    }

    /// Revokes a token by id; false when there is no such live token.
    public static func revoke(_ ctx: WriteContext, id: String, now: Double) throws -> Bool {
        try ctx.connection.db.run("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", [.real(now), .text(id)]) == 1
    }

    /// Every token, newest first.
    public static func list(_ conn: StoreConnection) throws -> [TokenInfo] {
        var out: [TokenInfo] = []
        try conn.db.query("SELECT id, principal, scopes, created, revoked FROM tokens ORDER BY created DESC") { r in
            out.append(TokenInfo(id: r.text(0) ?? "", principal: r.text(1) ?? "", scopes: (r.text(2) ?? "").split(separator: ",").map(String.init),
                                 created: r.value(3).double, revoked: r.isNull(4) ? nil : r.value(4).double))
        }
        return out
    }

    /// The principal for a presented token, or nil when unknown, malformed or revoked.
    public static func verify(_ conn: StoreConnection, token: String) throws -> Principal? {
        let u = Array(token.utf8)
        guard u.count <= 128, token.hasPrefix(prefix) else { return nil }
        let rest = token.dropFirst(prefix.count)
        guard let sep = rest.firstIndex(of: "_") else { return nil }
        let id = String(rest[..<sep])
        guard id.utf8.count == 16 else { return nil }
        var found: (principal: String, scopes: String, hash: [UInt8], revoked: Bool)?
        try conn.db.query("SELECT principal, scopes, hash, revoked FROM tokens WHERE id = ?", [.text(id)]) { r in
            found = (r.text(0) ?? "", r.text(1) ?? "", r.blob(2), !r.isNull(3))
        }
        // Hash even when the id is unknown, so timing does not reveal which ids exist.
        let presented = Crypto.sha256(u)
        guard let f = found else { _ = Crypto.constantTimeEquals(presented, presented); return nil }
        guard Crypto.constantTimeEquals(presented, f.hash), !f.revoked else { return nil }
        let scopes = Set(f.scopes.split(separator: ",").map { Scope(rawValue: String($0)) })
        return Principal(name: f.principal, scopes: scopes, tokenID: id)
    }
}
