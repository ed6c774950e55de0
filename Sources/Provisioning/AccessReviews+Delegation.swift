// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Store

/// A reviewer hands an item on (on leave, or someone else knows the person's work better).
/// Not an administrator's tool: they have `reassign`.
extension AccessReviews {
    /// Gives the undecided item `seq` to `to`, on behalf of its current reviewer `principal`.
    /// Refused (and nothing changed): a bad name or reason (invalid), an item that is not the
    /// caller's or a delegate who is the person reviewed (forbidden), a decided item or a
    /// closed campaign (conflict). The delegate must be someone who can act (`isSomeone`).
    /// Returns the item as delegated.
    @discardableResult
    public func delegate(
        campaignID: String, seq: Int64, to: String, reason: String, principal: Principal, requestID: String
    ) throws -> ReviewItemRecord {
        let why = try Self.delegation(to: to, reason: reason)
        let (c, item) = try campaignItem(campaignID, seq)
        let people = try store.read { try Tokens.people($0, tokenID: principal.tokenID) }
        guard Self.mayDecide(principal, people: people, c, item) else {
            throw GovernanceError.forbidden("this item is not yours to review, so not yours to delegate")
        }
        guard c.state == "open" || c.state == "awaiting-confirmation" else {
            throw GovernanceError.conflict("the campaign is \(c.state)")
        }
        guard item.decision == nil else { throw GovernanceError.conflict("the item was decided already") }
        guard Identifier.canonical(to) != Identifier.canonical(item.userName) else {
            throw GovernanceError.forbidden("'to' is the person under review: nobody reviews their own access")
        }
        guard Identifier.canonical(to) != Identifier.canonical(principal.name) else {
            throw GovernanceError.invalid("'to' is you: delegate to someone else")
        }
        let now = clock.now()
        guard try store.read({ try Self.isSomeone($0, to, now: now) }) else {
            throw GovernanceError.invalid("'to' names no active User and no token holder who may review")
        }
        return try recordDelegation(c, item, to: to, reason: why, by: principal.name, requestID: requestID)
    }

    /// The checked delegate name and trimmed reason.
    private static func delegation(to: String, reason: String) throws -> String {
        do { try PrincipalName.validate(to, what: "'to'") } catch { throw GovernanceError.invalid(error.description) }
        guard !PrincipalName.isReserved(to) else { throw GovernanceError.invalid("'to' is a name the hub keeps") }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else {
            throw GovernanceError.invalid("'reason' is required (at most 1,000 characters)")
        }
        return trimmed
    }

    private func campaignItem(_ id: String, _ seq: Int64) throws -> (ReviewCampaignRecord, ReviewItemRecord) {
        try store.read { conn in
            guard let c = try conn.campaign(id: id) else {
                throw GovernanceError.notFound("no review campaign with this id")
            }
            guard let item = try conn.item(campaignID: id, seq: seq) else {
                throw GovernanceError.notFound("no item \(seq) in this campaign")
            }
            return (c, item)
        }
    }

    /// Someone who can act on the item: an active User with that user name (they get a
    /// `review` token named after it), or the principal of a live token that can decide
    /// (scope `review` or `admin`): a feed's token could never act, and the item would stall.
    static func isSomeone(_ conn: any StoreSession, _ name: String, now: Double) throws -> Bool {
        if let u = try People.user(conn, userName: name), Policy.isActive(u.doc, now: now) { return true }
        let canonical = Identifier.canonical(name)
        let deciding: Set<String> = [Scope.review.rawValue, Scope.admin.rawValue]
        return try Tokens.list(conn).contains {
            $0.revoked == nil && Identifier.canonical($0.principal) == canonical
                && !deciding.isDisjoint(with: $0.scopes)
        }
    }

    /// Moves the item if it is still where the check found it, with the audit entry and the
    /// delegate's message, in one write.
    private func recordDelegation(
        _ c: ReviewCampaignRecord, _ item: ReviewItemRecord, to: String, reason: String, by: String, requestID: String
    ) throws -> ReviewItemRecord {
        let moved = try store.write { w -> ReviewItemRecord? in
            guard
                try w.connection.delegateItem(
                    campaignID: c.id, seq: item.seq, from: item.reviewers, to: to, by: by, reason: reason)
            else { return nil }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "review.delegate", resourceType: "User", resourceID: item.personID,
                    attributes: ["\(c.id)#\(item.seq)", item.package, "to \(to)"], requestID: requestID))
            try self.announceDelegated(w, c, item, to: to, by: by)
            return try w.connection.item(campaignID: c.id, seq: item.seq)
        }
        guard let moved else {
            throw GovernanceError.conflict("the item was decided or changed hands meanwhile: load it again")
        }
        engine?.notifier?.wake()
        return moved
    }
}
