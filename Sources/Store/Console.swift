// SPDX-License-Identifier: Apache-2.0

/// A signed-in person's session in the web console. Only the SHA-256 of the session id is
/// stored (the id itself lives in the browser's cookie), as for bearer tokens.
public struct ConsoleSessionRecord: Sendable, Equatable {
    /// Hex SHA-256 of the cookie's value.
    public let idHash: String
    /// The person's user name (their principal in the audit chain) and User id.
    public let userName: String
    public let personID: String?
    /// Console roles: admin, auditor, reviewer, approver, break-glass, helpdesk.
    public let roles: [String]
    /// `oidc` or `local` (emergency sign-in).
    public let method: String
    /// The form token every state-changing request carries.
    public let csrf: String
    public let created: Double
    public var lastSeen: Double
    /// The absolute end, whatever the activity.
    public let expires: Double
    public var ended: Double?

    public init(
        idHash: String, userName: String, personID: String?, roles: [String], method: String, csrf: String,
        created: Double, lastSeen: Double, expires: Double, ended: Double? = nil
    ) {
        self.idHash = idHash; self.userName = userName; self.personID = personID; self.roles = roles
        self.method = method; self.csrf = csrf; self.created = created; self.lastSeen = lastSeen
        self.expires = expires; self.ended = ended
    }
}

/// A sign-in under way at the identity provider: what the callback must match (RFC 6749
/// §10.12 `state`, OpenID Connect Core §3.1.2.1 `nonce`, RFC 7636 PKCE verifier). Kept in
/// the store, so any node can finish it; used once.
public struct PendingSignIn: Sendable, Equatable {
    /// Hex SHA-256 of `state`.
    public let stateHash: String
    public let nonce: String
    public let verifier: String
    /// Where to go after signing in (a console path).
    public let returnTo: String
    public let created: Double

    public init(stateHash: String, nonce: String, verifier: String, returnTo: String, created: Double) {
        self.stateHash = stateHash; self.nonce = nonce; self.verifier = verifier; self.returnTo = returnTo
        self.created = created
    }
}

/// A local account for emergency sign-in when the identity provider is down: a password
/// hashed with PBKDF2 (`PasswordHash`) and TOTP, which the sign-in requires.
public struct LocalAccountRecord: Sendable, Equatable {
    public let name: String
    public let passwordHash: String
    public let created: Double
    public var disabled: Bool

    public init(name: String, passwordHash: String, created: Double, disabled: Bool = false) {
        self.name = name; self.passwordHash = passwordHash; self.created = created; self.disabled = disabled
    }
}

/// Console sessions, sign-ins under way and local emergency accounts.
public protocol ConsoleStore {
    func insertConsoleSession(_ s: ConsoleSessionRecord) throws
    func consoleSession(idHash: String) throws -> ConsoleSessionRecord?
    /// Records activity; false when the session has ended.
    func touchConsoleSession(idHash: String, now: Double) throws -> Bool
    func endConsoleSession(idHash: String, now: Double) throws -> Bool
    /// Ends every session of `userName` ("sign out everywhere"); returns how many.
    func endConsoleSessions(userName: String, now: Double) throws -> Int

    func insertPendingSignIn(_ p: PendingSignIn) throws
    /// Removes and returns the sign-in for `stateHash` (a state is used once).
    func takePendingSignIn(stateHash: String) throws -> PendingSignIn?
    /// Forgets sign-ins older than `before` (abandoned at the provider).
    func prunePendingSignIns(before: Double) throws

    func insertLocalAccount(_ a: LocalAccountRecord) throws
    func localAccount(name: String) throws -> LocalAccountRecord?
    func localAccounts() throws -> [LocalAccountRecord]
    func setLocalAccountDisabled(name: String, disabled: Bool) throws -> Bool
}
