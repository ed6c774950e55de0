// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// A separation-of-duties rule: packages no one may hold together (billing with clinical
/// prescribing), and, per target, entitlements no account may hold together, also when
/// someone granted them by hand downstream. `record` reports a conflict; `enforce` also
/// withholds the rule's last package (in the rule's order) from whoever would hold all.
public struct SoDRule: Sendable, Equatable {
    public enum Mode: String, Sendable { case record, enforce }

    public let name: String
    public let packages: [String]
    public let entitlements: [String: [String]]
    public let severity: String
    public let mode: Mode

    static let severities: Set<String> = ["low", "medium", "high", "critical"]

    /// Parses `separationOfDuties`, checking names against the policy's packages and targets.
    static func parse(_ v: JSONValue, packages: [AccessPackage], targets: [Target]) throws -> [SoDRule] {
        guard let list = v.arrayValue else { throw PolicyError("separationOfDuties must be an array") }
        var rules: [SoDRule] = []
        for (i, item) in list.enumerated() {
            let at = "separationOfDuties[\(i)]"
            guard let o = item.objectValue else { throw PolicyError("\(at) must be an object") }
            for k in o.keys where !["name", "packages", "entitlements", "severity", "mode", "description"].contains(k) {
                throw PolicyError("\(at): unknown key '\(k)'")
            }
            guard let name = o["name"]?.stringValue, !name.isEmpty, name.utf8.count <= 64 else {
                throw PolicyError("\(at).name is required (at most 64 characters)")
            }
            guard !rules.contains(where: { $0.name == name }) else {
                throw PolicyError("\(at): duplicate rule '\(name)'")
            }
            var names: [String] = []
            for n in (o["packages"]?.arrayValue ?? []).compactMap(\.stringValue) where !names.contains(n) {
                names.append(n)  // a package named twice is one package, not a conflict with itself
            }
            if let unknown = names.first(where: { n in !packages.contains { $0.name == n } }) {
                throw PolicyError("\(at).packages: no package named '\(unknown)'")
            }
            var ents: [String: [String]] = [:]
            for m in o["entitlements"]?.objectValue?.members ?? [] {
                guard targets.contains(where: { $0.name == m.key }) else {
                    throw PolicyError("\(at).entitlements: unknown target '\(m.key)'")
                }
                let list = (m.value.arrayValue ?? []).compactMap(\.stringValue)
                guard Set(list).count >= 2 else {
                    throw PolicyError("\(at).entitlements.\(m.key) must name at least two entitlements")
                }
                ents[m.key] = list
            }
            guard names.count >= 2 || !ents.isEmpty else {
                throw PolicyError("\(at) needs at least two 'packages' or an 'entitlements' pair")
            }
            let severity = o["severity"]?.stringValue ?? "high"
            guard severities.contains(severity) else {
                throw PolicyError("\(at).severity must be low, medium, high or critical")
            }
            guard let mode = Mode(rawValue: o["mode"]?.stringValue ?? "record") else {
                throw PolicyError("\(at).mode must be record or enforce")
            }
            // Enforcing withholds a package; a rule of entitlements alone has none to withhold.
            guard mode == .record || names.count >= 2 else {
                throw PolicyError(
                    "\(at): enforce needs at least two 'packages' (entitlements alone can only be recorded)")
            }
            rules.append(SoDRule(name: name, packages: names, entitlements: ents, severity: severity, mode: mode))
        }
        return rules
    }
}

/// A person holding all the packages of a rule, or an account all its entitlements.
public struct SoDConflict: Sendable, Equatable {
    public let rule: String
    public let severity: String
    public let mode: SoDRule.Mode
    /// The packages (or, downstream, the entitlements) held together.
    public let holding: [String]
    /// The package an `enforce` rule withholds.
    public var withheld: String?
    /// A time-limited exception waives the rule for this person (nothing is withheld).
    public var excepted = false

    public var json: JSONValue {
        .object(
            JSONObject([
                "rule": .string(rule), "severity": .string(severity), "mode": .string(mode.rawValue),
                "holding": .array(holding.map { .string($0) }), "withheld": withheld.map { .string($0) } ?? .null,
                "excepted": .bool(excepted),
            ]))
    }
}

extension Policy {
    /// The conflicts in `packages` (held by rules and groups, before any is withheld).
    public func sodConflicts(holding packages: Set<String>) -> [SoDConflict] {
        separationOfDuties.compactMap { r in
            guard r.packages.count >= 2, Set(r.packages).isSubset(of: packages) else { return nil }
            return SoDConflict(
                rule: r.name, severity: r.severity, mode: r.mode, holding: r.packages,
                withheld: r.mode == .enforce ? r.packages.last : nil)
        }
    }

    /// The packages `enforce` rules withhold from someone who would hold `packages`: rule by
    /// rule, each against what is still held, so overlapping rules withhold no more than needed.
    func withheldBySoD(_ packages: Set<String>, except excepted: Set<String> = []) -> Set<String> {
        var held = packages
        var withheld = Set<String>()
        for r in separationOfDuties
        where r.mode == .enforce && !excepted.contains(r.name) && r.packages.count >= 2
            && Set(r.packages).isSubset(of: held)
        {
            if let last = r.packages.last {
                held.remove(last)
                withheld.insert(last)
            }
        }
        return withheld
    }

    /// The conflicts in an account's entitlements on `target` (also ones granted by hand).
    public func sodConflicts(target: String, entitlements: Set<String>) -> [SoDConflict] {
        separationOfDuties.compactMap { r in
            guard let pair = r.entitlements[target], Set(pair).isSubset(of: entitlements) else { return nil }
            return SoDConflict(rule: r.name, severity: r.severity, mode: r.mode, holding: pair, withheld: nil)
        }
    }
}
