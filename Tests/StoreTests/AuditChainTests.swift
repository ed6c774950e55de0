// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import JSONCore
import HubCrypto
import HubLog
import TestSupport
import SQLite
@testable import Store

/// The chain's encoding and verification: names with commas stay intact, every break is reported.
@Suite struct AuditChainTests {
    @Test(arguments: StoreBackend.allCases)
    func verify_reportsEveryBreak_andListsWithCommasStayIntact(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        for i in 1...6 {
            try t.store.write {
                try AuditLog.append(
                    $0,
                    .now(
                        principal: "hr", action: "patch", resourceType: "User", resourceID: "u\(i)",
                        attributes: ["a,b", "ward,nurse", "title"], requestID: "r"))
            }
        }
        var v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.intact, "a comma inside a name must not break the chain")
        #expect(
            try t.store.read {
                try AuditLog.list($0, since: nil, until: nil, principal: nil, resourceID: "u1", afterSeq: 0, limit: 1)
            }.first?.attributes
                == ["a,b", "ward,nurse", "title"])
        try t.raw("UPDATE audit SET outcome = 'failure' WHERE seq = 2")
        try t.raw("UPDATE audit SET resource_id = 'u9' WHERE seq = 5")
        v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.breakCount == 2)
        #expect(v.breaks.map(\.seq) == [2, 5])
    }
}

/// The writer's isolation: a failing Bulk-style (non-isolated) job never fails the
/// isolated requests around it; an unreadable chain head refuses the commit (no fork).
@Suite struct WriterIsolationTests {
    @Test(arguments: StoreBackend.allCases)
    func failingNonIsolatedJob_failsAlone(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            do {
                if i % 10 == 0 {
                    _ = try t.store.write(isolated: false) { (w) throws -> Void in
                        try w.connection.insert(
                            type: .user, id: "bulk\(i)", doc: JSONObject(["userName": .string("bulk\(i)")]),
                            members: [], now: 1)
                        throw StoreError("storage failed mid-bulk")
                    }
                } else {
                    try t.store.write { w in
                        try AuditLog.append(
                            w,
                            .now(
                                principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)",
                                requestID: "r"))
                        try w.connection.insert(
                            type: .user, id: "u\(i)", doc: JSONObject(["userName": .string("u\(i)")]), members: [],
                            now: 1)
                    }
                }
            } catch {
                if i % 10 != 0 { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0, "isolated requests failed with a Bulk job")
        let (users, v) = try t.store.read { (try $0.count(type: .user), try AuditLog.verify($0)) }
        #expect(users == 180)
        #expect(v.intact && v.entries == 180)
    }

    @Test func unreadableChainHead_refusesTheCommit_withAStoreError() throws {
        let t = try TempStore()
        try t.store.write {
            try AuditLog.append(
                $0, .now(principal: "hr", action: "create", resourceType: "User", resourceID: "u0", requestID: "r"))
        }
        let raw = try SQLiteConnection(path: t.sqlite.path)
        try raw.execute("ALTER TABLE audit RENAME COLUMN hash TO hash_moved")
        #expect {
            try t.store.write { w in
                try w.connection.insert(
                    type: .user, id: "u1", doc: JSONObject(["userName": .string("u1")]), members: [], now: 1)
            }
        } throws: { ($0 as? StoreError)?.kind == .unavailable }
        try raw.execute("ALTER TABLE audit RENAME COLUMN hash_moved TO hash")
        let (users, v) = try t.store.read { (try $0.count(type: .user), try AuditLog.verify($0)) }
        #expect(users == 0)
        #expect(v.intact && v.entries == 1)
    }

    @Test(arguments: [
        (Int32(5), "busy"), (6, "busy"), (13, "full"), (10, "io"), (11, "io"), (19, "constraint"), (1, "unavailable"),
    ])
    func driverErrors_becomeTypedStoreErrors(code: Int32, kind: String) {
        #expect(StoreError(SQLiteError(code: code, extendedCode: code, message: "m", sql: nil)).kind.rawValue == kind)
        // SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY: a unique key, as PostgreSQL's 23505.
        for extended in [Int32(2067), 1555] {
            #expect(
                StoreError(SQLiteError(code: 19, extendedCode: extended, message: "m", sql: nil)).kind == .uniqueness)
        }
    }
}

