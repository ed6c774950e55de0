// SPDX-License-Identifier: Apache-2.0
import Testing
import SQLite
import Store

/// The chain's encoding and verification: names with commas stay intact, every break is reported.
@Suite struct AuditChainTests {
    @Test func verify_reportsEveryBreak_andListsWithCommasStayIntact() throws {
        let t = try TempStore()
        for i in 1...6 {
            try t.store.write { try AuditLog.append($0, .now(principal: "hr", action: "patch", resourceType: "User", resourceID: "u\(i)",
                                                               attributes: ["a,b", "ward,nurse", "title"], requestID: "r")) }
        }
        var v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.intact, "a comma inside a name must not break the chain")
        #expect(try t.store.read { try AuditLog.list($0, since: nil, until: nil, principal: nil, resourceID: "u1", afterSeq: 0, limit: 1) }.first?.attributes
                == ["a,b", "ward,nurse", "title"])
        let raw = try SQLiteConnection(path: t.store.path)
        try raw.run("UPDATE audit SET outcome = 'failure' WHERE seq = 2")
        try raw.run("UPDATE audit SET resource_id = 'u9' WHERE seq = 5")
        v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.breakCount == 2)
        #expect(v.breaks.map(\.seq) == [2, 5])
    }
}
