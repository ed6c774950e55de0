// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import CLinux

/// A free TCP port on 127.0.0.1 (bound, read and released; the server binds it next).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestError("socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard bound else { throw TestError("cannot bind a loopback port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
func waitForPort(_ port: Int, timeout: Double, process: ChildProcess, log: String) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
        close(fd)
        if ok { return }
        if !process.isRunning { break }
        usleep(50_000)
    }
    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    throw TestError("server on port \(port) did not start: \(text.suffix(800))")
}

/// A child process started with posix_spawn: output to a file, an empty signal mask (the
/// test runner's threads block SIGTERM, and a child would inherit that), no Foundation
/// `Process` (whose exit detection waits for descriptors a daemon grandchild keeps open).
public struct ChildProcess: Sendable {
    public let pid: pid_t

    /// Starts `argv` (absolute path first) with stdout and stderr appended to `outputPath`
    /// (stderr to `errorPath` when given).
    public init(_ argv: [String], outputPath: String, errorPath: String? = nil, environment: [String: String]? = nil)
        throws
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let e = errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, e, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGTERM)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let args: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for a in args { free(a) } }
        let env: [UnsafeMutablePointer<CChar>?]? = environment.map { e in
            e.map { strdup("\($0.key)=\($0.value)") } + [nil]
        }
        defer { for a in env ?? [] { free(a) } }
        var child: pid_t = 0
        let rc =
            env.map { e in posix_spawn(&child, argv[0], &actions, &attributes, args, e) }
            ?? posix_spawn(&child, argv[0], &actions, &attributes, args, environ)
        guard rc == 0 else { throw TestError("cannot start \(argv[0]): errno \(rc)") }
        pid = child
    }

    /// Waits for the exit; returns the exit status and the child's peak resident memory in
    /// KiB, read from `/proc/PID/status` (VmHWM) every 20 ms. (wait4's ru_maxrss would count
    /// the parent's memory: posix_spawn shares it until exec.)
    public func waitWithPeakMemory() -> (status: Int32, peakKiB: Int) {
        var peak = 0
        var status: Int32 = 0
        while true {
            if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kib = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
            {
                peak = max(peak, kib)
            }
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            usleep(20_000)
        }
        return (status & 0x7F != 0 ? 128 + (status & 0x7F) : (status >> 8) & 0xFF, peak)
    }

    public var isRunning: Bool { kill(pid, 0) == 0 && !isZombie }

    private var isZombie: Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    /// Waits for the exit and returns the exit status (128 + signal when killed).
    @discardableResult
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7F != 0 { return 128 + (status & 0x7F) }
        return (status >> 8) & 0xFF
    }

    public func signal(_ s: Int32) { kill(pid, s) }
}

/// Runs a command to completion; throws with its output when it fails.
@discardableResult
func runCommand(_ argv: [String], environment: [String: String]? = nil) throws -> String {
    let outputPath = NSTemporaryDirectory() + "scimhub-cmd-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let status = try ChildProcess(argv, outputPath: outputPath, environment: environment).wait()
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    guard status == 0 else { throw TestError("\(argv[0]) failed (\(status)): \(text.suffix(800))") }
    return text
}

private func randomSecret() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<2).map { _ in String(g.next() as UInt64, radix: 36) }.joined()
}

/// A real OpenLDAP `slapd` in a temporary folder on a free loopback port, configured from
/// `scripts/slapd/` (schemas core, cosine, inetOrgPerson, nis; ppolicy; mdb with indexes),
/// with `ou=people`, `ou=groups` and `ou=disabled` under the suffix. Needs Debian's
/// `slapd` package; a server that cannot start is an error, never a skipped test.
public final class SlapdServer: @unchecked Sendable {
    // @unchecked Sendable: configuration set in init; the child process is stopped once, from the test.
    public let suffix = "dc=scimhub,dc=test"
    public var rootDN: String { "cn=admin,\(suffix)" }
    public let rootPassword = randomSecret()
    public let port: Int
    public let directory = TemporaryDirectory()
    public var url: String { "ldap://127.0.0.1:\(port)" }
    public var usersBase: String { "ou=people,\(suffix)" }
    public var groupsBase: String { "ou=groups,\(suffix)" }
    public var disabledBase: String { "ou=disabled,\(suffix)" }
    private var process: ChildProcess?

    public static let binary = "/usr/sbin/slapd"

