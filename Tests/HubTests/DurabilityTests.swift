// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import Synchronization
import JSONCore
import TestSupport

/// A 2xx means durable: `kill -9` of the real `scimhub` process the next instant loses nothing.
@Suite struct DurabilityTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    @Test func kill9AfterAcknowledgedCreates_losesNothing() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let token = try HubProcess.createToken(
            Self.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
        let hub = try HubProcess(binary: Self.binary, data: dir.path)
        let port = hub.port
        let acknowledged = Mutex<[String]>([])
        let stop = Atomic<Bool>(false)
        let group = DispatchGroup()
        for t in 0..<8 {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let c = try? RawHTTPClient(port: port, timeout: 5) else { return }
                var i = 0
                while !stop.load(ordering: .relaxed) {
                    let body =
                        #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"t\#(t)-\#(i)@x.org"}"#
                    guard
                        let r = c.request(
                            "POST", "/scim/v2/Users",
                            headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")],
                            body: Array(body.utf8))
                    else { return }
                    if r.status == 201, let id = r.object["id"]?.stringValue { acknowledged.withLock { $0.append(id) } }
                    i += 1
                }
            }.start()
        }
        // Let creates flow, then kill -9 while requests are in flight.
        while acknowledged.withLock({ $0.count }) < 200 { Thread.sleep(forTimeInterval: 0.01) }
        hub.kill9()
        stop.store(true, ordering: .relaxed)
        group.wait()
        let ids = acknowledged.withLock { $0 }
        #expect(ids.count >= 200)

        let hub2 = try HubProcess(binary: Self.binary, data: dir.path)
        defer { hub2.stop() }
        let c = try RawHTTPClient(port: hub2.port)
        var missing = 0
        for id in ids {
            let r = c.request("GET", "/scim/v2/Users/\(id)", headers: [("Authorization", "Bearer \(token)")])
            if r?.status != 200 { missing += 1 }
        }
        #expect(missing == 0, "\(missing) acknowledged creates were lost")
        let verify = try HubProcess.run(Self.binary, ["audit", "verify", "--data", dir.path])
        #expect(verify.contains("intact"), "\(verify)")
    }

    @Test func sigterm_drainsAndExitsZero() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let hub = try HubProcess(binary: Self.binary, data: dir.path)
        let c = try RawHTTPClient(port: hub.port)
        #expect(c.request("GET", "/healthz")?.status == 200)
        #expect(hub.stop() == 0)  // SIGTERM: drain, exit 0 (a death by signal would be 128 + signal)
    }
}

/// Storage failures are the store's, not the client's: 503 with Retry-After, nothing
/// partially written, and one failing request never fails another's commit.
@Suite struct StorageFailureTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    @Test func fileSizeLimitReached_answers503_andTheHubLivesOn() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let token = try HubProcess.createToken(
            Self.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
        let hub = try HubProcess(binary: Self.binary, data: dir.path, fileSizeLimitKiB: 8192)
        defer { hub.stop() }
        let c = try RawHTTPClient(port: hub.port, timeout: 10)
        let auth = [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")]
        let padding = String(repeating: "x", count: 1000)
        var refused: RawResponse? = nil
        var refusedName = ""
        var created = 0
        for i in 0..<20_000 {
            let name = "u\(i)@x.org"
            let body =
                #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"#
                + #""userName":"\#(name)","displayName":"\#(padding)","title":"\#(padding)"}"#
            guard let r = c.request("POST", "/scim/v2/Users", headers: auth, body: Array(body.utf8)) else {
                Issue.record("no response: the hub died"); return
            }
            if r.status != 201 { refused = r; refusedName = name; break }
            created += 1
        }
        let r = try #require(refused, "the file-size limit was never reached")
        #expect(r.status == 503, "\(r.text)")
        #expect(r.header("Retry-After") != nil)
        #expect(created > 20)
        // Alive, and the refused create left nothing behind.
        #expect(kill(hub.pid, 0) == 0)
        #expect(c.request("GET", "/healthz")?.status == 200)
        let q = c.request("GET", "/scim/v2/Users?filter=userName%20eq%20%22\(refusedName)%22", headers: auth)
        #expect(q?.object["totalResults"] == .int(0), "\(q?.text ?? "")")
        let count = c.request("GET", "/scim/v2/Users?count=0", headers: auth)
        #expect(count?.object["totalResults"] == .int(created))
    }
}
