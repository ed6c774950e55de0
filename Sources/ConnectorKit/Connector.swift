// SPDX-License-Identifier: Apache-2.0

/// An account as a target system holds it.
public struct Account: Sendable, Equatable {
    /// The target's own identifier for the account.
    public var id: String
    public var userName: String
    /// Mapped attributes (target field name → value).
    public var attributes: [String: String]
    public var enabled: Bool
    /// Entitlements held: roles, groups, privileges, as the target names them.
    public var entitlements: Set<String>

    public init(
        id: String, userName: String, attributes: [String: String] = [:], enabled: Bool = true,
        entitlements: Set<String> = []
    ) {
        self.id = id
        self.userName = userName
        self.attributes = attributes
        self.enabled = enabled
        self.entitlements = entitlements
    }
}

/// What an account should look like, before the target has given it an id.
public struct AccountSpec: Sendable, Equatable {
    public var userName: String
    public var attributes: [String: String]
    public var enabled: Bool
    public var entitlements: Set<String>

    public init(
        userName: String, attributes: [String: String] = [:], enabled: Bool = true, entitlements: Set<String> = []
    ) {
        self.userName = userName
        self.attributes = attributes
        self.enabled = enabled
        self.entitlements = entitlements
    }
}

/// A connector failure, classified so the engine knows whether to retry. The reason names
/// the problem (status, error code), never personal attribute values or secrets.
public struct ConnectorError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Worth retrying: network failure, timeout, 5xx, 429, directory busy.
        case retryable
        /// Will fail again: validation, 4xx, wrong credentials, not found where required.
        case permanent
    }
    public let kind: Kind
    public let reason: String
    /// Seconds the target asked us to wait (HTTP `Retry-After`).
    public let retryAfter: Double?

    public init(_ kind: Kind, _ reason: String, retryAfter: Double? = nil) {
        self.kind = kind
        self.reason = reason
        self.retryAfter = retryAfter
    }

    public static func retryable(_ reason: String, retryAfter: Double? = nil) -> ConnectorError {
        ConnectorError(.retryable, reason, retryAfter: retryAfter)
    }
    public static func permanent(_ reason: String) -> ConnectorError { ConnectorError(.permanent, reason) }

    public var isRetryable: Bool { kind == .retryable }
    public var description: String { "\(kind.rawValue): \(reason)" }
}

/// What a connector can do; the engine does not ask for more.
public struct ConnectorCapabilities: Sendable, Equatable {
    public var canDelete: Bool
    public var canDisable: Bool
    public var canList: Bool
    public var entitlementKinds: [String]

    public init(
        canDelete: Bool = true, canDisable: Bool = true, canList: Bool = true, entitlementKinds: [String] = ["role"]
    ) {
        self.canDelete = canDelete
        self.canDisable = canDisable
        self.canList = canList
        self.entitlementKinds = entitlementKinds
    }
}

/// One page of a listing.
public struct AccountPage: Sendable {
    public var accounts: [Account]
    /// Opaque cursor for the next page, nil at the end.
    public var next: String?

    public init(accounts: [Account], next: String?) {
        self.accounts = accounts
        self.next = next
    }
}

/// A connector plugin: one instance per configured target. Calls block (network, LDAP,
/// SQL) and are made from the engine's own worker threads, never Swift's cooperative pool.
/// Every operation is idempotent from the caller's view: enabling an enabled account,
/// granting a held entitlement or deleting a missing account succeeds.
public protocol Connector: Sendable {
    var capabilities: ConnectorCapabilities { get }
    /// The account with `id`, or nil when it does not exist.
    func read(id: String) throws(ConnectorError) -> Account?
    /// The account whose user name is `userName`, or nil.
    func find(userName: String) throws(ConnectorError) -> Account?
    /// Creates an account with the spec's attributes, state and entitlements.
    func create(_ spec: AccountSpec) throws(ConnectorError) -> Account
    /// Replaces the mapped attributes of an account.
    func update(id: String, attributes: [String: String]) throws(ConnectorError)
    func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError)
    func delete(id: String) throws(ConnectorError)
    func grant(id: String, entitlement: String) throws(ConnectorError)
    func revoke(id: String, entitlement: String) throws(ConnectorError)
    /// Changes the account's user name (LDAP: a modrdn when it names the entry).
    func rename(id: String, userName: String) throws(ConnectorError)
    /// One page of all accounts, with their entitlements.
    func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage
    /// Runs one convergence (several calls) as a unit where the target can: a SQL target
    /// runs them in one database transaction on one connection and hands `body` a connector
    /// bound to it. Targets without transactions call `body(self)`.
    func transaction<T>(_ body: (any Connector) throws(ConnectorError) -> T) throws(ConnectorError) -> T
    /// A cheap call that proves the target answers and accepts the hub's credentials, made
    /// on a schedule so a down target shows before a change is queued for it. Throws what
    /// any other call would (retryable: unreachable; permanent: refused credentials).
    func probe() throws(ConnectorError)
}

extension Connector {
    /// The default probe: an indexed lookup of a user name no account has, answered with
    /// "none" by a target that is up. A connector overrides it with a cheaper call if its
    /// target has one (a health endpoint, `SELECT 1`).
    public func probe() throws(ConnectorError) { _ = try find(userName: Self.probeUserName) }

    /// Not a valid SCIM user name the hub would ever send (it has a space and a colon).
    public static var probeUserName: String { "scimhub probe:none" }

    /// No transactions: each call stands alone (REST, SCIM, LDAP).
    public func transaction<T>(_ body: (any Connector) throws(ConnectorError) -> T) throws(ConnectorError) -> T {
        try body(self)
    }
}
