// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubCrypto
import HubLog
import Store

/// The guard on each authoritative feed: an HR export that marks hundreds of people
/// inactive must not disable them everywhere within a second. Per feed, people who lose
/// all access (inactive, deleted, or no package left) are counted in a sliding window;
/// past the limit, the feed's writes are still stored and acknowledged, but the resulting
/// removals are held: queued as `held` jobs that do not run until an administrator
/// releases the hold (or discards it, and the people are judged again from their current
/// state). A hold is an audit entry and an error in the log. Leavers below the limit flow.
public struct FeedGuard: Sendable, Equatable {
    public var enabled = true
    /// The sliding window, in seconds.
    public var window: Double = 900
    /// People one feed may take all access from within the window: 50, or 2 % of everyone
    /// when that is more.
    public var limit = PolicyChangeLimit(people: 50, share: 0.02)
    /// A release must come from someone other than the people behind the feed's token.
    public var twoPerson = false

    public init() {}
}

/// Who made a change: the feed (principal) and the token it used.
public struct ChangeOrigin: Sendable, Equatable {
    public let feed: String
    public let tokenID: String?
    public init(feed: String, tokenID: String?) {
        self.feed = feed
        self.tokenID = tokenID
    }
}

extension ProvisioningEngine {
    /// Counts a person `origin` took all access from, and says which hold keeps their
    /// removals (the feed's open one, or a new one when this person crosses the limit), or
    /// nil when they flow.
    func feedHold(_ w: any StoreWriter, origin: ChangeOrigin, personID: String, now: Double) throws -> String? {
        let g = options.feedGuard
        let conn = w.connection
        try conn.pruneFeedRemovals(feed: origin.feed, before: now - g.window)
        try conn.recordFeedRemoval(feed: origin.feed, personID: personID, now: now)
        if let open = try conn.openHold(feed: origin.feed) { return open.id }
        let n = try conn.feedRemovals(feed: origin.feed, since: now - g.window)
        guard n > g.limit.people else { return nil }  // the common case, without counting everyone
        let total = try conn.count(type: .user)
        guard let why = g.limit.exceeded(losing: n, of: total) else { return nil }
        let minutes = Int((g.window / 60).rounded())
        let hold = HoldRecord(
            id: UUIDv7.make(), feed: origin.feed, feedToken: origin.tokenID, created: now,
            reason:
                "\(origin.feed): \(why.replacingOccurrences(of: "would lose", with: "lost")) within \(minutes) minutes",
            state: .open)
        try conn.insertHold(hold)
        try AuditLog.append(
            w,
            .now(
                principal: origin.feed, action: "feed.hold", resourceType: "Hold", resourceID: hold.id,
                attributes: [hold.reason], requestID: "feed-guard", outcome: "held"))
        try notifier?.announce(w, .feedHold, ["feed": origin.feed, "reason": hold.reason, "holdId": hold.id])
        logger.error(
            "feed guard: access removals held; release or discard at /admin/holds/\(hold.id)",
            ["event": "feed.hold", "feed": origin.feed, "hold": hold.id, "reason": why])
        return hold.id
    }
}

/// An administrator's decision on a hold.
public enum FeedHolds {
    /// Releases hold `id`: its removals run now. Returns how many jobs were released.
    public static func release(
        _ id: String, by principal: Principal, requestID: String, engine: ProvisioningEngine, store: any HubStore
    ) throws -> Int {
        let hold = try openHold(id, store: store)
        try checkTwoPerson(hold, principal, engine: engine, store: store)
        let now = engine.clock.now()
        let released = try store.write { w -> Int in
            guard try w.connection.decideHold(id: id, state: .released, by: principal.name, now: now) else {
                throw GovernanceError.conflict("the hold is no longer open")
            }
            let n = try w.connection.releaseHeldJobs(holdID: id, now: now)
            try AuditLog.append(
                w,
                .now(
                    principal: principal.name, action: "hold.release", resourceType: "Hold", resourceID: id,
                    attributes: [hold.feed, "jobs:\(n)"], requestID: requestID))
            return n
        }
        engine.wake()
        return released
    }

    /// Discards hold `id`: its held jobs are dropped and each person is judged again from
    /// their current state, through the guard (people the feed has since restored keep their
    /// access; people still leaving count again and may be held again), all in one
    /// transaction, so a crash never leaves a leaver without a job. Discarding can let
    /// removals through, so it takes the same two people as a release. Returns how many
    /// people were judged.
    public static func discard(
        _ id: String, by principal: Principal, requestID: String, engine: ProvisioningEngine, store: any HubStore
    ) throws -> Int {
        let hold = try openHold(id, store: store)
        try checkTwoPerson(hold, principal, engine: engine, store: store)
        let now = engine.clock.now()
        let origin = ChangeOrigin(feed: hold.feed, tokenID: hold.feedToken)
        let judged = try store.write(isolated: true) { w -> Int in
            guard try w.connection.decideHold(id: id, state: .discarded, by: principal.name, now: now) else {
                throw GovernanceError.conflict("the hold is no longer open")
            }
            let people = try w.connection.dropHeldJobs(holdID: id)
            try AuditLog.append(
                w,
                .now(
                    principal: principal.name, action: "hold.discard", resourceType: "Hold", resourceID: id,
                    attributes: [hold.feed, "people:\(people.count)"], requestID: requestID))
            for p in people {
                try engine.enqueue(
                    w, personID: p, person: try w.connection.fetch(type: .user, id: p)?.doc, origin: origin)
            }
            return people.count
        }
        engine.wake()
        return judged
    }

    /// With `twoPerson`, nobody behind the feed's token decides its hold.
    private static func checkTwoPerson(
        _ hold: HoldRecord, _ principal: Principal, engine: ProvisioningEngine, store: any HubStore
    ) throws {
        guard engine.options.feedGuard.twoPerson, let token = hold.feedToken else { return }
        let feedPeople = try store.read { try Tokens.people($0, tokenID: token) }
        let decider = try store.read { try Tokens.people($0, tokenID: principal.tokenID) }
        guard feedPeople.isDisjoint(with: decider) else {
            throw GovernanceError.forbidden("the feed's own people cannot decide its hold (two-person rule)")
        }
    }

    private static func openHold(_ id: String, store: any HubStore) throws -> HoldRecord {
        guard let hold = try store.read({ try $0.hold(id: id) }) else {
            throw GovernanceError.notFound("no hold \(id)")
        }
        guard hold.state == .open else { throw GovernanceError.conflict("the hold was \(hold.state.rawValue) already") }
        return hold
    }
}
