// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import SQLite
@testable import Store
import TestSupport

/// What migration 18 stores for reviews people can finish: several reviewers per item,
/// escalation and delegation that happen once, tenure, and migrations that run by number.
@Suite struct ReviewStoreTests {
    func campaign(_ t: TempStore) throws {
        try t.store.write { w in
            try w.connection.insertCampaign(
                ReviewCampaignRecord(
                    id: "c1", name: "Q1", scopeKind: "target", scopeValue: "ehr", reviewers: [], due: 100,
                    defaultDecision: "keep-and-flag", state: "open", createdBy: "auditor", created: 0, closed: nil))
            try w.connection.insertItem(
                campaignID: "c1",
                ReviewItemRecord(
                    seq: 1, personID: "p1", userName: "ana@x.org", displayName: nil, package: "desk",
                    reviewers: ["boss@x.org"], assignment: .manager))
            try w.connection.insertItem(
                campaignID: "c1",
                ReviewItemRecord(
                    seq: 2, personID: "p2", userName: "carla@x.org", displayName: nil, package: "desk",
                    reviewers: ["rita", "sam"], assignment: .fallback))
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func anItemsReviewers_roundTrip_andAnEscalationHappensOnce(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try campaign(t)
        #expect(try t.store.read { try $0.item(campaignID: "c1", seq: 2) }?.reviewers == ["rita", "sam"])
        #expect(try t.store.read { try $0.campaignsToEscalate(now: 50, window: 50) }.map(\.id) == ["c1"])
        #expect(try t.store.read { try $0.campaignsToEscalate(now: 49, window: 50) }.isEmpty)  // not yet
        #expect(try t.store.read { try $0.campaignsToEscalate(now: 100, window: 50) }.isEmpty)  // due: it closes
        #expect(try t.store.read { try $0.campaignsToEscalate(now: 0, window: 100) }.isEmpty)  // too short
        #expect(try t.store.read { try $0.itemsToEscalate(campaignID: "c1") }.map(\.seq) == [1])
        #expect(
            try t.store.write {
                try $0.connection.escalateItem(campaignID: "c1", seq: 1, reviewers: ["chief"], now: 60)
            })
        #expect(
            try !t.store.write { try $0.connection.escalateItem(campaignID: "c1", seq: 1, reviewers: ["x"], now: 61) })
        #expect(try !t.store.write { try $0.connection.escalateItem(campaignID: "c1", seq: 2, reviewers: [], now: 61) })
        let item = try #require(try t.store.read { try $0.item(campaignID: "c1", seq: 1) })
        #expect(item.reviewers == ["chief"] && item.originalReviewer == "boss@x.org" && item.escalated == 60)
        #expect(item.assignment == .escalated)
        #expect(try t.store.read { try $0.campaignsToEscalate(now: 60, window: 50) }.isEmpty)
    }

    @Test(arguments: StoreBackend.allCases)
    func aDelegation_needsTheItemWhereTheDelegatorFoundIt(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try campaign(t)
        let stale = try t.store.write {
            try $0.connection.delegateItem(campaignID: "c1", seq: 2, from: ["rita"], to: "d", by: "rita", reason: "r")
        }
        #expect(!stale)
        let moved = try t.store.write {
            try $0.connection.delegateItem(
                campaignID: "c1", seq: 2, from: ["rita", "sam"], to: "dee", by: "rita", reason: "on leave")
        }
        #expect(moved)
        let item = try #require(try t.store.read { try $0.item(campaignID: "c1", seq: 2) })
        #expect(item.reviewers == ["dee"] && item.assignment == .delegated && item.delegatedBy == "rita")
        #expect(item.delegationReason == "on leave")
        _ = try t.store.write {
            try $0.connection.decide(campaignID: "c1", seq: 2, decision: "approve", reason: "ok", by: "dee", now: 1)
        }
        let decided = try t.store.write {
            try $0.connection.delegateItem(campaignID: "c1", seq: 2, from: ["dee"], to: "x", by: "dee", reason: "r")
        }
        #expect(!decided)
    }

    @Test(arguments: StoreBackend.allCases)
    func holdings_keepTheFirstStart(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { w in
            try w.connection.recordHolding(personID: "p1", package: "desk", since: 10)
            try w.connection.recordHolding(personID: "p1", package: "desk", since: 20)
            try w.connection.recordHolding(personID: "p1", package: "nurse", since: 30)
            try w.connection.removeHolding(personID: "p1", package: "nurse")
        }
        #expect(try t.store.read { try $0.holdings(personID: "p1") } == ["desk": 10])
        #expect(try t.store.read { try $0.holdingSince(personID: "p1", package: "desk") } == 10)
        #expect(try t.store.read { try $0.holdingSince(personID: "p1", package: "nurse") } == nil)
    }

    @Test func holdingsFromBeforeMigration18_areFirstObservedFromTheAppliedPackages() throws {
        let t = try TempStore()
        @Sendable func state(_ enabled: Bool, _ packages: [String]) -> [UInt8] {
            let list = packages.map { "\"\($0)\"" }.joined(separator: ",")
            return Array(
                #"{"userName":"u","enabled":\#(enabled),"attributes":{},"entitlements":[],"packages":[\#(list)]}"#.utf8)
        }
        try t.store.write { w in
            let c = w.connection
            try c.recordApplied(
                personID: "p1", target: "ehr", accountID: "1", state: state(true, ["desk"]), now: 1, result: "ok")
            try c.recordApplied(
                personID: "p1", target: "ldap", accountID: "1", state: state(true, ["desk", "nurse"]), now: 1,
                result: "ok")
            try c.recordApplied(
                personID: "p2", target: "ehr", accountID: "2", state: state(false, ["desk"]), now: 1, result: "ok")
            try c.recordApplied(
                personID: "p3", target: "ehr", accountID: "3", state: state(true, ["desk"]), now: 1, result: "ok")
            try c.markPersonDeleted(personID: "p3", now: 2)
        }
        let before = floor(Date().timeIntervalSince1970)
        let db = try SQLiteConnection(path: t.sqlite.path)
        try db.execute(Migrations.holdingsBackfill)
        let p1 = try t.store.read { try $0.holdings(personID: "p1") }
        #expect(Set(p1.keys) == ["desk", "nurse"])
        #expect(p1.values.allSatisfy { $0 >= before && $0 <= Date().timeIntervalSince1970 + 1 })
        #expect(try t.store.read { try $0.holdings(personID: "p2") }.isEmpty)  // disabled account
        #expect(try t.store.read { try $0.holdings(personID: "p3") }.isEmpty)  // deleted person
    }

    @Test func aMigrationNumberLeftFree_stillRunsAfterAHigherOne() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let db = try SQLiteConnection(path: dir.path + "/m.sqlite")
        try Migrations.run(db, migrations: [(1, "CREATE TABLE a(x);"), (3, "CREATE TABLE c(x);")])
        // 1 and 3 would fail if run again (their tables exist): only 2 runs.
        try Migrations.run(
            db, migrations: [(1, "CREATE TABLE a(x);"), (2, "CREATE TABLE b(x);"), (3, "CREATE TABLE c(x);")])
        var versions: [Int64] = []
        try db.query("SELECT version FROM schema_migrations ORDER BY version") { versions.append($0.int64(0)) }
        #expect(versions == [1, 2, 3])
        try db.run("INSERT INTO b(x) VALUES (1)")
    }
}
