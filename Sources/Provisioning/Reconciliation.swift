// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import ConnectorKit
import JSONCore
import SCIM
import Store

/// What reconciliation can find on a target, most urgent first.
public enum FindingCategory: String, CaseIterable, Sendable, Comparable {
    /// The person is inactive or deleted and the account is enabled: critical, always first.
    case leaverEnabled = "leaver-enabled"
    /// One account claimed by two people (linked to both, or linked to one and named as the
    /// other: the target folds their user names together). Critical: a leaver action on one
    /// disables the other. Reported for a person to untangle, never remediated automatically.
    case sharedAccount = "shared-account"
    /// An account holding entitlements a separation-of-duties rule forbids together, by the
    /// policy or by hand downstream (detail: the rule). Critical; remediation converges the
    /// account to the policy, so an entitlement granted by hand goes.
    case sodViolation = "sod-violation"
    /// Access held through an active break-glass grant (detail: the package): always flagged, never "fixed".
    case breakGlass = "break-glass"
    /// No person in the hub owns the account.
    case orphan
    /// The person should have an enabled account here and has none.
    case missing
    case disabledShouldBeEnabled = "disabled-should-be-enabled"
    /// An entitlement no package grants (detail: the entitlement), or an account enabled without any package.
    case overPrivileged = "over-privileged"
    /// An entitlement a package grants but the account lacks (detail: the entitlement).
    case underPrivileged = "under-privileged"
    /// A mapped attribute differs (detail: the attribute name; values never appear).
    case attributeDrift = "attribute-drift"
    /// On the target's allow-list (service accounts): counted, not flagged.
    case excluded

    /// Shown first and marked critical in reports.
    public var isCritical: Bool { self == .leaverEnabled || self == .sharedAccount || self == .sodViolation }

    public static func < (a: FindingCategory, b: FindingCategory) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// The outcome of comparing one target.
public struct TargetComparison: Sendable {
    public var accountsListed = 0
    public var counts: [FindingCategory: Int] = [:]
    /// Disables and deletes remediation would make (for the mass-change guard).
    public var plannedDisables = 0
    public var plannedDeletes = 0
}

/// Compares what a target holds (read back through its connector) with what the policy
/// says it should hold, and fixes what policy can fix. Streams: one page of accounts at a
/// time, findings and "seen" marks written per page, so memory is bounded by the page
/// size, not by the number of accounts.
public final class Reconciler: Sendable {
    /// The policy in force: read at each use, so a version applied over the API takes
    /// effect at once.
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    let store: any HubStore
    let connectors: [String: any Connector]
    /// Whether a person is active (a contract end) and holds a credential is judged on this clock.
    let clock: any WallClock
    public static let pageSize = 500

    public init(
        policies: PolicyHolder, store: any HubStore, connectors: [String: any Connector],
        clock: any WallClock = SystemClock()
    ) {
        self.policies = policies
        self.store = store
        self.connectors = connectors
        self.clock = clock
    }

    // MARK: - Compare

    /// Compares `target`, appending findings of `categories` to run `runID` from `nextSeq`.
    /// `progress` gets the number of accounts listed so far.
    public func compare(
        runID: String, target t: Target, categories: Set<FindingCategory>, nextSeq: inout Int64,
        progress: (Int) -> Void
    ) throws -> TargetComparison {
        guard let connector = connectors[t.name] else {
            throw ConnectorError.permanent("target '\(t.name)' has no connector (disabled)")
        }
        let now = clock.now()
        var result = TargetComparison()
        var cursor: String? = nil
        repeat {
            let page = try connector.list(cursor: cursor, pageSize: Self.pageSize)
            let (findings, seen) = try store.read { conn in try self.comparePage(page.accounts, target: t, conn) }
            result.accountsListed += page.accounts.count
            try record(
                findings, seen: seen, runID: runID, target: t, categories: categories, nextSeq: &nextSeq, into: &result)
            progress(result.accountsListed)
            cursor = page.next
        } while cursor != nil
        // Missing accounts: every person who should have an enabled account and was not seen.
        var batch: [FindingRecord] = []
        try store.read { conn in
            try conn.scan(type: .user) { person in
                let s = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
                guard
                    let d = self.policy.desired(
                        person: s.document, groupNames: s.groupNames, target: t, hasAccount: false,
                        previousUserName: nil,
                        overrides: s.overrides, now: now), d.enabled,
                    !t.reconciliation.isExcluded(d.userName),
                    try !conn.wasSeen(runID: runID, target: t.name, personID: person.id)
                else { return true }
                batch.append(
                    FindingRecord(
                        target: t.name, category: FindingCategory.missing.rawValue, personID: person.id,
                        userName: d.userName,
                        displayName: person.doc["displayName"]?.stringValue, accountID: nil, detail: nil))
                if batch.count >= Self.pageSize {
                    try self.record(
                        batch, seen: [], runID: runID, target: t, categories: categories, nextSeq: &nextSeq,
                        into: &result)
                    batch.removeAll(keepingCapacity: true)
                }
                return true
            }
        }
        try record(batch, seen: [], runID: runID, target: t, categories: categories, nextSeq: &nextSeq, into: &result)
        try store.write { try $0.connection.forgetSeen(runID: runID) }
        return result
    }

