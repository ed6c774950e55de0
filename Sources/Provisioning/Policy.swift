// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import JSONCore
import SCIM

/// A policy problem: the hub refuses to start, and `scimhub policy check` prints it.
/// The message names the key path (`packages[3].grants`) or the line, never a secret.
public struct PolicyError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
}

/// A downstream system the hub keeps in line.
public struct Target: Sendable {
    /// Unique name used in packages and the admin API (`ehr`).
    public let name: String
    /// Connector plugin type (`ehr-rest`, `ldap`, `sql`, `scim`).
    public let type: String
    /// Disabled targets are described but get no jobs (their connector may not exist yet).
    public let enabled: Bool
    /// Most jobs run against this target at once.
    public let concurrency: Int
    /// Days after a person's DELETE before their account is deleted; nil keeps it disabled forever.
    public let retentionDays: Double?
    /// Connector settings, secrets already resolved from their references.
    public let settings: JSONObject
    /// Target field → SCIM attribute path of the person.
    public let mapping: [(field: String, path: AttributePath)]
    /// How reconciliation treats this target.
    public var reconciliation = ReconciliationRules()
}

/// A target's reconciliation rules (policy key `reconciliation`).
public struct ReconciliationRules: Sendable, Equatable {
    /// What remediation does with an account no person in the hub owns.
    public enum OrphanAction: String, Sendable { case report, disable, delete }
    public var orphans = OrphanAction.report
    /// User names of accounts the hub does not govern (service accounts): counted, never
    /// flagged or changed. `*` matches any run of characters; case-insensitive.
    public var exclude: [String] = []
    /// Mass-change guard: a remediation that would disable or delete more accounts than
    /// this, or than this share of the accounts listed, waits for a confirmation.
    public var maxChanges = 50
    public var maxChangeShare = 0.05

    public init() {}

    public func isExcluded(_ userName: String) -> Bool {
        exclude.contains { Identifier.matches(pattern: $0, userName) }
    }
}

/// An access package: a role bundle of entitlements across targets.
public struct AccessPackage: Sendable {
    public let name: String
    public let description: String
    /// Who qualifies, in SCIM filter syntax over the person (nil: only by group).
    public let rule: SCIMFilter?
    public let ruleText: String?
    /// Membership of any of these groups (by displayName, case-insensitive) also grants it.
    public let groups: [String]
    /// Target name → entitlements granted there.
    public let grants: [String: [String]]
    /// Targets where each entitlement is granted per site of the person (`role@SITE`).
    public let siteScoped: Set<String>
    /// When set, the package may be granted by break-glass for at most this many hours.
    public var breakGlassMaxHours: Double? = nil
    /// Held only while the person's credential is in force: `credentialStatus` is `active`
    /// and `licenseExpiresAt`, when given, has not passed.
    public var requiresCredential = false
    /// When set, people may ask for the package (`POST /admin/requests`) under these terms.
    public var requestable: RequestPolicy? = nil
}

/// The terms on which a package may be requested (Entra's access-package assignment policy):
/// who may ask, who approves in which order, how long it may be held, whether it may be extended.
public struct RequestPolicy: Sendable {
    /// One approval stage: the beneficiary's manager, or any active member of a named Group.
    public enum Stage: Sendable, Equatable {
        case manager
        case group(String)
    }

    /// Who may request, in SCIM filter syntax over the beneficiary (nil: any active person).
    public var requesters: SCIMFilter?
    public var requestersText: String?
    /// One or two stages, in order.
    public var approval: [Stage]
    public var justificationRequired = true
    public var maxDays: Double
    public var extensionAllowed = false
    /// Days before expiry the holder and their manager are told (`request.expiring`).
    public var noticeDays: Double = 7
    /// Days a request may wait for its approvals; then it lapses.
    public var approvalDays: Double = 14

    static let keys: Set<String> = [
        "requesters", "approval", "justification", "maxDays", "extension", "noticeDays", "approvalDays",
    ]

