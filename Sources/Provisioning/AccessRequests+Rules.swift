// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import JSONCore
import SCIM
import Store

/// Who may ask, for whom, and who may approve: eligibility, separation of duties at request
/// time, the approval stages, and four eyes.
extension AccessRequests {
    // MARK: - Who may do what

    /// The requester (a person in the hub) and the beneficiary: oneself, or a report of the
    /// requester (a manager asks for their staff).
    func parties(_ conn: any StoreSession, _ beneficiary: String?, principal: Principal) throws
        -> (requester: StoredResource, person: StoredResource)
    {
        guard let requester = try People.user(conn, userName: principal.name) else {
            throw GovernanceError.forbidden(
                "requests are made by people in the hub: no User has the user name '\(principal.name)'")
        }
        guard let b = beneficiary, !b.isEmpty else { return (requester, requester) }
        guard let person = try conn.fetch(type: .user, id: b) ?? People.user(conn, userName: b) else {
            throw GovernanceError.notFound("'for': no person with this user name or id")
        }
        let manager = try People.manager(conn, of: person.doc)
        guard person.id == requester.id || manager?.id == requester.id else {
            throw GovernanceError.forbidden("only the person or their manager may request access for them")
        }
        return (requester, person)
    }

    func isPersonOrManager(_ conn: any StoreSession, _ who: StoredResource, of person: StoredResource) throws
        -> Bool
    {
        let manager = try People.manager(conn, of: person.doc)
        return who.id == person.id || manager?.id == who.id
    }

    /// The beneficiary is active, within the package's requesters, and (unless `renewing` a
    /// grant by request) holds nothing of it already.
    func checkEligible(
        _ conn: any StoreSession, person: StoredResource, package: AccessPackage, terms: RequestPolicy, now: Double,
        renewing: Bool
    ) throws {
        let userName = person.doc["userName"]?.stringValue ?? person.id
        guard Policy.isActive(person.doc, now: now) else {
            throw GovernanceError.conflict("\(userName) is inactive: a request does not reactivate a leaver")
        }
        let snapshot = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
        if let filter = terms.requesters, let doc = snapshot.document, !filter.matches(doc) {
            throw GovernanceError.forbidden(
                "\(userName) is outside who may request '\(package.name)' (\(terms.requestersText ?? ""))")
        }
        for r in try conn.accessRequests(personID: person.id)
        where r.package == package.name && (r.state == .pending || (r.state == .granted && !renewing)) {
            throw GovernanceError.conflict(
                "\(userName) already has a \(r.state) request for '\(package.name)' (\(r.id))")
        }
        if let doc = snapshot.document,
            let held = policy.grants(
                person: doc, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now
            ).first(where: { $0.package == package.name }), !(renewing && held.reason.hasPrefix("request"))
        {
            // The kind only: a break-glass reason is free text and may describe a patient.
            let kind = held.reason.prefix { $0 != ":" }
            throw GovernanceError.conflict("\(userName) already holds '\(package.name)' (by \(kind))")
        }
    }

    /// Separation of duties at request time: a grant that would break an `enforce` rule is
    /// refused (unless an exception waives it); one that breaks a `record` rule needs
    /// `sodReason` and an administrator's approval. Returns the `record` rules broken.
    func sodCheck(
        _ conn: any StoreSession, person: StoredResource, package: String, reason: String?, now: Double
    )
        throws -> [String]
    {
        let s = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
        guard let doc = s.document else { return [] }
        let held = policy.grants(person: doc, groupNames: s.groupNames, overrides: s.overrides, now: now)
            .filter { !$0.reason.hasPrefix("break-glass") }.map(\.package)
        // Requests still waiting count as held: two requests filed back to back must not each
        // slip past a rule that only their pair breaks.
        let waiting = try conn.accessRequests(personID: person.id).filter { $0.state == .pending }.map(\.package)
        let conflicts = policy.sodConflicts(holding: Set(held + waiting + [package]))
            .filter { $0.holding.contains(package) && !s.overrides.sodExceptions.contains($0.rule) }
        if let enforced = conflicts.first(where: { $0.mode == .enforce }) {
            throw GovernanceError.conflict(
                "'\(package)' with \(enforced.holding.filter { $0 != package }.joined(separator: ", ")) breaks the "
                    + "separation-of-duties rule '\(enforced.rule)' (\(enforced.severity), enforced): refused")
        }
        guard !conflicts.isEmpty else { return [] }
        let rules = conflicts.map(\.rule)
        guard let r = reason, !r.isEmpty else {
            throw GovernanceError.invalid(
                "'sodReason' is required: '\(package)' breaks the separation-of-duties rule(s) "
                    + "\(rules.joined(separator: ", ")), so an administrator must approve an exception")
        }
        return rules
    }

