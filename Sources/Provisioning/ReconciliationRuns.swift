// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store
import Synchronization

/// A reconciliation request that cannot be accepted (the API maps it to a SCIM error).
public enum ReconciliationRequestError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case conflict(String)
    case notFound

    public var description: String {
        switch self {
        case .invalid(let m), .conflict(let m): return m
        case .notFound: return "no reconciliation run with this id"
        }
    }
}

/// Reconciliation runs: started over the admin API, on a schedule, or from the command
/// line; each on its own thread, one run per target at a time; state, per-target results
/// and findings durable in the store; every start, confirmation and finish audited.
public final class ReconciliationRuns: Sendable {
    public enum Mode: String, Sendable { case report, remediate }

    public let reconciler: Reconciler
    let store: any HubStore
    let logger: Logger
    /// Wakes the engine after remediation enqueued jobs.
    let wake: @Sendable () -> Void
    /// Announces runs that found leavers still enabled or separation-of-duties violations.
    let notifier: Notifier?
    /// This process's node (`Coordination.nodeID`), recorded in the summary of every run it
    /// runs so the leader can fail the run when the node dies; nil (the command line): none.
    let nodeID: String?
    private let progress = Mutex<[String: [String: Int]]>([:])
    private let working = Mutex<Set<String>>([])

    public init(
        reconciler: Reconciler, store: any HubStore, logger: Logger, notifier: Notifier? = nil, nodeID: String? = nil,
        wake: @escaping @Sendable () -> Void = {}
    ) {
        self.nodeID = nodeID
        self.reconciler = reconciler
        self.store = store
        self.logger = logger
        self.notifier = notifier
        self.wake = wake
    }

    /// Fails runs a stopped process left unfinished (call at start-up).
    public func failInterrupted() throws {
        let n = try store.write { try $0.connection.interruptRuns(now: Date().timeIntervalSince1970) }
        if n > 0 { logger.warning("reconciliation runs interrupted by a restart marked failed", ["runs": String(n)]) }
    }

    /// Fails the unfinished runs of nodes that are no longer alive (several nodes on one
    /// store; the leader calls it every few seconds), and runs that name no node (the command
    /// line's) once their leases on the targets lapsed. `aliveNodes` is asked only when some
    /// run names a node other than this one. Each run failed is audited (`reconcile.interrupt`).
    /// Returns how many.
    @discardableResult
    public func failRunsOfStoppedNodes(aliveNodes: () throws -> Set<String>) throws -> Int {
        let unfinished = try store.read { try $0.unfinishedRuns() }
        // Runs that name no node (the command line's) are failed once their leases lapsed.
        var failed = try failRunsWithoutLease(unfinished.filter { $0.node == nil })
        let others = unfinished.compactMap { run -> (ReconciliationRunRecord, String)? in
            guard let node = run.node, node != nodeID else { return nil }
            return (run, node)
        }
        guard !others.isEmpty else { return failed }
        let alive = try aliveNodes()
        for (run, node) in others where !alive.contains(node) {
            let reason = Self.interruptedReason(node: node)
            let marked = try store.write { w in
                guard
                    try w.connection.interruptRun(
                        id: run.id, node: node, reason: reason, now: Date().timeIntervalSince1970)
                else { return false }
                try AuditLog.append(
                    w,
                    .now(
                        principal: "scheduler", action: "reconcile.interrupt", resourceType: "Reconciliation",
                        resourceID: run.id, attributes: Self.strings(run.targets) + ["node:\(node)"],
                        requestID: run.id, outcome: "failed: \(reason)"))
                return true
            }
            guard marked else { continue }
            failed += 1
            logger.warning(
                "reconciliation run of a stopped node marked failed",
                ["event": "reconcile.interrupt", "run": run.id, "node": node])
        }
        return failed
    }

