// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import HubLog
import JSONCore
import Postgres
@testable import Store
import TestSupport

/// What only a shared PostgreSQL store must get right: several stores (nodes) on one
/// database migrate once, settle races through the database, keep one audit chain, claim
/// each job once; and a store survives losing its connections.
@Suite struct PostgresStoreTests {
    private func open(_ settings: PostgresSettings, connections: Int = 4) throws -> PostgresStore {
        try PostgresStore(settings: settings, maxConnections: connections, logger: Logger(label: "t", silent: true))
    }

    @Test func twoNodesStartingAtOnce_migrateOnce() throws {
        let db = try SharedPostgres.freshDatabase()
        let results = Mutex<[Result<PostgresStore, any Error>]>([])
        let start = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        for _ in 0..<3 {
            group.enter()
            Thread {
                start.wait()
                let r = Result { try open(db.settings) }
                results.withLock { $0.append(r) }
                group.leave()
            }.start()
        }
        for _ in 0..<3 { start.signal() }
        group.wait()
        let stores = try results.withLock { try $0.map { try $0.get() } }
        defer { for s in stores { s.close() } }
        let conn = try PostgresConnection(conninfo: db.settings.conninfo, password: db.settings.password)
        var versions: [Int64] = []
        try conn.query("SELECT version FROM schema_migrations ORDER BY version") { versions.append($0.int64(0)) }
        #expect(versions == PostgresMigrations.all.map { Int64($0.version) })
        var heads = 0
        try conn.query("SELECT COUNT(*) FROM audit_chain_head") { heads = Int($0.int64(0)) }
        #expect(heads == 1)
    }

    /// Migration 3 (SQLite 25): people stored before the search index are found after it.
    @Test func peopleStoredBeforeTheSearchIndex_areFoundAfterMigration3() throws {
        let db = try SharedPostgres.freshDatabase()
        let conn = try PostgresConnection(conninfo: db.settings.conninfo, password: db.settings.password)
        try PostgresMigrations.run(conn, migrations: PostgresMigrations.all.filter { $0.version < 3 })
        let doc = JSONWriter().write(
            .object(JSONObject(["userName": .string("jsmith@x.org"), "displayName": .string("Jos\u{E9} Smith")])))
        try conn.run(
            "INSERT INTO resources(id, type, user_name, version, created, modified, doc) "
                + "VALUES ('u1', 'User', 'jsmith@x.org', 1, 0, 0, $1)", [.bytes(doc)])
        let store = try open(db.settings)
        defer { store.close() }
        for word in ["jose", "smi"] {
            let found = try store.read { c in
                try c.personSearchSeqs(termPrefix: word, limit: 5).seqs.compactMap { try c.fetch(seq: $0)?.id }
            }
            #expect(found == ["u1"], "\(word)")
        }
    }

