// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubCrypto
import HubLog
import JSONCore
import Store

/// How many people a policy change may take access from before its rollout waits for an
/// administrator: `people`, or `share` of everyone when that is more (50 people, or 2 % of
/// a group of 10,000: 200). Hub configuration, not policy: a policy change must not be able
/// to raise its own limit.
public struct PolicyChangeLimit: Sendable, Equatable {
    public var people = 50
    public var share = 0.02
    public init(people: Int = 50, share: Double = 0.02) {
        self.people = people
        self.share = share
    }

    /// The most people a change may take access from among `total`.
    public func allowed(of total: Int) -> Int { max(people, Int((share * Double(total)).rounded(.down))) }

    /// Why `losing` of `total` people is too many, or nil when it is within the limit.
    public func exceeded(losing: Int, of total: Int) -> String? {
        let allowed = allowed(of: total)
        guard losing > allowed else { return nil }
        return "\(losing) of \(total) people would lose access (limit \(allowed): \(people) people or "
            + "\(share * 100)% of everyone, whichever is more)"
    }
}

/// A person named in a change: the id and the user name, nothing else.
public struct PersonRef: Sendable, Equatable {
    public let id: String
    public let userName: String
}

/// What replacing the policy `current` by `candidate` does to each person, package and
/// target: who gains and who loses which package, whose accounts would be disabled or
/// enabled, and which entitlements come and go. Computed from the stored people without
/// touching anything.
public struct PolicyChange: Sendable {
    public struct PackageChange: Sendable {
        public var gained: [PersonRef] = []
        public var lost: [PersonRef] = []
    }

    public struct TargetChange: Sendable {
        /// Accounts that would become enabled (created or re-enabled) or disabled.
        public var enabled: [PersonRef] = []
        public var disabled: [PersonRef] = []
        /// Entitlement → people who would gain or lose it.
        public var gained: [String: [PersonRef]] = [:]
        public var lost: [String: [PersonRef]] = [:]
    }

    public var people = 0
    public var packages: [String: PackageChange] = [:]
    public var targets: [String: TargetChange] = [:]
    /// People who would lose a package, an account or an entitlement.
    public var losingAccess: [PersonRef] = []
    public var gainingAccess: [PersonRef] = []
    /// Separation-of-duties conflicts the candidate creates (rule → people): the person holds
    /// all of a rule's packages under the candidate and did not under the current policy.
    public var newConflicts: [String: [PersonRef]] = [:]

    /// Compares the two policies for every stored person at `now`.
    public static func compute(store: any HubStore, current: Policy, candidate: Policy, now: Double) throws
        -> PolicyChange
    {
        var change = PolicyChange()
        let targetNames = Set(current.enabledTargets.map(\.name) + candidate.enabledTargets.map(\.name)).sorted()
        try store.read { conn in
            try conn.scan(type: .user) { person in
                let snapshot = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
                change.add(snapshot, current: current, candidate: candidate, targets: targetNames)
                return true
            }
        }
        return change
    }

    private mutating func add(_ s: PersonSnapshot, current: Policy, candidate: Policy, targets: [String]) {
        people += 1
        let ref = PersonRef(id: s.personID, userName: s.document?["userName"]?.stringValue ?? "")
        var loses = false, gains = false
        let before = Set(
            s.document.map { current.grants(person: $0, groupNames: s.groupNames, overrides: s.overrides, now: s.now) }?
                .map(\.package) ?? [])
        let after = Set(
            s.document.map {
                candidate.grants(person: $0, groupNames: s.groupNames, overrides: s.overrides, now: s.now)
            }?.map(\.package) ?? [])
        if let doc = s.document {
            let old = Set(
                current.sodConflicts(person: doc, groupNames: s.groupNames, overrides: s.overrides, now: s.now)
                    .map(\.rule))
            for c in candidate.sodConflicts(person: doc, groupNames: s.groupNames, overrides: s.overrides, now: s.now)
            where !old.contains(c.rule) {
                newConflicts[c.rule, default: []].append(ref)
            }
        }
        for p in before.subtracting(after) { packages[p, default: PackageChange()].lost.append(ref); loses = true }
        for p in after.subtracting(before) { packages[p, default: PackageChange()].gained.append(ref); gains = true }
        for name in targets {
            let old = current.target(name).flatMap { $0.enabled ? current.decide(s, target: $0).desired : nil }
            let new = candidate.target(name).flatMap { $0.enabled ? candidate.decide(s, target: $0).desired : nil }
            let wasEnabled = old?.enabled ?? false, isEnabled = new?.enabled ?? false
            // In place: a copy of the change would copy its lists on every person (quadratic
            // exactly for the mass changes a preview is for).
            if self.targets[name] == nil { self.targets[name] = TargetChange() }
            if wasEnabled && !isEnabled { self.targets[name]!.disabled.append(ref); loses = true }
            if !wasEnabled && isEnabled { self.targets[name]!.enabled.append(ref); gains = true }
            let oldE = wasEnabled ? old?.entitlements ?? [] : [], newE = isEnabled ? new?.entitlements ?? [] : []
            for e in oldE.subtracting(newE) { self.targets[name]!.lost[e, default: []].append(ref); loses = true }
            for e in newE.subtracting(oldE) { self.targets[name]!.gained[e, default: []].append(ref); gains = true }
        }
        if loses { losingAccess.append(ref) }
        if gains { gainingAccess.append(ref) }
    }

