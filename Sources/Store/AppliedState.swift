// SPDX-License-Identifier: Apache-2.0

/// What was last applied for one (person, target).
public struct AppliedRecord: Sendable, Equatable {
    public let personID: String
    public let target: String
    public let accountID: String?
    public let state: [UInt8]
    public let applied: Double
    public let personDeleted: Double?
    public let lastResult: String?
}

/// What the engine last applied per (person, target): the account id, the desired state it converged to, and
/// who holds which account.
public protocol AppliedStateStore {
    /// Everything applied for a person, by target.
    func applied(personID: String) throws -> [AppliedRecord]

    func recordApplied(
        personID: String, target: String, accountID: String?, state: [UInt8], now: Double, result: String) throws

    func recordResult(personID: String, target: String, result: String) throws

    func forgetApplied(personID: String, target: String) throws

    /// Starts the retention clock for every account of a deleted person.
    func markPersonDeleted(personID: String, now: Double) throws

    /// The user name of a person other than `personID` linked to `accountID` on `target`
    /// (their user name, or their id when deleted), or nil.
    func otherClaimant(target: String, accountID: String, personID: String) throws -> String?

    /// Every person linked to `accountID` on `target` (more than one: the account is shared).
    func claimants(target: String, accountID: String) throws -> [String]

    /// The person whose account on `target` has `accountID`, with the applied record.
    func applied(target: String, accountID: String) throws -> AppliedRecord?
}
