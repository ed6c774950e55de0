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
            name: "access-requests", clock: clock, isLeader: isLeader, logger: logger, what: "access request deadlines",
            next: { try store.read { try $0.nextAccessRequestDeadline() } },
            process: { _ = try box.service?.processDue() })
        box.service = self
    }

    /// Breaks the init-time cycle between the service and its timer's closure.
    private final class Box: @unchecked Sendable {
        // @unchecked Sendable: set once in init, before the timer thread starts; read only after.
        weak var service: AccessRequests?
    }

    public func start() { timer.start() }
    public func stop() { timer.stop() }
    /// A deadline may have moved or leadership came to this node: look at the next one now.
    public func poke() { timer.poke() }

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
        let sodReason = try text(s.sodReason ?? "", "sodReason", required: false)
        let record = try store.read { conn -> AccessRequestRecord in
            let (requester, person) = try parties(conn, s.beneficiary, principal: principal)
            try checkEligible(conn, person: person, package: package, terms: terms, now: now, renewing: false)
            let sodRules = try sodCheck(conn, person: person, package: package.name, reason: sodReason, now: now)
            let stages = try approvalStages(conn, terms, person: person, requester: requester, sodRules: sodRules)
            var r = AccessRequestRecord(
                id: UUIDv7.make(), personID: person.id, userName: person.doc["userName"]?.stringValue ?? "",
                package: package.name, requestedBy: principal.name, requestedByToken: principal.tokenID,
                justification: justification + (sodRules.isEmpty ? "" : "\nSeparation of duties: \(sodReason)"),
                days: days, created: now, stages: stages, sodRules: sodRules, extends: nil,
                lapses: now + terms.approvalDays * 86400)
            r.requesterID = requester.id
            return r
        }
        try file(record, action: "request.submit", principal: principal.name, requestID: requestID)
        return record
    }

    /// Asks for more time on a granted request, where the package allows it: a new request
    /// through the same approvals, which on approval continues the grant.
    public func extend(
        id: String, days: Double?, justification: String, sodReason: String? = nil, principal: Principal,
        requestID: String
    ) throws -> AccessRequestRecord {
        let now = clock.now()
        let original = try visible(id, to: principal)
        guard original.state == .granted else {
            throw GovernanceError.conflict("only a granted request can be extended (this one is \(original.state))")
        }
        let (package, terms) = try requestable(original.package)
        guard terms.extensionAllowed else {
            throw GovernanceError.conflict("the package '\(package.name)' does not allow extensions")
        }
        let reason = try text(justification, "justification", required: terms.justificationRequired)
        let sodReason = try text(sodReason ?? "", "sodReason", required: false)
        // Held without a break for at most maxDays from now: time still to run counts.
        let room = terms.maxDays - max(0, ((original.expires ?? now) - now) / 86400)
        let days = days ?? room
        guard days > 0, days <= room else {
            throw GovernanceError.invalid(
                "'days' must be more than 0 and at most \(Self.number((room * 100).rounded(.down) / 100)): "
                    + "'\(package.name)' is held at most \(Self.number(terms.maxDays)) days from now, "
                    + "and this grant runs until \(Timestamp.format(original.expires ?? now))")
        }
        let record = try store.read { conn -> AccessRequestRecord in
            guard let person = try conn.fetch(type: .user, id: original.personID) else {
                throw GovernanceError.notFound("the person of this request no longer exists")
            }
            let requester = try People.user(conn, userName: principal.name)
            guard let requester, try isPersonOrManager(conn, requester, of: person) else {
                throw GovernanceError.forbidden("only the person or their manager may ask for an extension")
            }
            // The same checks as a new request: the person, the requesters filter and
            // separation of duties may all have changed since the grant.
            try checkEligible(conn, person: person, package: package, terms: terms, now: now, renewing: true)
            let sodRules = try sodCheck(conn, person: person, package: package.name, reason: sodReason, now: now)
            let stages = try approvalStages(conn, terms, person: person, requester: requester, sodRules: sodRules)
            var r = AccessRequestRecord(
                id: UUIDv7.make(), personID: person.id, userName: original.userName, package: package.name,
                requestedBy: principal.name, requestedByToken: principal.tokenID,
                justification: reason + (sodRules.isEmpty ? "" : "\nSeparation of duties: \(sodReason)"), days: days,
                created: now, stages: stages, sodRules: sodRules, extends: id,
                lapses: now + terms.approvalDays * 86400)
            r.requesterID = requester.id
            return r
        }
        try file(record, action: "request.extend", principal: principal.name, requestID: requestID)
        return record
    }

    private func file(_ r: AccessRequestRecord, action: String, principal: String, requestID: String) throws {
        let store = self.store, now = clock.now()
        try Self.oneAtATime("\(r.userName) already has a pending request for '\(r.package)'") {
            try store.write { w in
                try self.insert(w, r, action: action, principal: principal, requestID: requestID, now: now)
            }
        }
        engine?.notifier?.wake()
        timer.poke()
        logger.notice("access request filed", ["request": r.id, "package": r.package])
    }

    private func insert(
        _ w: any StoreWriter, _ r: AccessRequestRecord, action: String, principal: String, requestID: String,
        now: Double
    ) throws {
        try w.connection.insertAccessRequest(r)
        try AuditLog.append(
            w,
            .now(
                principal: principal, action: action, resourceType: "User", resourceID: r.personID,
                attributes: [r.package, "\(Self.number(r.days)) days"] + r.sodRules.map { "sod:\($0)" },
                requestID: requestID))
        try self.announceStage(w, r, now: now)
    }

    /// A unique index keeps one pending and one granted request per person and package: the
    /// loser of two racing writes is answered 409, not 503. Both backends report a unique
    /// index as `.uniqueness`; other constraints as `.constraint`.
    static func oneAtATime<T>(_ message: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as StoreError where e.kind == .uniqueness || e.kind == .constraint {
            throw GovernanceError.conflict(message)
        }
    }

    // MARK: - Deciding

    /// Approves the stage awaiting approval; the last approval grants the package, after the
    /// terms are checked again (the policy, the person or an exception may have changed).
    public func approve(id: String, reason: String, principal: Principal, requestID: String) throws
        -> AccessRequestRecord
    {
        let reason = try text(reason, "reason", required: true)
        let now = clock.now()
        var r = try pending(visible(id, to: principal), now: now)
        try requireApprover(r, principal, now: now)
        let before = r.stage
        r.approvals.append(
            RequestApproval(stage: r.stage, by: principal.name, reason: reason, at: now, token: principal.tokenID))
        let final = r.stage + 1 >= r.stages.count
        if final {
            try recheck(r, now: now)
            (r.state, r.decidedBy, r.decisionReason, r.decided, r.granted) = (
                .granted, principal.name, reason, now, now
            )
        } else {
            r.stage += 1
        }
        let engine = self.engine, pending = r
        let record = try Self.oneAtATime("\(r.userName) already holds '\(r.package)' by another request") {
            try store.write { w -> AccessRequestRecord in
                var record = pending
                // An extension takes over from its grant first: one granted request per package.
                if final { try self.setTimes(w, &record, now: now) }
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
                return record
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
        var r = try pending(visible(id, to: principal), now: nil)
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
        let why = try text(reason, "reason", required: false)
        let now = clock.now()
        var r = try pending(visible(id, to: principal), now: nil)
        let me = Identifier.canonical(principal.name)
        guard
            principal.scopes.contains(.admin) || me == Identifier.canonical(r.requestedBy)
                || me == Identifier.canonical(r.userName)
        else {
            throw GovernanceError.forbidden("only the requester, the person or an administrator may cancel a request")
        }
        let stage = r.stage
        (r.state, r.decidedBy, r.decisionReason, r.decided) = (.cancelled, principal.name, why, now)
        try close(r, from: .pending, stage: stage, action: "request.cancel", by: principal.name, requestID: requestID)
        return r
    }

    /// Ends a granted request before its expiry (the person, their manager, or an administrator);
    /// an extension still waiting for approval is cancelled with it.
    public func end(id: String, reason: String, principal: Principal, requestID: String) throws -> AccessRequestRecord {
        let reason = try text(reason, "reason", required: true)
        let now = clock.now()
        var r = try visible(id, to: principal)
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

    /// Stores a terminal decision; a grant that ends takes the package back through the engine
    /// and cancels its pending extension.
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
                try Self.cancelExtensions(w, of: r, by: by, requestID: requestID, now: now)
                try engine?.enqueue(
                    w, personID: r.personID, person: try w.connection.fetch(type: .user, id: r.personID)?.doc)
            }
            try self.announceOutcome(w, r, now: now)
        }
        engine?.wake()
        engine?.notifier?.wake()
    }

    /// In the write that ends `grant`: its extension waiting for approval has nothing to extend.
    static func cancelExtensions(
        _ w: any StoreWriter, of grant: AccessRequestRecord, by: String, requestID: String, now: Double
    ) throws {
        for var e in try w.connection.accessRequests(personID: grant.personID)
        where e.extends == grant.id && e.state == .pending {
            let stage = e.stage
            (e.state, e.decidedBy, e.decisionReason, e.decided) = (.cancelled, by, "the grant it extends ended", now)
            guard try w.connection.updateAccessRequest(e, ifState: .pending, stage: stage) else { continue }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "request.cancel", resourceType: "User", resourceID: e.personID,
                    attributes: [e.package, "extension of an ended grant"], requestID: requestID))
        }
    }

    /// The grant's times, in the approving write: from now, or for an extension from the end
    /// of the grant it continues, which hands over (`extended`) in the same write. An
    /// extension whose grant was ended early is refused; one whose grant expired starts now.
    private func setTimes(_ w: any StoreWriter, _ r: inout AccessRequestRecord, now: Double) throws {
        var start = now
        if let base = r.extends, var original = try w.connection.accessRequest(id: base) {
            switch original.state {
            case .granted:
                start = max(now, original.expires ?? now)
                (original.state, original.decided, original.noticeAt) = (.extended, now, nil)
                guard try w.connection.updateAccessRequest(original, ifState: .granted, stage: original.stage) else {
                    throw GovernanceError.conflict("the grant this extends changed meanwhile")
                }
            case .expired: break
            default: throw GovernanceError.conflict("the grant this extends was \(original.state): ask anew")
            }
        }
        let expires = start + r.days * 86400
        let notice = (try? requestable(r.package).1.noticeDays) ?? 0
        r.expires = expires
        r.noticeAt = notice > 0 && expires - notice * 86400 > now ? expires - notice * 86400 : nil
    }

    /// In the approving write: audited, the person converges now, ahead of other jobs. A
    /// review's earlier revocation of the package stays: the request holds the package while
    /// it lasts (a later review revoke ends it), and the rule does not come back after.
    private func applyGrant(_ w: any StoreWriter, _ r: AccessRequestRecord, by: String, requestID: String, now: Double)
        throws
    {
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
            try cancelExtensions(w, of: r, by: by, requestID: requestID, now: now)
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
            let done: Bool
            do {
                done = try store.write { w -> Bool in
                    guard try w.connection.updateAccessRequest(record, ifState: from, stage: stage) else {
                        return false
                    }
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
            } catch {
                // One request that cannot be processed does not hold up the others.
                logger.error(
                    "access request deadline failed; retried at the next check",
                    ["request": record.id, "error": String(describing: error).prefix(200).description])
                continue
            }
            if done { changed += 1 }
        }
        if changed > 0 {
            engine?.wake()
            engine?.notifier?.wake()
        }
        return changed
    }

    // MARK: - Helpers

    func requestable(_ name: String) throws -> (AccessPackage, RequestPolicy) {
        guard let p = policy.packages.first(where: { $0.name == name }) else {
            throw GovernanceError.invalid("'package': no package named '\(name)'")
        }
        guard let terms = p.requestable else {
            throw GovernanceError.invalid("'package': '\(name)' is not requestable")
        }
        return (p, terms)
    }

    /// The request, if `p` may see it; otherwise 404, as for one that does not exist (a
    /// stranger learns neither its state nor who approves it).
    func visible(_ id: String, to p: Principal) throws -> AccessRequestRecord {
        guard let r = try store.read({ try $0.accessRequest(id: id) }), try mayView(r, p) else {
            throw GovernanceError.notFound("no access request with this id")
        }
        return r
    }

    /// `r` if it still waits for a decision (and, with `now`, has not lapsed meanwhile).
    func pending(_ r: AccessRequestRecord, now: Double?) throws -> AccessRequestRecord {
        guard r.state == .pending else { throw GovernanceError.conflict("the request is \(r.state), not pending") }
        if let now, now >= r.lapses {
            throw GovernanceError.conflict(
                "the request lapsed at \(Timestamp.format(r.lapses)): nobody decided in time")
        }
        return r
    }

    func text(_ s: String, _ key: String, required: Bool) throws -> String {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard t.utf8.count <= 1000 else { throw GovernanceError.invalid("'\(key)' is at most 1,000 characters") }
        guard !t.isEmpty || !required else { throw GovernanceError.invalid("'\(key)' is required") }
        return t
    }

    static func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(d) }

}
