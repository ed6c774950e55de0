// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubCrypto
import HubLog
import JSONCore
import Store

/// Puts a policy version into effect. Every person whose account under the policy differs
/// from what was last applied is queued for convergence, exactly them and no one else;
/// unless that takes access from more people than the change limit allows: then the version
/// is held, said so in the log and the audit chain, and nothing is queued until an
/// administrator confirms it (`POST /admin/policy/versions/{v}/confirm`).
public enum PolicyRollout {
    /// Who the policy would converge: everyone whose desired account on some target differs
    /// from what was last applied, and of them those who would lose access.
    public struct Affected: Sendable {
        public var people = 0
        public var converge: [String] = []
        public var losing: [PersonRef] = []
    }

    public static func affected(store: any HubStore, policy: Policy, now: Double) throws -> Affected {
        var out = Affected()
        try store.read { conn in
            try conn.scan(type: .user) { person in
                out.people += 1
                let s = try PersonSnapshot.load(conn, personID: person.id, person: person.doc, now: now)
                var needs = false, loses = false
                for t in policy.enabledTargets {
                    let d = policy.decide(s, target: t)
                    guard d.needsJob(personDeleted: false) else { continue }
                    needs = true
                    if d.removesAccess { loses = true }
                }
                if needs { out.converge.append(person.id) }
                if loses {
                    out.losing.append(PersonRef(id: person.id, userName: person.doc["userName"]?.stringValue ?? ""))
                }
                return true
            }
        }
        return out
    }

    /// At start: records `text` (the policy file) as a new version when it differs from the
    /// newest stored one and rolls it out, or holds it; finishes a rollout a crash cut short.
    @discardableResult
    public static func startUp(
        text: [UInt8], engine: ProvisioningEngine, store: any HubStore, limit: PolicyChangeLimit, logger: Logger
    ) throws -> PolicyVersion {
        let hash = hexString(Crypto.sha256(text))
        let now = engine.clock.now()
        if let latest = try store.read({ try $0.latestPolicyVersion() }), latest.hash == hash {
            if latest.state == .held {
                logger.error(
                    "policy rollout held; confirm it with POST /admin/policy/versions/\(latest.version)/confirm",
                    ["policy.version": String(latest.version), "reason": latest.heldReason ?? ""])
            } else if latest.rolledOut == nil {
                try rollOut(latest, engine: engine, store: store, logger: logger)
            }
            return latest
        }
        let affected = try self.affected(store: store, policy: engine.policy, now: now)
        let held = limit.exceeded(losing: affected.losing.count, of: affected.people)
        let version = try store.write { w -> PolicyVersion in
            let v = try w.connection.insertPolicyVersion(
                hash: hash, text: text, author: "policy-file", now: now, state: held == nil ? .active : .held,
                heldReason: held)
            try AuditLog.append(
                w,
                .now(
                    principal: "policy-file", action: "policy.version", resourceType: "Policy",
                    resourceID: "v\(v.version)",
                    attributes: [
                        "hash:\(hash.prefix(16))", "converge:\(affected.converge.count)",
                        "losing:\(affected.losing.count)",
                    ], requestID: "start", outcome: held.map { "held: \($0)" } ?? "success"))
            return v
        }
        if let held {
            logger.error(
                "policy change held: nothing is queued until an administrator confirms it with "
                    + "POST /admin/policy/versions/\(version.version)/confirm",
                ["policy.version": String(version.version), "reason": held])
            return version
        }
        try converge(affected.converge, version: version.version, engine: engine, store: store)
        logger.notice(
            "policy version rolled out",
            ["policy.version": String(version.version), "people": String(affected.converge.count)])
        return version
    }

