// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store

/// Access requests (Entra ID Governance's access-package assignments): a person, or their
/// manager for them, asks for a `requestable` package with a justification and a duration;
/// one or two stages approve it (the manager, a named Group), plus an administrator when
/// the grant would break a `record` separation-of-duties rule; the package is then held
/// until it expires, taken back by the same durable deadline machinery as break-glass, with
/// a notice before the end and, where the package allows it, an extension request.
public final class AccessRequests: HubService {
    public var serviceName: String { "access-requests" }
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    let store: any HubStore
    let engine: ProvisioningEngine?
    let logger: Logger
    public let clock: any WallClock
    private let timer: DeadlineThread

    public init(
        policies: PolicyHolder, store: any HubStore, engine: ProvisioningEngine?, logger: Logger,
        clock: any WallClock = SystemClock(), isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.policies = policies
        self.store = store
        self.engine = engine
        self.logger = logger
        self.clock = clock
        let box = Box()
        timer = DeadlineThread(
            name: "access-requests", clock: clock, isLeader: isLeader,
            next: { (try? store.read { try $0.nextAccessRequestDeadline() }) ?? nil },
            process: {
                do { _ = try box.service?.processDue() } catch {
                    logger.error(
                        "access request deadlines failed; retried at the next check",
                        ["error": String(describing: error).prefix(200).description])
                }
            })
        box.service = self
    }

    /// Breaks the init-time cycle between the service and its timer's closure.
    private final class Box: @unchecked Sendable {
        // @unchecked Sendable: set once in init, before the timer thread starts; read only after.
        weak var service: AccessRequests?
    }

    public func start() { timer.start() }
    public func stop() { timer.stop() }

    // MARK: - Asking

    public struct Submission: Sendable {
        public var package: String
        public var justification: String
        /// nil: the package's maximum.
        public var days: Double?
        /// The beneficiary's user name or id when a manager asks for a report; nil: for oneself.
        public var beneficiary: String?
        /// Why a grant that breaks a `record` separation-of-duties rule is needed.
        public var sodReason: String?

        public init(
            package: String, justification: String, days: Double? = nil, beneficiary: String? = nil,
            sodReason: String? = nil
        ) {
            self.package = package; self.justification = justification; self.days = days
            self.beneficiary = beneficiary; self.sodReason = sodReason
        }
    }

    /// Files a request; it waits for its first approval stage.
    public func submit(_ s: Submission, principal: Principal, requestID: String) throws -> AccessRequestRecord {
        let now = clock.now()
        let (package, terms) = try requestable(s.package)
        let justification = try text(s.justification, "justification", required: terms.justificationRequired)
        let days = s.days ?? terms.maxDays
        guard days > 0, days <= terms.maxDays else {
            throw GovernanceError.invalid(
                "'days' must be more than 0 and at most \(Self.number(terms.maxDays)) for '\(package.name)'")
        }
        let record = try store.read { conn -> AccessRequestRecord in
            let (requester, person) = try parties(conn, s.beneficiary, principal: principal)
            try checkEligible(conn, person: person, package: package, terms: terms, now: now)
            let sodRules = try sodCheck(conn, person: person, package: package.name, reason: s.sodReason, now: now)
            let stages = try approvalStages(conn, terms, person: person, requester: requester, sodRules: sodRules)
            return AccessRequestRecord(
                id: UUIDv7.make(), personID: person.id, userName: person.doc["userName"]?.stringValue ?? "",
                package: package.name, requestedBy: principal.name, requestedByToken: principal.tokenID,
                justification: justification + (s.sodReason.map { "\nSeparation of duties: \($0)" } ?? ""),
                days: days, created: now, stages: stages, sodRules: sodRules, extends: nil,
                lapses: now + terms.approvalDays * 86400)
        }
        try file(record, action: "request.submit", principal: principal.name, requestID: requestID)
        return record
    }

