// SPDX-License-Identifier: Apache-2.0

/// One version of the provisioning policy as the hub ran it: the file's text (secret
/// references only, never secrets), its SHA-256, who brought it and when, and whether its
/// rollout is held by the change guard.
public struct PolicyVersion: Sendable, Equatable {
    public let version: Int64
    /// Hex SHA-256 of `text`.
    public let hash: String
    public let text: [UInt8]
    /// `policy-file` when the hub started with it, else the principal who applied it.
    public let author: String
    public let created: Double
    public var state: PolicyState
    /// Why the rollout waits, when held (counts against the limit).
    public var heldReason: String?
    public var confirmedBy: String?
    /// When every person it changes had been queued for convergence (nil: not yet, so a
    /// restart finishes the rollout).
    public var rolledOut: Double?

    public init(
        version: Int64, hash: String, text: [UInt8], author: String, created: Double, state: PolicyState,
        heldReason: String? = nil, confirmedBy: String? = nil, rolledOut: Double? = nil
    ) {
        self.rolledOut = rolledOut
        self.version = version
        self.hash = hash
        self.text = text
        self.author = author
        self.created = created
        self.state = state
        self.heldReason = heldReason
        self.confirmedBy = confirmedBy
    }
}

/// Where a policy version's rollout is: re-converging the people it changes (`active`), or
/// `held` by the change guard until an administrator confirms it.
public struct PolicyState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static let active = PolicyState(rawValue: "active")
    public static let held = PolicyState(rawValue: "held")
}

/// The policy's version history.
public protocol PolicyStore {
    /// Stores a new version (numbered one past the newest) and returns it.
    func insertPolicyVersion(
        hash: String, text: [UInt8], author: String, now: Double, state: PolicyState, heldReason: String?
    )
        throws -> PolicyVersion
    /// The newest version, or nil before the first.
    func latestPolicyVersion() throws -> PolicyVersion?
    /// The number of the newest `active` version: the one every node runs (a held one runs
    /// nowhere); nil before the first.
    func newestActivePolicyVersion() throws -> Int64?
    func policyVersion(_ version: Int64) throws -> PolicyVersion?
    /// Newest first, without their text.
    func policyVersions(limit: Int) throws -> [PolicyVersion]
    /// Marks a held version confirmed (`active`); false when it is not held.
    func confirmPolicyVersion(_ version: Int64, by: String) throws -> Bool
    /// Records that the version's rollout has queued everyone it changes.
    func markPolicyRolledOut(_ version: Int64, now: Double) throws
}
