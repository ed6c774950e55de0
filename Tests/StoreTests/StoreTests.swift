// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import HubCrypto
import HubLog
import JSONCore
import SCIM
import SQLite
@testable import Store
import TestSupport

func user(_ name: String, email: String? = nil) -> JSONObject {
    var o = JSONObject(["schemas": .array([.string(SCIMSchemaURN.user)]), "userName": .string(name)])
    if let e = email { o["emails"] = .array([.object(JSONObject(["value": .string(e)]))]) }
    return o
}

@Suite struct StoreTests {
    @Test(arguments: StoreBackend.allCases)
    func insert_thenFetchByIdAndIndexes(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write { (w) throws -> Void in
            try w.connection.insert(
                type: .user, id: "u1", doc: user("Ana@X.org", email: "Ana@Mail.org"), members: [], now: 1)
        }
        try t.store.read { (c) throws -> Void in
            #expect(try c.fetch(type: .user, id: "u1")?.doc["userName"]?.stringValue == "Ana@X.org")
            #expect(try c.fetch(type: .group, id: "u1") == nil)
            #expect(try c.candidates(type: .user, hint: .userName("ana@x.org")).map(\.id) == ["u1"])
            #expect(try c.candidates(type: .user, hint: .email("ana@mail.org")).map(\.id) == ["u1"])
            #expect(try c.count(type: .user) == 1)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func duplicateUserName_caseInsensitive_isAUniquenessStoreError(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        try t.store.write {
            try $0.connection.insert(type: .user, id: "u1", doc: user("ana@x.org"), members: [], now: 1)
        }
        let e = #expect(throws: StoreError.self) {
            try t.store.write {
                try $0.connection.insert(type: .user, id: "u2", doc: user("ANA@X.ORG"), members: [], now: 1)
            }
        }
        #expect(e?.kind == .uniqueness && e?.isInputError == true)
        #expect(try t.store.read { try $0.count(type: .user) } == 1)
    }

    @Test(arguments: StoreBackend.allCases)
    func groupMembers_mustExist_andDeleteCascadesWithNewGroupVersion(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let g = JSONObject(["schemas": .array([.string(SCIMSchemaURN.group)]), "displayName": .string("Nurses")])
        let missing = #expect(throws: StoreError.self) {
            try t.store.write {
                try $0.connection.insert(
                    type: .group, id: "g1", doc: g, members: [MemberRef(id: "ghost", type: "")], now: 1)
            }
        }
        #expect(missing?.kind == .invalidReference)
        try t.store.write { (w) throws -> Void in
            try w.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1)
            try w.connection.insert(
                type: .group, id: "g1", doc: g, members: [MemberRef(id: "u1", type: "User")], now: 1)
        }
        #expect(try t.store.read { try $0.groups(ofMember: "u1").map(\.id) } == ["g1"])
        try t.store.write { (w) throws -> Void in
            let u = try #require(try w.connection.fetch(type: .user, id: "u1"))
            try w.connection.delete(u, now: 2)
        }
        try t.store.read { (c) throws -> Void in
            let group = try #require(try c.fetch(type: .group, id: "g1"))
            #expect(group.version == 2)
            #expect(try c.members(ofGroup: group.seq).isEmpty)
        }
    }

    @Test(arguments: StoreBackend.allCases)
    func groupCommit_manyConcurrentWriters_allDurableAndAudited(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let n = 400
        DispatchQueue.concurrentPerform(iterations: n) { i in
            _ = try? t.store.write { (w) throws -> Void in
                try w.connection.insert(type: .user, id: "u\(i)", doc: user("user\(i)"), members: [], now: 1)
                try AuditLog.append(
                    w,
                    .now(
                        principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)", requestID: "r\(i)"
                    ))
            }
        }
        #expect(try t.store.read { try $0.count(type: .user) } == n)
        let v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.intact)
        #expect(v.entries == n)
    }

    @Test(arguments: StoreBackend.allCases)
    func failingJobInABatch_rollsBackAloneIncludingItsAudit(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        DispatchQueue.concurrentPerform(iterations: 50) { i in
            _ = try? t.store.write { (w) throws -> Void in
                try AuditLog.append(
                    w,
                    .now(principal: "hr", action: "create", resourceType: "User", resourceID: "u\(i)", requestID: "r"))
                // Every odd job inserts a duplicate userName and fails after its audit append.
                try w.connection.insert(
                    type: .user, id: "u\(i)", doc: user(i % 2 == 0 ? "user\(i)" : "user0"), members: [], now: 1)
            }
        }
        let (users, v) = try t.store.read { (try $0.count(type: .user), try AuditLog.verify($0)) }
        #expect(users == 25)
        #expect(v.intact)
        #expect(v.entries == 25)
    }

    @Test(arguments: StoreBackend.allCases)
    func auditChain_tamperingIsDetectedAtTheEntry(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        for i in 1...5 {
            try t.store.write {
                try AuditLog.append(
                    $0,
                    .now(
                        principal: "hr", action: "patch", resourceType: "User", resourceID: "u\(i)",
                        attributes: ["title"], requestID: "r"))
            }
        }
        #expect(try t.store.read { try AuditLog.verify($0) }.intact)
        try t.raw("UPDATE audit SET attributes = 'title,active' WHERE seq = 3")
        var v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.firstBroken?.seq == 3)
        #expect(v.firstBroken?.reason.contains("hash") == true)
        try t.raw("UPDATE audit SET attributes = 'title' WHERE seq = 3")
        try t.raw("DELETE FROM audit WHERE seq = 2")
        v = try t.store.read { try AuditLog.verify($0) }
        #expect(v.firstBroken?.seq == 2)
        #expect(v.firstBroken?.reason.contains("missing") == true)
    }

    @Test(arguments: StoreBackend.allCases)
    func tokens_verifiedByHashAndRevocable(backend: StoreBackend) throws {
        let t = try TempStore(backend)
        let (id, token) = try t.store.write {
            try Tokens.create($0, principal: "hr", scopes: [.scimRead], now: 1, mintedBy: "cli")
        }
        let p = try t.store.read { try Tokens.verify($0, token: token, now: 0) }
        #expect(p?.name == "hr")
        #expect(p?.scopes == [.scimRead])
        #expect(try t.store.read { try Tokens.verify($0, token: token + "x", now: 0) } == nil)
        #expect(try t.store.read { try Tokens.verify($0, token: "shub_\(id)_wrong", now: 0) } == nil)
        let revoked = try t.store.write { try Tokens.revoke($0, id: id, now: 2) }
        #expect(revoked)
        #expect(try t.store.read { try Tokens.verify($0, token: token, now: 0) } == nil)
        // The stored row holds a hash, never the token.
        let stored = try #require(try t.rawBytes("SELECT hash FROM tokens").first)
        #expect(stored.count == 32)
        #expect(!String(decoding: stored, as: UTF8.self).contains(token))
    }

    @Test func reopen_runsMigrationsOnceAndKeepsData() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let s = try SQLiteStore(directory: dir.path, logger: Logger(label: "t", silent: true))
            try s.write { try $0.connection.insert(type: .user, id: "u1", doc: user("a"), members: [], now: 1) }
            s.close()
        }
        let s = try SQLiteStore(directory: dir.path, logger: Logger(label: "t", silent: true))
        defer { s.close() }
        #expect(try s.read { try $0.count(type: .user) } == 1)
        let attrs = try FileManager.default.attributesOfItem(atPath: s.path)
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
    }
}