    /// Asks for more time on a granted request, where the package allows it: a new request
    /// through the same approvals, which on approval continues the grant.
    public func extend(id: String, days: Double?, justification: String, principal: Principal, requestID: String)
        throws -> AccessRequestRecord
    {
        let now = clock.now()
        guard let original = try store.read({ try $0.accessRequest(id: id) }) else {
            throw GovernanceError.notFound("no access request with this id")
        }
        guard original.state == .granted else {
            throw GovernanceError.conflict("only a granted request can be extended (this one is \(original.state))")
        }
        let (package, terms) = try requestable(original.package)
        guard terms.extensionAllowed else {
            throw GovernanceError.conflict("the package '\(package.name)' does not allow extensions")
        }
        let reason = try text(justification, "justification", required: terms.justificationRequired)
        let days = days ?? terms.maxDays
        guard days > 0, days <= terms.maxDays else {
            throw GovernanceError.invalid(
                "'days' must be more than 0 and at most \(Self.number(terms.maxDays)) for '\(package.name)'")
        }
        let record = try store.read { conn -> AccessRequestRecord in
            guard let person = try conn.fetch(type: .user, id: original.personID) else {
                throw GovernanceError.notFound("the person of this request no longer exists")
            }
            let requester = try People.user(conn, userName: principal.name)
            guard let requester, try isPersonOrManager(conn, requester, of: person) else {
                throw GovernanceError.forbidden("only the person or their manager may ask for an extension")
            }
            if try conn.accessRequests(personID: person.id).contains(where: { $0.extends == id && $0.state == .pending }
            ) {
                throw GovernanceError.conflict("an extension of this request is already waiting for approval")
            }
            let stages = try approvalStages(conn, terms, person: person, requester: requester, sodRules: [])
            return AccessRequestRecord(
                id: UUIDv7.make(), personID: person.id, userName: original.userName, package: package.name,
                requestedBy: principal.name, requestedByToken: principal.tokenID, justification: reason, days: days,
                created: now, stages: stages, sodRules: [], extends: id, lapses: now + terms.approvalDays * 86400)
        }
        try file(record, action: "request.extend", principal: principal.name, requestID: requestID)
        return record
    }

