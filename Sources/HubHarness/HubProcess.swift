// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc

/// The real `scimhub` binary as a child process (durability tests, benchmarks).
public final class HubProcess: @unchecked Sendable {
    // @unchecked Sendable: set in init and never changed; Process is thread-safe for terminate and wait.
    public let process: Process
    public let port: UInt16
    private let stderrPipe: Pipe

    /// Foundation's `Process.run` is not safe to call from several threads at once on
    /// Linux (it crashed copying the environment while tests ran in parallel): one at a time.
    static let spawnLock = NSLock()

    static func start(_ p: Process) throws {
        spawnLock.lock()
        defer { spawnLock.unlock() }
        try p.run()
    }

    /// Runs `scimhub ARGS` to completion and returns its stdout.
    public static func run(_ binary: String, _ args: [String]) throws -> String {
        try runWithStatus(binary, args).out
    }

    /// Runs `scimhub ARGS` to completion: its exit status and stdout. Spawned with
    /// posix_spawn (`ChildProcess`), not Foundation's `Process`, whose `run()` crashed in
    /// memcpy now and then when tests ran in parallel.
    public static func runWithStatus(_ binary: String, _ args: [String]) throws -> (status: Int32, out: String) {
        let outFile = NSTemporaryDirectory() + "scimhub-cli-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: outFile) }
        let child = try ChildProcess([binary] + args, outputPath: outFile, errorPath: "/dev/null")
        let status = child.waitWithPeakMemory().status
        let text = (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
        return (status, text)
    }

    /// Creates a token with the CLI and returns it.
    public static func createToken(_ binary: String, data: String, principal: String, scopes: String) throws -> String {
        guard let t = try run(binary, ["token", "create", "--data", data, "--principal", principal, "--scope", scopes])
            .split(separator: "\n").last.map(String.init), t.hasPrefix("shub_") else { throw TestError("token create failed") }
        return t
    }

    /// Starts `scimhub serve` on a free loopback port and waits for its "listening" log line.
    /// `fileSizeLimitKiB` runs it under `ulimit -f` (RLIMIT_FSIZE), as a full quota would.
    public init(binary: String, data: String, extraArguments: [String] = [], fileSizeLimitKiB: Int? = nil) throws {
        process = Process()
        let serveArgs = ["serve", "--listen", "127.0.0.1:0", "--data", data, "--schemas", repoRoot + "/schemas"] + extraArguments
        if let limit = fileSizeLimitKiB {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")  // bash counts ulimit -f in KiB
            process.arguments = ["-c", "ulimit -f \(limit) && exec \"$0\" \"$@\"", binary] + serveArgs
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = serveArgs
        }
        stderrPipe = Pipe()
        process.standardError = stderrPipe
        try Self.start(process)
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        var found: UInt16? = nil
        while Date() < deadline {
            let chunk = stderrPipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            if let r = text.range(of: #"http://127\.0\.0\.1:[0-9]+/"#, options: .regularExpression),
               let p = UInt16(text[r].dropFirst("http://127.0.0.1:".count).dropLast()) {
                found = p
                break
            }
        }
        guard let p = found else {
            process.terminate()
            throw TestError("scimhub did not start: \(text.prefix(500))")
        }
        port = p
        // Keep draining stderr so the child never blocks on a full pipe.
        let handle = stderrPipe.fileHandleForReading
        Thread { while !handle.availableData.isEmpty {} }.start()
    }

    public var pid: Int32 { process.processIdentifier }

    /// SIGKILL, no goodbye.
    public func kill9() {
        kill(pid, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Resident and peak resident memory in KiB, from /proc.
    public func memoryKiB() -> (rss: Int, peak: Int) {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Int {
            guard let line = s.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map { $0.trimmingCharacters(in: .whitespaces) } ?? "0") ?? 0
        }
        return (value("VmRSS:"), value("VmHWM:"))
    }
}