    /// `{"requesters"?: filter, "approval": ["manager" | "group:<displayName>", ...1-2],
    /// "justification"?: true, "maxDays": N, "extension"?: false, "noticeDays"?: 7, "approvalDays"?: 14}`
    static func parse(_ v: JSONValue, at: String, userType: SCIMResourceType) throws -> RequestPolicy {
        guard let o = v.objectValue else { throw PolicyError("\(at) must be an object") }
        for k in o.keys where !keys.contains(k) {
            throw PolicyError("\(at): unknown key '\(k)' (\(keys.sorted().joined(separator: ", ")))")
        }
        guard let maxDays = o["maxDays"]?.numberValue?.double, maxDays > 0, maxDays <= 366 else {
            throw PolicyError("\(at).maxDays must be a number of days in (0, 366]")
        }
        guard let list = o["approval"]?.arrayValue, (1...2).contains(list.count) else {
            throw PolicyError("\(at).approval must list one or two stages (\"manager\" or \"group:<displayName>\")")
        }
        var stages: [Stage] = []
        for (i, s) in list.enumerated() {
            guard let text = s.stringValue else { throw PolicyError("\(at).approval[\(i)] must be a string") }
            if text == "manager" {
                stages.append(.manager)
            } else if text.hasPrefix("group:"), case let name = String(text.dropFirst(6)), !name.isEmpty,
                name.utf8.count <= 256, !name.contains(where: \.isNewline)
            {
                stages.append(.group(name))
            } else {
                throw PolicyError("\(at).approval[\(i)] must be \"manager\" or \"group:<displayName>\"")
            }
        }
        let canonicalStages = stages.map { s -> String in
            if case .group(let g) = s { return "group:" + Identifier.canonical(g) }
            return "manager"
        }
        guard Set(canonicalStages).count == stages.count else {
            throw PolicyError("\(at).approval names the same stage twice")
        }
        var r = RequestPolicy(approval: stages, maxDays: maxDays)
        if let text = o["requesters"] {
            guard let t = text.stringValue else { throw PolicyError("\(at).requesters must be a SCIM filter string") }
            do { r.requesters = try SCIMFilter.parse(t, for: userType) } catch {
                throw PolicyError("\(at).requesters: \(error.detail)")
            }
            r.requestersText = t
        }
        for (key, flag) in [("justification", \RequestPolicy.justificationRequired), ("extension", \.extensionAllowed)]
        {
            guard let value = o[key] else { continue }
            guard let b = value.boolValue else { throw PolicyError("\(at).\(key) must be true or false") }
            r[keyPath: flag] = b
        }
        for (key, field, limit) in [
            ("noticeDays", \RequestPolicy.noticeDays, maxDays), ("approvalDays", \.approvalDays, 90),
        ] {
            guard let value = o[key] else { continue }
            guard let d = value.numberValue?.double, d >= 0, d <= limit else {
                throw PolicyError("\(at).\(key) must be a number of days in 0...\(Int(limit))")
            }
            r[keyPath: field] = d
        }
        if r.approvalDays == 0 { throw PolicyError("\(at).approvalDays must be more than 0") }
        return r
    }
}

/// The policy: targets and packages, loaded at start and validated completely.
public struct Policy: Sendable {
    public let targets: [Target]
    public let packages: [AccessPackage]
    /// Packages (and entitlements) no one may hold together.
    public var separationOfDuties: [SoDRule] = []
    /// The policy text's `targets`, as written (secret references, not secrets): what a
    /// running process built its connectors and queues from, compared when another version
    /// comes into force (a rotated secret file is no change of targets).
    public var targetsSource: JSONValue = .null

    /// Targets that receive jobs.
    public var enabledTargets: [Target] { targets.filter(\.enabled) }

    public func target(_ name: String) -> Target? { targets.first { $0.name == name } }

