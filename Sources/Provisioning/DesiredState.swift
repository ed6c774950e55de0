// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import JSONCore
import SCIM
import Store

/// The account a person should have on one target, as the policy decides it.
public struct DesiredAccount: Sendable, Equatable {
    public var userName: String
    public var enabled: Bool
    public var attributes: [String: String]
    public var entitlements: Set<String>
    /// Packages that grant something on this target (the "why").
    public var packages: [String]

    public init(
        userName: String, enabled: Bool, attributes: [String: String], entitlements: Set<String>, packages: [String]
    ) {
        self.userName = userName
        self.enabled = enabled
        self.attributes = attributes
        self.entitlements = entitlements
        self.packages = packages
    }

    /// Stored form (the applied-state record).
    public var json: JSONValue {
        var attrs = JSONObject()
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { attrs[k] = .string(v) }
        return .object(
            JSONObject([
                "userName": .string(userName),
                "enabled": .bool(enabled),
                "attributes": .object(attrs),
                "entitlements": .array(entitlements.sorted().map { .string($0) }),
                "packages": .array(packages.map { .string($0) }),
            ]))
    }

    public init?(json: JSONValue) {
        guard let o = json.objectValue, let u = o["userName"]?.stringValue, let e = o["enabled"]?.boolValue else {
            return nil
        }
        userName = u
        enabled = e
        var attrs: [String: String] = [:]
        for m in o["attributes"]?.objectValue?.members ?? [] { if let s = m.value.stringValue { attrs[m.key] = s } }
        attributes = attrs
        entitlements = Set((o["entitlements"]?.arrayValue ?? []).compactMap(\.stringValue))
        packages = (o["packages"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    /// True when moving from `self` to `next` takes access away (disable or fewer
    /// entitlements): such jobs run first.
    public func removesAccess(to next: DesiredAccount?) -> Bool {
        guard let n = next else { return enabled || !entitlements.isEmpty }
        return (enabled && !n.enabled) || !entitlements.isSubset(of: n.entitlements)
    }
}

/// Per-person exceptions to the rules: packages an access review revoked, packages held
/// through an active break-glass grant or an approved request (package → the "why": the
/// grant's reason or the request, and its expiry), and separation-of-duties rules waived
/// for the person by a time-limited exception.
public struct AccessOverrides: Sendable, Equatable {
    public var revoked: Set<String> = []
    public var breakGlass: [String: String] = [:]
    public var requested: [String: String] = [:]
    public var sodExceptions: Set<String> = []
    public init(
        revoked: Set<String> = [], breakGlass: [String: String] = [:], requested: [String: String] = [:],
        sodExceptions: Set<String> = []
    ) {
        self.revoked = revoked
        self.breakGlass = breakGlass
        self.requested = requested
        self.sodExceptions = sodExceptions
    }
}

/// Why a person holds a package.
public struct PackageGrant: Sendable, Equatable {
    public let package: String
    /// `rule: <filter>` or `group: <displayName>`.
    public let reason: String
}

extension Policy {
    /// The packages `person` holds and why. `person` is the stored resource with `id` and
    /// computed `groups`; `groupNames` are the displayNames of their groups.
    /// `overrides.revoked`: packages an access review took away from this person; they are
    /// not held whatever the rule says, until an administrator lifts the revocation.
    /// `overrides.breakGlass`: packages held for a bounded time in an emergency (these win
    /// over a revocation: an emergency is an emergency, and it is reviewed afterwards).
    /// Packages that `requiresCredential` are held only while the credential is in force at `now`.
    public func grants(
        person: JSONObject, groupNames: [String], overrides: AccessOverrides = AccessOverrides(),
        now: Double
    ) -> [PackageGrant] {
        grants(person: person, groupNames: groupNames, overrides: overrides, now: now, applySoD: true)
    }

    /// The separation-of-duties conflicts of what `person`'s rules and groups would grant.
    public func sodConflicts(person: JSONObject, groupNames: [String], overrides: AccessOverrides, now: Double)
        -> [SoDConflict]
    {
        let held = grants(person: person, groupNames: groupNames, overrides: overrides, now: now, applySoD: false)
        return sodConflicts(holding: Set(held.filter { !$0.reason.hasPrefix("break-glass") }.map(\.package)))
            .map { c in
                var c = c
                if overrides.sodExceptions.contains(c.rule) { (c.excepted, c.withheld) = (true, nil) }
                return c
            }
    }

    func grants(
        person: JSONObject, groupNames: [String], overrides: AccessOverrides, now: Double, applySoD: Bool
    ) -> [PackageGrant] {
        var out: [PackageGrant] = []
        let lowerGroups = Set(groupNames.map(Identifier.canonical))
        let credentialInForce = Self.credentialInForce(person, now: now)
        for p in packages where !overrides.revoked.contains(p.name) && (!p.requiresCredential || credentialInForce) {
            if let r = p.rule, r.matches(person) {
                out.append(PackageGrant(package: p.name, reason: "rule: \(p.ruleText ?? "")"))
            } else if let g = p.groups.first(where: { lowerGroups.contains(Identifier.canonical($0)) }) {
                out.append(PackageGrant(package: p.name, reason: "group: \(g)"))
            }
        }
        // Approved requests count like rules: separation of duties applies to them (the request
        // was checked when made, but the policy may have changed since).
        // A review's revocation does not apply: any revocation seen here is older than the
        // grant (a later one ends the request). A credential requirement does.
        for (name, why) in overrides.requested.sorted(by: { $0.key < $1.key })
        where !out.contains(where: { $0.package == name })
            && packages.contains(where: { $0.name == name && (!$0.requiresCredential || credentialInForce) })
        {
            out.append(PackageGrant(package: name, reason: "request: \(why)"))
        }
        // Separation of duties: an `enforce` rule withholds its last package from whoever would
        // hold all of its packages, unless an exception waives the rule for this person
        // (break-glass below is not withheld: it is reviewed instead).
        if applySoD {
            let withheld = withheldBySoD(Set(out.map(\.package)), except: overrides.sodExceptions)
            if !withheld.isEmpty { out.removeAll { withheld.contains($0.package) } }
        }
        for (name, why) in overrides.breakGlass.sorted(by: { $0.key < $1.key })
        where !out.contains(where: { $0.package == name }) {
            out.append(PackageGrant(package: name, reason: "break-glass: \(why)"))
        }
        return out
    }

    /// True when the person's credential is in force: healthcare `credentialStatus` is
    /// `active` and `licenseExpiresAt`, if present, is later than `now`.
    public static func credentialInForce(_ person: JSONObject, now: Double) -> Bool {
        let ext = person[SCIMSchemaURN.healthcareUser]?.objectValue
        guard ext?["credentialStatus"]?.stringValue == "active" else { return false }
        guard let text = ext?["licenseExpiresAt"]?.stringValue else { return true }
        guard let expires = Timestamp.parse(text) else { return false }
        return expires > now
    }

    /// When the person's licence expires, if it has a date.
    public static func licenseExpiry(_ person: JSONObject?) -> Double? {
        (person?[SCIMSchemaURN.healthcareUser]?.objectValue?["licenseExpiresAt"]?.stringValue).flatMap(Timestamp.parse)
    }

    /// When a contractor's engagement ends, if it has a date.
    public static func contractEnd(_ person: JSONObject?) -> Double? {
        (person?[SCIMSchemaURN.healthcareUser]?.objectValue?["contractEndsAt"]?.stringValue).flatMap(Timestamp.parse)
    }

    /// The person's next future deadline that changes their access (licence expiry, contract end).
    public static func nextDeadline(_ person: JSONObject?, after now: Double) -> Double? {
        [licenseExpiry(person), contractEnd(person)].compactMap { $0 }.filter { $0 > now }.min()
    }

    /// Active for access: RFC 7643 §4.1.1 `active` (default true) and, for a contractor, the
    /// engagement not ended. An ended contract makes a leaver, whatever `active` says.
    public static func isActive(_ person: JSONObject, now: Double) -> Bool {
        guard person["active"]?.boolValue ?? true else { return false }
        if let end = contractEnd(person), end <= now { return false }
        return true
    }

    /// The account `person` should have on `target`, or nil when none should exist.
    /// `person` nil means deleted. `hasAccount` says whether one was provisioned before:
    /// a person who loses every package there is then disabled, not forgotten.
    /// RFC 7643 §4.1.1 `active`: false (or a deleted person) disables every account, whatever the packages say.
    public func desired(
        person: JSONObject?, groupNames: [String], target: Target, hasAccount: Bool, previousUserName: String?,
        overrides: AccessOverrides = AccessOverrides(), now: Double
    ) -> DesiredAccount? {
        guard let p = person else {
            guard hasAccount else { return nil }
            return DesiredAccount(
                userName: previousUserName ?? "", enabled: false, attributes: [:], entitlements: [], packages: [])
        }
        let userName = p["userName"]?.stringValue ?? previousUserName ?? ""
        let attributes = mappedAttributes(p, target)
        let active = Self.isActive(p, now: now)
        var entitlements = Set<String>()
        var held: [String] = []
        if active {
            let sites = (p[SCIMSchemaURN.healthcareUser]?.objectValue?["sites"]?.arrayValue ?? []).compactMap(
                \.stringValue)
            for g in grants(person: p, groupNames: groupNames, overrides: overrides, now: now) {
                guard let pkg = packages.first(where: { $0.name == g.package }), let items = pkg.grants[target.name]
                else { continue }
                held.append(pkg.name)
                for e in items {
                    if pkg.siteScoped.contains(target.name) {
                        // Site-scoped: one entitlement per site of the person; none without a site.
                        for s in sites { entitlements.insert("\(e)@\(s)") }
                    } else {
                        entitlements.insert(e)
                    }
                }
            }
        }
        if held.isEmpty && !hasAccount { return nil }
        let enabled = active && !held.isEmpty
        return DesiredAccount(
            userName: userName, enabled: enabled, attributes: attributes, entitlements: enabled ? entitlements : [],
            packages: held.sorted())
    }

    /// Target fields from the person's attributes: multi-valued complex attributes give
    /// their primary (else first) value, multi-valued strings are joined with commas.
    func mappedAttributes(_ p: JSONObject, _ target: Target) -> [String: String] {
        var out: [String: String] = [:]
        for (field, path) in target.mapping {
            guard var v = p.topValue(path) else { continue }
            if let arr = v.arrayValue {
                if path.attribute.type == .complex {
                    guard let chosen = arr.first(where: { $0.objectValue?["primary"]?.boolValue == true }) ?? arr.first
                    else { continue }
                    v = chosen
                } else {
                    out[field] = arr.compactMap(\.stringValue).joined(separator: ",")
                    continue
                }
            }
            if let sub = path.subAttribute
                ?? (path.attribute.type == .complex ? path.attribute.subAttribute("value") : nil)
            {
                guard let inner = v.objectValue?[sub.name] else { continue }
                v = inner
            }
            switch v {
            case .string(let s): out[field] = s
            case .bool(let b): out[field] = b ? "true" : "false"
            case .number(let n): out[field] = n.text
            default: continue
            }
        }
        return out
    }
}

/// Everything the policy reads about one person at one instant: their attributes as rules
/// see them, their groups, review revocations and break-glass grants, and what was last
/// applied on each target. Read in one store snapshot, decided on outside it.
public struct PersonSnapshot: Sendable {
    public let personID: String
    /// Stored attributes plus `id` and `groups` (with display names); nil when deleted.
    public let document: JSONObject?
    /// Display names of the person's groups.
    public let groupNames: [String]
    public let overrides: AccessOverrides
    /// What was last applied, by target name.
    public let applied: [String: AppliedRecord]
    /// The instant the snapshot describes: credentials and contracts are judged at it.
    public let now: Double
    /// True for a person created in this transaction: nothing in the store names them yet.
    public var isNew = false

    /// The snapshot of a person created in this very transaction, read from nothing: their id
    /// is new, so no group, grant, request, revocation, exception, holding or applied state
    /// can name them yet (seven reads a create need not make).
    public static func created(personID: String, person: JSONObject, now: Double) -> PersonSnapshot {
        var doc = person
        doc["id"] = .string(personID)
        var s = PersonSnapshot(
            personID: personID, document: doc, groupNames: [], overrides: AccessOverrides(), applied: [:], now: now)
        s.isNew = true
        return s
    }

    /// Reads the snapshot of `personID`, whose stored attributes are `person` (nil: deleted).
    public static func load(_ conn: any StoreSession, personID: String, person: JSONObject?, now: Double) throws
        -> PersonSnapshot
    {
        var applied: [String: AppliedRecord] = [:]
        for r in try conn.applied(personID: personID) { applied[r.target] = r }
        guard var doc = person else {
            return PersonSnapshot(
                personID: personID, document: nil, groupNames: [], overrides: AccessOverrides(), applied: applied,
                now: now)
        }
        let groups = try conn.groups(ofMember: personID)
        doc["id"] = .string(personID)
        if !groups.isEmpty {
            doc["groups"] = .array(
                groups.map { g in
                    var o = JSONObject(["value": .string(g.id)])
                    if let d = g.display { o["display"] = .string(d) }
                    return .object(o)
                })
        }
        var breakGlass: [String: String] = [:]
        for g in try conn.activeBreakGlass(personID: personID, now: now) {
            breakGlass[g.package] = "\(g.reason) (until \(Timestamp.format(g.expires)))"
        }
        var requested: [String: String] = [:]
        for r in try conn.activeRequestGrants(personID: personID, now: now) {
            requested[r.package] = "\(r.id) (until \(Timestamp.format(r.expires ?? now)))"
        }
        let overrides = AccessOverrides(
            revoked: try conn.revokedPackages(personID: personID), breakGlass: breakGlass, requested: requested,
            sodExceptions: Set(try conn.activeSoDExceptions(personID: personID, now: now).map(\.rule)))
        return PersonSnapshot(
            personID: personID, document: doc, groupNames: groups.compactMap(\.display), overrides: overrides,
            applied: applied, now: now)
    }

    /// The desired state last applied on `target`, if any.
    public func lastApplied(on target: String) -> DesiredAccount? {
        applied[target].flatMap { r in (try? JSONParser().parse(r.state)).flatMap(DesiredAccount.init(json:)) }
    }
}

/// The policy's decision for one person on one target, with what it is compared against.
public struct AccountDecision: Sendable, Equatable {
    /// The account the person should have; nil when none should exist.
    public let desired: DesiredAccount?
    /// What was last applied there.
    public let lastApplied: DesiredAccount?
    /// The applied-state record, if the pair was ever converged.
    public let record: AppliedRecord?
    /// The target's account id, once provisioned.
    public var accountID: String? { record?.accountID }

    /// Whether the target may be out of date: a job is needed. An unchanged person causes
    /// no job, and so no downstream call; a deleted person always does (its retention).
    public func needsJob(personDeleted: Bool) -> Bool {
        if desired == nil && record == nil { return false }
        if personDeleted { return true }
        return !(desired == lastApplied && (desired == nil || accountID != nil))
    }

    /// Jobs that take access away run first (priority 0).
    public var removesAccess: Bool {
        (lastApplied ?? DesiredAccount(userName: "", enabled: false, attributes: [:], entitlements: [], packages: []))
            .removesAccess(to: desired)
    }
}

extension Policy {
    /// Whether membership of the Group named `displayName` can change anyone's packages: a
    /// package lists the Group, or a rule reads `groups` at all. Membership of any other
    /// Group changes no desired state, so the writer need not evaluate its members. A Group
    /// without a name is assumed to matter.
    public func grantsDepend(onGroupNamed displayName: String?) -> Bool {
        guard let name = displayName else { return true }
        let canonical = Identifier.canonical(name)
        // A target mapping that reads `groups` (e.g. a unit field) changes with any membership too.
        if enabledTargets.contains(where: { $0.mapping.contains { $0.path.attribute.name == "groups" } }) {
            return true
        }
        return packages.contains { p in
            p.groups.contains { Identifier.canonical($0) == canonical } || p.rule?.references("groups") == true
        }
    }

    /// The one provisioning decision: the account `snapshot`'s person should have on
    /// `target`. Enqueueing, the job runner and the access view all ask this.
    public func decide(_ snapshot: PersonSnapshot, target: Target) -> AccountDecision {
        let record = snapshot.applied[target.name]
        let previous = snapshot.lastApplied(on: target.name)
        let desired = self.desired(
            person: snapshot.document, groupNames: snapshot.groupNames, target: target,
            hasAccount: record?.accountID != nil, previousUserName: previous?.userName,
            overrides: snapshot.overrides, now: snapshot.now)
        return AccountDecision(desired: desired, lastApplied: previous, record: record)
    }
}
