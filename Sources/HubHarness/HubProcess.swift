// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization

/// The real `scimhub` binary as a child process (durability tests, benchmarks).
public final class HubProcess: @unchecked Sendable {
    // @unchecked Sendable: set in init; `exit` is guarded by its mutex.
    public let port: UInt16
    private let child: ChildProcess
    private let logPath: String
    private let exit = Mutex<Int32?>(nil)

    /// Runs `scimhub ARGS` to completion and returns its stdout.
    public static func run(_ binary: String, _ args: [String]) throws -> String {
        try runWithStatus(binary, args).out
    }

    /// Runs `scimhub ARGS` to completion: its exit status and stdout. Every child is spawned
    /// with posix_spawn (`ChildProcess`): Foundation's `Process.run` crashed in memcpy now and
    /// then when tests ran in parallel.
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
        guard
            let t = try run(binary, ["token", "create", "--data", data, "--principal", principal, "--scope", scopes])
                .split(separator: "\n").last.map(String.init), t.hasPrefix("shub_")
        else { throw TestError("token create failed") }
        return t
    }

    /// Starts `scimhub serve` on a free loopback port and waits for its "listening" log line.
    /// `fileSizeLimitKiB` runs it under `ulimit -f` (RLIMIT_FSIZE), as a full quota would.
    /// `store`: a PostgreSQL connection string or URL (`--store`) with its password in the file
    /// `storePasswordFile`, for several nodes on one database; nil: SQLite in `data`.
    public init(
        binary: String, data: String, extraArguments: [String] = [], fileSizeLimitKiB: Int? = nil,
        store: String? = nil, storePasswordFile: String? = nil
    ) throws {
        var storeArgs: [String] = []
        if let store { storeArgs += ["--store", store] }
        if let storePasswordFile { storeArgs += ["--store-password-file", storePasswordFile] }
        let serveArgs =
            ["serve", "--listen", "127.0.0.1:0", "--data", data, "--schemas", repoRoot + "/schemas"] + storeArgs
            + extraArguments
        let argv =
            fileSizeLimitKiB.map { limit in
                // bash counts ulimit -f in KiB
                ["/bin/bash", "-c", "ulimit -f \(limit) && exec \"$0\" \"$@\"", binary] + serveArgs
            } ?? [binary] + serveArgs
        logPath = NSTemporaryDirectory() + "scimhub-serve-\(UUID().uuidString).log"
        child = try ChildProcess(argv, outputPath: "/dev/null", errorPath: logPath)
        var found: UInt16? = nil
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let r = text.range(of: #"https?://127\.0\.0\.1:[0-9]+/"#, options: .regularExpression),
                let p = UInt16(text[r].split(separator: ":").last?.dropLast() ?? "")
            {
                found = p
                break
            }
            if !child.isRunning { break }
            usleep(20_000)
        }
        guard let p = found else {
            kill(child.pid, SIGKILL)
            _ = child.waitWithPeakMemory()
            try? FileManager.default.removeItem(atPath: logPath)
            throw TestError("scimhub did not start: \(text.prefix(500))")
        }
        port = p
    }

    deinit { try? FileManager.default.removeItem(atPath: logPath) }

    public var pid: Int32 { child.pid }

    /// What the hub has logged so far (stderr).
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGKILL, no goodbye.
    public func kill9() {
        kill(pid, SIGKILL)
        reap()
    }

    /// SIGTERM and wait; returns the exit status (128 + the signal when killed by one).
    @discardableResult
    public func stop() -> Int32 {
        kill(pid, SIGTERM)
        return reap()
    }

    @discardableResult
    private func reap() -> Int32 {
        exit.withLock { e in
            if let status = e { return status }
            let status = child.waitWithPeakMemory().status
            e = status
            return status
        }
    }

    /// CPU time (user + system) the process has used, in seconds, from /proc/PID/stat.
    public func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Resident and peak resident memory in KiB, from /proc.
    public func memoryKiB() -> (rss: Int, peak: Int) {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func value(_ key: String) -> Int {
            guard let line = s.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return 0 }
            return Int(
                line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.map {
                    $0.trimmingCharacters(in: .whitespaces)
                } ?? "0") ?? 0
        }
        return (value("VmRSS:"), value("VmHWM:"))
    }
}