    @Test func reopen_runsNoMigrationAgain_andKeepsData() throws {
        let db = try SharedPostgres.freshDatabase()
        let first = try open(db.settings)
        try first.write { try $0.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1) }
        first.close()
        let again = try open(db.settings)
        defer { again.close() }
        #expect(try again.read { try $0.count(type: .user) } == 1)
    }

    /// Two nodes insert the same user name at the same instant: the second insert waits on
    /// the unique index for the first transaction, then fails as `.uniqueness` (SCIM 409).
    @Test func sameUserNameFromTwoNodes_oneWins_theOtherGetsUniqueness() throws {
        let db = try SharedPostgres.freshDatabase()
        let a = try open(db.settings), b = try open(db.settings)
        defer { a.close(); b.close() }
        let inserted = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        let first = Mutex<Result<Void, any Error>?>(nil)
        let second = Mutex<Result<Void, any Error>?>(nil)
        group.enter()
        Thread {
            let r = Result {
                try a.write { w in
                    try w.connection.insert(type: .user, id: "a1", doc: user("ana@x.org"), members: [], now: 1)
                    inserted.signal()
                    release.wait()  // holds its transaction open while b tries
                }
            }
            first.withLock { $0 = r }
            group.leave()
        }.start()
        inserted.wait()
        // Whatever happens below, the first writer is let go before the stores close.
        var released = false
        defer { if !released { release.signal(); group.wait() } }
        group.enter()
        Thread {
            let r = Result {
                try b.write { w -> Void in
                    try w.connection.insert(type: .user, id: "b1", doc: user("ANA@x.org"), members: [], now: 1)
                }
            }
            second.withLock { $0 = r }
            group.leave()
        }.start()
        // b's insert is really waiting on a's uncommitted key before a commits.
        try waitUntil("the second insert waits for the first transaction") {
            try waitingOnLocks(db.settings) >= 1
        }
        release.signal()
        released = true
        group.wait()
        #expect(throws: Never.self) { try first.withLock { $0 }!.get() }
        #expect {
            try second.withLock { $0 }!.get()
        } throws: { ($0 as? StoreError)?.kind == .uniqueness }
        #expect(try a.read { try $0.count(type: .user) } == 1)
    }

    /// Two nodes update one person at once, each checking the version it read (`If-Match`):
    /// the second one's read waits for the first write and sees its version, so it can answer
    /// 412 instead of overwriting a change it never saw.
    @Test func aResourceReadInAWrite_isHeldUntilCommit_soTheOtherNodeSeesTheNewVersion() throws {
        let db = try SharedPostgres.freshDatabase()
        let a = try open(db.settings), b = try open(db.settings)
        defer { a.close(); b.close() }
        try a.write { try $0.connection.insert(type: .user, id: "u1", doc: user("ana"), members: [], now: 1) }
        let read = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        group.enter()
        Thread {
            _ = try? a.write { w -> Void in
                let cur = try #require(try w.connection.fetch(type: .user, id: "u1"))
                read.signal()
                release.wait()
                try w.connection.update(cur, doc: user("ana.b"), members: nil, now: 2)
            }
            group.leave()
        }.start()
        read.wait()
        var released = false
        defer { if !released { release.signal(); group.wait() } }
        let seen = Mutex<Int64?>(nil)
        group.enter()
        Thread {
            let version = try? b.write { w in try w.connection.fetch(type: .user, id: "u1")?.version }
            seen.withLock { $0 = version ?? nil }
            group.leave()
        }.start()
        try waitUntil("the second node's read waits for the first write") { try waitingOnLocks(db.settings) >= 1 }
        release.signal()
        released = true
        group.wait()
        #expect(seen.withLock { $0 } == 2)
        // Outside a write nothing is locked: a read never waits for a writer.
        #expect(try a.read { try $0.fetch(type: .user, id: "u1")?.version } == 2)
    }

    /// Two writes lock two people in opposite orders: PostgreSQL breaks the deadlock by
    /// failing one (40P01), and the store runs that write again, so both succeed.
    @Test func aDeadlockedWrite_isRunAgain_andBothWritesSucceed() throws {
        let db = try SharedPostgres.freshDatabase()
        let a = try open(db.settings), b = try open(db.settings)
        defer { a.close(); b.close() }
        try a.write { w in
            try w.connection.insert(type: .user, id: "u1", doc: user("one"), members: [], now: 1)
            try w.connection.insert(type: .user, id: "u2", doc: user("two"), members: [], now: 1)
        }
        let runs = Atomic<Int>(0)
        let bothHoldOne = Atomic<Int>(0)
        @Sendable func lockBoth(_ first: String, _ second: String, on store: PostgresStore) -> Result<Void, any Error> {
            Result {
                try store.write { w -> Void in
                    let run = runs.add(1, ordering: .relaxed).newValue
                    let p = try #require(try w.connection.fetch(type: .user, id: first))
                    // On the first runs only: wait until the other write holds its first person.
                    if run <= 2 {
                        bothHoldOne.add(1, ordering: .relaxed)
                        while bothHoldOne.load(ordering: .relaxed) < 2 { sched_yield() }
                    }
                    let q = try #require(try w.connection.fetch(type: .user, id: second))
                    try w.connection.update(p, doc: p.doc, members: nil, now: 2)
                    try w.connection.update(q, doc: q.doc, members: nil, now: 2)
                }
            }
        }
        let results = Mutex<[Result<Void, any Error>]>([])
        let group = DispatchGroup()
        for (first, second, store) in [("u1", "u2", a), ("u2", "u1", b)] {
            group.enter()
            Thread {
                let r = lockBoth(first, second, on: store)
                results.withLock { $0.append(r) }
                group.leave()
            }.start()
        }
        group.wait()
        for r in results.withLock({ $0 }) { #expect(throws: Never.self) { try r.get() } }
        #expect(runs.load(ordering: .relaxed) == 3, "one of the two ran again")
        try a.read { (c) throws -> Void in
            #expect(try c.fetch(type: .user, id: "u1")?.version == 3)
            #expect(try c.fetch(type: .user, id: "u2")?.version == 3)
        }
    }

    /// The feed guard on two nodes: the second node's look for an open hold waits for the
    /// first node's write, then sees the hold it opened (never a second hold for the feed).
    @Test func aFeedsOpenHold_readInAWrite_waitsForTheOtherNode() throws {
        let db = try SharedPostgres.freshDatabase()
        let a = try open(db.settings), b = try open(db.settings)
        defer { a.close(); b.close() }
        let looked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        group.enter()
        Thread {
            _ = try? a.write { w -> Void in
                #expect(try w.connection.openHold(feed: "hr") == nil)
                looked.signal()
                release.wait()
                try w.connection.insertHold(
                    HoldRecord(id: "h1", feed: "hr", feedToken: nil, created: 1, reason: "r", state: .open))
            }
            group.leave()
        }.start()
        looked.wait()
        var released = false
        defer { if !released { release.signal(); group.wait() } }
        let seen = Mutex<String?>(nil)
        group.enter()
        Thread {
            let id = try? b.write { w in try w.connection.openHold(feed: "hr")?.id }
            seen.withLock { $0 = id ?? nil }
            group.leave()
        }.start()
        try waitUntil("the second node waits for the first") { try waitingOnLocks(db.settings) >= 1 }
        release.signal()
        released = true
        group.wait()
        #expect(seen.withLock { $0 } == "h1")
        // Another feed is not held up by it, and reads take no lock.
        #expect(try b.write { try $0.connection.openHold(feed: "credentialing") } == nil)
        #expect(try b.read { try $0.openHold(feed: "hr")?.id } == "h1")
    }

    /// Two nodes append to the audit chain concurrently: one chain, no fork, nothing lost.
    @Test func auditFromTwoNodesAtOnce_verifiesAsOneChain() throws {
        let db = try SharedPostgres.freshDatabase()
        let nodes = [try open(db.settings), try open(db.settings)]
        defer { for n in nodes { n.close() } }
        let perThread = 25, threads = 8
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { i in
            let node = nodes[i % 2]
            for k in 0..<perThread {
                do {
                    try node.write { w in
                        try AuditLog.append(
                            w,
                            .now(
                                principal: "node\(i % 2)", action: "create", resourceType: "User",
                                resourceID: "u\(i)-\(k)", requestID: "r"))
                        // Two entries in one transaction stay adjacent in the chain.
                        try AuditLog.append(
                            w,
                            .now(
                                principal: "node\(i % 2)", action: "grant", resourceType: "User",
                                resourceID: "u\(i)-\(k)", requestID: "r"))
                    }
                } catch {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
        let v = try nodes[0].read { try AuditLog.verify($0) }
        #expect(v.intact, "\(v.breaks)")
        #expect(v.entries == threads * perThread * 2)
        let head = try nodes[1].read { try $0.auditHead() }
        #expect(head.seq == Int64(threads * perThread * 2))
    }

    /// Writes that wait together share one transaction (one lock on the chain head, one WAL
    /// flush), each in its own savepoint: a write that fails takes its rows and its audit
    /// entries with it and no one else's; the chain stays whole, also when one write appends
    /// more entries than one INSERT carries.
    @Test func concurrentWrites_shareTransactions_aFailedOneUndoesOnlyItself() throws {
        let db = try SharedPostgres.freshDatabase()
        // One write lane: the writes of sixteen threads queue behind it and share transactions.
        let store = try open(db.settings, connections: 2)
        defer { store.close() }
        let many = PostgresWriteContext.auditRowsPerStatement * 2 + 5
        try store.write { w in
            for k in 0..<many {
                try AuditLog.append(
                    w,
                    .now(principal: "ops", action: "grant", resourceType: "User", resourceID: "x\(k)", requestID: "r"))
            }
        }
        let threads = 16, perThread = 25
        let xids = Mutex<[Int64]>([])
        let failed = Atomic<Int>(0)
        // Threads of their own: concurrentPerform would run only as many as there are cores.
        let group = DispatchGroup()
        for t in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                for k in 0..<perThread {
                    let n = t * perThread + k
                    do {
                        try store.write { w in
                            try w.connection.insert(type: .user, id: "u\(n)", doc: user("p\(n)"), members: [], now: 1)
                            try AuditLog.append(
                                w,
                                .now(
                                    principal: "hr", action: "create", resourceType: "User", resourceID: "u\(n)",
                                    requestID: "r\(n)"))
                            var xid: Int64 = 0
                            let session = try #require((w as? PostgresWriteContext)?.session)
                            try session.db.query("SELECT txid_current()") { xid = $0.int64(0) }
                            if n % 7 == 0 { throw TestError("refused \(n)") }
                            xids.withLock { $0.append(xid) }
                        }
                    } catch {
                        failed.add(1, ordering: .relaxed)
                    }
                }
            }.start()
        }
        group.wait()
        let total = threads * perThread
        let refused = (0..<total).filter { $0 % 7 == 0 }.count
        #expect(failed.load(ordering: .relaxed) == refused)
        let committed = xids.withLock { $0 }
        #expect(committed.count == total - refused)
        #expect(Set(committed).count < committed.count, "no two writes shared a transaction")
        try store.read { (c) throws -> Void in
            for n in 0..<total {
                #expect((try c.fetch(type: .user, id: "u\(n)") != nil) == (n % 7 != 0), "u\(n)")
            }
            let v = try AuditLog.verify(c)
            #expect(v.intact, "\(v.breaks)")
            #expect(v.entries == many + total - refused)
            let created = try c.auditEntries(
                since: nil, until: nil, principal: "hr", resourceID: nil, action: nil, afterSeq: 0, limit: 10_000)
            #expect(created.count == total - refused)
            #expect(!created.contains { Int($0.resourceID.dropFirst())! % 7 == 0 }, "a refused write's entry stayed")
            let first = try c.auditEntries(
                since: nil, until: nil, principal: "ops", resourceID: nil, action: nil, afterSeq: 0, limit: 10_000)
            #expect(first.map(\.seq) == Array(1...Int64(many)), "one write's entries are adjacent, in order")
        }
    }

    /// A write that fails in a shared transaction may have failed on what a batch-mate did
    /// (here: a user name taken by an insert that never commits), so it is answered only when
    /// the transaction ends, and runs again with the others when the transaction is lost.
    @Test func aWriteThatFailedBesideOthers_isAnsweredWithTheirTransaction() throws {
        let db = try SharedPostgres.freshDatabase()
        let store = try open(db.settings, connections: 2)  // one write lane
        defer { store.close() }
        let hold = DispatchSemaphore(value: 0), holding = DispatchSemaphore(value: 0)
        let group = DispatchGroup()
        let results = Mutex<[String: Result<Void, any Error>]>([:])
        func submit(_ name: String, _ body: @escaping @Sendable (any StoreWriter) throws -> Void) {
            group.enter()
            Thread {
                let r = Result { try store.write { w in try body(w) } }
                results.withLock { $0[name] = r }
                group.leave()
            }.start()
        }
        // Occupies the lane while the three writes queue up behind it, in order.
        submit("blocker") { _ in
            holding.signal()
            hold.wait()
        }
        holding.wait()
        let firstRun = Atomic<Int>(0), killerRuns = Atomic<Int>(0)
        submit("taker") { w in
            // Takes the name on its first run only.
            if firstRun.add(1, ordering: .relaxed).newValue == 1 {
                try w.connection.insert(type: .user, id: "taker", doc: user("dup"), members: [], now: 1)
            }
        }
        try waitUntil("the taker queued") { store.queuedWrites == 2 }
        submit("second") { w in
            try w.connection.insert(type: .user, id: "second", doc: user("dup"), members: [], now: 1)
        }
        try waitUntil("the second queued") { store.queuedWrites == 3 }
        submit("killer") { w in
            // The transaction is lost on the first run (as when PostgreSQL restarts).
            if killerRuns.add(1, ordering: .relaxed).newValue == 1 {
                let session = try #require((w as? PostgresWriteContext)?.session)
                try session.db.query("SELECT pg_terminate_backend(pg_backend_pid())") { _ in }
            }
        }
        try waitUntil("the killer queued") { store.queuedWrites == 4 }
        hold.signal()
        group.wait()
        let r = results.withLock { $0 }
        for name in ["taker", "second", "killer"] {
            #expect(throws: Never.self, "\(name)") { try #require(r[name]).get() }
        }
        #expect(killerRuns.load(ordering: .relaxed) == 2, "the lost transaction ran again")
        try store.read { (c) throws -> Void in
            #expect(try c.fetch(type: .user, id: "second") != nil)
            #expect(try c.fetch(type: .user, id: "taker") == nil)
        }
    }

    /// A write that decided under a policy version while another transaction stored a newer
    /// one runs again under the newer one: the version in force is on the audit chain's head
    /// row, which the write reads when it seals (here with no audit entry of its own).
    @Test func aWriteThatDecidedUnderAnOlderVersion_runsAgainUnderTheVersionInForce() throws {
        let db = try SharedPostgres.freshDatabase()
        let store = try open(db.settings)
        defer { store.close() }
        try store.write { (w) throws -> Void in
            _ = try w.connection.insertPolicyVersion(
                hash: "v1", text: [], author: "t", now: 1, state: .active, heldReason: nil)
        }
        // The node: runs version 1, puts a newer one in force when a transaction saw it.
        let running = Mutex<Int64>(1)
        store.adoptPolicies { newest, read in
            if let newest, newest > running.withLock({ $0 }), try read()?.version == newest {
                running.withLock { $0 = newest }
            }
            return running.withLock { $0 }
        }
        let hold = DispatchSemaphore(value: 0), inside = DispatchSemaphore(value: 0)
        let seen = Mutex<[Int64?]>([])
        let done = DispatchSemaphore(value: 0)
        Thread {
            _ = try? store.write { w -> Int in
                w.decidesUnderPolicy()
                let first = seen.withLock { s -> Bool in
                    s.append(w.policyVersionInForce)
                    return s.count == 1
                }
                if first {
                    inside.signal()
                    hold.wait()
                }
                return 0
            }
            done.signal()
        }.start()
        inside.wait()
        // Another node stores version 2 meanwhile; it does not wait for the write under way.
        try store.write { (w) throws -> Void in
            _ = try w.connection.insertPolicyVersion(
                hash: "v2", text: [], author: "t", now: 2, state: .active, heldReason: nil)
        }
        hold.signal()
        done.wait()
        #expect(seen.withLock { $0 } == [1, 2])
        #expect(running.withLock { $0 } == 2)
        // A held version is not in force: nothing runs again for it.
        try store.write { (w) throws -> Void in
            _ = try w.connection.insertPolicyVersion(
                hash: "v3", text: [], author: "t", now: 3, state: .held, heldReason: "guard")
        }
        let after = try store.write { w -> Int64? in
            w.decidesUnderPolicy()
            return w.policyVersionInForce
        }
        #expect(after == 2)
    }

    /// The connection drops after the COMMIT went out and before its answer came back: the
    /// store asks the database what became of the transaction instead of guessing. It
    /// committed, so the write succeeds, once; an aborted one would run again.
    @Test func aCommitWhoseAnswerIsLost_isLookedUp_andAnsweredAsItEnded() throws {
        let db = try SharedPostgres.freshDatabase()
        let pg = try SharedPostgres.server()
        let proxy = try CommitCuttingProxy(to: Int(pg.port))
        defer { proxy.stop() }
        // In clear text, so the proxy can see the COMMIT (another test may switch TLS on).
        let through = try PostgresSettings(
            conninfo:
                "host=127.0.0.1 port=\(proxy.port) dbname=\(db.name) user=\(pg.user) connect_timeout=5 sslmode=disable",
            password: pg.password)
        let store = try open(through)
        defer { store.close() }
        let runs = Atomic<Int>(0)
        proxy.armed.store(true, ordering: .relaxed)
        try store.write { w in
            runs.add(1, ordering: .relaxed)
            try w.connection.insert(type: .user, id: "kept", doc: user("kept"), members: [], now: 1)
            try AuditLog.append(
                w, .now(principal: "hr", action: "create", resourceType: "User", resourceID: "kept", requestID: "r"))
        }
        #expect(proxy.cuts.load(ordering: .relaxed) == 1, "the COMMIT's answer was cut")
        #expect(runs.load(ordering: .relaxed) == 1, "a committed write is not run again")
        try store.read { (c) throws -> Void in
            #expect(try c.fetch(type: .user, id: "kept") != nil)
            let v = try AuditLog.verify(c)
            #expect(v.intact && v.entries == 1)
        }
    }

    /// Policy versions are numbered 1, 2, 3 across nodes applying policies at once.
    @Test func policyVersionsFromTwoNodesAtOnce_getDistinctConsecutiveNumbers() throws {
        let db = try SharedPostgres.freshDatabase()
        let nodes = [try open(db.settings), try open(db.settings)]
        defer { for n in nodes { n.close() } }
        let numbers = Mutex<[Int64]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            for k in 0..<5 {
                let v = try? nodes[i % 2].write {
                    try $0.connection.insertPolicyVersion(
                        hash: "h\(i)-\(k)", text: [], author: "a", now: 1, state: .active, heldReason: nil
                    ).version
                }
                numbers.withLock { $0.append(v ?? -1) }
            }
        }
        #expect(numbers.withLock { $0 }.sorted() == Array(1...20))
    }

    /// Nodes claiming the same target at once never take the same job (SKIP LOCKED + lease).
    @Test func concurrentClaimsFromTwoNodes_takeEachJobOnce() throws {
        let db = try SharedPostgres.freshDatabase()
        let nodes = [try open(db.settings), try open(db.settings)]
        defer { for n in nodes { n.close() } }
        try nodes[0].write { w in
            for p in 0..<200 { try w.connection.enqueue(personID: "p\(p)", target: "ehr", priority: 1, now: 100) }
        }
        let claimed = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            while true {
                let got =
                    (try? nodes[i % 2].write(durable: false) {
                        try $0.connection.claimJobs(
                            target: "ehr", limit: 7, owner: "node\(i)", leaseUntil: 200, now: 100)
                    }) ?? []
                if got.isEmpty { return }
                claimed.withLock { $0 += got.map(\.personID) }
            }
        }
        let all = claimed.withLock { $0 }
        #expect(all.count == 200)
        #expect(Set(all).count == 200)
    }

    @Test func aWriteThatNeedNotBeDurable_commitsWithoutWaitingForTheFlush() throws {
        let t = try TempStore(.postgres)
        // The test cluster runs with synchronous_commit off everywhere; this database waits.
        let database = try #require(t.postgres?.value("dbname"))
        try t.raw("ALTER DATABASE \(database) SET synchronous_commit = on")
        t.store.close()
        let store = try open(try #require(t.postgres))
        defer { store.close() }
        func setting(durable: Bool) throws -> String {
            try store.write(isolated: true, durable: durable) { w in
                var v = ""
                try (w as! PostgresWriteContext).session.db.query("SHOW synchronous_commit") { v = $0.text(0) ?? "" }
                return v
            }
        }
        #expect(try setting(durable: false) == "off")
        #expect(try setting(durable: true) == "on")
    }

    @Test func sessions_nameThemselves_andGiveUpOnALockAfterAWhile_unlessTheConnectionSaysOtherwise() throws {
        let db = try SharedPostgres.freshDatabase()
        func show(_ settings: PostgresSettings) throws -> [String] {
            let store = try open(settings)
            defer { store.close() }
            return try store.read { s in
                var out: [String] = []
                for name in ["application_name", "lock_timeout"] {
                    try (s as! PostgresSession).db.query("SHOW \(name)") { out.append($0.text(0) ?? "") }
                }
                return out
            }
        }
        #expect(try show(db.settings) == ["scimhub", "30s"])
        let named = try PostgresSettings(
            conninfo: db.settings.conninfo + " application_name=hub-node-2", password: db.settings.password)
        #expect(try show(named) == ["hub-node-2", "30s"])
    }

    /// A database whose defaults print bytea escaped and doubles rounded: values still
    /// round-trip exactly (the store sets its sessions' output formats).
    @Test func valuesRoundTripExactly_whateverTheDatabasesOutputDefaults() throws {
        let db = try SharedPostgres.freshDatabase()
        let admin = try PostgresConnection(conninfo: db.settings.conninfo, password: db.settings.password)
        try admin.execute("ALTER DATABASE \(db.name) SET bytea_output = 'escape'")
        try admin.execute("ALTER DATABASE \(db.name) SET extra_float_digits = -3")
        let store = try open(db.settings)
        defer { store.close() }
        let secret: [UInt8] = [0, 1, 0x5C, 0x78, 0x27, 0x7F, 0x80, 0xFF]
        let time = 1_765_000_000.123_456_7
        try store.write { w in
            _ = try w.connection.enrolMFA(principal: "admin", secret: secret, now: time)
            try w.connection.setCredentialExpiry(personID: "p1", expires: time)
        }
        #expect(try store.read { try $0.mfaSecret(principal: "admin") } == secret)
        #expect(try store.read { try $0.nextCredentialExpiry() } == time)
    }

    /// Arrays travel as one bound literal (`textArray`): every value comes back as it went,
    /// whatever quotes, backslashes, braces, commas, spaces or NULL-looking text it holds.
    @Test func textArrays_roundTripAnyText() throws {
        let db = try SharedPostgres.freshDatabase()
        let c = try PostgresConnection(conninfo: db.settings.conninfo, password: db.settings.password)
        let values = [
            "", "NULL", "null", #"a"b"#, #"back\slash"#, #"\""#, "{braces}", "a,b", " spaced ", "tab\tnew\nline",
            "ação", "日本", "\u{1F3E5}", #"'single'"#, "}", "{", #"\"#,
        ]
        var back: [String] = []
        try c.query("SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS a(v, n) ORDER BY n", [.textArray(values)]) {
            back.append($0.text(0) ?? "<null>")
        }
        #expect(back == values)
        var count = -1
        try c.query("SELECT cardinality($1::text[])", [.textArray([String]())]) { count = Int($0.int64(0)) }
        #expect(count == 0)
    }

    /// The server ends the store's sessions (as a restart or failover does): the write under
    /// way fails as unavailable, never as a client error, and the next one reconnects.
    @Test func lostConnections_failAsUnavailable_andTheNextWriteReconnects() throws {
        let t = try TempStore(.postgres)
        let settings = try #require(t.postgres)
        try t.store.write { try $0.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1) }
        let adminInfo = try SharedPostgres.server().connectionString
        let database = try #require(settings.value("dbname"))
        #expect {
            try t.store.write { w in
                try w.connection.insert(type: .user, id: "u2", doc: user("b"), members: [], now: 1)
                // Every session of this database, including this write's, is ended mid-transaction.
                let admin = try PostgresConnection(conninfo: adminInfo, password: nil)
                try admin.run(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    [.text(database)])
                try w.connection.insert(type: .user, id: "u3", doc: user("c"), members: [], now: 1)
            }
        } throws: { ($0 as? StoreError)?.kind == .unavailable && ($0 as? StoreError)?.isInputError == false }
        try t.store.write { try $0.connection.insert(type: .user, id: "u4", doc: user("d"), members: [], now: 1) }
        #expect(
            try t.store.read { c in try ["u1", "u2", "u3", "u4"].filter { try c.fetch(type: .user, id: $0) != nil } }
                == ["u1", "u4"])
    }

    /// Sessions ended while the store's connections sat idle (a restart between requests):
    /// the next reads and writes get new connections and succeed at the first try.
    @Test func idleConnectionsThatDied_areReplaced_withoutFailingACaller() throws {
        let db = try SharedPostgres.freshDatabase()
        let store = try open(db.settings, connections: 4)
        defer { store.close() }
        // Four connections open at once (each read waits until all four are in), then idle.
        let inside = Atomic<Int>(0)
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread {
                _ = try? store.read { _ in
                    inside.add(1, ordering: .relaxed)
                    while inside.load(ordering: .relaxed) < 4 { sched_yield() }
                }
                group.leave()
            }.start()
        }
        group.wait()
        let admin = try PostgresConnection(conninfo: try SharedPostgres.server().connectionString, password: nil)
        let database = try #require(db.settings.value("dbname"))
        var ended = 0
        try admin.query(
            // The timeout makes the call wait until each session has ended.
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                + "WHERE datname = $1",
            [.text(database)]
        ) { ended = Int($0.int64(0)) }
        #expect(ended == 4)
        for i in 0..<6 {
            try store.write {
                try $0.connection.insert(type: .user, id: "u\(i)", doc: user("u\(i)"), members: [], now: 1)
            }
            #expect(try store.read { try $0.count(type: .user) } == i + 1)
        }
    }

    /// PostgreSQL stops and starts again: writes in between fail as unavailable, and the
    /// store works again afterwards without being reopened. A cluster of its own: restarting
    /// the shared one would fail the tests running beside this one.
    @Test func postgresRestart_writesFailAsUnavailable_thenRecover() throws {
        let server = try PostgresServer()
        let settings = try SharedPostgres.settings(server, database: server.database)
        let store = try open(settings)
        defer { store.close() }
        try store.write { try $0.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1) }
        server.stop()
        #expect {
            try store.write { try $0.connection.insert(type: .user, id: "u2", doc: user("b"), members: [], now: 1) }
        } throws: { ($0 as? StoreError)?.kind == .unavailable }
        #expect {
            try store.read { try $0.count(type: .user) }
        } throws: { ($0 as? StoreError)?.kind == .unavailable }
        try server.start()
        try store.write { try $0.connection.insert(type: .user, id: "u3", doc: user("c"), members: [], now: 1) }
        #expect(try store.read { try $0.count(type: .user) } == 2)
    }

    @Test func aWrongPassword_failsAsUnavailable_withoutSayingThePassword() throws {
        let s = try SharedPostgres.server()
        let settings = try PostgresSettings(
            conninfo: "host=127.0.0.1 port=\(s.port) dbname=postgres user=\(s.user)", password: "wrong-Secret-42")
        let e = #expect(throws: StoreError.self) { try open(settings) }
        #expect(e?.kind == .unavailable)
        #expect(e?.description.contains("refused the login") == true, "\(String(describing: e))")
        #expect(e?.description.contains("wrong-Secret-42") == false)
    }

    /// `sslmode=verify-full` goes to libpq as it is: the store talks TLS to a server whose
    /// certificate a trusted CA signed for the host, and refuses one it cannot verify.
    /// (The shared cluster gets a certificate and `ssl = on` by reload, and loses them after.)
    @Test func sslmodeVerifyFull_connectsOverVerifiedTLS_andRefusesAnUntrustedServer() throws {
        let server = try SharedPostgres.server()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func openssl(_ args: [String]) throws {
            let out = dir.path + "/openssl.log"
            let status = try ChildProcess(["/usr/bin/openssl"] + args, outputPath: out).wait()
            guard status == 0 else {
                throw TestError("openssl failed: " + ((try? String(contentsOfFile: out, encoding: .utf8)) ?? ""))
            }
        }
        let d = dir.path
        for ca in ["ca", "other-ca"] {
            try openssl([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=scimhub test \(ca)",
                "-keyout", "\(d)/\(ca).key", "-out", "\(d)/\(ca).pem",
            ])
        }
        try openssl([
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "\(d)/server.key", "-out",
            "\(d)/server.csr",
        ])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(
            toFile: "\(d)/san.ext", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "\(d)/san.ext", "-out", "\(d)/server.pem",
        ])
        // PostgreSQL reads its key as the cluster's owner and accepts it only when private.
        chmod("\(d)/server.key", 0o600)
        if getuid() == 0, let pw = getpwnam("postgres") {
            for f in ["", "/server.key", "/server.pem"] { chown(d + f, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        }
        try server.psql("ALTER SYSTEM SET ssl_cert_file = '\(d)/server.pem'")
        try server.psql("ALTER SYSTEM SET ssl_key_file = '\(d)/server.key'")
        try server.psql("ALTER SYSTEM SET ssl = on")
        try server.psql("SELECT pg_reload_conf()")
        defer {
            _ = try? server.psql("ALTER SYSTEM RESET ssl")
            _ = try? server.psql("ALTER SYSTEM RESET ssl_cert_file")
            _ = try? server.psql("ALTER SYSTEM RESET ssl_key_file")
            _ = try? server.psql("SELECT pg_reload_conf()")
        }
        let db = try SharedPostgres.freshDatabase()
        let verified = try PostgresSettings(
            conninfo: "postgres://\(server.user)@localhost:\(server.port)/\(db.name)"
                + "?sslmode=verify-full&sslrootcert=\(d)/ca.pem&connect_timeout=5",
            password: server.password)
        // The reload reaches new sessions within moments: wait until TLS is offered.
        try waitUntil("PostgreSQL offers TLS") {
            (try? PostgresConnection(conninfo: verified.conninfo, password: verified.password)) != nil
        }
        let store = try open(verified)
        defer { store.close() }
        try store.write { try $0.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1) }
        let tls = try store.read { s in
            var on = ""
            try (s as! PostgresSession).db.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") {
                on = $0.text(0) ?? ""
            }
            return on
        }
        #expect(tls == "t")
        let untrusted = try PostgresSettings(
            conninfo: verified.conninfo.replacingOccurrences(of: "/ca.pem", with: "/other-ca.pem"),
            password: server.password)
        #expect { try open(untrusted) } throws: { ($0 as? StoreError)?.kind == .unavailable }
        // verify-full also checks the name: reached as "elsewhere.test" (hostaddr 127.0.0.1),
        // the server's certificate (localhost, 127.0.0.1) does not match; verify-ca, which
        // checks the CA only, connects to the same address.
        func elsewhere(_ mode: String) throws -> PostgresSettings {
            try PostgresSettings(
                conninfo: "host=elsewhere.test hostaddr=127.0.0.1 port=\(server.port) dbname=\(db.name) "
                    + "user=\(server.user) sslmode=\(mode) sslrootcert=\(d)/ca.pem connect_timeout=5",
                password: server.password)
        }
        #expect { try open(elsewhere("verify-full")) } throws: { ($0 as? StoreError)?.kind == .unavailable }
        try open(elsewhere("verify-ca")).close()
    }

    @Test(arguments: [
        ("23505", "uniqueness"), ("23503", "invalid-reference"), ("53100", "full"), ("40001", "busy"),
        ("40P01", "busy"), ("23502", "constraint"), ("XX001", "io"), ("42P01", "unavailable"),
    ])
    func sqlStates_becomeTypedStoreErrors(state: String, kind: String) {
        let e = StoreError(PostgresError(sqlState: state, context: "insert", constraint: "resources_user_name"))
        #expect(e.kind.rawValue == kind)
        #expect(e.description.contains(state))
    }

    @Test func connectionLoss_isUnavailable_whateverItsSQLState() {
        for state in ["08006", "57P01", ""] {
            let e = StoreError(PostgresError(sqlState: state, context: "commit", isConnectionLost: true))
            #expect(e.kind == .unavailable)
        }
    }

    /// A value that made a statement fail never appears in the error.
    @Test func errors_neverQuoteBoundValues() throws {
        let t = try TempStore(.postgres)
        try t.store.write {
            try $0.connection.insert(type: .user, id: "u1", doc: user("secret.person@x.org"), members: [], now: 1)
        }
        let e = #expect(throws: StoreError.self) {
            try t.store.write {
                try $0.connection.insert(type: .user, id: "u1", doc: user("other@x.org"), members: [], now: 1)
            }
        }
        #expect(e?.kind == .uniqueness)
        #expect(e?.description.contains("u1") == false)
        let wrongType = #expect(throws: StoreError.self) {
            try t.store.write { w in
                try (w as! PostgresWriteContext).session.db.run(
                    "UPDATE resources SET version = CAST(? AS BIGINT)", [.text("secret.person@x.org")])
            }
        }
        #expect(wrongType?.description.contains("secret") == false, "\(String(describing: wrongType))")
    }

    private func waitingOnLocks(_ settings: PostgresSettings) throws -> Int {
        let c = try PostgresConnection(conninfo: settings.conninfo, password: settings.password)
        var n = 0
        try c.query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ) { n = Int($0.int64(0)) }
        return n
    }

    /// Polls `condition` until it holds (a bounded wait for something that must happen).
    private func waitUntil(_ what: String, timeout: Double = 20, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try !condition() {
            guard Date() < deadline else { throw TestError("timed out: \(what)") }
            usleep(10_000)
        }
    }
}

