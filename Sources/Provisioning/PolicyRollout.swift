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
    /// While a version is held, the hub keeps running the newest active one (`parse` reads a
    /// stored text); a held version whose targets differ cannot be run that way, so the hub
    /// refuses to start and says how to proceed.
    public static func startUp(
        text: [UInt8], engine: ProvisioningEngine, store: any HubStore, limit: PolicyChangeLimit, logger: Logger,
        parse: ([UInt8]) throws -> Policy
    ) throws -> PolicyVersion {
        let hash = hexString(Crypto.sha256(text))
        let now = engine.clock.now()
        // A file that matches an older version (an API apply whose file write was lost): the
        // database's newest version stays in force, if it runs on the same targets.
        if let latest = try store.read({ try $0.latestPolicyVersion() }), latest.hash != hash,
            try store.read({ try $0.policyVersions(limit: 1000) }).contains(where: { $0.hash == hash })
        {
            let targets = { (t: [UInt8]) in (try? JSONParser().parse(t))?.objectValue?["targets"] }
            guard targets(latest.text) == targets(text) else {
                throw PolicyError(
                    "the policy file is an older version than the database's newest (\(latest.version)), with other "
                        + "targets: write GET /admin/policy's text to the file, or start with a new policy")
            }
            logger.error(
                "the policy file is an older version than the database's newest; running the newest: "
                    + "rewrite the file from GET /admin/policy", ["policy.version": String(latest.version)])
            if latest.state == .held {
                try keepRunningLastActive(text: text, engine: engine, store: store, parse: parse)
            } else {
                engine.policies.replace(with: try parse(latest.text), version: latest.version)
                if latest.rolledOut == nil { try rollOut(latest, engine: engine, store: store, logger: logger) }
            }
            return latest
        }
        if let latest = try store.read({ try $0.latestPolicyVersion() }), latest.hash == hash {
            if latest.state == .held {
                try keepRunningLastActive(text: text, engine: engine, store: store, parse: parse)
                logger.error(
                    "policy rollout held; confirm it with POST /admin/policy/versions/\(latest.version)/confirm",
                    ["policy.version": String(latest.version), "reason": latest.heldReason ?? ""])
            } else {
                engine.policies.markInForce(latest.version)
                if latest.rolledOut == nil { try rollOut(latest, engine: engine, store: store, logger: logger) }
            }
            return latest
        }
        let affected = try self.affected(store: store, policy: engine.policy, now: now)
        let held = limit.exceeded(losing: affected.losing.count, of: affected.people)
        // Alone in its transaction (`isolated: false`): it locks the audit chain's head row (the
        // version in force) holding no other lock, so writes under way cannot wait on it.
        let version = try store.write(isolated: false, durable: true) { w -> PolicyVersion in
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
            if let held { try announceHeld(w, v, held, engine: engine) }
            return v
        }
        if let held {
            try keepRunningLastActive(text: text, engine: engine, store: store, parse: parse)
            logger.error(
                "policy change held: nothing is queued until an administrator confirms it with "
                    + "POST /admin/policy/versions/\(version.version)/confirm",
                ["policy.version": String(version.version), "reason": held])
            return version
        }
        engine.policies.markInForce(version.version)
        engine.policyPutInForce()
        // Read again after the commit: what other nodes committed meanwhile is seen.
        try rollOut(version, engine: engine, store: store, logger: logger)
        return version
    }

    /// Applies `text` (already parsed as `candidate`) over the API: it becomes the next
    /// version, is written to `policyFile` (so a restart runs it too) and is in force at
    /// once; the people it changes are queued, or the rollout is held past `limit`. Targets
    /// cannot change this way: their connectors are built at start.
    public static func apply(
        text: [UInt8], candidate: Policy, principal: String, requestID: String, engine: ProvisioningEngine,
        store: any HubStore, limit: PolicyChangeLimit, policyFile: String?, logger: Logger
    ) throws -> (version: PolicyVersion, queued: Int, fileError: String?) {
        let hash = hexString(Crypto.sha256(text))
        let latest = try store.read { try $0.latestPolicyVersion() }
        if let latest, latest.hash == hash { return (latest, 0, nil) }
        let currentTargets = latest.flatMap { (try? JSONParser().parse($0.text))?.objectValue?["targets"] }
        let candidateTargets = (try? JSONParser().parse(text))?.objectValue?["targets"]
        guard currentTargets == candidateTargets else {
            throw GovernanceError.conflict(
                "the targets differ from the running policy's: connectors are built at start, so change targets "
                    + "in the policy file and restart the hub")
        }
        let now = engine.clock.now()
        let scanStart = Timestamp.now() - 1  // resources keep system time; a second of margin
        // Who would lose access, for the change guard; who to converge is read again below.
        let affected = try self.affected(store: store, policy: candidate, now: now)
        let held = limit.exceeded(losing: affected.losing.count, of: affected.people)
        // Alone in its transaction (`isolated: false`): it locks the audit chain's head row (the
        // version in force) holding no other lock, so writes under way cannot wait on it.
        let version = try store.write(isolated: false, durable: true) { w -> PolicyVersion in
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
            if let held { try announceHeld(w, v, held, engine: engine) }
            return v
        }
        if held == nil {
            engine.policies.advance(to: candidate, version: version.version)
            engine.policyPutInForce()
        }
        // After the commit: a file that does not match the newest version is noticed at the
        // next start (the database wins); a version without its file would not be.
        var fileError: String? = nil
        if let file = policyFile {
            do {
                try replaceFile(file, with: text)
            } catch {
                fileError = "\(error)"
                logger.error("policy applied but the policy file was not rewritten", ["error": "\(error)"])
            }
        }
        if let held {
            logger.error(
                "policy change held: nothing is queued until an administrator confirms it with "
                    + "POST /admin/policy/versions/\(version.version)/confirm",
                ["policy.version": String(version.version), "reason": held])
            return (version, 0, fileError)
        }
        // Everyone whose accounts differ under the version in force, read after its commit:
        // what committed before it (a job's result, a write) is seen here, and what commits
        // after it was decided under it (on PostgreSQL every write reads the version in force
        // under the lock this version's transaction held). People written while the first
        // scan ran are queued too (on SQLite a write may commit just after this read).
        let settled = try self.affected(store: store, policy: engine.policy, now: engine.clock.now())
        let late = try peopleWritten(since: scanStart, store: store)
        let all = Array(Set(settled.converge).union(late))
        try converge(all, version: version.version, engine: engine, store: store)
        return (version, settled.converge.count, fileError)
    }

    /// The people written since `since` (system time), and the members of groups written
    /// since: what was decided meanwhile under a policy that is no longer in force.
    static func peopleWritten(since: Double, store: any HubStore) throws -> [String] {
        try store.read { conn -> [String] in
            var ids = Set(try conn.modifiedIDs(type: .user, since: since))
            for g in try conn.modifiedGroups(since: since) { ids.formUnion(try conn.members(ofGroup: g).map(\.id)) }
            return ids.sorted()
        }
    }

    /// Writes `text` to `path` atomically and durably: a temporary file, synced, renamed
    /// over it, and the folder synced so the rename survives a power cut.
    static func replaceFile(_ path: String, with text: [UInt8]) throws {
        // A name of this process's own: nodes sharing one policy file never write one temporary.
        let temporary = path + ".new-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StoreError("the policy file \(temporary) cannot be created (errno \(errno))") }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StoreError("the policy file \(path) cannot be written (errno \(errno))", kind: .io)
        }
        let parent = (path as NSString).deletingLastPathComponent
        let folder = open(parent.isEmpty ? "." : parent, O_RDONLY | O_CLOEXEC)
        if folder >= 0 {
            _ = fsync(folder)
            close(folder)
        }
    }

    /// Announces a held version, in the write that stores it.
    private static func announceHeld(
        _ w: any StoreWriter, _ v: PolicyVersion, _ held: String, engine: ProvisioningEngine
    )
        throws
    {
        try engine.notifier?.announce(w, .policyHeld, ["version": String(v.version), "reason": held])
    }

    /// Puts the newest active version back in force while a newer one is held: a held
    /// policy must not reach anyone, not even one person at a time through their next change.
    static func keepRunningLastActive(
        text: [UInt8], engine: ProvisioningEngine, store: any HubStore, parse: ([UInt8]) throws -> Policy
    ) throws {
        let versions = try store.read { try $0.policyVersions(limit: 1000) }
        guard let active = versions.first(where: { $0.state == .active }),
            let stored = try store.read({ try $0.policyVersion(active.version) })
        else {
            throw PolicyError(
                "the policy file's change is held and no earlier version was ever active: raise policyChangeLimit "
                    + "for this start, or start with a policy that takes access from fewer people")
        }
        let targets = { (t: [UInt8]) in (try? JSONParser().parse(t))?.objectValue?["targets"] }
        guard targets(stored.text) == targets(text) else {
            throw PolicyError(
                "the policy file's change is held (it takes access from more people than policyChangeLimit) and it "
                    + "changes targets, so version \(active.version) cannot run meanwhile: restore the previous "
                    + "policy file, or raise policyChangeLimit for this start")
        }
        engine.policies.replace(with: try parse(stored.text), version: active.version)
    }

    /// An administrator confirms the held version `v` (the newest): it is rolled out now.
    /// Returns how many people were queued.
    public static func confirm(
        _ v: Int64, principal: String, requestID: String, engine: ProvisioningEngine, store: any HubStore,
        logger: Logger, parse: ([UInt8]) throws -> Policy
    ) throws -> Int {
        guard let latest = try store.read({ try $0.latestPolicyVersion() }), latest.version == v else {
            throw GovernanceError.conflict("only the newest policy version can be confirmed")
        }
        let policy = try parse(latest.text)
        let confirmed = try store.write(isolated: false, durable: true) { w -> Bool in
            // Still the newest inside the write: an apply may have added a version meanwhile.
            guard try w.connection.latestPolicyVersion()?.version == v else { return false }
            guard try w.connection.confirmPolicyVersion(v, by: principal) else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "policy.confirm", resourceType: "Policy", resourceID: "v\(v)",
                    attributes: [latest.heldReason ?? ""], requestID: requestID))
            return true
        }
        guard confirmed else { throw GovernanceError.conflict("policy version \(v) is not the newest held one") }
        engine.policies.advance(to: policy, version: v)
        engine.policyPutInForce()
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