/// When SQLite ends a transaction by itself (disk full, I/O error), no job of that group
/// commit may be reported as written, and nothing may run outside the transaction.
@Suite struct LostTransactionTests {
    @Test func transactionEndedBySQLite_failsTheWholeBatch_andNothingCommitsAlone() throws {
        let t = try TempStore()
        let gate = DispatchSemaphore(value: 0)
        let writerBusy = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        // Plain threads: each blocks in write(), and GCD's default queue has one thread per core.
        group.enter()
        Thread {
            _ = try? t.store.write { _ in
                writerBusy.signal(); gate.wait()
            }  // holds the writer while the others queue up
            group.leave()
        }.start()
        writerBusy.wait()
        let outcomes = Mutex<[String: Bool]>([:])
        for i in 0..<6 {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    try t.store.write { w in
                        if i == 3 {
                            try w.connection.insert(
                                type: .user, id: "u3", doc: JSONObject(["userName": .string("u3")]), members: [], now: 1
                            )
                            // what SQLite does itself on SQLITE_FULL or SQLITE_IOERR
                            try (w as! SQLiteWriteContext).session.db.run("ROLLBACK")
                            throw StoreError("disk full", kind: .full)
                        }
                        try AuditLog.append(
                            w,
                            .now(
                                principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)",
                                requestID: "r"))
                        try w.connection.insert(
                            type: .user, id: "u\(i)", doc: JSONObject(["userName": .string("u\(i)")]), members: [],
                            now: 1)
                    }
                    outcomes.withLock { $0["u\(i)"] = true }
                } catch {
                    outcomes.withLock { $0["u\(i)"] = false }
                }
            }.start()
        }
        while t.store.queuedWrites < 6 { sched_yield() }  // all six wait for the writer: one group commit
        gate.signal()
        group.wait()
        let reported = outcomes.withLock { $0 }
        let stored = try t.store.read { c in
            try (0..<6).filter { try c.fetch(type: .user, id: "u\($0)") != nil }.map { "u\($0)" }
        }
        // Every write reported as done is stored; nothing else is.
        #expect(Set(stored) == Set(reported.filter(\.value).map(\.key)), "reported \(reported), stored \(stored)")
        #expect(reported["u3"] == false)
        #expect(try t.store.read { try AuditLog.verify($0) }.intact)
        // The store goes on working.
        try t.store.write { w in
            try w.connection.insert(
                type: .user, id: "after", doc: JSONObject(["userName": .string("after")]), members: [], now: 1)
        }
        #expect(try t.store.read { try $0.fetch(type: .user, id: "after") } != nil)
    }
}

/// The checkpointer never signs a chain that no longer reaches its last checkpoint.
@Suite struct CheckpointContinuityTests {
    @Test(arguments: StoreBackend.allCases)
    func chainCutBehindTheLastCheckpoint_isNotSignedAgain(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let outside = TemporaryDirectory()
        defer { outside.remove() }
        let key = try Ed25519PrivateKey(pem: try Ed25519.generate().privatePEM)
        let file = outside.path + "/checkpoints.jsonl"
        func append(_ n: Int) throws {
            for i in 0..<n {
                try t.store.write {
                    try AuditLog.append(
                        $0,
                        .now(
                            principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)", requestID: "r"
                        ))
                }
            }
        }
        try append(10)
        let first = AuditCheckpointer(
            store: t.store, key: key, path: file, interval: 3600, logger: Logger(label: "t", silent: true))
        #expect(try first.checkpoint()?.seq == 10)
        try append(2)
        #expect(try first.checkpoint()?.seq == 12)
        // Someone cuts the chain back to 5 entries and appends new ones while the hub is down.
        try t.raw("DELETE FROM audit WHERE seq > 5")
        try append(20)
        let restarted = AuditCheckpointer(
            store: t.store, key: key, path: file, interval: 3600, logger: Logger(label: "t", silent: true))
        #expect(throws: StoreError.self) { try restarted.checkpoint() }
        #expect(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count == 2)
    }

    @Test(arguments: StoreBackend.allCases)
    func aCheckpointFileEndingInALineThisKeyDidNotSign_isNotContinued(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let outside = TemporaryDirectory()
        defer { outside.remove() }
        let ours = try Ed25519PrivateKey(pem: try Ed25519.generate().privatePEM)
        let theirs = try Ed25519PrivateKey(pem: try Ed25519.generate().privatePEM)
        let file = outside.path + "/checkpoints.jsonl"
        try t.store.write {
            try AuditLog.append(
                $0, .now(principal: "hr", action: "create", resourceType: "User", resourceID: "u", requestID: "r"))
        }
        let forged = try AuditCheckpoint.make(
            seq: 1, head: [UInt8](repeating: 7, count: 32), time: "2026-12-02T00:00:00Z", key: theirs)
        try (forged.line + "\n").write(toFile: file, atomically: false, encoding: .utf8)
        let checkpointer = AuditCheckpointer(
            store: t.store, key: ours, path: file, interval: 3600, logger: Logger(label: "t", silent: true))
        #expect(throws: StoreError.self) { try checkpointer.checkpoint() }
        checkpointer.stop()  // never started: returns at once
        #expect(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").count == 1)
    }
}