@Suite struct PasswordHashTests {
    @Test func hashAndVerify_includingEmptyPassword() {
        for pw in ["", "S3cret-pass", "João D'Ávila ✓"] {
            let h = PasswordHash.make(pw, iterations: 1000)
            #expect(h.hasPrefix("$pbkdf2-sha256$1000$"))
            #expect(PasswordHash.verify(pw, against: h))
            #expect(!PasswordHash.verify(pw + "x", against: h))
        }
        #expect(PasswordHash.make("a", iterations: 1000) != PasswordHash.make("a", iterations: 1000))  // salted
        #expect(!PasswordHash.verify("a", against: "$pbkdf2-sha256$nope"))
    }
}

/// RFC 6238 Appendix B test vectors (SHA-1, 8 digits) and base32 round trips.
@Suite struct TOTPTests {
    @Test(arguments: [
        (59.0, "94287082"), (1111111109.0, "07081804"), (1111111111.0, "14050471"), (1234567890.0, "89005924"),
        (2000000000.0, "69279037"),
    ])
    func rfc6238Vectors(time: Double, expected: String) {
        #expect(TOTP.code(secret: Array("12345678901234567890".utf8), step: TOTP.step(at: time), digits: 8) == expected)
    }

    @Test func base32_roundTrips_andRefusesBadCharacters() {
        let bytes: [UInt8] = [0, 1, 2, 250, 251, 252, 253, 254, 255, 42]
        #expect(TOTP.base32Decode(TOTP.base32(bytes)) == bytes)
        #expect(TOTP.base32(Array("foobar".utf8)) == "MZXW6YTBOI")  // RFC 4648 §10
        #expect(TOTP.base32Decode("MZXW6!") == nil)
    }
}
