// SPDX-License-Identifier: Apache-2.0
import HubBase
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

    /// The role a scope belongs to: a feed (`scim:read`, `scim:write`), `admin`, `review` or
    /// `break-glass`. A token spanning two roles lets one person act as two.
    public var role: String { self == .scimRead || self == .scimWrite ? "feed" : rawValue }
}

/// The one rule for principal names, on every path (CLI, `POST /admin/tokens`, config):
/// 1 to 256 letters, digits, marks and `-_.@+`, so a name is also a valid user name
/// (reviewers are principals named after their user name) and never needs quoting in
/// audit entries, logs or reports.
public enum PrincipalName {
    /// Principals the hub itself writes as, never given to a token.
    public static let reserved: Set<String> = ["engine", "cli", "scheduler", "anonymous", "system", "scimhub"]

    /// Whether `name` is, or looks like (`Engine`, fullwidth `ｅｎｇｉｎｅ`), a reserved principal.
    public static func isReserved(_ name: String) -> Bool { reserved.contains(Identifier.canonical(name)) }

    /// Throws a `StoreError`-free description of what is wrong, or returns.
    public static func validate(_ name: String, what: String = "principal") throws(PrincipalNameError) {
        let n = name.unicodeScalars.count
        guard n >= 1, n <= 256 else { throw PrincipalNameError("\(what) must be 1 to 256 characters") }
        for u in name.unicodeScalars {
            let p = u.properties
            let ok = p.isAlphabetic || p.numericType != nil || p.generalCategory == .nonspacingMark || p.generalCategory == .spacingMark
                || "-_.@+".unicodeScalars.contains(u)
            guard ok, !p.isDefaultIgnorableCodePoint else {
                throw PrincipalNameError("\(what) may hold only letters, digits and '-', '_', '.', '@', '+'")
            }
        }
    }
}

/// Why a principal name was refused.
public struct PrincipalNameError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
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
    /// Who minted it: an administrator's principal, or `cli` for the host command line.
    public let mintedBy: String?
    /// The second administrator who approved it, for break-glass and multi-role tokens.
    public let approvedBy: String?
}

/// A request for a break-glass or multi-role token, waiting for a second administrator.
public struct TokenRequest: Sendable {
    public let id: String
    public let principal: String
    public let scopes: [Scope]
    public let requestedBy: String
    public let requestedByToken: String
    public let created: Double
    public let approvedBy: String?
    public let tokenID: String?

    /// How long a request may wait for approval and issue.
    public static let lifetime: Double = 24 * 3600
}

/// Bearer tokens: `shub_<id>_<secret>`, 32 random bytes of secret. Only the SHA-256 of the
/// whole token is stored; verification looks the record up by its public id and compares
/// hashes in constant time.
public enum Tokens {
    static let prefix = "shub_"

