// SPDX-License-Identifier: Apache-2.0

/// A break-glass grant as stored.
public struct BreakGlassRecord: Sendable, Equatable {
    public var id: String
    public var personID: String
    public var userName: String
    public var package: String
    public var reason: String
    public var grantedBy: String
    public var created: Double
    public var expires: Double
    public var ended: Double?
    public var reviewDecision: String?
    public var reviewReason: String?
    public var reviewedBy: String?
    public var reviewed: Double?
    /// The token the grant was made with (its minter may not review the use).
    public var grantedByToken: String?

    public init(
        id: String, personID: String, userName: String, package: String, reason: String, grantedBy: String,
        created: Double, expires: Double
    ) {
        self.id = id; self.personID = personID; self.userName = userName; self.package = package; self.reason = reason
        self.grantedBy = grantedBy; self.created = created; self.expires = expires
    }
}

/// Break-glass grants: when they end and who reviewed their use.
public protocol BreakGlassStore {
    func insertBreakGlass(_ g: BreakGlassRecord) throws

    /// Grants in force for a person at `now`.
    func activeBreakGlass(personID: String, now: Double) throws -> [BreakGlassRecord]

    /// Grants whose time is up but whose access has not been taken back yet.
    func expiredBreakGlass(now: Double) throws -> [BreakGlassRecord]

    /// The earliest expiry still to process.
    func nextBreakGlassExpiry() throws -> Double?

    func endBreakGlass(id: String, now: Double) throws -> Bool

    func breakGlass(id: String) throws -> BreakGlassRecord?

    /// `state`: active, pending-review (ended, not reviewed), reviewed, or nil for all; newest first.
    func breakGlassGrants(state: String?, limit: Int) throws -> [BreakGlassRecord]

    func reviewBreakGlass(id: String, decision: String, reason: String, by: String, now: Double) throws -> Bool
}
