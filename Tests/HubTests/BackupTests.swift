// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
import HubHarness
import HubLog
import JSONCore
import Store
import Synchronization
import TestSupport

/// `scimhub backup` while the hub serves and writes, `scimhub restore`, and their refusals.
@Suite struct BackupTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    @Test func backupUnderWriteLoad_restoresOneConsistentSnapshot_andItsQueueResumes() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        defer { ehr.stop() }
        ehr.setFault(.error5xx)  // changes stay queued: the restore must carry its queue
        let hub = try LiveHub(policy: ehrPolicy(ehr))
        let out = TemporaryDirectory()
        defer { out.remove() }
        let file = out.path + "/hub.backup", restored = out.path + "/restored"
        // Four writers keep creating people while the backup runs.
        let stop = Mutex(false), created = Mutex(0)
        let writers = DispatchGroup()
        for w in 0..<4 {
            writers.enter()
            Thread {
                defer { writers.leave() }
                var i = 0
                while !stop.withLock({ $0 }) {
                    let r = try? hub.call(
                        "POST", "/scim/v2/Users", body: person("w\(w)-\(i)@x.org", title: "Receptionist"))
                    if r?.status == 201 { created.withLock { $0 += 1 } }
                    i += 1
                }
            }.start()
        }
        eventually("writes under way") { created.withLock { $0 } >= 40 }
        let before = created.withLock { $0 }
        let backup = try HubProcess.runWithStatus(Self.binary, ["backup", "--data", hub.directory.path, "--to", file])
        let after = created.withLock { $0 }
        stop.withLock { $0 = true }
        writers.wait()
        #expect(backup.status == 0, "\(backup.out)")
        let users = try #require(backup.out.firstMatch(of: /backup: (\d+) users/).map { Int($0.1)! })
        #expect(users >= before && users <= after + 4, "\(before) ≤ \(users) ≤ \(after)")
        hub.stop()

        let restore = try HubProcess.runWithStatus(Self.binary, ["restore", "--from", file, "--data", restored])
        #expect(restore.status == 0 && restore.out.contains("audit chain: intact"), "\(restore.out)")
        #expect(restore.out.contains("restore: \(users) users"))
        // One snapshot: every person in it has the audit entry of their creation, and no more.
        let store = try SQLiteStore(directory: restored, logger: Logger(label: "t", silent: true))
        let (people, creates, pending) = try store.read { conn in
            var n = 0
            try conn.scanAudit {
                if $0.action == "create" && $0.resourceType == "User" && $0.outcome == "success" { n += 1 }
            }
            return (try conn.count(type: .user), n, try conn.queueStats(target: "ehr", now: 0).pending)
        }
        store.close()
        #expect(people == users && creates == users && pending > 0, "\(people) \(creates) \(pending)")
        // The restored hub takes up the queue where the backup left it.
        ehr.setFault(.none)
        let again = try LiveHub(policy: ehrPolicy(ehr)) { $0.dataDirectory = restored }
        defer { again.stop() }
        eventually("every restored person provisioned", timeout: 30) { ehr.snapshot().count == users }
    }

    @Test func backupAndRestore_refuseWhatWouldLoseData_andNameTheProblem() throws {
        let hub = try LiveHub()
        let out = TemporaryDirectory()
        defer { out.remove() }
        for i in 0..<30 { _ = try hub.call("POST", "/scim/v2/Users", body: person("r\(i)@x.org", title: "Clerk")) }
        let data = hub.directory.path, file = out.path + "/b"
        func run(_ args: [String]) throws -> (status: Int32, text: String) {
            let r = try HubProcess.runWithStatus("/bin/sh", ["-c", "\"$0\" \"$@\" 2>&1", Self.binary] + args)
            return (r.status, r.out)
        }
        // A full disk (a 16 KiB file-size limit): the backup fails, leaves no file, and the
        // store is untouched.
        let full = try HubProcess.runWithStatus(
            "/bin/bash",
            [
                "-c", "ulimit -f 16 && exec \"$0\" \"$@\" 2>&1", Self.binary, "backup", "--data", data,
                "--to", file,
            ])
        #expect(full.status != 0 && full.out.contains("could not be written"), "\(full.out)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
        #expect(try hub.call("GET", "/scim/v2/Users?count=0").object["totalResults"] == .int(30))
        // A good one, then what is refused.
        #expect(try run(["backup", "--data", data, "--to", file]).status == 0)
        let again = try run(["backup", "--data", data, "--to", file])
        #expect(again.status != 0 && again.text.contains("never overwrites"), "\(again.text)")
        let none = try run(["backup", "--data", out.path + "/nothing", "--to", out.path + "/x"])
        #expect(none.status != 0 && none.text.contains("no store in"), "\(none.text)")
        let over = try run(["restore", "--from", file, "--data", data])
        #expect(over.status != 0 && over.text.contains("already holds a store"), "\(over.text)")
        #expect(try hub.call("GET", "/scim/v2/Users?count=0").object["totalResults"] == .int(30))
        let junk = out.path + "/junk"
        try Data("not a database at all".utf8).write(to: URL(fileURLWithPath: junk))
        let bad = try run(["restore", "--from", junk, "--data", out.path + "/r"])
        #expect(bad.status != 0 && bad.text.contains("not a ScimHub store"), "\(bad.text)")
        #expect(!FileManager.default.fileExists(atPath: out.path + "/r/scimhub.sqlite"))
        hub.stop()
    }
}
