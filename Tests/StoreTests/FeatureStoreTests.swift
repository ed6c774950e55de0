// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import JSONCore
import SCIM
@testable import Store
import TestSupport

/// Every feature's queries and mutations, round-tripped on each backend: the same calls must
/// give the same answers on SQLite and on PostgreSQL (orderings, NULLs, conflicts, counts).
@Suite struct FeatureStoreTests {
    @Test(arguments: StoreBackend.allCases)
    func resources_lookupsPagesAndRanges(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            for (i, name) in ["carla@x.org", "ana@x.org", "bea@x.org", "anabel@x.org"].enumerated() {
                var doc = user(name, email: "m\(i)@x.org")
                doc["externalId"] = .string("E\(i)")
                try c.insert(type: .user, id: "u\(i)", doc: doc, members: [], now: Double(i))
            }
            let g = JSONObject(["displayName": .string("Ward Nurses")])
            try c.insert(
                type: .group, id: "g1", doc: g, members: [MemberRef(id: "u1", type: "User", display: "Ana")], now: 5)
            let g2 = try #require(try c.fetch(type: .group, id: "g1"))
            try c.update(
                g2, doc: g,
                members: [MemberRef(id: "u1", type: "User", display: "Ana B"), MemberRef(id: "u2", type: "")],
                now: 6)
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.users(userNamePrefix: "ana", limit: 10).map(\.id) == ["u1", "u3"])
            #expect(try c.users(userNamePrefix: "", limit: 2).map(\.id) == ["u1", "u3"])
            #expect(try c.candidates(type: .user, hint: .externalId("E2")).map(\.id) == ["u2"])
            #expect(try c.candidates(type: .group, hint: .displayName("ward nurses")).map(\.id) == ["g1"])
            #expect(try c.candidates(type: .user, hint: .id("u0")).map(\.id) == ["u0"])
            #expect(try c.page(type: .user, offset: 1, limit: 2).map(\.id) == ["u1", "u2"])
            var scanned: [String] = []
            try c.scan(type: .user) {
                scanned.append($0.id); return scanned.count < 3
            }
            #expect(scanned == ["u0", "u1", "u2"])
            #expect(Set(try c.modifiedIDs(type: .user, since: 2)) == ["u2", "u3"])
            let group = try #require(try c.fetch(type: .group, id: "g1"))
            #expect(try c.modifiedGroups(since: 6) == [group.seq])
            #expect(try c.fetch(seq: group.seq)?.id == "g1")
            #expect(group.version == 2 && group.created == 5 && group.modified == 6)
            #expect(try c.typeOf(id: "g1") == .group && c.typeOf(id: "nobody") == nil)
            #expect(
                try c.members(ofGroup: group.seq) == [
                    MemberRef(id: "u1", type: "User", display: "Ana B"), MemberRef(id: "u2", type: "User"),
                ])
            #expect(try c.groups(ofMember: "u2") == [GroupRef(id: "g1", display: "Ward Nurses")])
        }
        let selfMember = #expect(throws: StoreError.self) {
            try t.store.write { (w) throws -> Void in
                let g = try #require(try w.connection.fetch(type: .group, id: "g1"))
                try w.connection.update(g, doc: g.doc, members: [MemberRef(id: "g1", type: "")], now: 7)
            }
        }
        #expect(selfMember?.kind == .invalidReference)
    }

    /// A Bulk-style write: one transaction, a savepoint per operation. An operation that fails
    /// after appending its audit entry is undone with it, and the chain goes on unbroken
    /// (on PostgreSQL the failed statement aborts only the savepoint, and the chain head the
    /// savepoint had moved is read again).
    @Test(arguments: StoreBackend.allCases)
    func savepointsInOneWrite_undoAFailedOperationAndItsAuditEntryOnly(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let outcomes = try t.store.write(isolated: false) { w -> [Bool] in
            var out: [Bool] = []
            for i in 0..<6 {
                do {
                    try w.savepoint {
                        try AuditLog.append(
                            w,
                            .now(
                                principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)",
                                requestID: "bulk"))
                        // Operations 1 and 3 reuse user name 0 and fail on the unique index.
                        try w.connection.insert(
                            type: .user, id: "u\(i)", doc: user(i % 2 == 1 && i < 4 ? "name0" : "name\(i)"),
                            members: [], now: 1)
                    }
                    out.append(true)
                } catch let e as StoreError where e.kind == .uniqueness {
                    out.append(false)
                }
            }
            return out
        }
        #expect(outcomes == [true, false, true, false, true, true])
        let (ids, v) = try t.store.read { c in
            (try (0..<6).filter { try c.fetch(type: .user, id: "u\($0)") != nil }, try AuditLog.verify(c))
        }
        #expect(ids == [0, 2, 4, 5])
        #expect(v.intact && v.entries == 4, "\(v.breaks)")
    }

    /// The SIEM forwarding cursor is shared (one row) and never moves back: a leader that
    /// resent entries after reconnecting cannot rewind what the next leader reads.
    @Test(arguments: StoreBackend.allCases)
    func auditForwardCursor_startsEmpty_andOnlyMovesForward(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        #expect(try t.store.read { try $0.auditForwardCursor() } == nil)
        for (set, expected) in [(Int64(5), Int64(5)), (3, 5), (9, 9)] {
            try t.store.write { try $0.connection.setAuditForwardCursor(set) }
            #expect(try t.store.read { try $0.auditForwardCursor() } == expected, "after \(set)")
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func auditListing_filtersPagesAndHashes(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let entries: [AuditEntry] = (0..<6).map { i in
            AuditEntry(
                time: "2026-12-0\(i + 1)T10:00:00Z", principal: i % 2 == 0 ? "hr" : "admin",
                action: i < 3 ? "create" : "patch", resourceType: "User", resourceID: "u\(i % 3)",
                attributes: ["title"], requestID: "r\(i)", outcome: "success")
        }
        for e in entries { try t.store.write { try AuditLog.append($0, e) } }
        func list(
            since: String? = nil, until: String? = nil, principal: String? = nil, resource: String? = nil,
            action: String? = nil, after: Int64 = 0, limit: Int = 10
        ) throws -> [Int64] {
            try t.store.read {
                try AuditLog.list(
                    $0, since: since, until: until, principal: principal, resourceID: resource, action: action,
                    afterSeq: after, limit: limit)
            }.map(\.seq)
        }
        #expect(try list() == [1, 2, 3, 4, 5, 6])
        #expect(try list(since: "2026-12-02", until: "2026-12-05") == [2, 3, 4])
        #expect(try list(principal: "admin") == [2, 4, 6])
        #expect(try list(resource: "u1", action: "patch") == [5])
        #expect(try list(after: 2, limit: 3) == [3, 4, 5])
        try t.store.read { (c) throws -> Void in
            let head = try c.auditHead()
            #expect(head.seq == 6 && head.hash.count == 32)
            #expect(try c.auditHash(seq: 6) == head.hash)
            #expect(try c.auditHash(seq: 7) == nil)
            let first = try #require(
                try c.auditEntries(
                    since: nil, until: nil, principal: nil, resourceID: nil, action: nil, afterSeq: 0, limit: 1
                ).first)
            #expect(first.prevHash == AuditLog.genesis && first.time == entries[0].time)
        }
    }

    /// A read sees one snapshot: a write committed while it runs is not half-seen.
    @Test(arguments: StoreBackend.allCases)
    func aSnapshotRead_doesNotSeeAWriteCommittedDuringIt(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { try $0.connection.insert(type: .user, id: "u0", doc: user("u0"), members: [], now: 1) }
        let counts = try t.store.read { c -> (Int, Int) in
            let before = try c.count(type: .user)
            // Another thread's write commits in between (this thread waits for it).
            let done = DispatchSemaphore(value: 0)
            Thread {
                _ = try? t.store.write {
                    try $0.connection.insert(type: .user, id: "u1", doc: user("u1"), members: [], now: 1)
                }
                done.signal()
            }.start()
            done.wait()
            return (before, try c.count(type: .user))
        }
        #expect(counts == (1, 1))
        #expect(try t.store.read { try $0.count(type: .user) } == 2)
    }

    @Test(arguments: StoreBackend.allCases)
    func peopleSearch_followsEveryWriteOfAUser(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        @Sendable func named(_ userName: String, _ display: String, title: String? = nil) -> JSONObject {
            var doc = user(userName)
            doc["displayName"] = .string(display)
            if let title { doc["title"] = .string(title) }
            return doc
        }
        try t.store.write { (w) throws -> Void in
            try w.connection.insert(
                type: .user, id: "u1", doc: named("a@x.org", "José Smith-Jones"), members: [], now: 1)
            try w.connection.insert(
                type: .user, id: "u2", doc: named("b@x.org", "Ana Smith", title: "Nurse"), members: [], now: 1)
            try w.connection.insert(
                type: .group, id: "g1", doc: JSONObject(["displayName": .string("Smith fans")]), members: [], now: 1)
        }
        func find(_ word: String) throws -> [String] {
            try t.store.read { c in
                try c.personSearchSeqs(termPrefix: PeopleSearch.words(word)[0], limit: 10).seqs.compactMap {
                    try c.fetch(seq: $0)?.id
                }
            }
        }
        #expect(try find("smith") == ["u1", "u2"])  // "smith-jones" is split: u1 has "smith" too
        #expect(try find("jose") == ["u1"])
        #expect(try find("jones") == ["u1"])
        #expect(try find("nur") == ["u2"])
        // Reading stops at the limit and says so: "smith" (u1, u2) then "smith-jones" (u1).
        let cut = try t.store.read { try $0.personSearchSeqs(termPrefix: "smith", limit: 1) }
        #expect(cut.seqs.count == 1 && !cut.complete)
        let three = try t.store.read { try $0.personSearchSeqs(termPrefix: "smith", limit: 3) }
        #expect(three.seqs.count == 2 && !three.complete)  // a person found by two words counts once
        #expect(try t.store.read { try $0.personSearchSeqs(termPrefix: "smith", limit: 4) }.complete)
        try t.store.write { (w) throws -> Void in
            let u2 = try #require(try w.connection.fetch(type: .user, id: "u2"))
            try w.connection.update(u2, doc: named("b@x.org", "Ana Lima", title: "Nurse"), members: nil, now: 2)
            let u1 = try #require(try w.connection.fetch(type: .user, id: "u1"))
            try w.connection.delete(u1, now: 2)
        }
        #expect(try find("smith").isEmpty)
        #expect(try find("lima") == ["u2"])
        #expect(try find("jones").isEmpty)
    }

    @Test(arguments: StoreBackend.allCases)
    func jobsAndAppliedState_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            try c.enqueue(personID: "p1", target: "ehr", priority: 1, now: 10)
            try c.enqueue(personID: "p1", target: "ehr", priority: 0, now: 11)  // keeps the lower number
            try c.enqueue(personID: "p2", target: "ehr", priority: 1, now: 12)
            try c.deferJob(personID: "p2", target: "ehr", until: 50, attempts: 2, error: "timeout")
            try c.enqueue(personID: "p3", target: "ldap", priority: 1, now: 13)
            try c.expedite(personID: "p3", target: "ldap", now: 14)
        }
        try t.store.read { (c) throws -> Void in
            let p1 = try #require(try c.job(personID: "p1", target: "ehr"))
            #expect(p1.priority == 0 && p1.generation == 2 && p1.enqueued == 10 && p1.state == .pending)
            #expect(try c.readyJobs(target: "ehr", now: 20, limit: 10).map(\.personID) == ["p1"])
            #expect(try c.jobs(target: "ehr", state: nil, limit: 10).map(\.personID) == ["p1", "p2"])
            #expect(try c.jobs(target: nil, state: .pending, limit: 10).count == 3)
            #expect(try c.job(personID: "p3", target: "ldap")?.priority == -1)
            let stats = try c.queueStats(target: "ehr", now: 20)
            #expect(stats.pending == 2 && stats.dead == 0 && stats.oldestPending == 10)
            #expect(try c.nextDue(after: 20) == 50)
        }
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            #expect(try c.releaseBackoff(target: "ehr", now: 21) == 1)
            #expect(try c.deadLetter(personID: "p2", target: "ehr", attempts: 3, error: "no", generation: 1, now: 22))
            #expect(try c.redrive(personID: "p2", target: "ehr", now: 23))
            #expect(try !c.redrive(personID: "p2", target: "ehr", now: 23))
            try c.recordApplied(
                personID: "p1", target: "ehr", accountID: "A1", state: [1, 2, 0, 255], now: 30, result: "ok")
            try c.recordApplied(personID: "p2", target: "ehr", accountID: "A1", state: [], now: 31, result: "ok")
            try c.recordApplied(personID: "p1", target: "ehr", accountID: "A9", state: [3], now: 32, result: "ok")
            try c.recordResult(personID: "p1", target: "ehr", result: "failed: x")
            try c.markPersonDeleted(personID: "p2", now: 40)
        }
        try t.store.read { (c) throws -> Void in
            let a = try #require(try c.applied(personID: "p1").first)
            #expect(a.accountID == "A9" && a.state == [3] && a.applied == 32 && a.lastResult == "failed: x")
            #expect(a.personDeleted == nil)
            #expect(try c.applied(personID: "p2").first?.personDeleted == 40)
            #expect(try c.claimants(target: "ehr", accountID: "A1") == ["p2"])
            #expect(try c.applied(target: "ehr", accountID: "A9")?.personID == "p1")
            #expect(try c.otherClaimant(target: "ehr", accountID: "A1", personID: "p1") == "person p2")
        }
        try t.store.write { try $0.connection.forgetApplied(personID: "p1", target: "ehr") }
        #expect(try t.store.read { try $0.applied(personID: "p1") }.isEmpty)
    }

    @Test(arguments: StoreBackend.allCases)
    func holds_keepJobsUntilReleasedOrDropped(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            try c.recordFeedRemoval(feed: "hr", personID: "p1", now: 10)
            try c.recordFeedRemoval(feed: "hr", personID: "p1", now: 11)
            try c.recordFeedRemoval(feed: "hr", personID: "p2", now: 12)
            try c.pruneFeedRemovals(feed: "hr", before: 10)
            try c.insertHold(
                HoldRecord(id: "h1", feed: "hr", feedToken: nil, created: 13, reason: "too many", state: .open))
            try c.enqueue(personID: "p1", target: "ehr", priority: 1, now: 9)
            try c.holdJob(personID: "p1", target: "ehr", priority: 0, holdID: "h1", now: 14)
            try c.holdJob(personID: "p2", target: "ehr", priority: 0, holdID: "h1", now: 14)
            try c.enqueue(personID: "p2", target: "ehr", priority: 1, now: 15)  // stays held
        }
        let duplicate = #expect(throws: StoreError.self) {
            try t.store.write {
                try $0.connection.insertHold(
                    HoldRecord(id: "h2", feed: "hr", feedToken: "t", created: 13, reason: "again", state: .open))
            }
        }
        #expect(duplicate?.kind == .uniqueness)
        try t.store.read { (c) throws -> Void in
            #expect(try c.feedRemovals(feed: "hr", since: 0) == 2)
            #expect(try c.openHold(feed: "hr")?.id == "h1")
            #expect(try c.heldPeople(holdID: "h1") == ["p1", "p2"])
            #expect(try c.job(personID: "p2", target: "ehr")?.state.rawValue == "held")
            #expect(try c.job(personID: "p1", target: "ehr")?.priority == 0)
            #expect(try c.queueStats(target: "ehr", now: 20).held == 2)
        }
        try t.store.write { (w) throws -> Void in
            #expect(try w.connection.decideHold(id: "h1", state: .released, by: "admin", now: 20))
            #expect(try !w.connection.decideHold(id: "h1", state: .discarded, by: "admin", now: 21))
            #expect(try w.connection.releaseHeldJobs(holdID: "h1", now: 22) == 2)
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.hold(id: "h1")?.state == .released && c.hold(id: "h1")?.decided == 20)
            #expect(try c.holds(limit: 5).map(\.id) == ["h1"])
            #expect(try c.readyJobs(target: "ehr", now: 22, limit: 5).count == 2)
        }
        try t.store.write { (w) throws -> Void in
            try w.connection.holdJob(personID: "p3", target: "ehr", priority: 0, holdID: "h3", now: 30)
            #expect(try w.connection.dropHeldJobs(holdID: "h3") == ["p3"])
        }
        #expect(try t.store.read { try $0.job(personID: "p3", target: "ehr") } == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func accessRequestsAndExceptions_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        var r = AccessRequestRecord(
            id: "r1", personID: "p1", userName: "ana", package: "desk", requestedBy: "ana", requestedByToken: nil,
            justification: "work", days: 30, created: 10, stages: [ApprovalStageRecord(kind: "manager", value: "")],
            sodRules: ["a", "b"], extends: nil, lapses: 100)
        r.state = .pending
        let pending = r
        try t.store.write { try $0.connection.insertAccessRequest(pending) }
        let twice = #expect(throws: StoreError.self) {
            try t.store.write { (w) throws -> Void in
                var again = AccessRequestRecord(
                    id: "r2", personID: "p1", userName: "ana", package: "desk", requestedBy: "ana",
                    requestedByToken: "tok", justification: "x", days: 1, created: 11, stages: [], sodRules: [],
                    extends: nil, lapses: 100)
                again.state = .pending
                try w.connection.insertAccessRequest(again)
            }
        }
        #expect(twice?.kind == .uniqueness)
        var granted = r
        granted.state = .granted
        granted.approvals = [RequestApproval(stage: 0, by: "boss", reason: "ok", at: 20.5, token: "t1")]
        granted.granted = 20
        granted.expires = 200
        granted.noticeAt = 150
        let update = granted
        let updated = try t.store.write { w in
            (
                try w.connection.updateAccessRequest(update, ifState: .pending, stage: 0),
                try w.connection.updateAccessRequest(update, ifState: .pending, stage: 0)
            )
        }
        #expect(updated == (true, false))
        try t.store.read { (c) throws -> Void in
            let back = try #require(try c.accessRequest(id: "r1"))
            #expect(back == granted)
            #expect(try c.accessRequests(state: .granted, limit: 5).map(\.id) == ["r1"])
            #expect(try c.accessRequests(state: nil, limit: 5).map(\.id) == ["r1"])
            #expect(try c.accessRequests(personID: "p1").map(\.id) == ["r1"])
            #expect(try c.activeRequestGrants(personID: "p1", now: 100).map(\.id) == ["r1"])
            #expect(try c.dueAccessRequests(now: 149).isEmpty)
            #expect(try c.dueAccessRequests(now: 150).map(\.id) == ["r1"])
            #expect(try c.nextAccessRequestDeadline() == 150)
        }
        let e = SoDExceptionRecord(
            id: "x1", rule: "pay-approve", personID: "p1", userName: "ana", owner: "cfo", reason: "cover",
            createdBy: "admin", created: 1, expires: 50)
        try t.store.write { try $0.connection.insertSoDException(e) }
        try t.store.read { (c) throws -> Void in
            #expect(try c.sodException(id: "x1") == e)
            #expect(try c.sodExceptions(activeOnly: true, limit: 5).map(\.id) == ["x1"])
            #expect(try c.activeSoDExceptions(personID: "p1", now: 10).map(\.id) == ["x1"])
            #expect(try c.expiredSoDExceptions(now: 50).map(\.id) == ["x1"])
            #expect(try c.nextSoDExceptionExpiry() == 50)
        }
        try t.store.write { (w) throws -> Void in
            #expect(try w.connection.endSoDException(id: "x1", now: 60))
            #expect(try !w.connection.endSoDException(id: "x1", now: 61))
        }
        #expect(try t.store.read { try $0.nextSoDExceptionExpiry() } == nil)
    }

    @Test(arguments: StoreBackend.allCases)
    func breakGlassCredentialsAndMFA_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        var g = BreakGlassRecord(
            id: "b1", personID: "p1", userName: "ana", package: "icu", reason: "code blue", grantedBy: "doc",
            created: 10, expires: 100)
        g.grantedByToken = "tok"
        let grant = g
        try t.store.write { (w) throws -> Void in
            try w.connection.insertBreakGlass(grant)
            try w.connection.setCredentialExpiry(personID: "p1", expires: 500)
            try w.connection.setCredentialExpiry(personID: "p2", expires: 300)
            try w.connection.setCredentialExpiry(personID: "p2", expires: 400)
            try w.connection.setCredentialExpiry(personID: "p3", expires: 50)
            try w.connection.setCredentialExpiry(personID: "p3", expires: nil)
            #expect(try w.connection.enrolMFA(principal: "admin", secret: [0, 1, 2, 0xFF], now: 1))
            #expect(try !w.connection.enrolMFA(principal: "admin", secret: [9], now: 2))
            #expect(try w.connection.acceptMFAStep(principal: "admin", step: 5))
            #expect(try !w.connection.acceptMFAStep(principal: "admin", step: 5))
            try w.connection.recordAttributeSources(
                personID: "p1", attributes: ["title", "active"], principal: "hr", now: 3)
            try w.connection.recordAttributeSources(personID: "p1", attributes: ["title"], principal: "cred", now: 4)
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.activeBreakGlass(personID: "p1", now: 50) == [g])
            #expect(try c.expiredBreakGlass(now: 100).map(\.id) == ["b1"])
            #expect(try c.nextBreakGlassExpiry() == 100)
            #expect(try c.breakGlassGrants(state: "active", limit: 5).map(\.id) == ["b1"])
            #expect(try c.dueCredentialExpiries(now: 450, limit: 10) == ["p2"])
            #expect(try c.nextCredentialExpiry() == 400)
            #expect(try c.expiringCredentials(from: 0, to: 1000, limit: 10).map(\.personID) == ["p2", "p1"])
            #expect(try c.credentialScheduleSize() == 2)
            #expect(try c.mfaSecret(principal: "admin") == [0, 1, 2, 0xFF])
            #expect(
                try c.attributeSources(personID: "p1").map { "\($0.attribute)=\($0.principal)@\($0.time)" } == [
                    "active=hr@3.0", "title=cred@4.0",
                ])
        }
        try t.store.write { (w) throws -> Void in
            #expect(try w.connection.endBreakGlass(id: "b1", now: 100))
            #expect(
                try w.connection.reviewBreakGlass(id: "b1", decision: "justified", reason: "ok", by: "cmo", now: 101))
            #expect(
                try !w.connection.reviewBreakGlass(id: "b1", decision: "unjustified", reason: "", by: "x", now: 102))
            #expect(try w.connection.resetMFA(principal: "admin"))
            try w.connection.forgetAttributeSources(personID: "p1")
        }
        try t.store.read { (c) throws -> Void in
            let b = try #require(try c.breakGlass(id: "b1"))
            #expect(b.ended == 100 && b.reviewDecision == "justified" && b.reviewed == 101 && b.grantedByToken == "tok")
            #expect(try c.breakGlassGrants(state: "reviewed", limit: 5).count == 1)
            #expect(try c.breakGlassGrants(state: "pending-review", limit: 5).isEmpty)
            #expect(try c.nextBreakGlassExpiry() == nil)
            #expect(try c.mfaSecret(principal: "admin") == nil)
            #expect(try c.attributeSources(personID: "p1").isEmpty)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func reconciliationRunsAndFindings_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let run = ReconciliationRunRecord(
            id: "run1", state: RunState(rawValue: "running"), mode: "report", targets: "[\"ehr\"]",
            categories: "[]", requestedBy: "auditor", created: 10, finished: nil, summary: "{\"n\":1}",
            policyVersion: 3)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            try c.insertRun(run)
            try c.appendFindings(
                runID: "run1", firstSeq: 1,
                [
                    FindingRecord(
                        target: "ehr", category: "orphan", personID: nil, userName: "x", displayName: nil,
                        accountID: "A1", detail: nil, entitlements: ["icu-admin", "pharmacy, \"night\""]),
                    FindingRecord(
                        target: "ehr", category: "missing", personID: "p1", userName: "ana", displayName: "Ana",
                        accountID: nil, detail: "role"),
                    FindingRecord(
                        target: "additional", category: "orphan", personID: nil, userName: "y", displayName: nil,
                        accountID: "B1", detail: nil),
                ])
            try c.markSeen(runID: "run1", target: "ehr", personIDs: ["p1", "p1", "p2"])
        }
        try t.store.read { (c) throws -> Void in
            var found: [String] = []
            try c.findings(runID: "run1", categoryOrder: ["missing", "orphan"]) {
                found.append("\($0.target)/\($0.category)/\($0.userName)")
                return true
            }
            #expect(found == ["additional/orphan/y", "ehr/missing/ana", "ehr/orphan/x"])
            var entitlements: [[String]] = []
            try c.findings(runID: "run1", categoryOrder: []) {
                entitlements.append($0.entitlements); return true
            }
            #expect(entitlements == [[], ["icu-admin", "pharmacy, \"night\""], []])
            var first: [String] = []
            try c.findings(runID: "run1", categoryOrder: []) {
                first.append($0.userName); return false
            }
            #expect(first == ["y"])
            #expect(try c.wasSeen(runID: "run1", target: "ehr", personID: "p2"))
            #expect(try !c.wasSeen(runID: "run1", target: "ehr", personID: "p3"))
            #expect(try c.reconciliationRun(id: "run1")?.policyVersion == 3)
        }
        let interrupted = try t.store.write { w in
            try w.connection.forgetSeen(runID: "run1")
            return try w.connection.interruptRuns(now: 20)
        }
        #expect(interrupted == 1)
        try t.store.read { (c) throws -> Void in
            let r = try #require(try c.reconciliationRun(id: "run1"))
            #expect(r.state.rawValue == "failed" && r.finished == 20)
            let summary = try JSONParser().parse(Array(r.summary.utf8)).objectValue
            #expect(summary?["reason"]?.stringValue == "interrupted: the hub stopped during the run")
            #expect(summary?["n"]?.numberValue?.int64 == 1)
            #expect(try !c.wasSeen(runID: "run1", target: "ehr", personID: "p2"))
            #expect(try c.reconciliationRuns(limit: 5).map(\.id) == ["run1"])
        }
        try t.store.write { (w) throws -> Void in
            try w.connection.updateRun(id: "run1", state: RunState(rawValue: "done"), summary: "{}", finished: 30)
            #expect(try w.connection.signOffRun(id: "run1", by: "cco", at: 40, comment: "seen"))
            #expect(try !w.connection.signOffRun(id: "run1", by: "other", at: 41, comment: ""))
        }
        let signOff = try t.store.read { try $0.runSignOff(id: "run1") }
        #expect(signOff?.by == "cco" && signOff?.at == 40 && signOff?.comment == "seen")
    }

    @Test(arguments: StoreBackend.allCases)
    func reconciliationLeases_oneRunPerTarget_allOrNone_lapsedOnesTakenOver(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        func take(_ targets: [String], _ run: String, now: Double) throws -> String? {
            try t.store.write {
                try $0.connection.takeReconciliationLeases(targets: targets, runID: run, until: now + 60, now: now)
            }
        }
        func leases(_ now: Double) throws -> [String: String] {
            try t.store.read { try $0.reconciliationLeases(now: now) }
        }
        #expect(try take(["ehr", "ldap"], "r1", now: 100) == nil)
        // r2 wants ldap and admin: ldap is r1's, so r2 gets neither (admin, taken first in
        // sorted order, was given back).
        #expect(try take(["ldap", "admin"], "r2", now: 110) == "ldap")
        #expect(try leases(110) == ["ehr": "r1", "ldap": "r1"])
        // r1 renews; a run renewing nothing holds nothing.
        func renew(_ run: String, until: Double, now: Double) throws -> Int {
            try t.store.write { try $0.connection.renewReconciliationLeases(runID: run, until: until, now: now) }
        }
        #expect(try renew("r1", until: 200, now: 150) == 2)
        #expect(try renew("r9", until: 200, now: 150) == 0)
        #expect(try take(["ehr"], "r2", now: 190) == "ehr")
        // r1 stops renewing (its process died): at 200 its leases have lapsed and r2 takes one.
        #expect(try leases(200) == [:])
        #expect(try take(["ehr"], "r2", now: 200) == nil)
        #expect(try leases(200) == ["ehr": "r2"])
        // r1, back, learns it holds nothing: a lapsed lease never comes back, even one no
        // other run took.
        #expect(try renew("r1", until: 300, now: 200) == 0)
        #expect(try leases(200) == ["ehr": "r2"])
        try t.store.write { try $0.connection.releaseReconciliationLeases(runID: "r2") }
        #expect(try leases(200) == [:])
    }

    @Test(arguments: StoreBackend.allCases)
    func reconciliationLeases_takenAtOnceByManyRuns_oneWins(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let won = Mutex<[String]>([])
        let failed = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 12) { i in
            do {
                let held = try t.store.write {
                    try $0.connection.takeReconciliationLeases(
                        targets: ["ehr", "ldap"], runID: "r\(i)", until: 160, now: 100)
                }
                if held == nil { won.withLock { $0.append("r\(i)") } }
            } catch {
                failed.withLock { $0.append("\(error)") }
            }
        }
        #expect(failed.withLock { $0 }.isEmpty)
        let winners = won.withLock { $0 }
        #expect(winners.count == 1, "\(winners)")
        let leases = try t.store.read { try $0.reconciliationLeases(now: 100) }
        #expect(leases == ["ehr": winners.first ?? "?", "ldap": winners.first ?? "?"])
    }

    @Test(arguments: StoreBackend.allCases)
    func interruptedRuns_freeTheirTargets(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        @Sendable func run(_ id: String, _ state: String, summary: String) -> ReconciliationRunRecord {
            ReconciliationRunRecord(
                id: id, state: RunState(rawValue: state), mode: "report", targets: "[]", categories: "[]",
                requestedBy: "ops", created: 1, finished: nil, summary: summary)
        }
        try t.store.write { (w) throws -> Void in
            for (id, node, target) in [("a", "n1", "ehr"), ("b", "n2", "ldap"), ("c", nil, "sql")] {
                try w.connection.insertRun(run(id, "running", summary: node.map { #"{"node":"\#($0)"}"# } ?? "{}"))
                #expect(
                    try w.connection.takeReconciliationLeases(targets: [target], runID: id, until: 900, now: 1) == nil)
            }
        }
        // The leader fails n1's run: its target is free at once, not a lease later.
        #expect(
            try t.store.write {
                try $0.connection.interruptRun(id: "a", node: "n1", reason: "interrupted", now: 5)
            })
        #expect(try t.store.read { try $0.reconciliationLeases(now: 5) } == ["ldap": "b", "sql": "c"])
        // A node alone starting up fails every unfinished run and frees its targets, but for
        // the command line's run still holding its lease: it runs elsewhere, now.
        #expect(try t.store.write { try $0.connection.interruptRuns(now: 6) } == 1)
        #expect(try t.store.read { try $0.reconciliationLeases(now: 6) } == ["sql": "c"])
        #expect(try t.store.read { try $0.reconciliationRun(id: "c")?.state } == .running)
        // Once its lease lapsed, it is failed (by the leader's watch) and its lapsed lease goes.
        #expect(
            try t.store.write { try $0.connection.interruptRunWithoutLease(id: "c", reason: "gone", now: 899) } == false
        )
        #expect(try t.store.write { try $0.connection.interruptRunWithoutLease(id: "c", reason: "gone", now: 900) })
        #expect(try t.store.read { try $0.reconciliationLeases(now: 0) } == [:])
    }

    @Test(arguments: StoreBackend.allCases)
    func interruptRun_failsOnlyAnUnfinishedRunOfThatNode_withTheReason(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        @Sendable func run(_ id: String, _ state: String, created: Double, summary: String) -> ReconciliationRunRecord {
            ReconciliationRunRecord(
                id: id, state: RunState(rawValue: state), mode: "report", targets: "[\"ehr\"]", categories: "[]",
                requestedBy: "ops", created: created, finished: nil, summary: summary)
        }
        try t.store.write { (w) throws -> Void in
            try w.connection.insertRun(run("a", "running", created: 1, summary: #"{"node":"n2","targets":{}}"#))
            try w.connection.insertRun(run("b", "queued", created: 2, summary: #"{"node":"n1"}"#))
            try w.connection.insertRun(run("c", "done", created: 3, summary: #"{"node":"n2"}"#))
            try w.connection.insertRun(run("d", "remediating", created: 4, summary: "{}"))
            try w.connection.insertRun(run("e", "awaiting-confirmation", created: 5, summary: #"{"node":"n2"}"#))
        }
        let unfinished = try t.store.read { try $0.unfinishedRuns() }
        #expect(unfinished.map(\.id) == ["a", "b", "d"])
        #expect(unfinished.map(\.node) == ["n2", "n1", nil])
        let reason = "interrupted: node n2 stopped during the run"
        let marked = try t.store.write { w in
            [
                // Another node's run, a finished one, one naming no node, one waiting for a person: untouched.
                try w.connection.interruptRun(id: "b", node: "n2", reason: reason, now: 50),
                try w.connection.interruptRun(id: "c", node: "n2", reason: reason, now: 50),
                try w.connection.interruptRun(id: "d", node: "n2", reason: reason, now: 50),
                try w.connection.interruptRun(id: "e", node: "n2", reason: reason, now: 50),
                try w.connection.interruptRun(id: "a", node: "n2", reason: reason, now: 50),
                // Once only.
                try w.connection.interruptRun(id: "a", node: "n2", reason: reason, now: 60),
            ]
        }
        #expect(marked == [false, false, false, false, true, false])
        try t.store.read { (c) throws -> Void in
            let a = try #require(try c.reconciliationRun(id: "a"))
            #expect(a.state == .failed && a.finished == 50)
            let summary = try JSONParser().parse(Array(a.summary.utf8)).objectValue
            #expect(summary?["reason"]?.stringValue == reason)
            #expect(summary?["node"]?.stringValue == "n2" && summary?["targets"] != nil)
            #expect(try c.reconciliationRun(id: "b")?.state == .queued)
            #expect(try c.reconciliationRun(id: "c")?.state == .done)
            #expect(try c.reconciliationRun(id: "d")?.state == .remediating)
            #expect(try c.reconciliationRun(id: "e")?.state == .awaitingConfirmation)
            #expect(try c.unfinishedRuns().map(\.id) == ["b", "d"])
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func policiesNotificationsConsoleAndTokens_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            let v1 = try c.insertPolicyVersion(
                hash: "h1", text: Array("rules: []".utf8), author: "policy-file", now: 1, state: .active,
                heldReason: nil)
            let v2 = try c.insertPolicyVersion(
                hash: "h2", text: [0, 1], author: "admin", now: 2, state: .held, heldReason: "too many")
            #expect(v1.version == 1 && v2.version == 2)
            #expect(try c.confirmPolicyVersion(2, by: "other-admin"))
            #expect(try !c.confirmPolicyVersion(2, by: "other-admin"))
            try c.markPolicyRolledOut(2, now: 3)
            for (i, due) in [30.0, 10.0, 20.0].enumerated() {
                try c.insertNotification(
                    NotificationRecord(
                        id: "n\(i)", event: "leaver", channel: "email", recipient: "it@x.org", subject: "s", body: "b",
                        created: Double(i), notBefore: due))
            }
            try c.markNotificationSent(id: "n1", now: 11)
            try c.notificationFailed(id: "n2", attempts: 1, until: 40, error: "smtp 451", dead: false)
            try c.insertConsoleSession(
                ConsoleSessionRecord(
                    idHash: "s1", userName: "ana", personID: nil, roles: ["admin", "auditor"], method: "oidc",
                    csrf: "c", created: 1, lastSeen: 1, expires: 100))
            try c.insertPendingSignIn(
                PendingSignIn(stateHash: "st", nonce: "n", verifier: "v", returnTo: "/", created: 5))
            try c.insertPendingSignIn(
                PendingSignIn(stateHash: "old", nonce: "n", verifier: "v", returnTo: "/", created: 1))
            try c.insertLocalAccount(LocalAccountRecord(name: "breakglass", passwordHash: "$pbkdf2", created: 1))
            try c.insertToken(
                StoredToken(
                    id: "t1", principal: "hr", scopes: [.scimRead, .scimWrite], hash: Array(repeating: 7, count: 32),
                    created: 1, mintedBy: "cli", mintedByToken: nil, approvedBy: nil))
            try c.insertTokenRequest(
                TokenRequest(
                    id: "q1", principal: "auditor", scopes: [.auditor], requestedBy: "ana", requestedByToken: "t1",
                    created: 10, approvedBy: nil, tokenID: nil, expiresInDays: 7))
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.latestPolicyVersion()?.state == .active)
            #expect(try c.policyVersion(1)?.text == Array("rules: []".utf8))
            let two = try #require(try c.policyVersion(2))
            #expect(two.confirmedBy == "other-admin" && two.rolledOut == 3 && two.heldReason == "too many")
            #expect(try c.policyVersions(limit: 5).map(\.version) == [2, 1])
            #expect(try c.dueNotifications(now: 30, limit: 10).map(\.id) == ["n0"])
            #expect(try c.nextNotificationDue(after: 30) == 40)
            #expect(try c.notifications(limit: 2).map(\.id) == ["n2", "n1"])
            #expect(try c.consoleSession(idHash: "s1")?.roles == ["admin", "auditor"])
            #expect(try c.localAccount(name: "breakglass")?.disabled == false)
            #expect(try c.token(id: "t1")?.scopes == [.scimRead, .scimWrite])
            #expect(try c.openTokenRequests(createdAfter: 0).map(\.id) == ["q1"])
            #expect(try c.tokenRequest(id: "q1", createdAfter: 0)?.expiresInDays == 7)
            #expect(try c.tokenRequest(id: "q1", createdAfter: 10) == nil)
        }
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            #expect(try c.touchConsoleSession(idHash: "s1", now: 5))
            #expect(try c.takePendingSignIn(stateHash: "st")?.nonce == "n")
            #expect(try c.takePendingSignIn(stateHash: "st") == nil)
            try c.prunePendingSignIns(before: 2)
            #expect(try c.takePendingSignIn(stateHash: "old") == nil)
            #expect(try c.setLocalAccountDisabled(name: "breakglass", disabled: true))
            #expect(try c.endConsoleSessions(userName: "ana", now: 6) == 1)
            #expect(try !c.endConsoleSession(idHash: "s1", now: 7))
            try c.recordTokenUse(id: "t1", now: 8)
            #expect(try c.revokeToken(id: "t1", now: 9))
            #expect(try c.approveTokenRequest(id: "q1", by: "boss", now: 11))
            #expect(try c.markTokenRequestIssued(id: "q1", tokenID: "t2", now: 12))
            #expect(try !c.markTokenRequestIssued(id: "q1", tokenID: "t3", now: 13))
        }
        try t.store.read { (c) throws -> Void in
            let s = try #require(try c.consoleSession(idHash: "s1"))
            #expect(s.lastSeen == 5 && s.ended == 6)
            #expect(try c.localAccounts().map(\.disabled) == [true])
            let info = try #require(try c.tokens().first)
            #expect(info.lastUsed == 8 && info.revoked == 9 && info.scopes == ["scim:read", "scim:write"])
            #expect(try c.openTokenRequests(createdAfter: 0).isEmpty)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func reviewsAndHoldings_roundTrip(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let campaign = ReviewCampaignRecord(
            id: "c1", name: "Q1", scopeKind: "package", scopeValue: "desk", reviewers: ["rita", "sam"], due: 100,
            defaultDecision: "approve", state: "open", createdBy: "scheduler", created: 5, closed: nil)
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            try c.insertCampaign(campaign)
            try c.insertItem(
                campaignID: "c1",
                ReviewItemRecord(
                    seq: 1, personID: "p1", userName: "ana", displayName: "Ana", package: "desk", reviewers: [],
                    assignment: nil))
            try c.revokePackage(personID: "p1", package: "desk", campaignID: "c1", reason: "left", now: 1)
            try c.revokePackage(personID: "p1", package: "desk", campaignID: "c2", reason: "again", now: 2)
            try c.revokePackage(personID: "p1", package: "icu", campaignID: "c1", reason: "r", now: 2)
            for (p, since) in [("p1", 3.0), ("p2", 1.0), ("p3", 2.0)] {
                try c.recordHolding(personID: p, package: "desk", since: since)
            }
            try c.recordHolding(personID: "p1", package: "icu", since: 9)
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.campaign(id: "c1") == campaign)
            #expect(try c.campaigns(limit: 5).map(\.id) == ["c1"])
            #expect(try c.overdueCampaigns(now: 100).map(\.id) == ["c1"])
            #expect(try c.lastScheduledCampaign() == 5)
            #expect(try c.campaignsToRemind(dueBy: 100).map(\.id) == ["c1"])
            #expect(try c.items(campaignID: "c1").first?.reviewers == [])
            #expect(try c.revokedPackages(personID: "p1") == ["desk", "icu"])
            #expect(try c.holdingCounts() == ["desk": 3, "icu": 1])
            #expect(try c.holders(package: "desk", limit: 2).map(\.personID) == ["p2", "p3"])
        }
        try t.store.write { (w) throws -> Void in
            let c = w.connection
            try c.markCampaignReminded(id: "c1", now: 50)
            #expect(try c.reassignItem(campaignID: "c1", seq: 1, reviewer: "zoe"))
            #expect(try c.decide(campaignID: "c1", seq: 1, decision: "revoke", reason: "gone", by: "zoe", now: 60))
            #expect(try !c.reassignItem(campaignID: "c1", seq: 1, reviewer: "x"))
            try c.setCampaignDue(id: "c1", due: 200)
            try c.setCampaignState(id: "c1", state: "closing")
            try c.closeCampaign(id: "c1", now: 70)
            #expect(try c.liftRevocation(personID: "p1", package: "icu"))
            #expect(try !c.liftRevocation(personID: "p1", package: "icu"))
        }
        try t.store.read { (c) throws -> Void in
            let back = try #require(try c.campaign(id: "c1"))
            #expect(back.state == "closed" && back.closed == 70 && back.due == 200)
            #expect(try c.campaignsToRemind(dueBy: 1000).isEmpty)  // closed
            let item = try #require(try c.item(campaignID: "c1", seq: 1))
            #expect(item.decision == "revoke" && item.decidedBy == "zoe" && item.reviewers == ["zoe"])
            #expect(item.assignment == .reassigned)
            #expect(try c.revokedPackages(personID: "p1") == ["desk"])
        }
    }
}
