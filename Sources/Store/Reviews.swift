// SPDX-License-Identifier: Apache-2.0

/// An access-review campaign as stored.
public struct ReviewCampaignRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var scopeKind: String
    public var scopeValue: String
    public var reviewers: [String]
    public var due: Double
    public var defaultDecision: String
    public var state: String
    public var createdBy: String
    public var created: Double
    public var closed: Double?

    public init(
        id: String, name: String, scopeKind: String, scopeValue: String, reviewers: [String], due: Double,
        defaultDecision: String,
        state: String, createdBy: String, created: Double, closed: Double?
    ) {
        self.id = id; self.name = name; self.scopeKind = scopeKind; self.scopeValue = scopeValue;
        self.reviewers = reviewers
        self.due = due; self.defaultDecision = defaultDecision; self.state = state; self.createdBy = createdBy;
        self.created = created; self.closed = closed
    }
}

/// How an item got its current reviewers: the routing rule at creation, or a later hand.
/// Escalation only takes items still with their original `manager`.
public struct ReviewAssignment: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    /// The person's manager (enterprise `manager.value`).
    public static let manager = ReviewAssignment(rawValue: "manager")
    /// The campaign's named reviewers.
    public static let named = ReviewAssignment(rawValue: "named")
    /// The members of the configured fallback group (no usable manager).
    public static let fallback = ReviewAssignment(rawValue: "fallback")
    /// Administrators, the last resort (no manager and no fallback reviewer).
    public static let admins = ReviewAssignment(rawValue: "admins")
    /// An administrator gave it to someone else.
    public static let reassigned = ReviewAssignment(rawValue: "reassigned")
    /// Its reviewer handed it on.
    public static let delegated = ReviewAssignment(rawValue: "delegated")
    /// Undecided close to the due date: taken from the manager.
    public static let escalated = ReviewAssignment(rawValue: "escalated")
}

/// One review item: does this person still need this package?
public struct ReviewItemRecord: Sendable, Equatable {
    public var seq: Int64
    public var personID: String
    public var userName: String
    public var displayName: String?
    public var package: String
    /// Who may decide it (any one of them): the manager, a delegate, a fallback group's
    /// members. Empty: the campaign's named reviewers, or else administrators.
    public var reviewers: [String]
    public var decision: String?
    public var reason: String?
    public var decidedBy: String?
    public var decided: Double?
    /// How the current reviewers got the item; nil for items from before migration 18.
    public var assignment: ReviewAssignment?
    /// The reviewer an escalation took the item from.
    public var originalReviewer: String?
    /// When it was escalated.
    public var escalated: Double?
    public var delegatedBy: String?
    public var delegationReason: String?

    /// The one reviewer, when exactly one is named.
    public var reviewer: String? { reviewers.count == 1 ? reviewers[0] : nil }

    public init(
        seq: Int64, personID: String, userName: String, displayName: String?, package: String, reviewer: String?,
        decision: String? = nil, reason: String? = nil, decidedBy: String? = nil, decided: Double? = nil
    ) {
        self.init(
            seq: seq, personID: personID, userName: userName, displayName: displayName, package: package,
            reviewers: reviewer.map { [$0] } ?? [], assignment: nil)
        self.decision = decision; self.reason = reason; self.decidedBy = decidedBy; self.decided = decided
    }

    public init(
        seq: Int64, personID: String, userName: String, displayName: String?, package: String, reviewers: [String],
        assignment: ReviewAssignment?
    ) {
        self.seq = seq; self.personID = personID; self.userName = userName; self.displayName = displayName
        self.package = package; self.reviewers = reviewers; self.assignment = assignment
    }
}

/// Access review campaigns, their items and decisions, and the packages reviews revoked.
public protocol ReviewStore {
    /// Reviewers are stored unit-separator joined (principal names cannot hold U+001F).
    func insertCampaign(_ c: ReviewCampaignRecord) throws

    func campaign(id: String) throws -> ReviewCampaignRecord?

    func campaigns(limit: Int) throws -> [ReviewCampaignRecord]

    /// Open campaigns whose due date has passed.
    func overdueCampaigns(now: Double) throws -> [ReviewCampaignRecord]

    /// When the scheduler last created campaigns; before the first, when this database got
    /// access reviews (migration 4), so the first scheduled review comes one period after
    /// installation, not on an empty roster at the first start.
    func lastScheduledCampaign() throws -> Double?

    func closeCampaign(id: String, now: Double) throws

    /// Sets an open campaign's state (`awaiting-confirmation` when its due-date revokes wait).
    func setCampaignState(id: String, state: String) throws

    /// Moves an open campaign's due date (and reminds its reviewers again before the new one).
    func setCampaignDue(id: String, due: Double) throws

    /// Open campaigns due by `dueBy` whose reviewers were not reminded yet.
    func campaignsToRemind(dueBy: Double) throws -> [ReviewCampaignRecord]

    func markCampaignReminded(id: String, now: Double) throws

    /// Gives an undecided item to another reviewer; false when it is decided or absent.
    func reassignItem(campaignID: String, seq: Int64, reviewer: String) throws -> Bool

    /// Hands an undecided item on to `to` (its reviewer delegates it), if its reviewers are
    /// still `from`; false when it was decided or changed hands meanwhile.
    func delegateItem(campaignID: String, seq: Int64, from: [String], to: String, by: String, reason: String) throws
        -> Bool

    /// Open campaigns not yet due at `now` but within `window` seconds of it, that ran longer
    /// than `window` and still have undecided items with their manager: the ones to escalate.
    func campaignsToEscalate(now: Double, window: Double) throws -> [ReviewCampaignRecord]

    /// The campaign's undecided items still with the manager they were given to.
    func itemsToEscalate(campaignID: String) throws -> [ReviewItemRecord]

    /// Escalates an undecided item still with its manager to `reviewers` (empty:
    /// administrators); false when it was decided or changed hands meanwhile, so it happens once.
    func escalateItem(campaignID: String, seq: Int64, reviewers: [String], now: Double) throws -> Bool

    func insertItem(campaignID: String, _ i: ReviewItemRecord) throws

    func items(campaignID: String) throws -> [ReviewItemRecord]

    func item(campaignID: String, seq: Int64) throws -> ReviewItemRecord?

    /// Records a decision on an undecided item; false when it was decided already.
    func decide(campaignID: String, seq: Int64, decision: String, reason: String, by: String, now: Double) throws
        -> Bool

    func revokePackage(personID: String, package: String, campaignID: String, reason: String, now: Double) throws

    func liftRevocation(personID: String, package: String) throws -> Bool

    func revokedPackages(personID: String) throws -> Set<String>
}