    /// At the last approval, the terms once more: the package is still requestable for this
    /// long, the person still active, and no separation-of-duties rule is broken that the
    /// request did not declare (an exception may have ended, the policy may have changed).
    func recheck(_ r: AccessRequestRecord, now: Double) throws {
        let (_, terms) = try requestable(r.package)
        guard r.days <= terms.maxDays else {
            throw GovernanceError.conflict(
                "'\(r.package)' is now held at most \(Self.number(terms.maxDays)) days: deny this and ask anew")
        }
        try store.read { conn in
            guard let person = try conn.fetch(type: .user, id: r.personID), Policy.isActive(person.doc, now: now) else {
                throw GovernanceError.conflict("\(r.userName) is no longer active: nothing is granted")
            }
            let s = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
            guard let doc = s.document else { return }
            let held = policy.grants(person: doc, groupNames: s.groupNames, overrides: s.overrides, now: now)
                .filter { !$0.reason.hasPrefix("break-glass") }.map(\.package)
            let broken = policy.sodConflicts(holding: Set(held + [r.package]))
                .filter { $0.holding.contains(r.package) && !s.overrides.sodExceptions.contains($0.rule) }
                .filter { $0.mode == .enforce || !r.sodRules.contains($0.rule) }
            if let c = broken.first {
                throw GovernanceError.conflict(
                    "granting '\(r.package)' now breaks the separation-of-duties rule '\(c.rule)' "
                        + "(\(c.mode.rawValue)), which the request did not declare: deny it and ask anew")
            }
        }
    }

    /// The stages as fixed now: the manager by name (when the manager is the requester, the
    /// manager's manager; when there is none, administrators, and the request says so), a
    /// Group by name, and an administrator's stage for a separation-of-duties conflict.
    func approvalStages(
        _ conn: any StoreSession, _ terms: RequestPolicy, person: StoredResource, requester: StoredResource,
        sodRules: [String]
    ) throws -> [ApprovalStageRecord] {
        var out: [ApprovalStageRecord] = []
        for stage in terms.approval {
            switch stage {
            case .manager:
                var manager = try People.manager(conn, of: person.doc)
                if manager?.id == requester.id {
                    manager = try manager.flatMap { try People.manager(conn, of: $0.doc) }
                }
                let active = manager.flatMap { Policy.isActive($0.doc, now: clock.now()) ? $0 : nil }
                out.append(ApprovalStageRecord(kind: "manager", value: active?.doc["userName"]?.stringValue ?? ""))
            case .group(let name):
                out.append(ApprovalStageRecord(kind: "group", value: name))
            }
        }
        if !sodRules.isEmpty { out.append(ApprovalStageRecord(kind: "sod", value: sodRules.joined(separator: ", "))) }
        return out
    }

