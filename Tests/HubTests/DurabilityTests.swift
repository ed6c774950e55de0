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
        let token = try HubProcess.createToken(Self.binary, data: dir.path, principal: "hr", scopes: "scim:read,scim:write")
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
                    let body = #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"t\#(t)-\#(i)@x.org"}"#
                    guard let r = c.request("POST", "/scim/v2/Users", headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")],
                                            body: Array(body.utf8)) else { return }
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
        #expect(hub.stop() == 0)  // SIGTERM: drain, exit 0
        #expect(hub.process.terminationReason == .exit)
    }
}