/// Connection settings: a string or URL without a password, the password by reference.
@Suite struct PostgresSettingsTests {
    @Test(arguments: [
        "host=db.example port=5432 dbname=scimhub user=hub sslmode=verify-full",
        "postgres://hub@db.example:5432/scimhub?sslmode=verify-full",
        "postgresql://hub@db.example/scimhub",
    ])
    func connectionStringsAndURLs_areAccepted(conninfo: String) throws {
        let s = try PostgresSettings(conninfo: conninfo, password: "pw")
        #expect(s.value("dbname") == "scimhub")
        #expect(s.value("user") == "hub")
    }

    @Test func sslmodeVerifyFull_passesThroughToLibpq() throws {
        let s = try PostgresSettings(conninfo: "postgres://hub@db.example/scimhub?sslmode=verify-full&sslrootcert=/ca")
        #expect(s.value("sslmode") == "verify-full")
        #expect(s.value("sslrootcert") == "/ca")
    }

    @Test(arguments: [
        "host=db.example dbname=scimhub user=hub password=hunter2",
        "postgres://hub:hunter2@db.example/scimhub",
        "postgres://hub@db.example/scimhub?password=hunter2",
    ])
    func aPasswordInTheConnection_isRefused_withoutQuotingIt(conninfo: String) {
        let e = #expect(throws: PostgresSettingsError.self) { try PostgresSettings(conninfo: conninfo) }
        #expect(e?.description.contains("passwordEnv") == true)
        #expect(e?.description.contains("hunter2") == false)
    }

    @Test func passwordByReference_fromTheEnvironmentOrAFile() throws {
        let fromEnv = try PostgresSettings(
            conninfo: "dbname=x", passwordEnv: "PGPW", passwordFile: nil, environment: ["PGPW": "s3cret"],
            readFile: { _ in nil })
        #expect(fromEnv.password == "s3cret")
        let fromFile = try PostgresSettings(
            conninfo: "dbname=x", passwordEnv: nil, passwordFile: "/run/secrets/pg", environment: [:],
            readFile: { $0 == "/run/secrets/pg" ? "  filepw\n" : nil })
        #expect(fromFile.password == "filepw")
        #expect(throws: PostgresSettingsError.self) {
            try PostgresSettings(
                conninfo: "dbname=x", passwordEnv: "MISSING", passwordFile: nil, environment: [:],
                readFile: { _ in nil })
        }
        #expect(throws: PostgresSettingsError.self) { try PostgresSettings(conninfo: "not a == connection '") }
    }
}