    /// Creates a token and returns its text, shown once.
    /// Creates a token and returns its text, shown once. `mintedBy` is the minting principal
    /// (`cli` for the host), `mintedByToken` the token it used (nil for the host).
    public static func create(_ ctx: WriteContext, principal: String, scopes: [Scope], now: Double, mintedBy: String,
                              mintedByToken: String? = nil, approvedBy: String? = nil) throws -> (id: String, token: String) {
        let id = hexString(Crypto.randomBytes(8))
        let token = prefix + id + "_" + base64URLString(Crypto.randomBytes(32))
        try ctx.connection.db.run("""
            INSERT INTO tokens(id, principal, scopes, hash, created, minted_by, minted_by_token, approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(id), .text(principal), .text(scopes.map(\.rawValue).joined(separator: ",")), .blob(Crypto.sha256(token)), .real(now),
                  .text(mintedBy), mintedByToken.map { .text($0) } ?? .null, approvedBy.map { .text($0) } ?? .null])
        return (id, token)
    }

    /// The people behind token `id`, in canonical form: its principal, whoever minted it, and
    /// so on up the chain of minting tokens to one the host minted. Two tokens whose people
    /// overlap may be one person acting twice, however many hops apart (Alice's token mints
    /// "carol" and "dave": carol must not approve dave's requests).
    public static func people(_ conn: StoreConnection, tokenID: String) throws -> Set<String> {
        var out = Set<String>()
        var next: String? = tokenID
        var hops = 0
        while let id = next, hops < 64 {
            hops += 1
            next = nil
            try conn.db.query("SELECT principal, minted_by, minted_by_token FROM tokens WHERE id = ?", [.text(id)]) { r in
                out.insert(Identifier.canonical(r.text(0) ?? ""))
                if let m = r.text(1), m != "cli" { out.insert(Identifier.canonical(m)) }
                next = r.text(2)
            }
        }
        out.remove("")
        return out
    }

    // MARK: - Requests awaiting a second administrator

    public static func request(_ ctx: WriteContext, id: String, principal: String, scopes: [Scope], requestedBy: Principal, now: Double) throws {
        try ctx.connection.db.run("INSERT INTO token_requests(id, principal, scopes, requested_by, requested_by_token, created) VALUES (?, ?, ?, ?, ?, ?)",
                                  [.text(id), .text(principal), .text(scopes.map(\.rawValue).joined(separator: ",")), .text(requestedBy.name),
                                   .text(requestedBy.tokenID), .real(now)])
    }

    /// A request still within its lifetime, or nil.
    public static func request(_ conn: StoreConnection, id: String, now: Double) throws -> TokenRequest? {
        try requests(conn, "id = ? AND created > ?", [.text(id), .real(now - TokenRequest.lifetime)]).first
    }

    /// Requests not yet issued and still within their lifetime, oldest first.
    public static func openRequests(_ conn: StoreConnection, now: Double) throws -> [TokenRequest] {
        try requests(conn, "token_id IS NULL AND created > ? ORDER BY created", [.real(now - TokenRequest.lifetime)])
    }

    private static func requests(_ conn: StoreConnection, _ clause: String, _ params: [SQLiteValue]) throws -> [TokenRequest] {
        var out: [TokenRequest] = []
        try conn.db.query("SELECT id, principal, scopes, requested_by, requested_by_token, created, approved_by, token_id FROM token_requests WHERE \(clause)", params) { r in
            out.append(TokenRequest(id: r.text(0) ?? "", principal: r.text(1) ?? "",
                                    scopes: (r.text(2) ?? "").split(separator: ",").map { Scope(rawValue: String($0)) },
                                    requestedBy: r.text(3) ?? "", requestedByToken: r.text(4) ?? "", created: r.value(5).double,
                                    approvedBy: r.text(6), tokenID: r.text(7)))
        }
        return out
    }

    /// Records the approval; false when approved already.
    public static func approve(_ ctx: WriteContext, requestID: String, by: String, now: Double) throws -> Bool {
        try ctx.connection.db.run("UPDATE token_requests SET approved_by = ?, approved = ? WHERE id = ? AND approved_by IS NULL",
                                  [.text(by), .real(now), .text(requestID)]) == 1
    }

    /// Records that the approved token was issued; false when it was issued already.
    public static func markIssued(_ ctx: WriteContext, requestID: String, tokenID: String, now: Double) throws -> Bool {
        try ctx.connection.db.run("UPDATE token_requests SET token_id = ?, issued = ? WHERE id = ? AND token_id IS NULL AND approved_by IS NOT NULL",
                                  [.text(tokenID), .real(now), .text(requestID)]) == 1
    }

    /// Revokes a token by id; false when there is no such live token.
    public static func revoke(_ ctx: WriteContext, id: String, now: Double) throws -> Bool {
        try ctx.connection.db.run("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", [.real(now), .text(id)]) == 1
    }

    /// Every token, newest first.
    public static func list(_ conn: StoreConnection) throws -> [TokenInfo] {
        var out: [TokenInfo] = []
        try conn.db.query("SELECT id, principal, scopes, created, revoked, minted_by, approved_by FROM tokens ORDER BY created DESC") { r in
            out.append(TokenInfo(id: r.text(0) ?? "", principal: r.text(1) ?? "", scopes: (r.text(2) ?? "").split(separator: ",").map(String.init),
                                 created: r.value(3).double, revoked: r.isNull(4) ? nil : r.value(4).double, mintedBy: r.text(5), approvedBy: r.text(6)))
        }
        return out
    }

    /// The public id in a presented token's text (`shub_<id>_…`), or nil when malformed.
    public static func publicID(_ token: String) -> String? {
        guard token.utf8.count <= 128, token.hasPrefix(prefix) else { return nil }
        let rest = token.dropFirst(prefix.count)
        guard let sep = rest.firstIndex(of: "_") else { return nil }
        let id = String(rest[..<sep])
        guard id.utf8.count == 16, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        return id
    }

    /// The principal for a presented token, or nil when unknown, malformed or revoked.
    public static func verify(_ conn: StoreConnection, token: String) throws -> Principal? {
        let u = Array(token.utf8)
        guard let id = publicID(token) else { return nil }
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