    /// Fails the runs of `candidates` that hold no lease any more, each audited as
    /// `reconcile.interrupt` (attributes: the targets and `node:none`).
    private func failRunsWithoutLease(_ candidates: [ReconciliationRunRecord]) throws -> Int {
        var failed = 0
        for run in candidates {
            let reason = Self.lapsedReason
            let marked = try store.write { w in
                guard
                    try w.connection.interruptRunWithoutLease(
                        id: run.id, reason: reason, now: Date().timeIntervalSince1970)
                else { return false }
                try AuditLog.append(
                    w,
                    .now(
                        principal: "scheduler", action: "reconcile.interrupt", resourceType: "Reconciliation",
                        resourceID: run.id, attributes: Self.strings(run.targets) + ["node:none"],
                        requestID: run.id, outcome: "failed: \(reason)"))
                return true
            }
            guard marked else { continue }
            failed += 1
            logger.warning(
                "reconciliation run whose process stopped marked failed",
                ["event": "reconcile.interrupt", "run": run.id])
        }
        return failed
    }

    /// The reason a run of the command line is failed with once its leases lapsed.
    public static let lapsedReason =
        "interrupted: the process running it stopped (its lease on the targets lapsed)"

    /// The reason a run whose node stopped is failed with.
    public static func interruptedReason(node: String) -> String {
        "interrupted: node \(node) stopped during the run"
    }

