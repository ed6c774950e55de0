// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubCrypto
import JSONCore
import SCIM
import Store

/// An access-review or break-glass request that cannot be accepted (the API maps it to a SCIM error).
public enum GovernanceError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case forbidden(String)
    case notFound(String)
    case conflict(String)

    public var description: String {
        switch self {
        case .invalid(let m), .forbidden(let m), .notFound(let m), .conflict(let m): return m
        }
    }
}

/// Access reviews: a campaign asks, for every person holding a package (on a target, or one
/// package), whether they still need it. Reviewers are named, or each person's manager
/// (enterprise `manager.value`, whose user name is their principal name); people without a
/// usable manager go to the fallback group, administrators being the last resort. Items
/// still with their manager close to the due date are escalated; a reviewer may delegate.
/// A revoke decision takes the package away through the engine; at the due date undecided
/// items get the campaign's default decision. Everything is durable and audited.
public final class AccessReviews: Sendable {
    /// The policy in force: read at each use, so a version applied over the API takes
    /// effect at once.
    public var policy: Policy { policies.current }
    public let policies: PolicyHolder
    let store: any HubStore
    let engine: ProvisioningEngine?
    /// Due dates and decisions are on this clock (a test moves it past a due date).
    public let clock: any WallClock
    /// The displayName of the Group whose active members review items that have no usable
    /// manager, and escalated items whose manager has none (`reviewFallbackGroup`).
    public let fallbackGroup: String?

    public init(
        policies: PolicyHolder, store: any HubStore, engine: ProvisioningEngine?, clock: any WallClock = SystemClock(),
        fallbackGroup: String? = nil
    ) {
        self.policies = policies
        self.store = store
        self.engine = engine
        self.clock = clock
        self.fallbackGroup = fallbackGroup
    }

    public struct CampaignRequest: Sendable {
        public var name: String
        public var target: String?
        public var package: String?
        /// nil: each person's manager reviews.
        public var reviewers: [String]?
        public var dueDays: Double
        public var defaultDecision: String

        public init(
            name: String, target: String?, package: String?, reviewers: [String]?, dueDays: Double,
            defaultDecision: String
        ) {
            self.name = name; self.target = target; self.package = package; self.reviewers = reviewers;
            self.dueDays = dueDays; self.defaultDecision = defaultDecision
        }
    }

    // MARK: - Campaigns

