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

/// One review item: does this person still need this package?
public struct ReviewItemRecord: Sendable, Equatable {
    public var seq: Int64
    public var personID: String
    public var userName: String
    public var displayName: String?
    public var package: String
    public var reviewer: String?
    public var decision: String?
    public var reason: String?
    public var decidedBy: String?
    public var decided: Double?

    public init(
        seq: Int64, personID: String, userName: String, displayName: String?, package: String, reviewer: String?,
        decision: String? = nil, reason: String? = nil, decidedBy: String? = nil, decided: Double? = nil
    ) {
        self.seq = seq; self.personID = personID; self.userName = userName; self.displayName = displayName;
        self.package = package
        self.reviewer = reviewer; self.decision = decision; self.reason = reason; self.decidedBy = decidedBy;
        self.decided = decided
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