    /// Validates and starts a run; returns its id. `wait` runs it on the calling thread (CLI, tests).
    public func start(
        targets requested: [String]?, mode: Mode, categories requestedCategories: [String]?, principal: String,
        requestID: String,
        wait: Bool = false, onProgress: (@Sendable (String, Int) -> Void)? = nil
    ) throws -> String {
        let policy = reconciler.policy
        let names = requested ?? policy.enabledTargets.map(\.name)
        guard !names.isEmpty else {
            throw ReconciliationRequestError.invalid("no targets to reconcile (the policy enables none)")
        }
        for n in names {
            guard let t = policy.target(n) else {
                throw ReconciliationRequestError.invalid("'targets': no target named '\(n)'")
            }
            guard t.enabled else { throw ReconciliationRequestError.invalid("'targets': target '\(n)' is disabled") }
        }
        guard Set(names).count == names.count else {
            throw ReconciliationRequestError.invalid("'targets' names a target twice")
        }
        var categories = FindingCategory.allCases
        if let cs = requestedCategories {
            categories = try cs.map { c throws -> FindingCategory in
                guard let f = FindingCategory(rawValue: c) else {
                    throw ReconciliationRequestError.invalid(
                        "'categories': unknown category '\(c)' "
                            + "(\(FindingCategory.allCases.map(\.rawValue).joined(separator: ", ")))"
                    )
                }
                return f
            }
        }
        // The version the engine runs: the newest one (the hub records its policy at start).
        // Read before the targets are reserved, so a storage failure leaves nothing reserved.
        let policyVersion = try store.read { try $0.latestPolicyVersion()?.version }
        let id = UUIDv7.make()
        let now = Date().timeIntervalSince1970
        let record = ReconciliationRunRecord(
            id: id, state: .queued, mode: mode.rawValue, targets: Self.jsonArray(names),
            categories: Self.jsonArray(categories.map(\.rawValue)), requestedBy: principal, created: now, finished: nil,
            summary: JSONWriter().string(.object(ownSummary())), policyVersion: policyVersion)
        try store.write { w in
            try Self.takeTargets(w, names, runID: id)
            try w.connection.insertRun(record)
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "reconcile.start", resourceType: "Reconciliation", resourceID: id,
                    attributes: names.map { "\($0):\(mode.rawValue)" }, requestID: requestID))
        }
        let lease = RunLease(runID: id, targets: names.count, store: store, logger: logger)
        let cats = Set(categories)
        working.withLock { _ = $0.insert(id) }
        let body: @Sendable () -> Void = { [self] in
            self.execute(
                id: id, targets: names, mode: mode, categories: cats, principal: principal, lease: lease,
                onProgress: onProgress)
            self.working.withLock { _ = $0.remove(id) }
        }
        if wait {
            body()
        } else {
            let t = Thread(block: body)
            t.name = "reconcile"
            t.start()
        }
        return id
    }

    /// Applies a run held by the mass-change guard.
    public func confirm(id: String, principal: String, requestID: String, wait: Bool = false) throws {
        guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else {
            throw ReconciliationRequestError.notFound
        }
        guard run.state == .awaitingConfirmation else {
            throw ReconciliationRequestError.conflict("the run is \(run.state), not awaiting confirmation")
        }
        let names = Self.strings(run.targets)
        var summary = Self.object(run.summary)
        summary["confirmedBy"] = .string(principal)
        // The remediation runs here, whichever node compared.
        summary["node"] = nodeID.map { .string($0) }
        let text = JSONWriter().string(.object(summary))
        try store.write { w in
            // The targets first: a confirmation on another node at the same instant waits for
            // them, then reads the run as it left it (remediating) and is refused below.
            try Self.takeTargets(w, names, runID: id)
            let now = try w.connection.reconciliationRun(id: id)?.state
            guard now == .awaitingConfirmation else {
                throw ReconciliationRequestError.conflict(
                    "the run is \(now.map { "\($0)" } ?? "gone"), not awaiting confirmation")
            }
            try w.connection.updateRun(id: id, state: .remediating, summary: text, finished: nil)
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "reconcile.confirm", resourceType: "Reconciliation", resourceID: id,
                    attributes: names, requestID: requestID))
        }
        let lease = RunLease(runID: id, targets: names.count, store: store, logger: logger)
        let fixed = summary
        working.withLock { _ = $0.insert(id) }
        let body: @Sendable () -> Void = { [self] in
            self.remediateAll(id: id, targets: names, summary: fixed, principal: principal, lease: lease)
            self.working.withLock { _ = $0.remove(id) }
        }
        if wait { body() } else { Thread(block: body).start() }
    }

    /// The runs this process is working on now (comparing or remediating).
    public var workingOn: Set<String> { working.withLock { $0 } }

    /// The run's record with live progress (accounts listed per target while running).
    public func status(id: String) throws -> JSONObject {
        guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else {
            throw ReconciliationRequestError.notFound
        }
        var o = Self.describe(run)
        o["signOff"] = try Self.signOffJSON(id, store)
        if let live = progress.withLock({ $0[id] }) {
            var p = JSONObject()
            for (k, v) in live.sorted(by: { $0.key < $1.key }) { p[k] = .int(v) }
            o["accountsListed"] = .object(p)
        }
        return o
    }

    /// Signs off a finished run: the compliance officer attests to having read the report.
    /// Once per run; audited.
    public func signOff(id: String, comment: String, principal: String, requestID: String, now: Double) throws {
        let text = comment.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty, text.utf8.count <= 2000 else {
            throw ReconciliationRequestError.invalid("'comment' is required (at most 2,000 characters)")
        }
        guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else {
            throw ReconciliationRequestError.notFound
        }
        guard run.state == .done else {
            throw ReconciliationRequestError.conflict(
                "only a finished run can be signed off (this one is \(run.state))")
        }
        try store.write { w in
            guard try w.connection.signOffRun(id: id, by: principal, at: now, comment: text) else {
                throw ReconciliationRequestError.conflict("this run was signed off already")
            }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "reconcile.sign-off", resourceType: "Reconciliation",
                    resourceID: id, requestID: requestID))
        }
    }

    static func signOffJSON(_ id: String, _ store: any HubStore) throws -> JSONValue {
        guard let s = try store.read({ try $0.runSignOff(id: id) }) else { return .null }
        return .object(
            JSONObject(["by": .string(s.by), "at": .string(time(s.at)), "comment": .string(s.comment)]))
    }

    public static func describe(_ run: ReconciliationRunRecord) -> JSONObject {
        JSONObject([
            "id": .string(run.id),
            "state": .string(run.state.rawValue),
            "mode": .string(run.mode),
            "targets": (try? JSONParser().parse(Array(run.targets.utf8))) ?? .array([]),
            "categories": (try? JSONParser().parse(Array(run.categories.utf8))) ?? .array([]),
            "requestedBy": .string(run.requestedBy),
            "created": .string(Self.time(run.created)),
            "finished": run.finished.map { .string(Self.time($0)) } ?? .null,
            "summary": .object(object(run.summary)),
            "policyVersion": run.policyVersion.map { .number(JSONNumber(Int($0))) } ?? .null,
        ])
    }

    // MARK: - Running

    private func execute(
        id: String, targets: [String], mode: Mode, categories: Set<FindingCategory>, principal: String,
        lease: RunLease, onProgress: (@Sendable (String, Int) -> Void)?
    ) {
        var summary = ownSummary()
        summary["targets"] = .object(JSONObject())
        var results: [String: TargetComparison] = [:]
        var nextSeq: Int64 = 0
        update(id, .running, summary)
        for name in targets {
            guard let t = reconciler.policy.target(name) else { continue }
            let started = Date()
            var entry: JSONObject
            do {
                let c = try reconciler.compare(runID: id, target: t, categories: categories, nextSeq: &nextSeq) {
                    listed in
                    self.progress.withLock { $0[id, default: [:]][name] = listed }
                    onProgress?(name, listed)
                }
                results[name] = c
                entry = Self.describe(c)
                entry["state"] = .string("done")
            } catch {
                // One unreachable target fails alone; the others are still reconciled.
                entry = JSONObject([
                    "state": .string("failed"), "reason": .string(String(describing: error).prefix(300).description),
                ])
                logger.warning("reconciliation of a target failed", ["target": name, "run": id])
            }
            entry["seconds"] = .number(JSONNumber((Date().timeIntervalSince(started) * 100).rounded() / 100))
            summary.setTarget(name, entry)
            update(id, .running, summary)
        }
        progress.withLock { $0[id] = nil }
        guard mode == .remediate else {
            finish(id, summary, principal: principal, targets: targets, lease: lease)
            return
        }
        // The mass-change guard: too many disables or deletes waits for a person to confirm.
        let held = results.filter {
            Reconciler.exceedsGuard($0.value, reconciler.policy.target($0.key)?.reconciliation ?? ReconciliationRules())
        }.keys.sorted()
        if !held.isEmpty {
            summary["reason"] = .string(
                "mass-change guard: \(held.joined(separator: ", ")) would disable or delete more than allowed; "
                    + "POST /admin/reconciliations/\(id)/confirm to apply"
            )
            summary["heldTargets"] = .array(held.map { .string($0) })
            lease.end()
            update(id, .awaitingConfirmation, summary, releasing: true)
            logger.notice("reconciliation waits for confirmation (mass-change guard)", ["run": id])
            return
        }
        // The targets stay leased from comparison through remediation; finish gives them back.
        remediateAll(id: id, targets: targets, summary: summary, principal: principal, lease: lease)
    }

    private func remediateAll(
        id: String, targets: [String], summary start: JSONObject, principal: String, lease: RunLease
    ) {
        var summary = start
        for name in targets {
            guard let t = reconciler.policy.target(name),
                var entry = summary["targets"]?.objectValue?[name]?.objectValue,
                entry["state"]?.stringValue == "done"
            else { continue }
            // The run must still hold every target, and not have been failed meanwhile (its node
            // taken for dead, its lease lapsed while cut off): another run may hold the target
            // now, and its findings are fresher than these.
            if !lease.stillHeld() {
                entry["remediationError"] = .string(RunLease.lostReason)
                summary.setTarget(name, entry)
                continue
            }
            do {
                entry["remediated"] = .int(try reconciler.remediate(runID: id, target: t, principal: principal))
            } catch {
                entry["remediationError"] = .string(String(describing: error).prefix(300).description)
            }
            summary.setTarget(name, entry)
        }
        wake()
        finish(id, summary, principal: principal, targets: targets, lease: lease)
    }

    private func finish(_ id: String, _ summary: JSONObject, principal: String, targets: [String], lease: RunLease) {
        lease.end()
        let failed =
            summary["targets"]?.objectValue?.members.contains {
                $0.value.objectValue?["state"]?.stringValue == "failed"
            } ?? false
        let text = JSONWriter().string(.object(summary))
        let notifier = self.notifier
        let finished = Result {
            try store.write { w in
                try w.connection.releaseReconciliationLeases(runID: id)
                // Failed meanwhile as interrupted (this node was taken for dead): that stays.
                guard
                    try w.connection.updateRun(
                        id: id, state: .done, summary: text, finished: Date().timeIntervalSince1970)
                else { return }
                try AuditLog.append(
                    w,
                    .now(
                        principal: principal, action: "reconcile.finish", resourceType: "Reconciliation",
                        resourceID: id, attributes: targets, requestID: id,
                        outcome: failed ? "done with failed targets" : "done"))
                let (leavers, sod) = (Self.total(summary, .leaverEnabled), Self.total(summary, .sodViolation))
                if leavers + sod > 0, let notifier {
                    let version = try w.connection.reconciliationRun(id: id)?.policyVersion
                    try notifier.announce(
                        w, .reconciliationFindings,
                        [
                            "runId": id, "leaverEnabled": String(leavers), "sodViolations": String(sod),
                            "policyVersion": version.map { String($0) } ?? "none",
                        ])
                }
            }
        }
        if case .failure(let error) = finished {
            logger.error(
                "reconciliation result cannot be stored", ["run": id, "error": "\(error)".prefix(200).description])
        }
        notifier?.wake()
    }

    /// Saves the run's progress; `releasing` gives its targets back in the same write (it
    /// waits for a person now). Best effort: a store outage leaves the previous progress, and
    /// the leases lapse by themselves.
    private func update(_ id: String, _ state: RunState, _ summary: JSONObject, releasing: Bool = false) {
        let text = JSONWriter().string(.object(summary))
        _ = try? store.write { w in
            if releasing { try w.connection.releaseReconciliationLeases(runID: id) }
            // Failed meanwhile as interrupted (this node was taken for dead): that stays.
            try w.connection.updateRun(id: id, state: state, summary: text, finished: nil)
        }
    }

    /// A new summary naming the node that runs the run.
    private func ownSummary() -> JSONObject {
        var o = JSONObject()
        if let nodeID { o["node"] = .string(nodeID) }
        return o
    }

    // MARK: - One run per target

    /// Leases `names` to the run in the caller's write, or throws a conflict naming the target
    /// another run holds (on any node, or the command line), leaving the write to roll back.
    static func takeTargets(_ w: any StoreWriter, _ names: [String], runID: String) throws {
        let now = Date().timeIntervalSince1970
        if let taken = try w.connection.takeReconciliationLeases(
            targets: names, runID: runID, until: now + RunLease.seconds, now: now)
        {
            throw ReconciliationRequestError.conflict("a reconciliation of target '\(taken)' is already running")
        }
    }

    // MARK: - Helpers

    /// The findings of `category` over every target of a run's summary.
    static func total(_ summary: JSONObject, _ category: FindingCategory) -> Int {
        (summary["targets"]?.objectValue?.members ?? []).reduce(0) { sum, t in
            sum + Int(t.value.objectValue?["counts"]?.objectValue?[category.rawValue]?.numberValue?.int64 ?? 0)
        }
    }

    static func describe(_ c: TargetComparison) -> JSONObject {
        var counts = JSONObject()
        for cat in FindingCategory.allCases { counts[cat.rawValue] = .int(c.counts[cat] ?? 0) }
        return JSONObject([
            "accounts": .int(c.accountsListed), "counts": .object(counts),
            "plannedDisables": .int(c.plannedDisables), "plannedDeletes": .int(c.plannedDeletes),
        ])
    }

    static func jsonArray(_ items: [String]) -> String { JSONWriter().string(.array(items.map { .string($0) })) }
    static func strings(_ json: String) -> [String] {
        ((try? JSONParser().parse(Array(json.utf8)))?.arrayValue ?? []).compactMap(\.stringValue)
    }
    static func object(_ json: String) -> JSONObject {
        (try? JSONParser().parse(Array(json.utf8)))?.objectValue ?? JSONObject()
    }

    static func time(_ t: Double) -> String { Timestamp.format(t) }
}