    // MARK: - Rendering

    /// The change as JSON: counts in full, names up to `listLimit` per list.
    public func json(limit: PolicyChangeLimit, listLimit: Int = 100) -> JSONObject {
        func refs(_ r: [PersonRef]) -> JSONValue {
            .array(
                r.prefix(listLimit).map {
                    .object(JSONObject(["id": .string($0.id), "userName": .string($0.userName)]))
                })
        }
        func count(_ n: Int) -> JSONValue { .number(JSONNumber(n)) }
        var pk = JSONObject()
        for (name, c) in packages.sorted(by: { $0.key < $1.key }) {
            pk[name] = .object(
                JSONObject([
                    "gained": count(c.gained.count), "lost": count(c.lost.count),
                    "gainedBy": refs(c.gained), "lostBy": refs(c.lost),
                ]))
        }
        var tg = JSONObject()
        for (name, c) in targets.sorted(by: { $0.key < $1.key }) {
            var ents = JSONObject()
            for e in Set(c.gained.keys).union(c.lost.keys).sorted() {
                ents[e] = .object(
                    JSONObject([
                        "gained": count(c.gained[e]?.count ?? 0), "lost": count(c.lost[e]?.count ?? 0),
                        "gainedBy": refs(c.gained[e] ?? []), "lostBy": refs(c.lost[e] ?? []),
                    ]))
            }
            tg[name] = .object(
                JSONObject([
                    "accountsEnabled": count(c.enabled.count), "accountsDisabled": count(c.disabled.count),
                    "enabled": refs(c.enabled), "disabled": refs(c.disabled), "entitlements": .object(ents),
                ]))
        }
        var conflicts = JSONObject()
        for (rule, people) in newConflicts.sorted(by: { $0.key < $1.key }) {
            conflicts[rule] = .object(JSONObject(["people": count(people.count), "names": refs(people)]))
        }
        let held = limit.exceeded(losing: losingAccess.count, of: people)
        return JSONObject([
            "people": count(people),
            "losingAccess": count(losingAccess.count), "gainingAccess": count(gainingAccess.count),
            "losing": refs(losingAccess), "gaining": refs(gainingAccess),
            "packages": .object(pk), "targets": .object(tg),
            "newSoDConflicts": .object(conflicts),
            "guard": .object(
                JSONObject([
                    "limitPeople": count(limit.people), "limitShare": .number(JSONNumber(limit.share)),
                    "allowed": count(limit.allowed(of: people)),
                    "wouldHold": .bool(held != nil), "reason": held.map { .string($0) } ?? .null,
                ])),
        ])
    }

    /// One row per person and change: `kind` (package or target), `name`, `change`
    /// (gained, lost, account-enabled, account-disabled, entitlement-gained, entitlement-lost),
    /// `detail` (the entitlement), `personId`, `userName`. Every name, not only the first ones.
    public func csv() -> String {
        var out = "kind,name,change,detail,personId,userName\r\n"
        func row(_ f: [String]) { out += f.map(ReconciliationReport.csvField).joined(separator: ",") + "\r\n" }
        for (name, c) in packages.sorted(by: { $0.key < $1.key }) {
            for r in c.lost { row(["package", name, "lost", "", r.id, r.userName]) }
            for r in c.gained { row(["package", name, "gained", "", r.id, r.userName]) }
        }
        for (name, c) in targets.sorted(by: { $0.key < $1.key }) {
            for r in c.disabled { row(["target", name, "account-disabled", "", r.id, r.userName]) }
            for r in c.enabled { row(["target", name, "account-enabled", "", r.id, r.userName]) }
            for (e, rs) in c.lost.sorted(by: { $0.key < $1.key }) {
                for r in rs { row(["target", name, "entitlement-lost", e, r.id, r.userName]) }
            }
            for (e, rs) in c.gained.sorted(by: { $0.key < $1.key }) {
                for r in rs { row(["target", name, "entitlement-gained", e, r.id, r.userName]) }
            }
        }
        return out
    }
}
