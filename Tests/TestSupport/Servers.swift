// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc

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
func waitForPort(_ port: Int, timeout: Double, process: Process, log: String) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        close(fd)
        if ok { return }
        if !process.isRunning { break }
        usleep(50_000)
    }
    let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    throw TestError("server on port \(port) did not start: \(text.suffix(800))")
}

/// Runs a command to completion; throws with its output when it fails.
@discardableResult
func runCommand(_ argv: [String], environment: [String: String]? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: argv[0])
    p.arguments = Array(argv.dropFirst())
    if let e = environment { p.environment = e }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard p.terminationStatus == 0 else { throw TestError("\(argv[0]) failed (\(p.terminationStatus)): \(text.suffix(800))") }
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
    public let suffix = "dc=scimhub,dc=test"
    public var rootDN: String { "cn=admin,\(suffix)" }
    public let rootPassword = randomSecret()
    public let port: Int
    public let directory = TemporaryDirectory()
    public var url: String { "ldap://127.0.0.1:\(port)" }
    public var usersBase: String { "ou=people,\(suffix)" }
    public var groupsBase: String { "ou=groups,\(suffix)" }
    public var disabledBase: String { "ou=disabled,\(suffix)" }
    private var process: Process?

    public static let binary = "/usr/sbin/slapd"

    /// Writes the configuration, loads the base entries (and `ldif`, if any) offline with
    /// slapadd, and starts the server.
    public init(ldif: String = "") throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw TestError("slapd is not installed (apt-get install slapd ldap-utils); scripts/test installs it")
        }
        port = try freeLoopbackPort()
        let dir = directory.path
        try FileManager.default.createDirectory(atPath: dir + "/db", withIntermediateDirectories: true)
        func fill(_ template: String) throws -> String {
            try String(contentsOfFile: repoRoot + "/scripts/slapd/" + template, encoding: .utf8)
                .replacingOccurrences(of: "@DIR@", with: dir).replacingOccurrences(of: "@SUFFIX@", with: suffix)
                .replacingOccurrences(of: "@ROOTDN@", with: rootDN).replacingOccurrences(of: "@ROOTPW@", with: rootPassword)
                .replacingOccurrences(of: "@DC@", with: "scimhub")
        }
        try fill("slapd.conf.template").write(toFile: dir + "/slapd.conf", atomically: true, encoding: .utf8)
        try (fill("base.ldif.template") + "\n" + ldif).write(toFile: dir + "/base.ldif", atomically: true, encoding: .utf8)
        try runCommand(["/usr/sbin/slapadd", "-q", "-f", dir + "/slapd.conf", "-l", dir + "/base.ldif"])
        try start()
    }

    /// Starts (or restarts) the server on the same port with the same data.
    public func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        // -d 0: stay in the foreground (a child we can stop), log nothing.
        p.arguments = ["-f", directory.path + "/slapd.conf", "-h", "ldap://127.0.0.1:\(port)/", "-d", "0"]
        let log = directory.path + "/slapd.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        process = p
        try waitForPort(port, timeout: 20, process: p, log: log)
    }

    /// Stops the server. SIGKILL, because a child of the test runner inherits a signal mask
    /// that blocks SIGTERM (Foundation's Process does not reset it); back-mdb is crash-safe,
    /// so this is also an honest "server died" for the restart tests.
    public func stop() {
        guard let p = process else { return }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
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
        guard let bin = versions.sorted().reversed().map({ "/usr/lib/postgresql/\($0)/bin" })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0 + "/initdb") }) else {
            throw TestError("PostgreSQL is not installed (apt-get install postgresql); scripts/test installs it")
        }
        binDir = bin
        self.durable = durable
        port = try freeLoopbackPort()
        let dir = directory.path
        try (password + "\n").write(toFile: dir + "/pwfile", atomically: true, encoding: .utf8)
        if getuid() == 0 {
            guard let pw = getpwnam("postgres") else { throw TestError("running as root needs the 'postgres' user (apt-get install postgresql)") }
            chown(dir, pw.pointee.pw_uid, pw.pointee.pw_gid)
            chown(dir + "/pwfile", pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        try asOwner([bin + "/initdb", "-D", dir + "/data", "-U", user, "--pwfile=" + dir + "/pwfile", "--auth=scram-sha-256",
                     "-E", "UTF8", "--locale=C", "--no-sync"])
        try start()
    }

    /// Starts (or restarts) the cluster on the same port.
    public func start() throws {
        var options = "-p \(port) -k \(directory.path) -c listen_addresses=127.0.0.1 -c max_connections=100"
        if !durable { options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" }
        do {
            try asOwner([binDir + "/pg_ctl", "-D", directory.path + "/data", "-l", directory.path + "/postgres.log", "-w", "-t", "60", "-o", options, "start"])
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
        try runCommand([binDir + "/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", database, "-c", sql],
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