/// A run's hold on its targets in the store (`reconciliation_leases`), renewed on its own
/// thread while the run works, so that a target listing that takes minutes cannot let it
/// lapse; a process that dies stops renewing and the targets are free a lease later.
final class RunLease: Sendable {
    /// How long a lease holds without renewal, and how often it is renewed.
    static let seconds = 60.0
    static let renewEvery = 15.0
    static let lostReason =
        "not remediated: the run lost its lease on the target (the hub could not renew it for "
        + "\(Int(seconds)) s) and another run may hold it; start a new run"

    let runID: String
    private let targets: Int
    private let store: any HubStore
    private let logger: Logger
    private let stop = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let lostFlag = Atomic<Bool>(false)
    private let endedFlag = Atomic<Bool>(false)

    /// True once a renewal found a target no longer held by this run.
    var lost: Bool { lostFlag.load(ordering: .relaxed) }

    init(runID: String, targets: Int, store: any HubStore, logger: Logger) {
        self.runID = runID
        self.targets = targets
        self.store = store
        self.logger = logger
        let t = Thread { [self] in
            while self.stop.wait(timeout: .now() + Self.renewEvery) == .timedOut { self.renew() }
            self.stopped.signal()
        }
        t.name = "reconcile-lease"
        t.start()
    }

