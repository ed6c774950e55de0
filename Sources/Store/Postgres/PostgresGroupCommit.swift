// SPDX-License-Identifier: Apache-2.0
import Foundation
import Postgres
import Synchronization
import HubLog

/// Writes folded into shared transactions ("group commit"), as SQLite's single writer does,
/// but on several connections ("lanes") at once.
///
/// Why: every audited write chains its entries onto the one audit chain under a row lock on
/// the chain's head, and that lock is held until the commit's WAL flush. One transaction per
/// write would serialise the whole cluster on one flush per write (measured: ~1,100 durable
/// creates/s). A lane runs up to `maxBatch` waiting writes in one transaction, each in its
/// own savepoint, and chains all their entries at the end (`sealAudit`), so the lock is held
/// for two statements and one flush per batch, and lanes do the rest of their work in
/// parallel.
///
/// A write that fails undoes only its savepoint; the others commit. A write that hit a
/// deadlock or serialization failure runs again in a later batch. When the transaction as a
/// whole fails before COMMIT (the connection broke), nothing of it is stored, and its writes
/// run again; a failed COMMIT cannot be known to have failed, so its writes report the error.
final class PostgresGroupCommit: @unchecked Sendable {
    // @unchecked Sendable: the queue's lock also guards `delayed`.
    typealias Job = WriteQueue<PostgresWriteContext>.Job
    private let queue = WriteQueue<PostgresWriteContext>()

    /// Most writes in one transaction: larger batches hold their row locks longer. Stay under
    /// 64: each write's savepoint takes a subtransaction id, and past 64 in one transaction
    /// PostgreSQL's per-backend cache overflows and every snapshot in the cluster gets slower.
    static let maxBatch = 32
    /// How many times a write that met a deadlock, a serialization failure or a broken
    /// connection runs in all.
    static let maxAttempts = 5

    private let pool: PostgresPool
    /// Puts a newer policy version in force before a batch's writes run (`adoptPolicies`).
    let policyAdopter = Mutex<(@Sendable (Int64?, () throws -> PolicyVersion?) throws -> Int64?)?>(nil)
    /// The newest policy version a transaction found in force on the head row.
    private let newestSeen = Mutex<Int64?>(nil)
    private let logger: Logger
    /// Writes pausing before they run again (`again`).
    private var delayed = 0
    private let lanesDone = DispatchGroup()

    init(pool: PostgresPool, lanes: Int, logger: Logger) {
        self.pool = pool
        self.logger = logger
        for i in 0..<max(1, lanes) {
            lanesDone.enter()
            let t = Thread { [self] in
                self.lane()
                self.lanesDone.leave()
            }
            t.name = "store-write-\(i)"
            t.start()
        }
    }

    func submit<T>(isolated: Bool, durable: Bool, _ body: @escaping (PostgresWriteContext) throws -> T) throws -> T {
        try queue.submit(isolated: isolated, durable: durable, body)
    }

    /// Lets the lanes finish what is queued, then ends them.
    func stop() {
        queue.condition.lock()
        queue.stopping = true
        queue.condition.broadcast()
        queue.condition.unlock()
        lanesDone.wait()
    }

    private func lane() {
        while true {
            queue.condition.lock()
            // At stop, lanes end once nothing is queued or on its way back (a retry's pause).
            while queue.pending.isEmpty && (!queue.stopping || delayed > 0) { queue.condition.wait() }
            if queue.pending.isEmpty {
                queue.condition.unlock()
                return
            }
            let batch = queue.takeBatch(limit: Self.maxBatch)
            // More is waiting: another lane may start on it while this one works.
            if !queue.pending.isEmpty { queue.condition.signal() }
            queue.condition.unlock()
            run(batch)
        }
    }

