// SPDX-License-Identifier: Apache-2.0
import HubBase
import HubCrypto

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
    /// `/admin/requests`: ask for requestable packages, and approve the requests assigned to this principal.
    public static let request = Scope(rawValue: "request")
    /// Read-only access to every `/admin` GET endpoint: reports, audit, people (the compliance officer).
    public static let auditor = Scope(rawValue: "auditor")
    /// People, their access and the job queue: look up, re-converge, re-drive (helpdesk staff).
    public static let helpdesk = Scope(rawValue: "helpdesk")
    /// `GET /metrics` only: what a Prometheus server scrapes with.
    public static let metrics = Scope(rawValue: "metrics")
    public static let known: [Scope] = [
        .scimRead, .scimWrite, .admin, .review, .breakGlass, .request, .auditor, .helpdesk, .metrics,
    ]

    /// The role a scope belongs to: a feed (`scim:read`, `scim:write`), `admin`, a person
    /// acting for themselves (`review`, `request`) or `break-glass`. A token spanning two
    /// roles lets one person act as two.
    public var role: String {
        switch self {
        case .scimRead, .scimWrite: return "feed"
        case .review, .request: return "person"
        default: return rawValue
        }
    }
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
            let ok =
                p.isAlphabetic || p.numericType != nil || p.generalCategory == .nonspacingMark
                || p.generalCategory == .spacingMark
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
    /// When it stops working (nil: never), and when it last authenticated (to the minute).
    public var expires: Double? = nil
    public var lastUsed: Double? = nil
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
    /// The issued token's lifetime in days (nil: it does not expire).
    public var expiresInDays: Double? = nil

    /// How long a request may wait for approval and issue.
    public static let lifetime: Double = 24 * 3600
}

/// Bearer tokens: `shub_<id>_<secret>`, 32 random bytes of secret. Only the SHA-256 of the
/// whole token is stored; verification looks the record up by its public id and compares
/// hashes in constant time.
public enum Tokens {
    static let prefix = "shub_"

    /// Creates a token and returns its text, shown once. `mintedBy` is the minting principal
    /// (`cli` for the host), `mintedByToken` the token it used (nil for the host).
    public static func create(
        _ ctx: any StoreWriter, principal: String, scopes: [Scope], now: Double, mintedBy: String,
        mintedByToken: String? = nil, approvedBy: String? = nil, expires: Double? = nil
    ) throws -> (id: String, token: String) {
        let id = hexString(Crypto.randomBytes(8))
        let token = prefix + id + "_" + base64URLString(Crypto.randomBytes(32))
        var stored = StoredToken(
            id: id, principal: principal, scopes: scopes, hash: Crypto.sha256(token), created: now,
            mintedBy: mintedBy, mintedByToken: mintedByToken, approvedBy: approvedBy)
        stored.expires = expires
        try ctx.connection.insertToken(stored)
        return (id, token)
    }

    /// The people behind token `id`, in canonical form: its principal, whoever minted it, and
    /// so on up the chain of minting tokens to one the host minted. Two tokens whose people
    /// overlap may be one person acting twice, however many hops apart (Alice's token mints
    /// "carol" and "dave": carol must not approve dave's requests).
    public static func people(_ conn: any StoreSession, tokenID: String) throws -> Set<String> {
        var out = Set<String>()
        var next: String? = tokenID
        var hops = 0
        while let id = next, hops < 64 {
            hops += 1
            next = nil
            if let t = try conn.token(id: id) {
                out.insert(Identifier.canonical(t.principal))
                if t.mintedBy != "cli" { out.insert(Identifier.canonical(t.mintedBy)) }
                next = t.mintedByToken
            }
        }
        out.remove("")
        return out
    }

    // MARK: - Requests awaiting a second administrator

    public static func request(
        _ ctx: any StoreWriter, id: String, principal: String, scopes: [Scope], requestedBy: Principal, now: Double,
        expiresInDays: Double? = nil
    ) throws {
        var r = TokenRequest(
            id: id, principal: principal, scopes: scopes, requestedBy: requestedBy.name,
            requestedByToken: requestedBy.tokenID, created: now, approvedBy: nil, tokenID: nil)
        r.expiresInDays = expiresInDays
        try ctx.connection.insertTokenRequest(r)
    }

    /// A request still within its lifetime, or nil.
    public static func request(_ conn: any StoreSession, id: String, now: Double) throws -> TokenRequest? {
        try conn.tokenRequest(id: id, createdAfter: now - TokenRequest.lifetime)
    }