    private func renew() {
        let id = runID
        let now = Date().timeIntervalSince1970
        do {
            let held = try store.write(isolated: true, durable: false) {
                try $0.connection.renewReconciliationLeases(runID: id, until: now + Self.seconds, now: now)
            }
            if held < targets, !lostFlag.exchange(true, ordering: .relaxed) {
                logger.error("reconciliation run lost its lease on a target; it will not remediate", ["run": id])
            }
        } catch {
            // The lease holds for `seconds`: three more tries before it can lapse.
            logger.warning(
                "reconciliation run cannot renew its lease; retried",
                ["run": id, "error": String(describing: error).prefix(200).description])
        }
    }

    /// Whether the run still holds every target (renewing them now) and has not been failed
    /// meanwhile; checked before each target's remediation. A storage failure counts as no:
    /// remediating without knowing could interleave with another run.
    func stillHeld() -> Bool {
        guard !lost else { return false }
        let (id, count) = (runID, targets)
        let now = Date().timeIntervalSince1970
        let held = try? store.write(isolated: true, durable: false) { w -> Bool in
            let live = try w.connection.renewReconciliationLeases(runID: id, until: now + Self.seconds, now: now)
            return try live == count && w.connection.reconciliationRun(id: id)?.state != .failed
        }
        if held == true { return true }
        if !lostFlag.exchange(true, ordering: .relaxed) {
            logger.error("reconciliation run lost its lease on a target; it will not remediate", ["run": id])
        }
        return false
    }

    /// Stops renewing, before the run's last write gives the targets back with its state (if
    /// that write fails, they lapse). Once; later calls return at once.
    func end() {
        guard !endedFlag.exchange(true, ordering: .relaxed) else { return }
        stop.signal()
        stopped.wait()
    }
}

extension JSONObject {
    fileprivate mutating func setTarget(_ name: String, _ entry: JSONObject) {
        var targets = self["targets"]?.objectValue ?? JSONObject()
        targets[name] = .object(entry)
        self["targets"] = .object(targets)
    }
}