    /// Queues `jobs` again, ahead of newer writes, after a short random pause (so two writes
    /// that deadlocked do not meet again at once); a job out of attempts fails with the error
    /// it last met.
    private func again(_ jobs: [Job]) {
        var requeued: [Job] = []
        for j in jobs {
            j.attempts += 1
            if j.attempts < Self.maxAttempts {
                requeued.append(j)
            } else {
                j.finish(
                    .failure(Self.mapped(j.result.failureError ?? StoreError("write retried too often", kind: .busy))))
            }
        }
        guard let most = requeued.map(\.attempts).max() else { return }
        logger.debug("store: writes run again", ["writes": String(requeued.count)])
        queue.condition.lock()
        delayed += requeued.count
        queue.condition.unlock()
        let pause = Double.random(in: 0.001...(0.010 * Double(most)))
        let back = requeued
        DispatchQueue.global().asyncAfter(deadline: .now() + pause) { [self] in
            queue.condition.lock()
            delayed -= back.count
            queue.pending.insert(contentsOf: back, at: 0)
            queue.condition.signal()
            queue.condition.unlock()
        }
    }

    /// A write that may run again: a deadlock or serialization failure, or a connection that
    /// broke before COMMIT (PostgreSQL then rolled the transaction back).
    private func isRetryable(_ error: any Error) -> Bool {
        if let changed = error as? PolicyVersionChanged {
            newestSeen.withLock { $0 = max($0 ?? 0, changed.newest) }
            return true
        }
        guard let e = error as? PostgresError else { return false }
        return e.isRetryableTransaction || e.isConnectionLost
    }

    private static func mapped(_ error: any Error) -> any Error { StoreError.mappedPostgres(error) }

