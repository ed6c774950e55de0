// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubLog
import JSONCore
import SCIM
import Store

/// Credential-driven access and contract ends: packages that `requiresCredential` are lost
/// the moment a licence's `licenseExpiresAt` passes, and a contractor whose `contractEndsAt`
/// passes is disabled like a leaver, with no HR change. Every write of a person keeps
/// `credential_expiries` in step (in the same transaction); a thread sleeps until the next
/// stored expiry and enqueues those people's convergence; at start-up, expiries passed
/// while the hub was down are processed before anything else.
public final class CredentialExpiry: HubService {
    public var serviceName: String { "credential-expiry" }
    let store: any HubStore
    let engine: ProvisioningEngine
    private let timer: DeadlineThread

    public init(
        store: any HubStore, engine: ProvisioningEngine, logger: Logger,
        isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.store = store
        self.engine = engine
        let clock = engine.clock
        timer = DeadlineThread(
            name: "credential-expiry", clock: clock, isLeader: isLeader, logger: logger, what: "credential expiry",
            next: { try store.read { try $0.nextCredentialExpiry() } },
            process: { _ = try CredentialExpiry.process(store: store, engine: engine, now: clock.now()) })
    }

    /// Converges everyone whose licence expired by `now`; returns how many.
    @discardableResult
    public func processDue(now: Double? = nil) throws -> Int {
        try Self.process(store: store, engine: engine, now: now ?? engine.clock.now())
    }

    static func process(store: any HubStore, engine: ProvisioningEngine, now: Double) throws -> Int {
        var total = 0
        while true {
            let due = try store.read { try $0.dueCredentialExpiries(now: now, limit: 500) }
            guard !due.isEmpty else { break }
            try store.write { w in
                for id in due {
                    // The enqueue re-reads the person: an expired licence drops the packages
                    // that require it, an ended contract makes a leaver; it also moves the
                    // schedule row to the person's next deadline, or removes it.
                    let person = try w.connection.fetch(type: .user, id: id)?.doc
                    try w.connection.setCredentialExpiry(personID: id, expires: nil)
                    // Deadlines are a feed of their own for the guard: a bad export that sets
                    // thousands of contract ends to the same minute is held, not applied.
                    try engine.enqueue(
                        w, personID: id, person: person, origin: ChangeOrigin(feed: "deadlines", tokenID: nil))
                    try AuditLog.append(
                        w,
                        .now(
                            principal: "scheduler", action: "deadline.reached", resourceType: "User", resourceID: id,
                            attributes: Self.reached(person, now: now), requestID: "credential-expiry"))
                }
            }
            total += due.count
        }
        if total > 0 { engine.wake() }
        return total
    }

    /// Which deadlines a person has passed (for the audit entry).
    static func reached(_ person: JSONObject?, now: Double) -> [String] {
        var out: [String] = []
        if let l = Policy.licenseExpiry(person), l <= now { out.append("licenseExpiresAt") }
        if let c = Policy.contractEnd(person), c <= now { out.append("contractEndsAt") }
        return out
    }

    public func start() {
        let timer = self.timer
        engine.addWakeListener { timer.poke() }
        timer.start()
    }
    public func stop() { timer.stop() }
    /// A deadline may have moved or leadership came to this node: look at the next one now.
    public func poke() { timer.poke() }

    /// People whose licence expires within `seconds`, with the packages they would lose and
    /// their manager's user name (for a warning).
    public func expiring(within seconds: Double, policy: Policy, limit: Int = 1000, now: Double? = nil) throws
        -> [JSONValue]
    {
        let now = now ?? engine.clock.now()
        return try store.read { conn in
            try conn.expiringCredentials(from: now, to: now + seconds, limit: limit).compactMap { entry -> JSONValue? in
                guard let p = try conn.fetch(type: .user, id: entry.personID) else { return nil }
                let snapshot = try PersonSnapshot.load(conn, personID: p.id, person: p.doc, now: now)
                let atRisk =
                    snapshot.document.map {
                        policy.grants(
                            person: $0, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now)
                    }?
                    .filter { g in policy.packages.first { $0.name == g.package }?.requiresCredential == true }.map {
                        JSONValue.string($0.package)
                    } ?? []
                var manager: JSONValue = .null
                if let mid = p.doc[SCIMSchemaURN.enterpriseUser]?.objectValue?["manager"]?.objectValue?["value"]?
                    .stringValue,
                    let m = try conn.fetch(type: .user, id: mid)?.doc["userName"]?.stringValue
                {
                    manager = .string(m)
                }
                return .object(
                    JSONObject([
                        "personId": .string(p.id), "userName": p.doc["userName"] ?? .null,
                        "displayName": p.doc["displayName"] ?? .null,
                        "licenseExpiresAt": .string(Timestamp.format(entry.expires)), "packagesAtRisk": .array(atRisk),
                        "manager": manager,
                    ]))
            }
        }
    }
}