    /// Applies `text` (already parsed as `candidate`) over the API: it becomes the next
    /// version, is written to `policyFile` (so a restart runs it too) and is in force at
    /// once; the people it changes are queued, or the rollout is held past `limit`. Targets
    /// cannot change this way: their connectors are built at start.
    public static func apply(
        text: [UInt8], candidate: Policy, principal: String, requestID: String, engine: ProvisioningEngine,
        store: any HubStore, limit: PolicyChangeLimit, policyFile: String?, logger: Logger
    ) throws -> (version: PolicyVersion, queued: Int) {
        let hash = hexString(Crypto.sha256(text))
        let latest = try store.read { try $0.latestPolicyVersion() }
        if let latest, latest.hash == hash { return (latest, 0) }
        let currentTargets = latest.flatMap { (try? JSONParser().parse($0.text))?.objectValue?["targets"] }
        let candidateTargets = (try? JSONParser().parse(text))?.objectValue?["targets"]
        guard currentTargets == candidateTargets else {
            throw GovernanceError.conflict(
                "the targets differ from the running policy's: connectors are built at start, so change targets "
                    + "in the policy file and restart the hub")
        }
        let now = engine.clock.now()
        let affected = try self.affected(store: store, policy: candidate, now: now)
        let held = limit.exceeded(losing: affected.losing.count, of: affected.people)
        if let file = policyFile { try replaceFile(file, with: text) }
        let version = try store.write { w -> PolicyVersion in
            let v = try w.connection.insertPolicyVersion(
                hash: hash, text: text, author: principal, now: now, state: held == nil ? .active : .held,
                heldReason: held)
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "policy.apply", resourceType: "Policy", resourceID: "v\(v.version)",
                    attributes: [
                        "hash:\(hash.prefix(16))", "converge:\(affected.converge.count)",
                        "losing:\(affected.losing.count)",
                    ], requestID: requestID, outcome: held.map { "held: \($0)" } ?? "success"))
            return v
        }
        engine.policies.replace(with: candidate)
        if let held {
            logger.error(
                "policy change held: nothing is queued until an administrator confirms it with "
                    + "POST /admin/policy/versions/\(version.version)/confirm",
                ["policy.version": String(version.version), "reason": held])
            return (version, 0)
        }
        try converge(affected.converge, version: version.version, engine: engine, store: store)
        return (version, affected.converge.count)
    }

    /// Writes `text` to `path` atomically (a temporary file renamed over it).
    static func replaceFile(_ path: String, with text: [UInt8]) throws {
        let temporary = path + ".new"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text)),
            rename(temporary, path) == 0
        else {
            unlink(temporary)
            throw StoreError("the policy file \(path) cannot be written (errno \(errno))", kind: .io)
        }
    }

    /// An administrator confirms the held version `v` (the newest): it is rolled out now.
    /// Returns how many people were queued.
    public static func confirm(
        _ v: Int64, principal: String, requestID: String, engine: ProvisioningEngine, store: any HubStore,
        logger: Logger
    ) throws -> Int {
        guard let latest = try store.read({ try $0.latestPolicyVersion() }), latest.version == v else {
            throw GovernanceError.conflict("only the newest policy version can be confirmed")
        }
        let confirmed = try store.write { w -> Bool in
            guard try w.connection.confirmPolicyVersion(v, by: principal) else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "policy.confirm", resourceType: "Policy", resourceID: "v\(v)",
                    attributes: [latest.heldReason ?? ""], requestID: requestID))
            return true
        }
        guard confirmed else { throw GovernanceError.conflict("policy version \(v) is not held") }
        return try rollOut(latest, engine: engine, store: store, logger: logger)
    }

    @discardableResult
    private static func rollOut(
        _ version: PolicyVersion, engine: ProvisioningEngine, store: any HubStore, logger: Logger
    ) throws -> Int {
        let affected = try self.affected(store: store, policy: engine.policy, now: engine.clock.now())
        try converge(affected.converge, version: version.version, engine: engine, store: store)
        logger.notice(
            "policy version rolled out",
            ["policy.version": String(version.version), "people": String(affected.converge.count)])
        return affected.converge.count
    }

    /// Queues `ids` in batches; the engine decides each again inside the write, so a person
    /// who changed in between is converged to their current state.
    static func converge(_ ids: [String], version: Int64, engine: ProvisioningEngine, store: any HubStore) throws {
        var start = 0
        while start < ids.count {
            let batch = Array(ids[start..<min(ids.count, start + 500)])
            try store.write { w in
                for id in batch {
                    try engine.enqueue(w, personID: id, person: try w.connection.fetch(type: .user, id: id)?.doc)
                }
            }
            start += batch.count
        }
        let now = engine.clock.now()
        try store.write { try $0.connection.markPolicyRolledOut(version, now: now) }
        engine.wake()
    }
}
