// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The writes waiting for a store's writer, shared by both backends' group commits (SQLite's
/// one writer thread, PostgreSQL's write lanes): a caller queues its body and waits; the
/// writer takes batches and answers each write through its job.
final class WriteQueue<Context>: @unchecked Sendable {
    // @unchecked Sendable: `pending` and `stopping` (and whatever else the writer keeps beside
    // them) are guarded by `condition`; a job's fields are set by the one writer running it
    // and read by its caller after `done`.
    final class Job: @unchecked Sendable {
        let body: (Context) throws -> Any
        let isolated: Bool
        let durable: Bool
        /// Runs so far that had to be repeated (PostgreSQL's retries).
        var attempts = 0
        var result: Result<Any, any Error> = .failure(StoreError("not run"))
        let done = DispatchSemaphore(value: 0)

        init(isolated: Bool, durable: Bool, _ body: @escaping (Context) throws -> Any) {
            self.isolated = isolated
            self.durable = durable
            self.body = body
        }

        func finish(_ r: Result<Any, any Error>) {
            result = r
            done.signal()
        }
    }

    let condition = NSCondition()
    var pending: [Job] = []
    var stopping = false

    /// Queues `body`, waits until a writer has run it and returns its result or error.
    func submit<T>(isolated: Bool, durable: Bool, _ body: @escaping (Context) throws -> T) throws -> T {
        let job = Job(isolated: isolated, durable: durable) { try body($0) }
        condition.lock()
        if stopping {
            condition.unlock()
            throw StoreError("store is closed")
        }
        pending.append(job)
        condition.signal()
        condition.unlock()
        job.done.wait()
        switch job.result {
        case .success(let v):
            guard let typed = v as? T else { throw StoreError("internal: write result of unexpected type") }
            return typed
        case .failure(let e): throw e
        }
    }

    /// The next transaction's jobs (call with `condition` locked): isolated jobs, each in its
    /// own savepoint, up to `limit`; a job without its own savepoint (Bulk) alone, so that when
    /// it fails it cannot take other clients' writes down with it.
    func takeBatch(limit: Int) -> [Job] {
        if let first = pending.first, !first.isolated {
            pending.removeFirst()
            return [first]
        }
        let n = min(limit, pending.firstIndex { !$0.isolated } ?? pending.count)
        let batch = Array(pending.prefix(n))
        pending.removeFirst(n)
        return batch
    }
}
