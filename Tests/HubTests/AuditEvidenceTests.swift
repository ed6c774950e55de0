// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import HubCrypto
import JSONCore
import SQLite
import Store
import TestSupport

/// Audit evidence against an attacker who can write the database: signed checkpoints of
/// the chain head (outside the database) reveal a cut tail or a rewritten, re-hashed chain;
/// `audit verify` reports every break, not only the first.
@Suite struct AuditEvidenceTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    func cli(_ args: [String]) throws -> (status: Int32, out: String) {
        try HubProcess.runWithStatus(Self.binary, args)
    }

    /// The export a SIEM pulls: NDJSON pages with a resumable cursor whose entries link hash
    /// to hash; a checkpoint every N entries, published at `/admin/audit/checkpoint`, that the
    /// exported chain reaches.
    @Test func export_pagesLinkHashToHash_andReachTheCheckpointSignedEveryNEntries() throws {
        let keys = TemporaryDirectory()
        defer { keys.remove() }
        let key = keys.path + "/audit.key", checkpoints = keys.path + "/checkpoints.jsonl"
        #expect(try cli(["audit", "keygen", "--out", key]).status == 0)
        let hub = try LiveHub {
            $0.auditKeyFile = key
            $0.auditCheckpointFile = checkpoints
            $0.auditCheckpointSeconds = 3600  // by entries only, within this test
            $0.auditCheckpointEntries = 10
        }
        defer { hub.stop() }
        for i in 0..<25 { _ = try hub.call("POST", "/scim/v2/Users", body: person("e\(i)@x.org", title: "Clerk")) }
        var published = JSONObject()
        eventually("a checkpoint after 10 more entries, long before the hour") {
            published = try hub.call("GET", "/admin/audit/checkpoint", token: hub.admin).object
            return (published["seq"]?.numberValue?.int64 ?? 0) >= 20
        }
        let auditor = try hub.makeToken("compliance", [.auditor])
        var lines: [JSONObject] = []
        var after = "0"
        for _ in 0..<10 {
            let page = try hub.call("GET", "/admin/audit/export?after=\(after)&count=7", token: auditor)
            #expect(page.status == 200 && page.header("Content-Type") == "application/x-ndjson")
            let got = page.text.split(separator: "\n").compactMap {
                try? JSONParser().parse(Array($0.utf8)).objectValue
            }
            lines += got
            after = try #require(page.header("X-ScimHub-Next-After"))
            #expect((page.header("Link") != nil) == (got.count == 7))
            if got.count < 7 { break }
        }
        #expect(lines.count >= 25)
        var previous = String(repeating: "0", count: 64)
        for (i, e) in lines.enumerated() {
            #expect(e["seq"]?.numberValue?.int64 == Int64(i + 1))
            #expect(e["prevHash"]?.stringValue == previous, "entry \(i + 1) links to its predecessor")
            previous = e["hash"]?.stringValue ?? ""
        }
        let seq = Int(published["seq"]?.numberValue?.int64 ?? 0)
        #expect(lines[seq - 1]["hash"]?.stringValue == published["head"]?.stringValue)
        let head = try #require(published["head"]?.stringValue)
        let v = try cli(["audit", "verify", "--data", hub.directory.path, "--checkpoint", "\(head)@\(seq)"])
        #expect(v.status == 0, "\(v.out)")
        #expect(try hub.call("GET", "/admin/audit/export", token: hub.reader).status == 403)
        #expect(try hub.call("GET", "/admin/audit/export?count=0", token: auditor).status == 400)
        #expect(try hub.call("GET", "/admin/audit/export?after=x", token: auditor).status == 400)
        let plain = try LiveHub()
        defer { plain.stop() }
        #expect(try plain.call("GET", "/admin/audit/checkpoint", token: plain.admin).status == 404)
    }

    @Test func checkpoint_revealsACutTail_andARehashedRewrite() throws {
        let data = TemporaryDirectory(), keys = TemporaryDirectory()
        defer { data.remove(); keys.remove() }
        let key = keys.path + "/audit.key", checkpoints = keys.path + "/checkpoints.jsonl"
        #expect(try cli(["audit", "keygen", "--out", key]).status == 0)
        #expect(try cli(["audit", "keygen", "--out", key]).status != 0)  // never overwritten
        // The key may not live in the data folder.
        let inData = data.path + "/audit.key"
        try FileManager.default.copyItem(atPath: key, toPath: inData)
        #expect(throws: (any Error).self) {
            try HubProcess(
                binary: Self.binary, data: data.path,
                extraArguments: ["--audit-key", inData, "--audit-checkpoints", checkpoints])
        }

        let token = try HubProcess.createToken(
            Self.binary, data: data.path, principal: "hr", scopes: "scim:read,scim:write")
        let hub = try HubProcess(
            binary: Self.binary, data: data.path,
            extraArguments: ["--audit-key", key, "--audit-checkpoints", checkpoints])
        let c = try RawHTTPClient(port: hub.port)
        for i in 0..<150 {
            let r = c.request(
                "POST", "/scim/v2/Users",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")],
                body: Array(
                    #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"u\#(i)@x.org"}"#.utf8))
            #expect(r?.status == 201)
        }
        #expect(hub.stop() == 0)  // shutdown signs the head
        let lines = try String(contentsOfFile: checkpoints, encoding: .utf8).split(separator: "\n")
        let last = try #require(lines.last.flatMap { AuditCheckpoint(text: String($0)) })
        #expect(last.seq == 151)  // token creation + 150 creates
        let verifyArgs = [
            "audit", "verify", "--data", data.path, "--checkpoint", checkpoints, "--public-key", key + ".pub",
        ]
        var v = try cli(verifyArgs)
        #expect(v.status == 0 && v.out.contains("reaches the checkpoint at entry 151"), "\(v.out)")

        // Cutting the last 100 entries still verifies as a chain, but not against the checkpoint.
        let raw = try SQLiteConnection(path: data.path + "/scimhub.sqlite")
        let saved = data.path + "/copy.sqlite"
        try raw.execute("VACUUM INTO '\(saved)'")
        try raw.run("DELETE FROM audit WHERE seq > 51")
        #expect(try cli(["audit", "verify", "--data", data.path]).status == 0)  // the chain alone cannot tell
        v = try cli(verifyArgs)
        #expect(v.status == 1)
        #expect(
            v.out.contains("checkpoint at entry 151") && v.out.contains("the log ends at entry 51: its tail was cut"),
            "\(v.out)")

        // Rewriting an entry and re-hashing everything after it: caught at the checkpoint.
        let restored = try SQLiteConnection(path: saved)
        try rehashAfterEditing(restored, seq: 40)
        try FileManager.default.removeItem(atPath: data.path + "/scimhub.sqlite")
        try? FileManager.default.removeItem(atPath: data.path + "/scimhub.sqlite-wal")
        try? FileManager.default.removeItem(atPath: data.path + "/scimhub.sqlite-shm")
        try FileManager.default.copyItem(atPath: saved, toPath: data.path + "/scimhub.sqlite")
        #expect(try cli(["audit", "verify", "--data", data.path]).status == 0)  // re-hashed: the chain checks
        v = try cli(verifyArgs)
        #expect(v.status == 1)
        #expect(v.out.contains("checkpoint at entry 151") && v.out.contains("the chain was rewritten"), "\(v.out)")

        // A forged checkpoint line (another key) is refused; so is a hand-published HASH@SEQ that differs.
        let other = keys.path + "/other.key"
        #expect(try cli(["audit", "keygen", "--out", other]).status == 0)
        v = try cli([
            "audit", "verify", "--data", data.path, "--checkpoint", checkpoints, "--public-key", other + ".pub",
        ])
        #expect(v.status == 1 && v.out.contains("is not signed by this key"), "\(v.out)")
        v = try cli(["audit", "verify", "--data", data.path, "--checkpoint", "\(last.head)@151"])
        #expect(v.status == 1 && v.out.contains("rewritten"), "\(v.out)")
    }

    /// What an attacker with write access to the file does: edit entry `seq`, then recompute
    /// every hash from there on so the chain checks again.
    func rehashAfterEditing(_ db: SQLiteConnection, seq: Int64) throws {
        try db.run("UPDATE audit SET principal = 'someone-else' WHERE seq = ?", [.integer(seq)])
        var prev = [UInt8](repeating: 0, count: 32)
        try db.query("SELECT hash FROM audit WHERE seq = ?", [.integer(seq - 1)]) { prev = $0.blob(0) }
        var rows: [(Int64, [SQLiteValue])] = []
        try db.query(
            "SELECT seq, time, principal, action, resource_type, resource_id, attributes, request_id, outcome "
                + "FROM audit WHERE seq >= ? ORDER BY seq",
            [.integer(seq)]
        ) { r in
            rows.append((r.int64(0), (1...8).map { .text(r.text($0) ?? "") }))
        }
        for (s, f) in rows {
            func t(_ i: Int) -> String { if case .text(let v) = f[i] { return v } else { return "" } }
            let attrs: JSONValue = (try? JSONParser().parse(Array(t(5).utf8))) ?? .array([])
            let fields: JSONValue = .array([
                .number(JSONNumber(Int(s))), .string(t(0)), .string(t(1)), .string(t(2)), .string(t(3)), .string(t(4)),
                attrs, .string(t(6)), .string(t(7)),
            ])
            let hash = Crypto.sha256(prev + JSONWriter().write(fields))
            try db.run(
                "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", [.blob(prev), .blob(hash), .integer(s)])
            prev = hash
        }
    }
}