    /// Throws unless `p` may approve the stage awaiting approval. Four eyes, by people and by
    /// tokens: nobody behind the approving token (its principal and chain of minters) is the
    /// person or the requester, or behind the requester's token; the approver is not the
    /// person or the requester under another user name; nobody approves two stages of one
    /// request, also not through another token.
    func requireApprover(_ r: AccessRequestRecord, _ p: Principal, now: Double) throws {
        let (people, involved, earlier, approver) = try store.read { c in
            (
                try Tokens.people(c, tokenID: p.tokenID).union([Identifier.canonical(p.name)]),
                try r.requestedByToken.map { try Tokens.people(c, tokenID: $0) } ?? [],
                try r.approvals.reduce(into: Set<String>()) { out, a in
                    out.insert(Identifier.canonical(a.by))
                    if let t = a.token { out.formUnion(try Tokens.people(c, tokenID: t)) }
                },
                try People.user(c, userName: p.name)
            )
        }
        let parties = involved.union([r.userName, r.requestedBy].map(Identifier.canonical))
        guard people.isDisjoint(with: parties), approver.map({ [r.personID, r.requesterID].contains($0.id) }) != true
        else {
            throw GovernanceError.forbidden("nobody approves a request they made or that is for them")
        }
        guard people.isDisjoint(with: earlier) else {
            throw GovernanceError.forbidden("you approved an earlier stage; another approver must approve this one")
        }
        guard try store.read({ try mayApprove($0, r, p, now: now) }) else {
            throw GovernanceError.forbidden("this request awaits \(Self.approvers(r)); you may not approve it")
        }
    }

    /// Whether `p` is an approver of `r`'s current stage (not the four-eyes checks): the named
    /// manager or a member of the Group, each an active User; an administrator for the rest.
    func mayApprove(_ conn: any StoreSession, _ r: AccessRequestRecord, _ p: Principal, now: Double) throws -> Bool {
        guard r.state == .pending, r.stage < r.stages.count else { return false }
        let stage = r.stages[r.stage]
        switch stage.kind {
        case "manager" where !stage.value.isEmpty:
            guard Identifier.canonical(stage.value) == Identifier.canonical(p.name) else { return false }
            return try People.user(conn, userName: p.name).map { Policy.isActive($0.doc, now: now) } ?? false
        case "group":
            return try People.isMember(conn, p.name, ofGroup: stage.value, now: now)
        default:
            // No manager, or a separation-of-duties exception: an administrator.
            return p.scopes.contains(.admin)
        }
    }

    /// Who the current stage waits for, in words.
    static func approvers(_ r: AccessRequestRecord) -> String {
        guard r.state == .pending, r.stage < r.stages.count else { return "nobody" }
        let s = r.stages[r.stage]
        switch s.kind {
        case "manager" where !s.value.isEmpty: return "the manager, \(s.value)"
        case "manager": return "an administrator (\(r.userName) has no active manager)"
        case "group": return "a member of the group '\(s.value)'"
        default: return "an administrator (separation of duties: \(s.value))"
        }
    }

    /// Requests `p` may see: all for administrators; otherwise those for them, those they made
    /// (among the newest 2,000), and those awaiting their approval. `awaiting` keeps only the
    /// last kind. At most 500, newest first.
    public func visible(to p: Principal, state: RequestState?, awaiting: Bool) throws -> [AccessRequestRecord] {
        let now = clock.now(), me = Identifier.canonical(p.name)
        return try store.read { conn in
            if p.scopes.contains(.admin) && !awaiting { return try conn.accessRequests(state: state, limit: 500) }
            var out: [String: AccessRequestRecord] = [:]
            for r in try conn.accessRequests(state: .pending, limit: 2000)
            where try mayApprove(conn, r, p, now: now) && Identifier.canonical(r.userName) != me {
                out[r.id] = r
            }
            if !awaiting {
                if let u = try People.user(conn, userName: p.name) {
                    for r in try conn.accessRequests(personID: u.id) { out[r.id] = r }
                }
                for r in try conn.accessRequests(state: nil, limit: 2000)
                where Identifier.canonical(r.requestedBy) == me {
                    out[r.id] = r
                }
            }
            let list = out.values.filter { state == nil || $0.state == state }.sorted { $0.created > $1.created }
            return Array(list.prefix(500))
        }
    }

    /// Whether `p` may see `r`: an administrator, the requester, the person, whoever approved
    /// or decided it, or an approver of its current stage.
    public func mayView(_ r: AccessRequestRecord, _ p: Principal) throws -> Bool {
        let me = Identifier.canonical(p.name)
        let involved = [r.requestedBy, r.userName, r.decidedBy ?? ""] + r.approvals.map(\.by)
        if p.scopes.contains(.admin) || involved.contains(where: { Identifier.canonical($0) == me }) { return true }
        let now = clock.now()
        return try store.read { try mayApprove($0, r, p, now: now) }
    }

}
