// SPDX-License-Identifier: Apache-2.0

/// Access removals held because one feed removed access from more people, within a
/// sliding window, than its guard allows. The feed's writes are stored and acknowledged;
/// only the downstream removals wait, as `held` jobs, until an administrator releases or
/// discards the hold.
public struct HoldRecord: Sendable, Equatable {
    public let id: String
    /// The feed (principal) whose writes tripped the guard, and the token it used.
    public let feed: String
    public let feedToken: String?
    public let created: Double
    /// The count against the limit when it tripped.
    public let reason: String
    public var state: HoldState
    public var decidedBy: String?
    public var decided: Double?

    public init(
        id: String, feed: String, feedToken: String?, created: Double, reason: String, state: HoldState,
        decidedBy: String? = nil, decided: Double? = nil
    ) {
        self.id = id
        self.feed = feed
        self.feedToken = feedToken
        self.created = created
        self.reason = reason
        self.state = state
        self.decidedBy = decidedBy
        self.decided = decided
    }
}

public struct HoldState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static let open = HoldState(rawValue: "open")
    public static let released = HoldState(rawValue: "released")
    public static let discarded = HoldState(rawValue: "discarded")
}

/// The feed guard's window of removals and its holds.
public protocol HoldStore {
    /// Counts `personID` as a person `feed` took access from at `now` (once per window).
    func recordFeedRemoval(feed: String, personID: String, now: Double) throws
    /// Forgets removals older than the window.
    func pruneFeedRemovals(feed: String, before: Double) throws

    /// People `feed` took access from since `since`.
    func feedRemovals(feed: String, since: Double) throws -> Int
    /// The feed's open hold, if any.
    func openHold(feed: String) throws -> HoldRecord?
    func insertHold(_ h: HoldRecord) throws
    func hold(id: String) throws -> HoldRecord?
    /// Newest first.
    func holds(limit: Int) throws -> [HoldRecord]
    /// Queues `personID`'s job on `target` as held by `holdID` (it does not run).
    func holdJob(personID: String, target: String, priority: Int, holdID: String, now: Double) throws
    /// The people whose jobs the hold keeps, with how many jobs each.
    func heldPeople(holdID: String) throws -> [String]
    /// Ends an open hold (`released` or `discarded`); false when it is not open.
    func decideHold(id: String, state: HoldState, by: String, now: Double) throws -> Bool
    /// Held jobs become pending (release): they run now.
    func releaseHeldJobs(holdID: String, now: Double) throws -> Int
    /// Held jobs are dropped (discard); returns the people they were for.
    func dropHeldJobs(holdID: String) throws -> [String]
}