    /// Writes the configuration, loads the base entries (and `ldif`, if any) offline with
    /// slapadd, and starts the server. `durable: false` adds back-mdb's `dbnosync` (commits
    /// not flushed to disk one by one), as replicated directories are often run.
    public init(ldif: String = "", durable: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestError("slapd is not installed (apt-get install slapd ldap-utils); scripts/test installs it")
        }
        port = try freeLoopbackPort()
        let dir = directory.path
        try FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
        func fill(_ template: String) throws -> String {
            try String(contentsOfFile: repoRoot + "/scripts/slapd/" + template, encoding: .utf8)
                .replacingOccurrences(of: "@DIR@", with: dir).replacingOccurrences(of: "@SUFFIX@", with: suffix)
                .replacingOccurrences(of: "@ROOTDN@", with: rootDN).replacingOccurrences(
                    of: "@ROOTPW@", with: rootPassword
                )
                .replacingOccurrences(of: "@DC@", with: "scimhub")
        }
        try (fill("slapd.conf.template") + (durable ? "" : "dbnosync\n")).write(
            toFile: dir + "/slapd.conf", atomically: true, encoding: .utf8)
        try (fill("base.ldif.template") + "\n" + ldif).write(
            toFile: dir + "/base.ldif", atomically: true, encoding: .utf8)
        try runCommand(["/usr/sbin/slapadd", "-q", "-f", dir + "/slapd.conf", "-l", dir + "/base.ldif"])
        try start()
    }

    /// Starts (or restarts) the server on the same port with the same data.
    public func start() throws {
        let log = directory.path + "/slapd.log"
        // -d 0: stay in the foreground (a child we can stop), log nothing.
        let p = try ChildProcess(
            [Self.binary, "-f", directory.path + "/slapd.conf", "-h", "ldap://127.0.0.1:\(port)/", "-d", "0"],
            outputPath: log)
        process = p
        try waitForPort(port, timeout: 20, process: p, log: log)
    }

    /// Stops the server (SIGTERM; slapd closes its database cleanly) and waits for it.
    public func stop() {
        guard let p = process else { return }
        p.signal(SIGTERM)
        p.wait()
        process = nil
    }

    deinit {
        stop()
        directory.remove()
    }
}

/// A real PostgreSQL cluster (`initdb`, `pg_ctl`) in a temporary folder on a free loopback
/// port with password (SCRAM) authentication. PostgreSQL refuses to run as root, so as
/// root the cluster belongs to the `postgres` user and its tools run through `runuser`.
public final class PostgresServer: @unchecked Sendable {
    // @unchecked Sendable: configuration set in init; the cluster is stopped once, from the test.
    public let user = "scimhub"
    public let password = randomSecret()
    public let database = "postgres"
    public let port: Int
    public let directory = TemporaryDirectory()
    private let binDir: String
    private let durable: Bool
    private var running = false

    /// A libpq connection string for the superuser.
    public var connectionString: String {
        "host=127.0.0.1 port=\(port) dbname=\(database) user=\(user) password=\(password) connect_timeout=5"
    }