    /// Parses and validates policy JSON. `knownTypes` are the connector types available;
    /// `environment` and `readFile` resolve secret references (injectable for tests).
    public static func parse(
        _ bytes: [UInt8], userType: SCIMResourceType, knownTypes: Set<String>,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        readFile: (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
    ) throws -> Policy {
        let root: JSONValue
        do {
            root = try JSONParser().parse(bytes)
        } catch {
            let line = bytes.prefix(error.offset).filter { $0 == 0x0A }.count + 1
            throw PolicyError("policy: line \(line): \(error.message)")
        }
        guard let o = root.objectValue else {
            throw PolicyError("policy: the top level must be an object with 'targets' and 'packages'")
        }
        for k in o.keys where !["targets", "packages", "separationOfDuties"].contains(k) {
            throw PolicyError("policy: unknown key '\(k)'")
        }
        guard let rawTargets = o["targets"]?.arrayValue else { throw PolicyError("policy: 'targets' must be an array") }
        guard let rawPackages = o["packages"]?.arrayValue else {
            throw PolicyError("policy: 'packages' must be an array")
        }

        var targets: [Target] = []
        for (i, t) in rawTargets.enumerated() {
            let at = "targets[\(i)]"
            guard let to = t.objectValue else { throw PolicyError("\(at) must be an object") }
            for k in to.keys
            where ![
                "name", "type", "enabled", "concurrency", "retentionDays", "settings", "mapping", "description",
                "reconciliation",
            ].contains(k) {
                throw PolicyError("\(at): unknown key '\(k)'")
            }
            guard let name = to["name"]?.stringValue, isName(name) else {
                throw PolicyError("\(at).name must be 1-64 letters, digits, '-' or '_'")
            }
            guard !targets.contains(where: { $0.name == name }) else {
                throw PolicyError("\(at): duplicate target '\(name)'")
            }
            guard let type = to["type"]?.stringValue else { throw PolicyError("\(at).type is required") }
            let enabled = to["enabled"]?.boolValue ?? true
            if enabled && !knownTypes.contains(type) {
                throw PolicyError(
                    "\(at).type: no connector plugin '\(type)' "
                        + "(available: \(knownTypes.sorted().joined(separator: ", "))); "
                        + "set \"enabled\": false to describe it anyway"
                )
            }
            var concurrency = 4
            if let c = to["concurrency"] {
                guard let n = c.numberValue?.int64, (1...256).contains(n) else {
                    throw PolicyError("\(at).concurrency must be an integer in 1...256")
                }
                concurrency = Int(n)
            }
            var retention: Double? = nil
            if let r = to["retentionDays"], !r.isNull {
                guard let d = r.numberValue?.double, d >= 0 else {
                    throw PolicyError("\(at).retentionDays must be a non-negative number or null")
                }
                retention = d
            }
            // A disabled target gets no connector, so its secrets need not exist yet.
            let rawSettings = to["settings"]?.objectValue ?? JSONObject()
            let settings =
                enabled
                ? try resolveSecrets(rawSettings, at: "\(at).settings", environment: environment, readFile: readFile)
                : rawSettings
            var mapping: [(String, AttributePath)] = []
            if let m = to["mapping"] {
                guard let mo = m.objectValue else {
                    throw PolicyError("\(at).mapping must be an object of field: SCIM path")
                }
                for member in mo.members {
                    guard let pathText = member.value.stringValue else {
                        throw PolicyError("\(at).mapping.\(member.key) must be a SCIM attribute path")
                    }
                    do {
                        mapping.append((member.key, try AttributePath.resolve(pathText, in: userType)))
                    } catch {
                        throw PolicyError("\(at).mapping.\(member.key): \(error.detail)")
                    }
                }
            }
            var target = Target(
                name: name, type: type, enabled: enabled, concurrency: concurrency, retentionDays: retention,
                settings: settings, mapping: mapping)
            if let r = to["reconciliation"] {
                target.reconciliation = try reconciliationRules(r, at: "\(at).reconciliation")
            }
            targets.append(target)
        }

        var packages: [AccessPackage] = []
        for (i, p) in rawPackages.enumerated() {
            let at = "packages[\(i)]"
            guard let po = p.objectValue else { throw PolicyError("\(at) must be an object") }
            for k in po.keys
            where ![
                "name", "description", "rule", "groups", "grants", "siteScoped", "breakGlass", "requiresCredential",
                "requestable",
            ].contains(k) {
                throw PolicyError("\(at): unknown key '\(k)'")
            }
            guard let name = po["name"]?.stringValue, isName(name) else {
                throw PolicyError("\(at).name must be 1-64 letters, digits, '-' or '_'")
            }
            guard !packages.contains(where: { $0.name == name }) else {
                throw PolicyError("\(at): duplicate package '\(name)'")
            }
            var rule: SCIMFilter? = nil
            let ruleText = po["rule"]?.stringValue
            if let text = ruleText {
                do { rule = try SCIMFilter.parse(text, for: userType) } catch {
                    throw PolicyError("\(at).rule (package '\(name)'): \(error.detail)")
                }
            } else if po["rule"] != nil {
                throw PolicyError("\(at).rule must be a string")
            }
            let groups = try (po["groups"]?.arrayValue ?? []).map { v throws -> String in
                guard let s = v.stringValue else {
                    throw PolicyError("\(at).groups must be an array of group displayNames")
                }
                return s
            }
            // A package nobody qualifies for by rule or group is held only by request or break-glass.
            guard rule != nil || !groups.isEmpty || po["requestable"] != nil || po["breakGlass"] != nil else {
                throw PolicyError("\(at) (package '\(name)') needs a 'rule', 'groups', 'requestable' or 'breakGlass'")
            }
            guard let go = po["grants"]?.objectValue, !go.isEmpty else {
                throw PolicyError("\(at).grants must be an object of target: [entitlements]")
            }
            var grants: [String: [String]] = [:]
            for g in go.members {
                guard targets.contains(where: { $0.name == g.key }) else {
                    throw PolicyError("\(at).grants: unknown target '\(g.key)'")
                }
                guard let arr = g.value.arrayValue, !arr.isEmpty else {
                    throw PolicyError("\(at).grants.\(g.key) must be a non-empty array of entitlements")
                }
                grants[g.key] = try arr.map { v throws -> String in
                    guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= 256 else {
                        throw PolicyError("\(at).grants.\(g.key) holds an invalid entitlement")
                    }
                    return s
                }
            }
            var scoped = Set<String>()
            for v in po["siteScoped"]?.arrayValue ?? [] {
                guard let s = v.stringValue, grants[s] != nil else {
                    throw PolicyError("\(at).siteScoped names a target the package grants nothing on")
                }
                scoped.insert(s)
            }
            var package = AccessPackage(
                name: name, description: po["description"]?.stringValue ?? "", rule: rule, ruleText: ruleText,
                groups: groups, grants: grants, siteScoped: scoped)
            if let bg = po["breakGlass"] {
                // `"breakGlass": {"maxHours": 8}`: available in an emergency, for at most this long.
                guard let o = bg.objectValue, o.keys.allSatisfy({ $0 == "maxHours" }),
                    let h = o["maxHours"]?.numberValue?.double, h > 0, h <= 72
                else {
                    throw PolicyError("\(at).breakGlass must be {\"maxHours\": N} with N in (0, 72]")
                }
                package.breakGlassMaxHours = h
            }
            if let rc = po["requiresCredential"] {
                guard let b = rc.boolValue else { throw PolicyError("\(at).requiresCredential must be true or false") }
                package.requiresCredential = b
            }
            if let rq = po["requestable"] {
                package.requestable = try RequestPolicy.parse(rq, at: "\(at).requestable", userType: userType)
            }
            packages.append(package)
        }
        var policy = Policy(targets: targets, packages: packages)
        policy.targetsSource = o["targets"] ?? .null
        if let sod = o["separationOfDuties"] {
            policy.separationOfDuties = try SoDRule.parse(sod, packages: packages, targets: targets)
        }
        return policy
    }

    /// `{"orphans": "report"|"disable"|"delete", "exclude": ["svc-*"], "maxChanges": 50, "maxChangeShare": 0.05}`
    private static func reconciliationRules(_ v: JSONValue, at: String) throws -> ReconciliationRules {
        guard let o = v.objectValue else { throw PolicyError("\(at) must be an object") }
        var r = ReconciliationRules()
        for m in o.members {
            switch m.key {
            case "orphans":
                guard let s = m.value.stringValue, let a = ReconciliationRules.OrphanAction(rawValue: s) else {
                    throw PolicyError("\(at).orphans must be report, disable or delete")
                }
                r.orphans = a
            case "exclude":
                guard let arr = m.value.arrayValue else {
                    throw PolicyError("\(at).exclude must be an array of user name patterns")
                }
                r.exclude = try arr.map { v throws -> String in
                    guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= 256 else {
                        throw PolicyError("\(at).exclude holds an invalid pattern")
                    }
                    return s
                }
            case "maxChanges":
                guard let n = m.value.numberValue?.int64, n >= 0 else {
                    throw PolicyError("\(at).maxChanges must be a non-negative integer")
                }
                r.maxChanges = Int(n)
            case "maxChangeShare":
                guard let d = m.value.numberValue?.double, (0...1).contains(d) else {
                    throw PolicyError("\(at).maxChangeShare must be a number in 0...1")
                }
                r.maxChangeShare = d
            default:
                throw PolicyError("\(at): unknown key '\(m.key)' (orphans, exclude, maxChanges, maxChangeShare)")
            }
        }
        return r
    }

    /// Loads a policy file.
    public static func load(path: String, userType: SCIMResourceType, knownTypes: Set<String>) throws -> Policy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PolicyError("policy file \(path) cannot be read")
        }
        return try parse(Array(data), userType: userType, knownTypes: knownTypes)
    }

    private static func isName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64
            && s.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A) || $0 == 0x2D || $0 == 0x5F
            }
    }

    /// Replaces `"xEnv": "VAR"` and `"xFile": "/path"` members by `"x": <secret>`, so secrets
    /// live in the environment or a file, never in the policy.
    private static func resolveSecrets(
        _ o: JSONObject, at: String, environment: [String: String], readFile: (String) -> String?
    ) throws -> JSONObject {
        var out = JSONObject()
        for m in o.members {
            if let inner = m.value.objectValue {
                out[m.key] = .object(
                    try resolveSecrets(inner, at: "\(at).\(m.key)", environment: environment, readFile: readFile))
            } else if m.key.hasSuffix("Env"), m.key.count > 3, let variable = m.value.stringValue {
                guard let v = environment[variable], !v.isEmpty else {
                    throw PolicyError("\(at).\(m.key): environment variable \(variable) is not set")
                }
                out[String(m.key.dropLast(3))] = .string(v)
            } else if m.key.hasSuffix("File"), m.key.count > 4, m.key != "caFile", let path = m.value.stringValue {
                guard let v = readFile(path)?.trimmingCharacters(in: .whitespacesAndNewlines), !v.isEmpty else {
                    throw PolicyError("\(at).\(m.key): file \(path) cannot be read or is empty")
                }
                out[String(m.key.dropLast(4))] = .string(v)
            } else {
                out[m.key] = m.value
            }
        }
        return out
    }
}