    /// Runs `batch` in one transaction. Writes sharing it each get the savepoint `job`, moved
    /// on with one round trip per write (`RELEASE SAVEPOINT job; SAVEPOINT job`); a write alone
    /// needs none: its failure rolls the transaction back. No write is answered before the
    /// transaction ends: a write that failed may have failed on what a batch-mate did, which
    /// counts only if it commits.
    private func run(_ batch: [Job]) {
        let shared = batch.count > 1
        // Explicit, whatever the database's defaults say: READ COMMITTED (the chain head's
        // lock re-reads the newest head), a flush per commit unless no write needs one, and a
        // node that stalls mid-transaction (a paused VM) gives the head's lock up in 15 s.
        var begin =
            "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; SET LOCAL idle_in_transaction_session_timeout = '15s'"
        begin +=
            batch.contains(where: \.durable)
            ? "; SET LOCAL synchronous_commit = on" : "; SET LOCAL synchronous_commit = off"
        if shared { begin += "; SAVEPOINT job" }
        let c: PostgresConnection
        do {
            c = try pool.checkoutBegun(begin, "begin write")
        } catch {
            // PostgreSQL cannot be reached: every write fails as unavailable (503), at once.
            for j in batch { j.finish(.failure(Self.mapped(error))) }
            return
        }
        defer { pool.checkin(c) }
        var ran: [Job] = []
        var failed: [Job] = []  // their own error, answered once the transaction ends
        var retry: [Job] = []
        var committing = false
        var xid: String?
        var next = 0
        do {
            // A node with a policy: the writes decide under the version it runs, after putting
            // in force the newest one a transaction found on the head row (a node that cannot
            // run it fails them all: it is not ready). The version is checked again when the
            // transaction seals (`sealAudit`), on the row a new version's transaction moves.
            var running: Int64? = nil
            if let adopt = policyAdopter.withLock({ $0 }) {
                let session = PostgresSession(c, locksResources: true)
                let newest = newestSeen.withLock { $0 }
                running = try adopt(newest) { try session.policyVersion(newest ?? 0) } ?? 0
            }
            let ctx = PostgresWriteContext(
                session: PostgresSession(c, locksResources: true), policyVersionInForce: running)
            while next < batch.count {
                let job = batch[next]
                if shared && next > 0 { try c.execute("RELEASE SAVEPOINT job; SAVEPOINT job", context: "savepoint") }
                next += 1
                let appended = ctx.pendingAudit.count
                var error: (any Error)? = nil
                do {
                    job.result = .success(try job.body(ctx))
                    // A body that swallowed a database error left the transaction aborted: its
                    // write cannot stand (alone, the guard before COMMIT catches it).
                    if shared && !c.isInOpenTransaction {
                        error = StoreError("a write went on after a database error", kind: .io)
                    }
                } catch let e {
                    error = e
                }
                guard let error else {
                    ran.append(job)
                    continue
                }
                // A write alone fails the transaction (below); a write sharing it has only its
                // savepoint undone, unless the transaction can no longer go on.
                guard shared, c.isInTransaction else {
                    next -= 1
                    throw error
                }
                ctx.pendingAudit.removeSubrange(appended...)
                do {
                    try c.execute("ROLLBACK TO SAVEPOINT job", context: "savepoint")
                } catch {
                    next -= 1  // this write goes with the batch
                    throw error
                }
                job.result = .failure(isRetryable(error) ? error : Self.mapped(error))
                if isRetryable(error) { retry.append(job) } else { failed.append(job) }
            }
            // A body that swallowed an error outside a savepoint left the transaction aborted:
            // its COMMIT would quietly roll back, so nothing may be reported written.
            guard c.isInOpenTransaction else { throw StoreError("the transaction was aborted", kind: .io) }
            xid = try ctx.sealAudit()
            if xid == nil && batch.contains(where: \.durable) {
                try c.query("SELECT pg_current_xact_id()::text", context: "transaction id") { xid = $0.text(0) }
            }
            committing = true
            try c.execute("COMMIT", context: "commit")
        } catch let lost as PostgresError where committing && lost.isConnectionLost && xid != nil {
            // The COMMIT was sent and its answer lost: ask the database what became of it.
            switch outcome(ofTransaction: xid ?? "") {
            case "committed":
                logger.warning("store: a commit's answer was lost; the transaction committed")
                for j in ran + failed { j.done.signal() }
                again(retry)
            case "aborted":
                logger.warning("store: a commit's answer was lost; the transaction rolled back: its writes run again")
                let unfinished = ran + failed
                for j in unfinished { j.result = .failure(lost) }
                again(unfinished + retry)
            default:
                logger.warning(
                    "store: a commit's answer was lost and its outcome cannot be read", ["sqlstate": lost.sqlState])
                for j in ran + failed { j.finish(.failure(Self.mapped(lost))) }
                again(retry)
            }
            return
        } catch {
            if c.isInTransaction { try? c.execute("ROLLBACK", context: "rollback") }
            if let e = error as? PostgresError, e.isConnectionLost {
                logger.warning("store: PostgreSQL connection lost", ["sqlstate": e.sqlState])
            }
            // Nothing of the batch is stored. The writes that ran or failed, the one that failed
            // the batch and those not yet run go again, unless the failure was a write's own
            // (alone in the transaction) or the COMMIT's, whose outcome is unknown.
            let unfinished = ran + failed + batch[next...]
            if !committing && isRetryable(error) {
                for j in unfinished { j.result = .failure(error) }
                again(unfinished + retry)
            } else {
                for j in unfinished { j.finish(.failure(Self.mapped(error))) }
                again(retry)
            }
            return
        }
        for j in ran + failed { j.done.signal() }
        again(retry)
    }

    /// `committed`, `aborted` or nil (unknown): what became of transaction `xid`, asked on
    /// another connection (PostgreSQL 13's `pg_xact_status`). A backend still finishing the
    /// commit answers `in progress` for a moment: asked again for up to a second.
    private func outcome(ofTransaction xid: String) -> String? {
        let deadline = Date().addingTimeInterval(1)
        while true {
            var status: String?
            do {
                let c = try pool.checkout()
                defer { pool.checkin(c) }
                try c.query("SELECT pg_xact_status($1::xid8)", [.untyped(xid)], context: "transaction status") {
                    status = $0.text(0)
                }
            } catch {
                return nil
            }
            if status == "committed" || status == "aborted" { return status }
            guard Date() < deadline else { return nil }
            usleep(20_000)
        }
    }
}
