// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import Synchronization
import JSONCore
import TestSupport

/// A 2xx means durable: `kill -9` of the real `scimhub` process the next instant loses nothing.
@Suite struct DurabilityTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }

    /// Starts `scimhub serve` on a free port; returns the process and its port.
    static func startHub(data: String) throws -> (Process, UInt16) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["serve", "--listen", "127.0.0.1:0", "--data", data, "--schemas", repoRoot + "/schemas"]
        let err = Pipe()
        p.standardError = err
        try p.run()
        // The first log line says where it listens.
        var text = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let r = text.range(of: #"http://127\.0\.0\.1:(\d+)/"#, options: .regularExpression) {
                let port = text[r].split(separator: ":").last!.dropLast()
                return (p, UInt16(port)!)
            }
        }
        p.terminate()
        throw TestError("scimhub did not start: \(text)")
    }

    static func run(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test func kill9AfterAcknowledgedCreates_losesNothing() throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "build scimhub first (swift build)")
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let token = try #require(try Self.run(["token", "create", "--data", dir.path, "--principal", "hr", "--scope", "scim:read,scim:write"])
            .split(separator: "\n").last.map(String.init))
        let (proc, port) = try Self.startHub(data: dir.path)
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
        kill(proc.processIdentifier, SIGKILL)
        stop.store(true, ordering: .relaxed)
        proc.waitUntilExit()
        group.wait()
        let ids = acknowledged.withLock { $0 }
        #expect(ids.count >= 200)

        let (proc2, port2) = try Self.startHub(data: dir.path)
        defer { proc2.terminate(); proc2.waitUntilExit() }
        let c = try RawHTTPClient(port: port2)
        var missing = 0
        for id in ids {
            let r = c.request("GET", "/scim/v2/Users/\(id)", headers: [("Authorization", "Bearer \(token)")])
            if r?.status != 200 { missing += 1 }
        }
        #expect(missing == 0, "\(missing) acknowledged creates were lost")
        let verify = try Self.run(["audit", "verify", "--data", dir.path])
        #expect(verify.contains("intact"), "\(verify)")
    }

    @Test func sigterm_drainsAndExitsZero() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (proc, port) = try Self.startHub(data: dir.path)
        let c = try RawHTTPClient(port: port)
        #expect(c.request("GET", "/healthz")?.status == 200)
        proc.terminate()  // SIGTERM
        proc.waitUntilExit()
        #expect(proc.terminationStatus == 0)
        #expect(proc.terminationReason == .exit)
    }
}
