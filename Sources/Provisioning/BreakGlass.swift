// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store

/// Break-glass: a package granted to a person for a bounded time in an emergency, with a
/// mandatory reason. Provisioned ahead of every other job; taken back at expiry by a
/// thread that sleeps until the next expiry stored in the database (and at start-up, for
/// anything that expired while the hub was down); reviewed after use by someone other than
/// the person and the one who granted it.
public final class BreakGlass: HubService {
    public var serviceName: String { "break-glass-expiry" }
    /// The policy in force: read at each use, so a version applied over the API takes
    /// effect at once.
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    let store: any HubStore
    let engine: ProvisioningEngine?
    let logger: Logger
    let clock: any WallClock
    private let timer: DeadlineThread

    public static let defaultHours = 1.0

    public init(
        policies: PolicyHolder, store: any HubStore, engine: ProvisioningEngine?, logger: Logger,
        clock: any WallClock = SystemClock(),
        isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.policies = policies
        self.store = store
        self.engine = engine
        self.logger = logger
        self.clock = clock
        timer = DeadlineThread(
            name: "break-glass-expiry", clock: clock, isLeader: isLeader, logger: logger, what: "break-glass expiry",
            next: { try store.read { try $0.nextBreakGlassExpiry() } },
            process: { _ = try BreakGlass.expire(store: store, engine: engine, now: clock.now()) })
    }

    // MARK: - Granting