    /// `durable: false` turns fsync off (tests); benchmarks keep PostgreSQL's defaults.
    public init(durable: Bool = false) throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard
            let bin = versions.sorted().reversed().map({ "/usr/lib/postgresql/\($0)/bin" })
                .first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") })
        else {
            throw TestError("PostgreSQL is not installed (apt-get install postgresql); scripts/test installs it")
        }
        binDir = bin
        self.durable = durable
        port = try freeLoopbackPort()
        let dir = directory.path
        try (password + "\n").write(toFile: dir + "/pwfile", atomically: true, encoding: .utf8)
        if getuid() == 0 {
            guard let pw = getpwnam("postgres") else {
                throw TestError("running as root needs the 'postgres' user (apt-get install postgresql)")
            }
            chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid)
            chown(dir + "/pwfile", pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        try asOwner([
            bin + "/initdb", "-D", dir + "/data", "-U", user, "--pwfile=" + dir + "/pwfile", "--auth=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ])
        try start()
    }

    /// Starts (or restarts) the cluster on the same port.
    public func start() throws {
        var options = "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c max_connections=100"
        if !durable { options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" }
        do {
            try asOwner([
                binDir + "/pg_ctl", "-D", directory.path + "/data", "-l", directory.path + "/postgres.log", "-w", "-t",
                "60", "-o", options, "start",
            ])
        } catch {
            let log = (try? String(contentsOfFile: directory.path + "/postgres.log", encoding: .utf8)) ?? ""
            throw TestError("PostgreSQL did not start: \(error) \(log.suffix(800))")
        }
        running = true
    }

    /// Stops the cluster (fast shutdown: open connections are closed).
    public func stop() {
        guard running else { return }
        _ = try? asOwner([binDir + "/pg_ctl", "-D", directory.path + "/data", "-m", "fast", "-w", "stop"])
        running = false
    }

    /// Runs SQL with psql as the superuser.
    @discardableResult
    public func psql(_ sql: String) throws -> String {
        try runCommand(
            [
                binDir + "/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port),
                "-U", user, "-d", database, "-c", sql,
            ],
            environment: ["PGPASSWORD": password, "PATH": "/usr/bin:/bin"])
    }

    private func asOwner(_ argv: [String]) throws {
        if getuid() == 0 {
            try runCommand(["/usr/sbin/runuser", "-u", "postgres", "--"] + argv)
        } else {
            try runCommand(argv)
        }
    }

    deinit {
        stop()
        directory.remove()
    }
}

/// A real SMTP server (`aiosmtpd`, from the test virtualenv that `scripts/test` creates) on a
/// free loopback port, storing every message it accepts in a Maildir.
public final class SMTPServer: @unchecked Sendable {
    // @unchecked Sendable: configuration set in init; the child process is started and stopped from the test.
    public let port: Int
    public let directory = TemporaryDirectory()
    public var url: String { "smtp://127.0.0.1:\(port)" }
    private var process: ChildProcess?

    public static var python: String { repoRoot + "/.venv/bin/python" }

    public init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw TestError("the test virtualenv is missing (.venv): run scripts/test, which installs aiosmtpd into it")
        }
        port = try freeLoopbackPort()
        try start()
    }

    /// Starts (or restarts) the server on the same port with the same mailbox.
    public func start() throws {
        let log = directory.path + "/smtpd.log"
        let p = try ChildProcess(
            [
                Self.python, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox",
                directory.path + "/Maildir",
            ], outputPath: log)
        process = p
        try waitForPort(port, timeout: 20, process: p, log: log)
    }

    public func stop() {
        guard let p = process else { return }
        p.signal(SIGTERM)
        p.wait()
        process = nil
    }

    /// Every message received so far, as text.
    public func messages() -> [String] {
        var out: [String] = []
        for sub in ["new", "cur"] {
            let dir = directory.path + "/Maildir/" + sub
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                if let text = try? String(contentsOfFile: dir + "/" + name, encoding: .utf8) { out.append(text) }
            }
        }
        return out
    }

    deinit {
        stop()
        directory.remove()
    }
}

/// A real syslog receiver: `rsyslogd` in the foreground on a free loopback port, TCP input
/// with RFC 6587 framing, every message written raw, one per line, to `messagesPath`.
public final class RsyslogServer: @unchecked Sendable {
    public let port: Int
    public let directory: TemporaryDirectory
    public var messagesPath: String { directory.path + "/messages" }
    private var process: ChildProcess?

    /// `port`: reuse one (a restart of the receiver), or 0 for a free one.
    public init(port: Int = 0, directory: TemporaryDirectory = TemporaryDirectory()) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/rsyslogd") else {
            throw TestError("rsyslogd is not installed (apt-get install rsyslog); scripts/test installs it")
        }
        self.directory = directory
        self.port = port == 0 ? try freeLoopbackPort() : port
        try start()
    }

    public func start() throws {
        let d = directory.path
        let conf = """
            global(workDirectory="\(d)")
            module(load="imtcp")
            template(name="raw" type="string" string="%rawmsg%\\n")
            input(type="imtcp" address="127.0.0.1" port="\(port)")
            action(type="omfile" file="\(messagesPath)" template="raw" flushOnTXEnd="on" asyncWriting="off")
            """
        try conf.write(toFile: d + "/rsyslog.conf", atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(atPath: d + "/rsyslogd.pid")
        let p = try ChildProcess(
            ["/usr/sbin/rsyslogd", "-n", "-f", d + "/rsyslog.conf", "-i", d + "/rsyslogd.pid"],
            outputPath: d + "/rsyslogd.log")
        process = p
        try waitForPort(port, timeout: 20, process: p, log: d + "/rsyslogd.log")
    }

    /// Stops the receiver (its messages file stays).
    public func stop() {
        process?.terminate()
        process = nil
    }

    /// Every message received so far, in order.
    public var messages: [String] {
        ((try? String(contentsOfFile: messagesPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    deinit {
        stop()
        directory.remove()
    }
}