    /// Findings for one page of accounts, and the people seen.
    private func comparePage(_ accounts: [Account], target t: Target, _ conn: any StoreSession) throws -> (
        [FindingRecord], [String]
    ) {
        let now = clock.now()
        var out: [FindingRecord] = []
        var seen: [String] = []
        for acc in accounts {
            func finding(
                _ c: FindingCategory, _ personID: String?, _ display: String?, _ detail: String? = nil,
                entitlements: [String] = []
            ) {
                out.append(
                    FindingRecord(
                        target: t.name, category: c.rawValue, personID: personID, userName: acc.userName,
                        displayName: display, accountID: acc.id, detail: detail, entitlements: entitlements))
            }
            if t.reconciliation.isExcluded(acc.userName) {
                finding(.excluded, nil, nil)
                continue
            }
            // The owner: by the account id the engine recorded, else by user name.
            var record = try conn.applied(target: t.name, accountID: acc.id)
            var person = try record.flatMap { try conn.fetch(type: .user, id: $0.personID) }
            let named =
                acc.userName.isEmpty
                ? nil : try conn.candidates(type: .user, hint: .userName(Identifier.canonical(acc.userName))).first
            if record == nil, let u = named {
                person = u
                record = try conn.applied(personID: u.id).first { $0.target == t.name }
            }
            // Claimed by two: linked to several people, or linked to one and named as another.
            var claimants = try conn.claimants(target: t.name, accountID: acc.id)
            if let u = named, let linked = claimants.first, !claimants.contains(u.id), linked != u.id {
                claimants.append(u.id)
            }
            if claimants.count > 1 {
                for c in claimants {
                    let doc = try conn.fetch(type: .user, id: c)?.doc
                    finding(.sharedAccount, c, doc?["displayName"]?.stringValue, "claimed by \(claimants.count) people")
                }
            }
            guard let p = person else {
                // A deleted person's account that is still enabled is a leaver; anything else nobody owns.
                if let r = record {
                    if acc.enabled { finding(.leaverEnabled, r.personID, nil, "person deleted") }
                    for e in acc.entitlements.sorted() { finding(.overPrivileged, r.personID, nil, e) }
                } else {
                    // What nobody answers for is what an auditor asks about first.
                    finding(
                        .orphan, nil, nil, acc.enabled ? "enabled" : "disabled", entitlements: acc.entitlements.sorted()
                    )
                }
                continue
            }
            seen.append(p.id)
            let display = p.doc["displayName"]?.stringValue
            let s = try PersonSnapshot.load(conn, personID: p.id, person: p.doc, now: now)
            guard
                let d = policy.desired(
                    person: s.document, groupNames: s.groupNames, target: t, hasAccount: true, previousUserName: nil,
                    overrides: s.overrides, now: now)
            else { continue }
            for name in s.overrides.breakGlass.keys.sorted()
            where policy.packages.first(where: { $0.name == name })?.grants[t.name] != nil {
                finding(.breakGlass, p.id, display, name)
            }
            let active = Policy.isActive(p.doc, now: now)
            if acc.enabled && !d.enabled {
                if active {
                    finding(.overPrivileged, p.id, display, "account enabled without a package")
                } else {
                    finding(.leaverEnabled, p.id, display, "person inactive")
                }
            }
            if !acc.enabled && d.enabled { finding(.disabledShouldBeEnabled, p.id, display) }
            if acc.enabled {
                for c in policy.sodConflicts(target: t.name, entitlements: acc.entitlements)
                where !s.overrides.sodExceptions.contains(c.rule) {
                    finding(.sodViolation, p.id, display, c.rule)
                }
            }
            for e in acc.entitlements.subtracting(d.entitlements).sorted() {
                finding(.overPrivileged, p.id, display, e)
            }
            if d.enabled {
                for e in d.entitlements.subtracting(acc.entitlements).sorted() {
                    finding(.underPrivileged, p.id, display, e)
                }
            }
            for (k, v) in d.attributes.sorted(by: { $0.key < $1.key }) where acc.attributes[k] != v {
                finding(.attributeDrift, p.id, display, k)
            }
        }
        return (out, seen)
    }