    /// Requests not yet issued and still within their lifetime, oldest first.
    public static func openRequests(_ conn: any StoreSession, now: Double) throws -> [TokenRequest] {
        try conn.openTokenRequests(createdAfter: now - TokenRequest.lifetime)
    }

    /// Records the approval; false when approved already.
    public static func approve(_ ctx: any StoreWriter, requestID: String, by: String, now: Double) throws -> Bool {
        try ctx.connection.approveTokenRequest(id: requestID, by: by, now: now)
    }

    /// Records that the approved token was issued; false when it was issued already.
    public static func markIssued(_ ctx: any StoreWriter, requestID: String, tokenID: String, now: Double) throws
        -> Bool
    {
        try ctx.connection.markTokenRequestIssued(id: requestID, tokenID: tokenID, now: now)
    }

    /// Revokes a token by id; false when there is no such live token.
    public static func revoke(_ ctx: any StoreWriter, id: String, now: Double) throws -> Bool {
        try ctx.connection.revokeToken(id: id, now: now)
    }

    /// Every token, newest first.
    public static func list(_ conn: any StoreSession) throws -> [TokenInfo] {
        try conn.tokens()
    }

    /// The public id in a presented token's text (`shub_<id>_…`), or nil when malformed.
    public static func publicID(_ token: String) -> String? {
        guard token.utf8.count <= 128, token.hasPrefix(prefix) else { return nil }
        let rest = token.dropFirst(prefix.count)
        guard let sep = rest.firstIndex(of: "_") else { return nil }
        let id = String(rest[..<sep])
        guard id.utf8.count == 16, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) })
        else { return nil }
        return id
    }

    /// The principal for a presented token, or nil when unknown, malformed or revoked.
    public static func verify(_ conn: any StoreSession, token: String, now: Double) throws -> Principal? {
        try check(conn, token: token, now: now)?.principal
    }

    /// The principal of a live, unexpired token, and whether its last use should be recorded
    /// (once a minute at most: authentication stays a read).
    public static func check(_ conn: any StoreSession, token: String, now: Double) throws -> (
        principal: Principal, recordUse: Bool
    )? {
        let u = Array(token.utf8)
        guard let id = publicID(token) else { return nil }
        let found = try conn.token(id: id)
        // Hash even when the id is unknown, so timing does not reveal which ids exist.
        let presented = Crypto.sha256(u)
        guard let f = found else { _ = Crypto.constantTimeEquals(presented, presented); return nil }
        guard Crypto.constantTimeEquals(presented, f.hash), f.revoked == nil else { return nil }
        if let end = f.expires, end <= now { return nil }
        return (Principal(name: f.principal, scopes: Set(f.scopes), tokenID: id), now - (f.lastUsed ?? 0) >= 60)
    }
}

/// A token as stored: its hash, never its text.
public struct StoredToken: Sendable, Equatable {
    public let id: String
    public let principal: String
    public let scopes: [Scope]
    public let hash: [UInt8]
    public let created: Double
    public var revoked: Double? = nil
    /// The minting principal (`cli` for the host) and the token it used.
    public let mintedBy: String
    public let mintedByToken: String?
    public let approvedBy: String?
    public var expires: Double? = nil
    public var lastUsed: Double? = nil
}

/// Bearer tokens and the requests for them that wait for a second administrator.
public protocol TokenStore {
    func insertToken(_ t: StoredToken) throws
    /// The token with public id `id`, revoked or not.
    func token(id: String) throws -> StoredToken?
    /// Every token, newest first.
    func tokens() throws -> [TokenInfo]
    /// Records that the token authenticated at `now`.
    func recordTokenUse(id: String, now: Double) throws
    /// Revokes a live token; false when there is none.
    func revokeToken(id: String, now: Double) throws -> Bool

    func insertTokenRequest(_ r: TokenRequest) throws
    /// The request `id` if made after `createdAfter`.
    func tokenRequest(id: String, createdAfter: Double) throws -> TokenRequest?
    /// Requests not yet issued made after `createdAfter`, oldest first.
    func openTokenRequests(createdAfter: Double) throws -> [TokenRequest]
    /// Records the approval; false when approved already.
    func approveTokenRequest(id: String, by: String, now: Double) throws -> Bool
    /// Records that the approved token was issued; false when issued already or not approved.
    func markTokenRequestIssued(id: String, tokenID: String, now: Double) throws -> Bool
}
