// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc

// MARK: - Stopping a child and what it started

extension ChildProcess {
    /// SIGTERM, then SIGKILL if the child has not exited within `grace` seconds; reaps it and
    /// returns its exit status (128 + the signal when killed by one).
    @discardableResult
    public func terminate(grace: Double = 5) -> Int32 {
        signal(SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { return -1 }  // already reaped
            if Date() >= deadline {
                signal(SIGKILL)
                return wait()
            }
            usleep(20_000)
        }
        return status & 0x7F != 0 ? 128 + (status & 0x7F) : (status >> 8) & 0xFF
    }

    /// Stops the child and every process it started (a server that forks per connection).
    public func terminateTree() {
        let descendants = descendantProcesses(of: pid)
        terminate()
        for p in descendants { Glibc.kill(p, SIGKILL) }
    }
}

/// The processes descending from `root` (children, their children, ...), read from
/// `/proc/PID/stat`. Collected before `root` is stopped: its orphans are re-parented to init
/// and can no longer be told apart by their parent.
func descendantProcesses(of root: pid_t) -> [pid_t] {
    var children: [pid_t: [pid_t]] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = pid_t(entry),
            let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        // proc(5): "pid (comm) state ppid ...": the command may hold spaces and parentheses.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let parent = pid_t(fields[1]) else { continue }
        children[parent, default: []].append(pid)
    }
    var found: [pid_t] = []
    var queue = children[root] ?? []
    while let pid = queue.popLast() {
        found.append(pid)
        queue += children[pid] ?? []
    }
    return found
}

/// The processes whose command line contains `text` (a unique temporary path: only the
/// processes this harness started can mention it).
func processes(mentioning text: String) -> [pid_t] {
    var found: [pid_t] = []
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
        guard let pid = pid_t(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { continue }
        // Arguments are NUL-separated.
        let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        if line.contains(text) { found.append(pid) }
    }
    return found
}

/// The command line of `pid` with NULs as spaces, or nil once it has gone.
func commandLine(of pid: pid_t) -> String? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
    return String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
}