    /// `authorize` runs once the request is known to be valid, just before anything is
    /// written (the API's step-up check: a refused request does not use up a code).
    public func grant(
        personID: String, package name: String, reason: String, hours: Double?, principal granter: Principal,
        requestID: String,
        now: Double? = nil, authorize: () throws -> Void = {}
    ) throws -> BreakGlassRecord {
        let now = now ?? clock.now()
        guard let package = policy.packages.first(where: { $0.name == name }) else {
            throw GovernanceError.invalid("'package': no package named '\(name)'")
        }
        guard let maxHours = package.breakGlassMaxHours else {
            throw GovernanceError.invalid("'package': '\(name)' is not available for break-glass")
        }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else {
            throw GovernanceError.invalid("'reason' is required (at most 1,000 characters)")
        }
        let duration = hours ?? min(Self.defaultHours, maxHours)
        guard duration > 0, duration <= maxHours else {
            throw GovernanceError.invalid("'hours' must be more than 0 and at most \(maxHours) for '\(name)'")
        }
        guard let person = try store.read({ try $0.fetch(type: .user, id: personID) }) else {
            throw GovernanceError.notFound("no person with this id")
        }
        guard Policy.isActive(person.doc, now: now) else {
            throw GovernanceError.conflict("the person is inactive: break-glass does not reactivate leavers")
        }
        try authorize()
        let principal = granter.name
        var record = BreakGlassRecord(
            id: UUIDv7.make(), personID: personID, userName: person.doc["userName"]?.stringValue ?? "", package: name,
            reason: trimmed, grantedBy: principal, created: now, expires: now + duration * 3600)
        record.grantedByToken = granter.tokenID
        let engine = self.engine, targets = policy.enabledTargets.map(\.name)
        let stored = record
        try store.write { w in
            try w.connection.insertBreakGlass(stored)
            try engine?.enqueue(w, personID: personID, person: person.doc)
            for t in targets { try w.connection.expedite(personID: personID, target: t, now: now) }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "break-glass.grant", resourceType: "User", resourceID: personID,
                    attributes: [name, "until \(Timestamp.format(stored.expires))"], requestID: requestID))
            // Names and the package only: the reason may describe a patient.
            try engine?.notifier?.announce(
                w, .breakGlassGranted,
                [
                    "granter": principal, "userName": stored.userName, "package": name,
                    "expires": Timestamp.format(stored.expires), "grantId": stored.id,
                ])
        }
        engine?.wake()
        poke()
        logger.notice(
            "break-glass granted",
            ["event": "break-glass.granted", "package": name, "grant": record.id, "hours": String(duration)])
        return record
    }

    // MARK: - Expiry

    /// Takes back every grant whose time is up. Returns how many.
    @discardableResult
    public func expireDue(now: Double? = nil) throws -> Int {
        let n = try Self.expire(store: store, engine: engine, now: now ?? clock.now())
        if n > 0 {
            logger.notice(
                "break-glass grants expired; access taken back", ["event": "break-glass.expired", "grants": String(n)])
        }
        return n
    }

    /// Ends a grant before its time (the emergency is over): an administrator or whoever
    /// granted it. The access is taken back at once; the use still awaits its review.
    public func endEarly(id: String, principal: Principal, requestID: String) throws -> BreakGlassRecord {
        guard let g = try store.read({ try $0.breakGlass(id: id) }) else {
            throw GovernanceError.notFound("no break-glass grant with this id")
        }
        guard
            principal.scopes.contains(.admin)
                || Identifier.canonical(principal.name) == Identifier.canonical(g.grantedBy)
        else {
            throw GovernanceError.forbidden("only an administrator or whoever granted it may end a grant early")
        }
        let now = clock.now(), engine = self.engine
        try store.write { w in
            guard try w.connection.endBreakGlass(id: g.id, now: now) else {
                throw GovernanceError.conflict("this grant has ended already")
            }
            let person = try w.connection.fetch(type: .user, id: g.personID)?.doc
            try engine?.enqueue(w, personID: g.personID, person: person)
            for t in self.policy.enabledTargets {
                try w.connection.expedite(personID: g.personID, target: t.name, now: now)
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal.name, action: "break-glass.end", resourceType: "User", resourceID: g.personID,
                    attributes: [g.package], requestID: requestID))
            try engine?.notifier?.announce(
                w, .breakGlassExpired, ["userName": g.userName, "package": g.package, "grantId": g.id])
        }
        engine?.wake()
        engine?.notifier?.wake()
        return try store.read { try $0.breakGlass(id: id) } ?? g
    }

    static func expire(store: any HubStore, engine: ProvisioningEngine?, now: Double) throws -> Int {
        let due = try store.read { try $0.expiredBreakGlass(now: now) }
        for g in due {
            try store.write { w in
                guard try w.connection.endBreakGlass(id: g.id, now: now) else { return }
                let person = try w.connection.fetch(type: .user, id: g.personID)?.doc
                try engine?.enqueue(w, personID: g.personID, person: person)
                try AuditLog.append(
                    w,
                    .now(
                        principal: "scheduler", action: "break-glass.expire", resourceType: "User",
                        resourceID: g.personID,
                        attributes: [g.package], requestID: g.id))
                try engine?.notifier?.announce(
                    w, .breakGlassExpired, ["userName": g.userName, "package": g.package, "grantId": g.id])
            }
        }
        if !due.isEmpty { engine?.wake() }
        return due.count
    }

    /// Sleeps until the next stored expiry (or a new grant), then expires what is due.
    public func start() { timer.start() }

    public func stop() { timer.stop() }

    /// A deadline may have moved or leadership came to this node: look at the next one now.
    public func poke() { timer.poke() }

    // MARK: - Post-use review

    /// Closes the post-use review of a grant: was the emergency access justified?
    public func review(id: String, decision: String, reason: String, principal: Principal, requestID: String) throws {
        guard decision == "justified" || decision == "unjustified" else {
            throw GovernanceError.invalid("'decision' must be justified or unjustified")
        }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else {
            throw GovernanceError.invalid("'reason' is required (at most 1,000 characters)")
        }
        guard let g = try store.read({ try $0.breakGlass(id: id) }) else {
            throw GovernanceError.notFound("no break-glass grant with this id")
        }
        // Four eyes: nobody behind the reviewing token (its principal and chain of minters)
        // is the person, the granter, or behind the granter's token.
        let (reviewer, granter) = try store.read { c in
            (
                try Tokens.people(c, tokenID: principal.tokenID),
                try g.grantedByToken.map { try Tokens.people(c, tokenID: $0) } ?? []
            )
        }
        let involved = granter.union([Identifier.canonical(g.userName), Identifier.canonical(g.grantedBy)])
        guard reviewer.isDisjoint(with: involved), !involved.contains(Identifier.canonical(principal.name)) else {
            throw GovernanceError.forbidden(
                "the person, whoever granted the access and whoever minted the granter's token cannot review its use")
        }
        let now = clock.now()
        try store.write { w in
            guard
                try w.connection.reviewBreakGlass(
                    id: id, decision: decision, reason: trimmed, by: principal.name, now: now)
            else {
                throw GovernanceError.conflict("this use was reviewed already")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal.name, action: "break-glass.review", resourceType: "User",
                    resourceID: g.personID,
                    attributes: [g.package, decision], requestID: requestID))
        }
    }

    public static func json(_ g: BreakGlassRecord, now: Double = Date().timeIntervalSince1970) -> JSONValue {
        let state = g.ended == nil && g.expires > now ? "active" : "ended"
        return .object(
            JSONObject([
                "id": .string(g.id), "personId": .string(g.personID), "userName": .string(g.userName),
                "package": .string(g.package),
                "reason": .string(g.reason), "grantedBy": .string(g.grantedBy),
                "granted": .string(Timestamp.format(g.created)),
                "expires": .string(Timestamp.format(g.expires)), "state": .string(state),
                "ended": g.ended.map { .string(Timestamp.format($0)) } ?? .null,
                "review": g.reviewDecision.map { d in
                    .object(
                        JSONObject([
                            "decision": .string(d), "reason": .string(g.reviewReason ?? ""),
                            "by": .string(g.reviewedBy ?? ""),
                            "at": g.reviewed.map { .string(Timestamp.format($0)) } ?? .null,
                        ]))
                } ?? .string("pending"),
            ]))
    }
}