    private func record(
        _ findings: [FindingRecord], seen: [String], runID: String, target t: Target, categories: Set<FindingCategory>,
        nextSeq: inout Int64, into result: inout TargetComparison
    ) throws {
        var kept: [FindingRecord] = []
        for f in findings {
            guard let c = FindingCategory(rawValue: f.category) else { continue }
            result.counts[c, default: 0] += 1
            switch c {
            case .leaverEnabled: result.plannedDisables += 1
            case .overPrivileged where f.detail == "account enabled without a package": result.plannedDisables += 1
            case .orphan where t.reconciliation.orphans == .disable && f.detail == "enabled":
                result.plannedDisables += 1
            case .orphan where t.reconciliation.orphans == .delete: result.plannedDeletes += 1
            default: break
            }
            // Excluded accounts are counted, never listed.
            if categories.contains(c) && c != .excluded { kept.append(f) }
        }
        guard !kept.isEmpty || !seen.isEmpty else { return }
        let first = nextSeq, rows = kept
        nextSeq += Int64(kept.count)
        try store.write { w in
            try w.connection.appendFindings(runID: runID, firstSeq: first, rows)
            try w.connection.markSeen(runID: runID, target: t.name, personIDs: seen)
        }
    }

    /// True when remediating `c` would exceed the target's mass-change guard.
    public static func exceedsGuard(_ c: TargetComparison, _ rules: ReconciliationRules) -> Bool {
        let changes = c.plannedDisables + c.plannedDeletes
        guard changes > 0 else { return false }
        return changes > rules.maxChanges || Double(changes) > rules.maxChangeShare * Double(max(1, c.accountsListed))
    }

    // MARK: - Remediate

    /// Fixes what the findings of `runID` on `target` allow: every person with a finding gets a
    /// convergence job (the engine reads the account and applies the difference, access
    /// removal first); orphans follow the target's rule. Returns the number of actions taken.
    public func remediate(runID: String, target t: Target, principal: String) throws -> Int {
        var people = Set<String>()
        var orphans: [FindingRecord] = []
        try store.read { conn in
            try conn.findings(runID: runID) { f in
                guard f.target == t.name else { return true }
                if f.category == FindingCategory.orphan.rawValue {
                    orphans.append(f)
                } else if let p = f.personID, f.category != FindingCategory.breakGlass.rawValue,
                    f.category != FindingCategory.sharedAccount.rawValue
                {
                    people.insert(p)
                }
                return true
            }
        }
        let now = clock.now()
        let ids = people.sorted()
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Array(ids[start..<min(ids.count, start + 500)])
            try store.write { w in
                for p in chunk { try w.connection.enqueue(personID: p, target: t.name, priority: 0, now: now) }
            }
        }
        var actions = ids.count
        guard t.reconciliation.orphans != .report, let connector = connectors[t.name] else { return actions }
        for o in orphans {
            guard let id = o.accountID else { continue }
            let action: String
            switch t.reconciliation.orphans {
            case .disable:
                guard o.detail == "enabled" else { continue }
                try connector.setEnabled(id: id, false)
                action = "disable"
            case .delete:
                try connector.delete(id: id)
                action = "delete"
            case .report:
                continue
            }
            actions += 1
            try store.write { w in
                try AuditLog.append(
                    w,
                    .now(
                        principal: principal, action: "reconcile.orphan", resourceType: "Account",
                        resourceID: "\(t.name):\(id)",
                        attributes: ["\(t.name):\(action)"], requestID: runID))
            }
        }
        return actions
    }
}