    private func file(_ r: AccessRequestRecord, action: String, principal: String, requestID: String) throws {
        let store = self.store, now = clock.now()
        try store.write { w in
            try w.connection.insertAccessRequest(r)
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: action, resourceType: "User", resourceID: r.personID,
                    attributes: [r.package, "\(Self.number(r.days)) days"] + r.sodRules.map { "sod:\($0)" },
                    requestID: requestID))
            try self.announceStage(w, r, now: now)
        }
        engine?.notifier?.wake()
        timer.poke()
        logger.notice("access request filed", ["request": r.id, "package": r.package])
    }

    // MARK: - Deciding

    /// Approves the stage awaiting approval; the last approval grants the package.
    public func approve(id: String, reason: String, principal: Principal, requestID: String) throws
        -> AccessRequestRecord
    {
        let reason = try text(reason, "reason", required: true)
        let now = clock.now()
        var r = try pending(id)
        try requireApprover(r, principal, now: now)
        let before = r.stage
        r.approvals.append(RequestApproval(stage: r.stage, by: principal.name, reason: reason, at: now))
        let final = r.stage + 1 >= r.stages.count
        if final {
            try grant(&r, reason: reason, by: principal.name, now: now)
        } else {
            r.stage += 1
        }
        let record = r, engine = self.engine
        try store.write { w in
            guard try w.connection.updateAccessRequest(record, ifState: .pending, stage: before) else {
                throw GovernanceError.conflict("the request was decided meanwhile")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal.name, action: "request.approve", resourceType: "User",
                    resourceID: record.personID, attributes: [record.package, "stage \(before + 1)"],
                    requestID: requestID))
            if final {
                try self.applyGrant(w, record, by: principal.name, requestID: requestID, now: now)
            } else {
                try self.announceStage(w, record, now: now)
            }
        }
        engine?.wake()
        engine?.notifier?.wake()
        timer.poke()
        return record
    }

    /// Refuses the request (any approver of the stage awaiting approval, or an administrator).
    public func deny(id: String, reason: String, principal: Principal, requestID: String) throws
        -> AccessRequestRecord
    {
        let reason = try text(reason, "reason", required: true)
        let now = clock.now()
        var r = try pending(id)
        if !principal.scopes.contains(.admin) { try requireApprover(r, principal, now: now) }
        let stage = r.stage
        (r.state, r.decidedBy, r.decisionReason, r.decided) = (.denied, principal.name, reason, now)
        try close(r, from: .pending, stage: stage, action: "request.deny", by: principal.name, requestID: requestID)
        return r
    }

    /// Withdraws a pending request (the requester, the person, or an administrator).
    public func cancel(id: String, reason: String, principal: Principal, requestID: String) throws
        -> AccessRequestRecord
    {
        let now = clock.now()
        var r = try pending(id)
        let me = Identifier.canonical(principal.name)
        guard
            principal.scopes.contains(.admin) || me == Identifier.canonical(r.requestedBy)
                || me == Identifier.canonical(r.userName)
        else {
            throw GovernanceError.forbidden("only the requester, the person or an administrator may cancel a request")
        }
        let stage = r.stage
        let why = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        (r.state, r.decidedBy, r.decisionReason, r.decided) = (.cancelled, principal.name, why, now)
        try close(r, from: .pending, stage: stage, action: "request.cancel", by: principal.name, requestID: requestID)
        return r
    }

    /// Ends a granted request before its expiry (the person, their manager, or an administrator).
    public func end(id: String, reason: String, principal: Principal, requestID: String) throws -> AccessRequestRecord {
        let reason = try text(reason, "reason", required: true)
        let now = clock.now()
        guard var r = try store.read({ try $0.accessRequest(id: id) }) else {
            throw GovernanceError.notFound("no access request with this id")
        }
        guard r.state == .granted else {
            throw GovernanceError.conflict("only a granted request can be ended (this one is \(r.state))")
        }
        if !principal.scopes.contains(.admin) {
            let allowed = try store.read { conn -> Bool in
                guard let me = try People.user(conn, userName: principal.name),
                    let person = try conn.fetch(type: .user, id: r.personID)
                else { return false }
                return try isPersonOrManager(conn, me, of: person)
            }
            guard allowed else {
                throw GovernanceError.forbidden("only the person, their manager or an administrator may end a grant")
            }
        }
        let stage = r.stage
        (r.state, r.decidedBy, r.decisionReason, r.decided, r.noticeAt) = (.ended, principal.name, reason, now, nil)
        try close(r, from: .granted, stage: stage, action: "request.end", by: principal.name, requestID: requestID)
        return r
    }

    /// Stores a terminal decision; a grant that ends takes the package back through the engine.
    private func close(
        _ r: AccessRequestRecord, from: RequestState, stage: Int, action: String, by: String, requestID: String
    ) throws {
        let engine = self.engine, now = clock.now()
        try store.write { w in
            guard try w.connection.updateAccessRequest(r, ifState: from, stage: stage) else {
                throw GovernanceError.conflict("the request was decided meanwhile")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: action, resourceType: "User", resourceID: r.personID,
                    attributes: [r.package], requestID: requestID))
            if from == .granted {
                try engine?.enqueue(
                    w, personID: r.personID, person: try w.connection.fetch(type: .user, id: r.personID)?.doc)
            }
            try self.announceOutcome(w, r, now: now)
        }
        engine?.wake()
        engine?.notifier?.wake()
    }

    /// Sets the grant's times: from now (an extension: from the end of what it extends).
    private func grant(_ r: inout AccessRequestRecord, reason: String, by: String, now: Double) throws {
        var start = now
        if let base = r.extends, let original = try store.read({ try $0.accessRequest(id: base) }),
            original.state == .granted, let end = original.expires
        {
            start = max(now, end)
        }
        let expires = start + r.days * 86400
        let notice = (try? requestable(r.package).1.noticeDays) ?? 0
        (r.state, r.decidedBy, r.decisionReason, r.decided) = (.granted, by, reason, now)
        (r.granted, r.expires) = (now, expires)
        r.noticeAt = notice > 0 && expires - notice * 86400 > now ? expires - notice * 86400 : nil
    }

    /// In the approving write: the extended request hands over, a review's revocation of the
    /// package is lifted (this approval is the newer decision), the person converges now.
    private func applyGrant(_ w: any StoreWriter, _ r: AccessRequestRecord, by: String, requestID: String, now: Double)
        throws
    {
        if let base = r.extends, var original = try w.connection.accessRequest(id: base), original.state == .granted {
            (original.state, original.decided, original.noticeAt) = (.extended, now, nil)
            _ = try w.connection.updateAccessRequest(original, ifState: .granted, stage: original.stage)
        }
        if try w.connection.liftRevocation(personID: r.personID, package: r.package) {
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "review.lift", resourceType: "User", resourceID: r.personID,
                    attributes: [r.package, "request \(r.id)"], requestID: requestID))
        }
        try AuditLog.append(
            w,
            .now(
                principal: by, action: "request.grant", resourceType: "User", resourceID: r.personID,
                attributes: [r.package, "until \(Timestamp.format(r.expires ?? now))"], requestID: requestID))
        try engine?.enqueue(w, personID: r.personID, person: try w.connection.fetch(type: .user, id: r.personID)?.doc)
        for t in policy.enabledTargets { try w.connection.expedite(personID: r.personID, target: t.name, now: now) }
        try self.announceOutcome(w, r, now: now)
    }

    /// Ends, in the caller's write, the grants by request of `package` to a person (an access
    /// review revoked it). The caller re-converges the person.
    static func endGrants(
        _ w: any StoreWriter, personID: String, package: String, by: String, reason: String, requestID: String,
        now: Double
    ) throws {
        for var r in try w.connection.activeRequestGrants(personID: personID, now: now) where r.package == package {
            let stage = r.stage
            (r.state, r.decidedBy, r.decisionReason, r.decided, r.noticeAt) = (.ended, by, reason, now, nil)
            guard try w.connection.updateAccessRequest(r, ifState: .granted, stage: stage) else { continue }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "request.end", resourceType: "User", resourceID: personID,
                    attributes: [package, reason], requestID: requestID))
        }
    }

    // MARK: - Deadlines

    /// Expires grants whose time is up, tells holders whose end is near, and lapses requests
    /// nobody decided in time. Durable: driven by the stored times, so a hub that was down
    /// catches up at start-up. Returns how many requests changed.
    @discardableResult
    public func processDue(now: Double? = nil) throws -> Int {
        let now = now ?? clock.now()
        let due = try store.read { try $0.dueAccessRequests(now: now) }
        let engine = self.engine
        var changed = 0
        for var r in due {
            let (from, stage) = (r.state, r.stage)
            let action: String
            if r.state == .pending {
                (r.state, r.decidedBy, r.decisionReason, r.decided) = (.lapsed, "scheduler", "nobody decided", now)
                action = "request.lapse"
            } else if let end = r.expires, end <= now {
                (r.state, r.decided, r.noticeAt) = (.expired, now, nil)
                action = "request.expire"
            } else {
                r.noticeAt = nil
                action = "request.notice"
            }
            let record = r
            let done = try store.write { w -> Bool in
                guard try w.connection.updateAccessRequest(record, ifState: from, stage: stage) else { return false }
                try AuditLog.append(
                    w,
                    .now(
                        principal: "scheduler", action: action, resourceType: "User", resourceID: record.personID,
                        attributes: [record.package], requestID: record.id))
                if action == "request.expire" {
                    let person = try w.connection.fetch(type: .user, id: record.personID)?.doc
                    try engine?.enqueue(w, personID: record.personID, person: person)
                }
                if action == "request.notice" {
                    try self.announceExpiring(w, record, now: now)
                } else {
                    try self.announceOutcome(w, record, now: now)
                }
                return true
            }
            if done { changed += 1 }
        }
        if changed > 0 {
            engine?.wake()
            engine?.notifier?.wake()
        }
        return changed
    }

    // MARK: - Who may do what

    /// The requester (a person in the hub) and the beneficiary: oneself, or a report of the
    /// requester (a manager asks for their staff).
    private func parties(_ conn: any StoreSession, _ beneficiary: String?, principal: Principal) throws
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

    private func isPersonOrManager(_ conn: any StoreSession, _ who: StoredResource, of person: StoredResource) throws
        -> Bool
    {
        let manager = try People.manager(conn, of: person.doc)
        return who.id == person.id || manager?.id == who.id
    }

    /// The beneficiary is active, within the package's requesters, and holds nothing of it already.
    private func checkEligible(
        _ conn: any StoreSession, person: StoredResource, package: AccessPackage, terms: RequestPolicy, now: Double
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
        where r.package == package.name && (r.state == .pending || r.state == .granted) {
            throw GovernanceError.conflict(
                "\(userName) already has a \(r.state) request for '\(package.name)' (\(r.id))")
        }
        if let doc = snapshot.document,
            let held = policy.grants(
                person: doc, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now
            ).first(where: { $0.package == package.name })
        {
            throw GovernanceError.conflict("\(userName) already holds '\(package.name)' (\(held.reason))")
        }
    }

    /// Separation of duties at request time: a grant that would break an `enforce` rule is
    /// refused (unless an exception waives it); one that breaks a `record` rule needs
    /// `sodReason` and an administrator's approval. Returns the `record` rules broken.
    private func sodCheck(
        _ conn: any StoreSession, person: StoredResource, package: String, reason: String?, now: Double
    )
        throws -> [String]
    {
        let s = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
        guard let doc = s.document else { return [] }
        let held = policy.grants(person: doc, groupNames: s.groupNames, overrides: s.overrides, now: now)
            .filter { !$0.reason.hasPrefix("break-glass") }.map(\.package)
        let conflicts = policy.sodConflicts(holding: Set(held + [package]))
            .filter { $0.holding.contains(package) && !s.overrides.sodExceptions.contains($0.rule) }
        if let enforced = conflicts.first(where: { $0.mode == .enforce }) {
            throw GovernanceError.conflict(
                "'\(package)' with \(enforced.holding.filter { $0 != package }.joined(separator: ", ")) breaks the "
                    + "separation-of-duties rule '\(enforced.rule)' (\(enforced.severity), enforced): refused")
        }
        guard !conflicts.isEmpty else { return [] }
        let rules = conflicts.map(\.rule)
        guard let r = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !r.isEmpty, r.utf8.count <= 1000 else {
            throw GovernanceError.invalid(
                "'sodReason' is required: '\(package)' breaks the separation-of-duties rule(s) "
                    + "\(rules.joined(separator: ", ")), so an administrator must approve an exception")
        }
        return rules
    }

    /// The stages as fixed now: the manager by name (when the manager is the requester, the
    /// manager's manager; when there is none, administrators, and the request says so), a
    /// Group by name, and an administrator's stage for a separation-of-duties conflict.
    private func approvalStages(
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

    /// Throws unless `p` may approve the stage awaiting approval. Four eyes: nobody behind the
    /// approving token (its principal and chain of minters) is the person or the requester,
    /// and nobody approves two stages of one request.
    private func requireApprover(_ r: AccessRequestRecord, _ p: Principal, now: Double) throws {
        let people = try store.read { try Tokens.people($0, tokenID: p.tokenID) }.union([Identifier.canonical(p.name)])
        let involved = Set([r.userName, r.requestedBy].map(Identifier.canonical))
        guard people.isDisjoint(with: involved) else {
            throw GovernanceError.forbidden("nobody approves a request they made or that is for them")
        }
        guard !r.approvals.contains(where: { people.contains(Identifier.canonical($0.by)) }) else {
            throw GovernanceError.forbidden("you approved an earlier stage; another approver must approve this one")
        }
        guard try store.read({ try mayApprove($0, r, p, now: now) }) else {
            throw GovernanceError.forbidden("this request awaits \(Self.approvers(r)); you may not approve it")
        }
    }

    /// Whether `p` is an approver of `r`'s current stage (not the four-eyes checks).
    func mayApprove(_ conn: any StoreSession, _ r: AccessRequestRecord, _ p: Principal, now: Double) throws -> Bool {
        guard r.state == .pending, r.stage < r.stages.count else { return false }
        let stage = r.stages[r.stage]
        switch stage.kind {
        case "manager" where !stage.value.isEmpty:
            return Identifier.canonical(stage.value) == Identifier.canonical(p.name)
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

    /// Requests `p` may see: all for administrators; otherwise those they made, that are for
    /// them, or that await their approval. `awaiting` keeps only the last kind.
    public func visible(to p: Principal, state: RequestState?, awaiting: Bool) throws -> [AccessRequestRecord] {
        let now = clock.now(), me = Identifier.canonical(p.name)
        return try store.read { conn in
            let recent = try conn.accessRequests(state: awaiting ? .pending : state, limit: 2000)
            if p.scopes.contains(.admin) && !awaiting { return Array(recent.prefix(500)) }
            var out: [AccessRequestRecord] = []
            for r in recent where out.count < 500 {
                let mine = Identifier.canonical(r.requestedBy) == me || Identifier.canonical(r.userName) == me
                let approver = try mayApprove(conn, r, p, now: now) && !mine
                if awaiting ? approver : (mine || approver) { out.append(r) }
            }
            return out
        }
    }

    /// Whether `p` may see `r`: an administrator, the requester, the person, or an approver of its current stage.
    public func mayView(_ r: AccessRequestRecord, _ p: Principal) throws -> Bool {
        let me = Identifier.canonical(p.name)
        if p.scopes.contains(.admin) || me == Identifier.canonical(r.requestedBy)
            || me == Identifier.canonical(r.userName)
        {
            return true
        }
        let now = clock.now()
        return try store.read { try mayApprove($0, r, p, now: now) }
    }

    // MARK: - Announcements (names and the package only)

    private func announceStage(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier, r.state == .pending, r.stage < r.stages.count else { return }
        let s = r.stages[r.stage]
        let names = s.kind == "group" ? ["group:\(s.value)"] : s.value.isEmpty ? [] : [s.value]
        try notifier.announce(
            w, .requestSubmitted,
            [
                "requester": r.requestedBy, "userName": r.userName, "package": r.package,
                "days": Self.number(r.days), "approvers": Self.approvers(r), "stage": String(r.stage + 1),
                "stages": String(r.stages.count), "lapses": Timestamp.format(r.lapses), "requestId": r.id,
            ], to: try People.addresses(w.connection, of: names, now: now))
    }

    private func announceOutcome(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier else { return }
        let to = try People.addresses(w.connection, of: [r.userName, r.requestedBy], now: now)
        let what: String
        switch r.state {
        case .granted: what = "was granted until \(Timestamp.format(r.expires ?? now))"
        case .denied: what = "was denied by \(r.decidedBy ?? "an approver")"
        case .cancelled: what = "was cancelled by \(r.decidedBy ?? "its requester")"
        case .lapsed: what = "lapsed: nobody decided it by \(Timestamp.format(r.lapses))"
        case .expired: what = "expired; the access is being taken back"
        default: what = "was ended by \(r.decidedBy ?? "an administrator"); the access is being taken back"
        }
        let event: NotificationEvent = r.state == .expired || r.state == .ended ? .requestExpired : .requestDecided
        try notifier.announce(
            w, event,
            [
                "userName": r.userName, "package": r.package, "state": r.state.rawValue, "outcome": what,
                "requestId": r.id,
            ], to: to)
    }

    private func announceExpiring(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier else { return }
        var names = [r.userName]
        if let person = try w.connection.fetch(type: .user, id: r.personID) {
            names += try People.managerChain(w.connection, of: person.doc, depth: 1)
        }
        let extend =
            (try? requestable(r.package).1.extensionAllowed) == true
            ? "To keep it, ask for an extension: POST /admin/requests/\(r.id)/extend." : "It cannot be extended."
        try notifier.announce(
            w, .requestExpiring,
            [
                "userName": r.userName, "package": r.package, "expires": Timestamp.format(r.expires ?? now),
                "extension": extend, "requestId": r.id,
            ], to: try People.addresses(w.connection, of: names, now: now))
    }

    // MARK: - Helpers

    private func requestable(_ name: String) throws -> (AccessPackage, RequestPolicy) {
        guard let p = policy.packages.first(where: { $0.name == name }) else {
            throw GovernanceError.invalid("'package': no package named '\(name)'")
        }
        guard let terms = p.requestable else {
            throw GovernanceError.invalid("'package': '\(name)' is not requestable")
        }
        return (p, terms)
    }

    private func pending(_ id: String) throws -> AccessRequestRecord {
        guard let r = try store.read({ try $0.accessRequest(id: id) }) else {
            throw GovernanceError.notFound("no access request with this id")
        }
        guard r.state == .pending else { throw GovernanceError.conflict("the request is \(r.state), not pending") }
        return r
    }

    private func text(_ s: String, _ key: String, required: Bool) throws -> String {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard t.utf8.count <= 1000 else { throw GovernanceError.invalid("'\(key)' is at most 1,000 characters") }
        guard !t.isEmpty || !required else { throw GovernanceError.invalid("'\(key)' is required") }
        return t
    }

    static func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

    // MARK: - Views

    public static func json(_ r: AccessRequestRecord) -> JSONValue {
        func time(_ d: Double?) -> JSONValue { d.map { .string(Timestamp.format($0)) } ?? .null }
        return .object(
            JSONObject([
                "id": .string(r.id), "personId": .string(r.personID), "userName": .string(r.userName),
                "package": .string(r.package), "requestedBy": .string(r.requestedBy),
                "justification": .string(r.justification), "days": .number(JSONNumber(r.days)),
                "created": time(r.created), "state": .string(r.state.rawValue),
                "stages": .array(
                    r.stages.enumerated().map { i, s in
                        .object(
                            JSONObject([
                                "kind": .string(s.kind), "approver": s.value.isEmpty ? .null : .string(s.value),
                                "approval": r.approvals.first { $0.stage == i }.map { a in
                                    .object(
                                        JSONObject([
                                            "by": .string(a.by), "reason": .string(a.reason), "at": time(a.at),
                                        ]))
                                } ?? .null,
                            ]))
                    }),
                "awaiting": r.state == .pending ? .string(approvers(r)) : .null,
                "separationOfDuties": .array(r.sodRules.map { .string($0) }),
                "extends": r.extends.map { .string($0) } ?? .null,
                "lapses": r.state == .pending ? time(r.lapses) : .null,
                "decidedBy": r.decidedBy.map { .string($0) } ?? .null,
                "decisionReason": r.decisionReason.map { .string($0) } ?? .null, "decided": time(r.decided),
                "granted": time(r.granted), "expires": time(r.expires),
            ]))
    }
}
