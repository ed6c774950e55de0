// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// A reconciliation run as stored.
public struct ReconciliationRunRecord: Sendable, Equatable {
    public let id: String
    public let state: RunState
    public let mode: String
    public let targets: String
    public let categories: String
    public let requestedBy: String
    public let created: Double
    public let finished: Double?
    public let summary: String
    /// The policy version the run judged by (nil for runs before versions were kept).
    public var policyVersion: Int64? = nil

    /// The node that runs it (`Coordination.nodeID`), kept in the summary as `node`; nil for
    /// runs started from the command line and runs from before nodes were recorded.
    public var node: String? {
        guard case .object(let o)? = try? JSONParser().parse(Array(summary.utf8)) else { return nil }
        return o["node"]?.stringValue
    }

    public init(
        id: String, state: RunState, mode: String, targets: String, categories: String, requestedBy: String,
        created: Double, finished: Double?, summary: String, policyVersion: Int64? = nil
    ) {
        self.policyVersion = policyVersion
        self.id = id
        self.state = state
        self.mode = mode
        self.targets = targets
        self.categories = categories
        self.requestedBy = requestedBy
        self.created = created
        self.finished = finished
        self.summary = summary
    }
}

/// One finding as stored.
public struct FindingRecord: Sendable, Equatable {
    public let target: String
    public let category: String
    public let personID: String?
    public let userName: String
    public let displayName: String?
    public let accountID: String?
    public let detail: String?
    /// What the account holds, for findings where no person explains it (orphans): the
    /// entitlement names as the target reports them; empty otherwise.
    public let entitlements: [String]

    public init(
        target: String, category: String, personID: String?, userName: String, displayName: String?, accountID: String?,
        detail: String?, entitlements: [String] = []
    ) {
        self.target = target
        self.category = category
        self.personID = personID
        self.userName = userName
        self.displayName = displayName
        self.accountID = accountID
        self.detail = detail
        self.entitlements = entitlements
    }
}

/// Reconciliation runs, their findings and the accounts each run has seen.
public protocol ReconciliationStore {
    /// The compliance officer's sign-off of a finished run: once, with who, when and a comment.
    /// False when the run was signed off already.
    func signOffRun(id: String, by: String, at: Double, comment: String) throws -> Bool
    func runSignOff(id: String) throws -> (by: String, at: Double, comment: String)?

    func insertRun(_ r: ReconciliationRunRecord) throws

    /// Moves an unfinished or held run on; false (nothing written) when it was failed
    /// meanwhile: a failed run stays failed, whatever its own process still writes.
    @discardableResult
    func updateRun(id: String, state: RunState, summary: String, finished: Double?) throws -> Bool

    func reconciliationRun(id: String) throws -> ReconciliationRunRecord?

    /// Most recent first.
    func reconciliationRuns(limit: Int) throws -> [ReconciliationRunRecord]

    /// Runs left `running` by a process that stopped: they are failed at start-up, and the
    /// targets they held are free. A run that names no node (the command line's) and still
    /// holds a live lease at `now` is running elsewhere: it is left.
    func interruptRuns(now: Double) throws -> Int

    /// Runs not finished yet (queued, running or remediating), oldest first.
    func unfinishedRuns() throws -> [ReconciliationRunRecord]

    /// Fails one run that is still unfinished and still run by `node` (its summary's `node`),
    /// with `reason` in its summary, and frees its targets; false when it finished or moved on
    /// meanwhile.
    func interruptRun(id: String, node: String, reason: String, now: Double) throws -> Bool

    /// Fails one unfinished run that holds no lease at `now` (its process stopped renewing
    /// them: the command line's runs name no node), with `reason`, and drops its lapsed
    /// leases; false otherwise.
    func interruptRunWithoutLease(id: String, reason: String, now: Double) throws -> Bool

    /// Takes every one of `targets` for run `runID` until `until`, or none of them: a target
    /// whose lease another run holds (not lapsed at `now`) is returned, and whatever this call
    /// took is given back, in sorted order (two runs never deadlock). One run per target at a
    /// time, for every node and command line on the store; a process that dies lets its
    /// leases lapse.
    func takeReconciliationLeases(targets: [String], runID: String, until: Double, now: Double) throws -> String?

    /// Moves the run's live leases (not lapsed at `now`) to `until`; returns how many it still
    /// holds. Fewer than it took: one lapsed (another run may hold the target), and a lapsed
    /// lease never comes back.
    func renewReconciliationLeases(runID: String, until: Double, now: Double) throws -> Int

    /// Gives the run's targets back (it finished, failed, or waits for a confirmation).
    func releaseReconciliationLeases(runID: String) throws

    /// The targets held at `now`, each with the run holding it.
    func reconciliationLeases(now: Double) throws -> [String: String]

    func appendFindings(runID: String, firstSeq: Int64, _ findings: [FindingRecord]) throws

    /// Findings by target, then category in `categoryOrder` (most urgent first), then as
    /// found; `body` returning false stops (reports stream them).
    func findings(runID: String, categoryOrder: [String], _ body: (FindingRecord) throws -> Bool) throws

    func markSeen(runID: String, target: String, personIDs: [String]) throws

    func wasSeen(runID: String, target: String, personID: String) throws -> Bool

    func forgetSeen(runID: String) throws
}

extension ReconciliationStore {
    /// Findings by target, then in the order they were recorded.
    public func findings(runID: String, _ body: (FindingRecord) throws -> Bool) throws {
        try findings(runID: runID, categoryOrder: [], body)
    }
}

extension FindingRecord {
    /// Entitlements as stored: a JSON array of strings, nil for none.
    public static func encode(_ entitlements: [String]) -> String? {
        entitlements.isEmpty
            ? nil : String(decoding: JSONWriter().write(.array(entitlements.map { .string($0) })), as: UTF8.self)
    }

    /// The stored form back; what cannot be read is no entitlement (a report is not refused for it).
    public static func decode(_ text: String?) -> [String] {
        guard let text, case .array(let a)? = try? JSONParser().parse(Array(text.utf8)) else { return [] }
        return a.compactMap(\.stringValue)
    }
}
