// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store

/// Time-limited exceptions to separation-of-duties rules: for one person and one rule, with
/// an owner who answers for the risk and a reason. While one lasts, an `enforce` rule does
/// not withhold the person's package, a request is not refused for the rule, and
/// reconciliation does not report the person's `sod-violation` for it. At expiry the rule
/// applies again: taken back by the same durable deadline machinery as break-glass.
public final class SoDExceptions: HubService {
    public var serviceName: String { "sod-exceptions" }
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    let store: any HubStore
    let engine: ProvisioningEngine?
    let logger: Logger
    public let clock: any WallClock
    private let timer: DeadlineThread

    /// The longest exception: a year, then it is decided again.
    public static let maxDays = 366.0

    public init(
        policies: PolicyHolder, store: any HubStore, engine: ProvisioningEngine?, logger: Logger,
        clock: any WallClock = SystemClock(), isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.policies = policies
        self.store = store
        self.engine = engine
        self.logger = logger
        self.clock = clock
        timer = DeadlineThread(
            name: "sod-exceptions", clock: clock, isLeader: isLeader, logger: logger,
            what: "separation-of-duties exception expiry",
            next: { try store.read { try $0.nextSoDExceptionExpiry() } },
            process: { _ = try SoDExceptions.expire(store: store, engine: engine, now: clock.now()) })
    }

    public func start() { timer.start() }
    public func stop() { timer.stop() }
    /// A deadline may have moved or leadership came to this node: look at the next one now.
    public func poke() { timer.poke() }

    /// Grants an exception. `authorize` runs once the request is valid, just before the write
    /// (the API's step-up: a refused request does not use up a code).
    public func grant(
        rule: String, person: String, owner: String, reason: String, days: Double, principal: Principal,
        requestID: String, authorize: () throws -> Void = {}
    ) throws -> SoDExceptionRecord {
        let now = clock.now()
        guard policy.separationOfDuties.contains(where: { $0.name == rule }) else {
            throw GovernanceError.invalid("'rule': no separation-of-duties rule named '\(rule)'")
        }
        do { try PrincipalName.validate(owner, what: "'owner'") } catch {
            throw GovernanceError.invalid(error.description)
        }
        let why = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !why.isEmpty, why.utf8.count <= 1000 else {
            throw GovernanceError.invalid("'reason' is required (at most 1,000 characters)")
        }
        guard days.isFinite, days > 0, days <= Self.maxDays else {
            throw GovernanceError.invalid("'days' must be more than 0 and at most \(Int(Self.maxDays))")
        }
        let target = try store.read { conn -> StoredResource in
            guard let p = try conn.fetch(type: .user, id: person) ?? People.user(conn, userName: person) else {
                throw GovernanceError.notFound("'person': no person with this user name or id")
            }
            if try conn.activeSoDExceptions(personID: p.id, now: now).contains(where: { $0.rule == rule }) {
                throw GovernanceError.conflict("an exception to '\(rule)' for this person is already in force")
            }
            return p
        }
        let userName = target.doc["userName"]?.stringValue ?? target.id
        // By people and tokens: not the person, nor anyone whose token chain leads to them.
        let (people, me) = try store.read { c in
            (try Tokens.people(c, tokenID: principal.tokenID), try People.user(c, userName: principal.name))
        }
        guard Identifier.canonical(userName) != Identifier.canonical(principal.name),
            !people.contains(Identifier.canonical(userName)), me?.id != target.id
        else {
            throw GovernanceError.forbidden("nobody grants an exception for themselves")
        }
        try authorize()
        let record = SoDExceptionRecord(
            id: UUIDv7.make(), rule: rule, personID: target.id, userName: userName, owner: owner, reason: why,
            createdBy: principal.name, created: now, expires: now + days * 86400)
        let engine = self.engine
        try AccessRequests.oneAtATime("an exception to '\(rule)' for this person is already in force") {
            try store.write { w in
                try Self.insert(w, record, target: target, principal: principal, engine: engine, requestID: requestID)
            }
        }
        engine?.wake()
        timer.poke()
        return record
    }

    private static func insert(
        _ w: any StoreWriter, _ record: SoDExceptionRecord, target: StoredResource, principal: Principal,
        engine: ProvisioningEngine?, requestID: String
    ) throws {
        try w.connection.insertSoDException(record)
        try AuditLog.append(
            w,
            .now(
                principal: principal.name, action: "sod.exception", resourceType: "User", resourceID: target.id,
                attributes: [record.rule, "owner \(record.owner)", "until \(Timestamp.format(record.expires))"],
                requestID: requestID))
        try engine?.enqueue(w, personID: target.id, person: target.doc)
    }

    /// Ends an exception before its expiry.
    public func end(id: String, principal: Principal, requestID: String) throws -> SoDExceptionRecord {
        let now = clock.now()
        guard let e = try store.read({ try $0.sodException(id: id) }) else {
            throw GovernanceError.notFound("no separation-of-duties exception with this id")
        }
        try Self.close(store: store, engine: engine, e, now: now, by: principal.name, requestID: requestID)
        engine?.wake()
        return try store.read { try $0.sodException(id: id) } ?? e
    }

    /// Ends every exception whose time is up. Returns how many.
    @discardableResult
    public func expireDue(now: Double? = nil) throws -> Int {
        try Self.expire(store: store, engine: engine, now: now ?? clock.now())
    }

    static func expire(store: any HubStore, engine: ProvisioningEngine?, now: Double) throws -> Int {
        let due = try store.read { try $0.expiredSoDExceptions(now: now) }
        for e in due {
            do {
                try close(store: store, engine: engine, e, now: now, by: "scheduler", requestID: e.id)
            } catch GovernanceError.conflict {}
        }
        if !due.isEmpty {
            engine?.wake()
            engine?.notifier?.wake()
        }
        return due.count
    }

    private static func close(
        store: any HubStore, engine: ProvisioningEngine?, _ e: SoDExceptionRecord, now: Double, by: String,
        requestID: String
    ) throws {
        try store.write { w in
            guard try w.connection.endSoDException(id: e.id, now: now) else {
                throw GovernanceError.conflict("the exception has ended already")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: by == "scheduler" ? "sod.exception-expire" : "sod.exception-end",
                    resourceType: "User", resourceID: e.personID, attributes: [e.rule], requestID: requestID))
            let person = try w.connection.fetch(type: .user, id: e.personID)
            try engine?.enqueue(w, personID: e.personID, person: person?.doc)
            let to = try People.addresses(w.connection, of: [e.owner], now: now)
            try engine?.notifier?.announce(
                w, .sodExceptionExpired, ["rule": e.rule, "userName": e.userName, "owner": e.owner], to: to)
        }
    }

    public static func json(_ e: SoDExceptionRecord, now: Double) -> JSONValue {
        .object(
            JSONObject([
                "id": .string(e.id), "rule": .string(e.rule), "personId": .string(e.personID),
                "userName": .string(e.userName), "owner": .string(e.owner), "reason": .string(e.reason),
                "createdBy": .string(e.createdBy), "created": .string(Timestamp.format(e.created)),
                "expires": .string(Timestamp.format(e.expires)),
                "ended": e.ended.map { .string(Timestamp.format($0)) } ?? .null,
                "state": .string(e.ended == nil && e.expires > now ? "active" : "ended"),
            ]))
    }
}