    public func create(_ r: CampaignRequest, principal: String, requestID: String, now: Double? = nil) throws
        -> ReviewCampaignRecord
    {
        let now = now ?? clock.now()
        guard !r.name.isEmpty, r.name.utf8.count <= 200 else {
            throw GovernanceError.invalid("'name' must be 1 to 200 characters")
        }
        guard (r.target == nil) != (r.package == nil) else {
            throw GovernanceError.invalid("give exactly one of 'target' or 'package'")
        }
        if let t = r.target {
            guard policy.target(t)?.enabled == true else {
                throw GovernanceError.invalid("'target': no enabled target named '\(t)'")
            }
        }
        if let p = r.package {
            guard policy.packages.contains(where: { $0.name == p }) else {
                throw GovernanceError.invalid("'package': no package named '\(p)'")
            }
        }
        guard r.dueDays > 0, r.dueDays <= 366 else {
            throw GovernanceError.invalid("'dueDays' must be more than 0 and at most 366")
        }
        guard Self.dueDateRules.contains(r.defaultDecision) else {
            throw GovernanceError.invalid("'defaultDecision' must be keep-and-flag, keep or revoke")
        }
        if let list = r.reviewers {
            guard !list.isEmpty, list.count <= 100,
                list.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 256 && !$0.contains("\u{1F}") })
            else {
                throw GovernanceError.invalid("'reviewers' must be a non-empty array of principal names")
            }
        }
        // The packages the campaign covers: the one named, or every package granting on the target.
        let inScope = Set(
            r.package.map { [$0] } ?? policy.packages.filter { $0.grants[r.target ?? ""] != nil }.map(\.name))
        let campaign = ReviewCampaignRecord(
            id: UUIDv7.make(), name: r.name, scopeKind: r.target != nil ? "target" : "package",
            scopeValue: r.target ?? r.package ?? "", reviewers: r.reviewers ?? [], due: now + r.dueDays * 86400,
            defaultDecision: r.defaultDecision, state: "open", createdBy: principal, created: now, closed: nil)
        // One item per (person, package held in scope); reviewers by `route`, once per person.
        var items: [ReviewItemRecord] = []
        try store.read { conn in
            var router = try Router(self, conn, now: now)
            try conn.scan(type: .user) { person in
                let snapshot = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
                guard let d = snapshot.document, Policy.isActive(d, now: now) else { return true }
                let held = policy.grants(
                    person: d, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now
                ).map(\.package).filter(inScope.contains)
                guard !held.isEmpty else { return true }
                let userName = d["userName"]?.stringValue ?? ""
                let route = try router.route(person: d, userName: userName, named: r.reviewers)
                for name in held {
                    items.append(
                        ReviewItemRecord(
                            seq: Int64(items.count + 1), personID: person.id, userName: userName,
                            displayName: d["displayName"]?.stringValue, package: name, reviewers: route.reviewers,
                            assignment: route.assignment))
                }
                return true
            }
        }
        try record(campaign, items, principal: principal, requestID: requestID, now: now)
        return campaign
    }

    /// Stores the campaign and its items, first observations of tenure, the audit entry (with
    /// how many items went where) and each reviewer's `review.assigned` message, in one write.
    private func record(
        _ campaign: ReviewCampaignRecord, _ rows: [ReviewItemRecord], principal: String, requestID: String,
        now: Double
    ) throws {
        var routed: [ReviewAssignment: Int] = [:]
        for i in rows { routed[i.assignment ?? .named, default: 0] += 1 }
        let attributes =
            ["\(campaign.scopeKind):\(campaign.scopeValue)", "items:\(rows.count)"]
            + routed.sorted(by: { $0.key.rawValue < $1.key.rawValue }).map { a, n in
                a == .admins ? "admins:\(n) (no manager, no fallback reviewer)" : "\(a):\(n)"
            }
        try store.write { w in
            try w.connection.insertCampaign(campaign)
            for i in rows {
                try w.connection.insertItem(campaignID: campaign.id, i)
                // A holding from before tenure was kept is first observed here.
                try w.connection.recordHolding(personID: i.personID, package: i.package, since: now)
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "review.create", resourceType: "Review", resourceID: campaign.id,
                    attributes: attributes, requestID: requestID))
            try self.announceAssigned(w, campaign, rows)
        }
        engine?.notifier?.wake()
    }

    // MARK: - Decisions

    /// Who decides an item: its own reviewers (the manager, a delegate, a fallback group's
    /// members, whoever an escalation or an administrator gave it to), any one of them; else
    /// the campaign's named reviewers; nil: administrators.
    public static func deciders(_ c: ReviewCampaignRecord, _ item: ReviewItemRecord) -> [String]? {
        if !item.reviewers.isEmpty { return item.reviewers }
        // Items routed to administrators stay theirs even in a campaign with named reviewers.
        let named = !c.reviewers.isEmpty && (item.assignment == nil || item.assignment == .named)
        return named ? c.reviewers : nil
    }

    /// Whether `p` may decide the item (see `deciders`). Nobody reviews their own access,
    /// also not through a token minted by them (`people`: `Tokens.people` of the caller's token).
    public static func mayDecide(
        _ p: Principal, people: Set<String> = [], _ c: ReviewCampaignRecord, _ item: ReviewItemRecord
    ) -> Bool {
        let person = Identifier.canonical(item.userName), me = Identifier.canonical(p.name)
        if me == person || people.contains(person) { return false }
        guard let names = deciders(c, item) else { return p.scopes.contains(.admin) }
        return names.contains { Identifier.canonical($0) == me }
    }

    public func decide(
        campaignID: String, seq: Int64, decision: String, reason: String, principal: Principal, requestID: String
    ) throws {
        guard ["approve", "revoke"].contains(decision) else {
            throw GovernanceError.invalid("'decision' must be approve or revoke")
        }
        let trimmed = reason.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= 1000 else {
            throw GovernanceError.invalid("'reason' is required (at most 1,000 characters)")
        }
        guard let c = try store.read({ try $0.campaign(id: campaignID) }) else {
            throw GovernanceError.notFound("no review campaign with this id")
        }
        guard let item = try store.read({ try $0.item(campaignID: campaignID, seq: seq) }) else {
            throw GovernanceError.notFound("no item \(seq) in this campaign")
        }
        let people = try store.read { try Tokens.people($0, tokenID: principal.tokenID) }
        guard Self.mayDecide(principal, people: people, c, item) else {
            throw GovernanceError.forbidden("this item is not yours to review")
        }
        // A campaign whose due-date revokes wait for confirmation can still be decided item by item.
        guard c.state == "open" || c.state == "awaiting-confirmation" else {
            throw GovernanceError.conflict("the campaign is closed")
        }
        try apply(c, item, decision: decision, reason: trimmed, by: principal.name, requestID: requestID)
        engine?.wake()
    }

    private func apply(
        _ c: ReviewCampaignRecord, _ item: ReviewItemRecord, decision: String, reason: String, by: String,
        requestID: String
    ) throws {
        let engine = self.engine
        let now = clock.now()
        try store.write { w in
            guard
                try w.connection.decide(
                    campaignID: c.id, seq: item.seq, decision: decision, reason: reason, by: by, now: now)
            else {
                throw GovernanceError.conflict("the item was decided already")
            }
            if decision == "revoke" {
                try w.connection.revokePackage(
                    personID: item.personID, package: item.package, campaignID: c.id, reason: reason, now: now)
                // A package held by request goes too: the review is the newer decision.
                try AccessRequests.endGrants(
                    w, personID: item.personID, package: item.package, by: by, reason: "revoked by access review",
                    requestID: requestID, now: now)
                // Through the engine: the person's accounts converge without the package.
                try engine?.enqueue(
                    w, personID: item.personID, person: try w.connection.fetch(type: .user, id: item.personID)?.doc)
            }
            try AuditLog.append(
                w,
                .now(
                    principal: by, action: "review.decide", resourceType: "User", resourceID: item.personID,
                    attributes: ["\(item.package):\(decision)"], requestID: requestID))
        }
    }

    /// Lifts a revocation (an administrator's correction); the package is granted again if the rule still says so.
    /// Lifts a review's revocation; never for one's own access (also not through a token
    /// minted by oneself): that would undo the review that took it.
    public func lift(personID: String, package: String, principal p: Principal, requestID: String) throws {
        let engine = self.engine, principal = p.name
        let (person, people) = try store.read { c in
            (try c.fetch(type: .user, id: personID), try Tokens.people(c, tokenID: p.tokenID))
        }
        if let userName = person?.doc["userName"]?.stringValue {
            let me = Identifier.canonical(userName)
            guard !people.contains(me), Identifier.canonical(principal) != me else {
                throw GovernanceError.forbidden("nobody lifts a revocation of their own access")
            }
        }
        try store.write { w in
            guard try w.connection.liftRevocation(personID: personID, package: package) else {
                throw GovernanceError.notFound("no revocation of this package for this person")
            }
            try engine?.enqueue(w, personID: personID, person: try w.connection.fetch(type: .user, id: personID)?.doc)
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "review.lift", resourceType: "User", resourceID: personID,
                    attributes: [package], requestID: requestID))
        }
        engine?.wake()
    }

    // MARK: - Due dates and the schedule

    /// What undecided items become at the due date. `keep-and-flag` keeps the access and lists
    /// the item as flagged (nobody vouched for it); `keep` keeps it; `revoke` takes it away,
    /// but only when that is safe (see `closeOverdue`). `approve` is the old name of `keep`.
    public static let dueDateRules: Set<String> = ["keep-and-flag", "keep", "revoke", "approve"]

    /// Auto-revokes at a due date beyond this many people wait for confirmation.
    public static let autoRevokeLimit = 10

    /// Applies each overdue campaign's due-date rule to its undecided items and closes it.
    /// Durable: driven by the stored due dates, so a hub that was down catches up at start-up.
    /// A `revoke` rule never takes access silently where it could stop care: when the revokes
    /// would leave someone with no access on a target, or touch more than `autoRevokeLimit`
    /// people, nothing is revoked and the campaign waits (`awaiting-confirmation`) for an
    /// administrator (`confirmOverdue`), with the reason in the audit chain.
    @discardableResult
    public func closeOverdue(now: Double? = nil) throws -> Int {
        let now = now ?? clock.now()
        let due = try store.read { try $0.overdueCampaigns(now: now) }
        for c in due {
            let undecided = try store.read({ try $0.items(campaignID: c.id) }).filter { $0.decision == nil }
            if c.defaultDecision == "revoke", let why = try revokeRisk(undecided, now: now) {
                try store.write { w in
                    try w.connection.setCampaignState(id: c.id, state: "awaiting-confirmation")
                    try AuditLog.append(
                        w,
                        .now(
                            principal: "scheduler", action: "review.held", resourceType: "Review", resourceID: c.id,
                            attributes: [why], requestID: "review-due", outcome: "held"))
                    try self.engine?.notifier?.announce(
                        w, .reviewHeld, ["campaign": c.name, "campaignId": c.id, "reason": why])
                }
                continue
            }
            try closeApplying(c, undecided, now: now, by: "default-decision", requestID: "review-due")
        }
        if !due.isEmpty { engine?.wake() }
        return due.count
    }

    // MARK: - Reminders

    /// Reminds the reviewers of campaigns due within `days` who still have undecided items,
    /// once per campaign (again after an extension): each reviewer at their address (see
    /// `addresses`), plus the configured recipients of `review.reminder`. Returns how many
    /// campaigns were reminded.
    @discardableResult
    public func remindDue(days: Double, now: Double? = nil) throws -> Int {
        guard days > 0, let notifier = engine?.notifier else { return 0 }
        let now = now ?? clock.now()
        let due = try store.read { try $0.campaignsToRemind(dueBy: now + days * 86400) }
        for c in due {
            let undecided = try store.read({ try $0.items(campaignID: c.id) }).filter { $0.decision == nil }
            // Each reviewer of each item (every member of a fallback group); "": administrators.
            var byReviewer: [String: Int] = [:]
            for i in undecided {
                let names = Self.deciders(c, i)?.filter { Identifier.canonical($0) != Identifier.canonical(i.userName) }
                for r in names ?? [""] { byReviewer[r, default: 0] += 1 }
            }
            let counts = byReviewer.sorted(by: { $0.key < $1.key })
            try store.write { w in
                try w.connection.markCampaignReminded(id: c.id, now: now)
                let outcome = c.defaultDecision == "revoke" ? "revoked" : "kept and flagged"
                for (reviewer, count) in counts {
                    let to = reviewer.isEmpty ? [] : try People.addresses(w.connection, of: [reviewer], now: now)
                    let whose = reviewer.isEmpty ? "without a reviewer (administrators decide them)" : "for \(reviewer)"
                    try notifier.announce(
                        w, .reviewReminder,
                        [
                            "campaign": c.name, "campaignId": c.id, "due": Timestamp.format(c.due),
                            "count": String(count), "whose": whose, "outcome": outcome,
                        ], to: to)
                }
            }
        }
        if !due.isEmpty { notifier.wake() }
        return due.count
    }

    // MARK: - Context for reviewers

    /// What a reviewer needs to decide each item: the package in plain words, the person's
    /// title, sites, manager and licence status, how long they have held the package
    /// (`heldSince`, `heldDays`: see `PackageHoldings`), and what their peers hold (the share
    /// of people with the same title at the same first site who hold the package).
    public func context(for items: [ReviewItemRecord]) throws -> [Int64: JSONObject] {
        let policy = self.policy, now = clock.now()
        let ext = "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"
        func profile(_ doc: JSONObject) -> (title: String, site: String) {
            let sites = (doc[ext]?.objectValue?["sites"]?.arrayValue ?? []).compactMap(\.stringValue)
            return (doc["title"]?.stringValue ?? "", sites.first ?? "")
        }
        return try store.read { conn in
            var people: [String: JSONObject] = [:]
            for i in items where people[i.personID] == nil {
                people[i.personID] = try conn.fetch(type: .user, id: i.personID)?.doc
            }
            // Peers: one pass over everyone, counting by (title, first site) who holds what.
            let wanted = Set(people.values.map { p in "\(profile(p).title)\u{1F}\(profile(p).site)" })
            var peers: [String: Int] = [:], holders: [String: Int] = [:]
            try conn.scan(type: .user) { person in
                let (title, site) = profile(person.doc)
                let key = "\(title)\u{1F}\(site)"
                guard wanted.contains(key), Policy.isActive(person.doc, now: now) else { return true }
                peers[key, default: 0] += 1
                let snap = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
                guard let doc = snap.document else { return true }
                for g in policy.grants(person: doc, groupNames: snap.groupNames, overrides: snap.overrides, now: now) {
                    holders[key + "\u{1F}" + g.package, default: 0] += 1
                }
                return true
            }
            var out: [Int64: JSONObject] = [:]
            for i in items {
                guard let doc = people[i.personID] else { continue }
                let (title, site) = profile(doc)
                let key = "\(title)\u{1F}\(site)"
                var manager: JSONValue = .null
                if let mid = doc["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["manager"]?
                    .objectValue?["value"]?.stringValue, let m = try conn.fetch(type: .user, id: mid)?.doc["userName"]
                {
                    manager = m
                }
                let total = peers[key] ?? 0, holding = holders[key + "\u{1F}" + i.package] ?? 0
                let since = try conn.holdingSince(personID: i.personID, package: i.package)
                out[i.seq] = JSONObject([
                    "heldSince": since.map { .string(Timestamp.format($0)) } ?? .null,
                    "heldDays": since.map { .int(max(0, Int((now - $0) / 86400))) } ?? .null,
                    "packageDescription": .string(policy.packages.first { $0.name == i.package }?.description ?? ""),
                    "title": title.isEmpty ? .null : .string(title), "site": site.isEmpty ? .null : .string(site),
                    "manager": manager,
                    "credentialStatus": doc[ext]?.objectValue?["credentialStatus"] ?? .null,
                    "peers": .object(
                        JSONObject([
                            "people": .int(total), "holding": .int(holding),
                            "share": .number(
                                JSONNumber(total == 0 ? 0 : (Double(holding) / Double(total) * 100).rounded() / 100)),
                        ])),
                ])
            }
            return out
        }
    }

    // MARK: - An administrator's hand on a campaign

    /// Cancels an open campaign: nothing more is decided, nothing is applied.
    public func cancel(campaignID: String, principal: String, requestID: String) throws {
        let c = try openCampaign(campaignID)
        let now = clock.now()
        try store.write { w in
            try w.connection.closeCampaign(id: c.id, now: now)
            try w.connection.setCampaignState(id: c.id, state: "cancelled")
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "review.cancel", resourceType: "Review", resourceID: c.id,
                    requestID: requestID))
        }
    }

    /// Moves an open campaign's due date `days` from now (reviewers need more time).
    public func extend(campaignID: String, days: Double, principal: String, requestID: String) throws -> Double {
        guard days > 0, days <= 366 else {
            throw GovernanceError.invalid("'dueDays' must be more than 0 and at most 366")
        }
        let c = try openCampaign(campaignID)
        let due = clock.now() + days * 86400
        try store.write { w in
            try w.connection.setCampaignDue(id: c.id, due: due)
            // Held at its due date: more time reopens it for the reviewers.
            if c.state == "awaiting-confirmation" { try w.connection.setCampaignState(id: c.id, state: "open") }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "review.extend", resourceType: "Review", resourceID: c.id,
                    attributes: ["due \(Timestamp.format(due))"], requestID: requestID))
        }
        return due
    }

    /// Gives an undecided item to another reviewer (the manager left, or is on leave).
    public func reassign(campaignID: String, seq: Int64, reviewer: String, principal: String, requestID: String) throws
    {
        let name = reviewer
        do {
            try PrincipalName.validate(name, what: "reviewer")
        } catch {
            throw GovernanceError.invalid("'reviewer': \(error.description)")
        }
        let c = try openCampaign(campaignID)
        guard let item = try store.read({ try $0.item(campaignID: c.id, seq: seq) }) else {
            throw GovernanceError.notFound("no item \(seq) in this campaign")
        }
        // Nobody reviews their own access.
        guard Identifier.canonical(name) != Identifier.canonical(item.userName) else {
            throw GovernanceError.forbidden("nobody reviews their own access")
        }
        try store.write { w in
            guard try w.connection.reassignItem(campaignID: c.id, seq: seq, reviewer: name) else {
                throw GovernanceError.conflict("the item was decided already")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "review.reassign", resourceType: "User", resourceID: item.personID,
                    attributes: ["\(item.package)", "to \(name)"], requestID: requestID))
        }
    }

    private func openCampaign(_ id: String) throws -> ReviewCampaignRecord {
        guard let c = try store.read({ try $0.campaign(id: id) }) else {
            throw GovernanceError.notFound("no review campaign with this id")
        }
        guard c.state == "open" || c.state == "awaiting-confirmation" else {
            throw GovernanceError.conflict("the campaign is \(c.state)")
        }
        return c
    }

    /// An administrator confirms the revokes of a campaign held at its due date.
    public func confirmOverdue(campaignID: String, principal: String, requestID: String) throws -> Int {
        guard let c = try store.read({ try $0.campaign(id: campaignID) }) else {
            throw GovernanceError.notFound("no review campaign with this id")
        }
        guard c.state == "awaiting-confirmation" else {
            throw GovernanceError.conflict("the campaign is \(c.state), not awaiting confirmation")
        }
        let undecided = try store.read({ try $0.items(campaignID: c.id) }).filter { $0.decision == nil }
        try closeApplying(c, undecided, now: clock.now(), by: principal, requestID: requestID)
        engine?.wake()
        return undecided.count
    }

    private func closeApplying(
        _ c: ReviewCampaignRecord, _ undecided: [ReviewItemRecord], now: Double, by: String, requestID: String
    ) throws {
        let (decision, reason) =
            switch c.defaultDecision {
            case "revoke": ("revoke", "due date passed: revoked (nobody decided)")
            case "keep", "approve": ("approve", "due date passed: kept (nobody decided)")
            default: ("flagged", "due date passed: kept and flagged (nobody decided)")
            }
        for item in undecided {
            do {
                try apply(c, item, decision: decision, reason: reason, by: by, requestID: requestID)
            } catch GovernanceError.conflict {}
        }
        try store.write { w in
            try w.connection.closeCampaign(id: c.id, now: now)
            try AuditLog.append(
                w,
                .now(
                    principal: "scheduler", action: "review.close", resourceType: "Review", resourceID: c.id,
                    attributes: ["\(undecided.count) undecided: \(decision)"], requestID: requestID))
        }
    }

    /// Why revoking `items` unattended is unsafe, or nil: too many people, or someone would
    /// be left with no access on a target where they have an account.
    func revokeRisk(_ items: [ReviewItemRecord], now: Double) throws -> String? {
        let people = Set(items.map(\.personID))
        if people.count > Self.autoRevokeLimit {
            return "\(people.count) people would lose access (limit \(Self.autoRevokeLimit)): confirm or decide"
        }
        let policy = self.policy
        for personID in people.sorted() {
            let packages = Set(items.filter { $0.personID == personID }.map(\.package))
            let cut = try store.read { conn -> Bool in
                let s = try PersonSnapshot.load(
                    conn, personID: personID, person: try conn.fetch(type: .user, id: personID)?.doc, now: now)
                var overrides = s.overrides
                overrides.revoked.formUnion(packages)
                let after = PersonSnapshot(
                    personID: s.personID, document: s.document, groupNames: s.groupNames, overrides: overrides,
                    applied: s.applied, now: s.now)
                return policy.enabledTargets.contains { t in
                    policy.decide(s, target: t).desired?.enabled == true
                        && policy.decide(after, target: t).desired?.enabled != true
                }
            }
            if cut {
                let userName = items.first { $0.personID == personID }?.userName ?? personID
                return "revoking would leave \(userName) with no access on a target: confirm or decide"
            }
        }
        return nil
    }

    /// Starts the periodic campaigns (one per enabled target, managers review) when the last
    /// scheduled ones are `everyDays` old or there were none.
    public func scheduleIfDue(everyDays: Double, dueDays: Double, defaultDecision: String, now: Double? = nil) throws {
        let now = now ?? clock.now()
        if let last = try store.read({ try $0.lastScheduledCampaign() }), now - last < everyDays * 86400 { return }
        for t in policy.enabledTargets {
            _ = try create(
                CampaignRequest(
                    name: "Scheduled review: \(t.name)", target: t.name, package: nil, reviewers: nil, dueDays: dueDays,
                    defaultDecision: defaultDecision), principal: "scheduler", requestID: "review-schedule", now: now)
        }
    }

    // MARK: - Views

    public static func describe(_ c: ReviewCampaignRecord, items: [ReviewItemRecord]) -> JSONObject {
        let decided = items.filter { $0.decision != nil }
        return JSONObject([
            "id": .string(c.id), "name": .string(c.name),
            "scope": .object(JSONObject([c.scopeKind: .string(c.scopeValue)])),
            "reviewers": c.reviewers.isEmpty ? .string("manager") : .array(c.reviewers.map { .string($0) }),
            "due": .string(Timestamp.format(c.due)), "defaultDecision": .string(c.defaultDecision),
            "state": .string(c.state),
            "createdBy": .string(c.createdBy), "created": .string(Timestamp.format(c.created)),
            "closed": c.closed.map { .string(Timestamp.format($0)) } ?? .null,
            "items": .int(items.count), "decided": .int(decided.count),
            "approved": .int(decided.filter { $0.decision == "approve" }.count),
            "revoked": .int(decided.filter { $0.decision == "revoke" }.count),
            "flagged": .int(decided.filter { $0.decision == "flagged" }.count),
        ])
    }

    public static func itemJSON(_ i: ReviewItemRecord) -> JSONValue {
        var o = JSONObject([
            "seq": .int(Int(i.seq)), "personId": .string(i.personID), "userName": .string(i.userName),
            "displayName": i.displayName.map { .string($0) } ?? .null, "package": .string(i.package),
            "reviewer": i.reviewer.map { .string($0) } ?? .null,
            "decision": i.decision.map { .string($0) } ?? .null,
            "reason": i.reason.map { .string($0) } ?? .null, "decidedBy": i.decidedBy.map { .string($0) } ?? .null,
            "decided": i.decided.map { .string(Timestamp.format($0)) } ?? .null,
        ])
        // Everyone who may decide it ([]: the campaign's reviewers, or administrators), and how.
        o["reviewers"] = .array(i.reviewers.map { .string($0) })
        o["assignment"] = i.assignment.map { .string($0.rawValue) } ?? .null
        o["escalated"] = .bool(i.escalated != nil)
        o["originalReviewer"] = i.originalReviewer.map { .string($0) } ?? .null
        o["delegatedBy"] = i.delegatedBy.map { .string($0) } ?? .null
        o["delegationReason"] = i.delegationReason.map { .string($0) } ?? .null
        return .object(o)
    }

    /// The campaign report as CSV (RFC 4180, formula-safe).
    public static func csv(_ c: ReviewCampaignRecord, items: [ReviewItemRecord]) -> [UInt8] {
        var out = "campaign,package,personId,userName,displayName,reviewer,decision,reason,decidedBy,decided,"
        out += "escalatedFrom,delegatedBy\r\n"
        for i in items {
            out +=
                [
                    c.name, i.package, i.personID, i.userName, i.displayName ?? "", i.reviewers.joined(separator: "; "),
                    i.decision ?? "pending", i.reason ?? "",
                    i.decidedBy ?? "", i.decided.map { Timestamp.format($0) } ?? "", i.originalReviewer ?? "",
                    i.delegatedBy ?? "",
                ].map(ReconciliationReport.csvField).joined(separator: ",") + "\r\n"
        }
        return Array(out.utf8)
    }
}
