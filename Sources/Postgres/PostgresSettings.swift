// SPDX-License-Identifier: Apache-2.0
private import CPostgres

/// Where a PostgreSQL database is and how to log in: a libpq connection string
/// (`host=db.example port=5432 dbname=scimhub user=hub sslmode=verify-full`) or URL
/// (`postgres://hub@db.example/scimhub?sslmode=verify-full`), with the password kept apart.
///
/// Every libpq keyword passes through unchanged, so TLS is libpq's: `sslmode=verify-full`
/// checks the server's certificate against `sslrootcert` and its name against the host.
public struct PostgresSettings: Sendable, Equatable {
    /// The connection string or URL, without a password.
    public let conninfo: String
    /// The password, from the environment or a file; nil when libpq finds it itself
    /// (`~/.pgpass`, `PGPASSFILE`, a client certificate, peer authentication).
    public let password: String?

    /// Checks that `conninfo` parses and holds no password (a password belongs in a secret
    /// reference, not in configuration that is logged, copied and committed).
    public init(conninfo: String, password: String? = nil) throws(PostgresSettingsError) {
        guard let keywords = Self.parse(conninfo) else {
            throw PostgresSettingsError("the connection is neither a libpq connection string nor a postgres:// URL")
        }
        if keywords["password"] != nil {
            throw PostgresSettingsError(
                "the connection must not hold the password: use passwordEnv or passwordFile")
        }
        self.conninfo = conninfo
        self.password = password
    }

    /// Settings whose password is named by reference: `passwordEnv` (an environment variable)
    /// or `passwordFile` (a file whose content, trimmed, is the password), as the SQL
    /// connector's targets name theirs.
    public init(
        conninfo: String, passwordEnv: String?, passwordFile: String?,
        environment: [String: String], readFile: (String) -> String?
    ) throws(PostgresSettingsError) {
        var password: String?
        if let env = passwordEnv {
            guard let v = environment[env], !v.isEmpty else {
                throw PostgresSettingsError("passwordEnv: environment variable \(env) is not set")
            }
            password = v
        } else if let file = passwordFile {
            guard let v = readFile(file).map(Self.trimmed), !v.isEmpty else {
                throw PostgresSettingsError("passwordFile: \(file) cannot be read or is empty")
            }
            password = v
        }
        try self.init(conninfo: conninfo, password: password)
    }

    /// `s` without leading and trailing white space (a file's final newline).
    static func trimmed(_ s: String) -> String {
        String(s.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    /// The keywords libpq reads from `conninfo` (URL or key=value), or nil when it does not parse.
    static func parse(_ conninfo: String) -> [String: String]? {
        var error: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &error) else {
            if let e = error { PQfreemem(e) }
            return nil
        }
        defer { PQconninfoFree(options) }
        var out: [String: String] = [:]
        var p = options
        while let k = p.pointee.keyword {
            if let v = p.pointee.val { out[String(cString: k)] = String(cString: v) }
            p += 1
        }
        return out
    }

    /// The value libpq will use for `keyword` from the connection string, if given there
    /// (`sslmode`, `dbname`, `host`, ...).
    public func value(_ keyword: String) -> String? { Self.parse(conninfo)?[keyword] }
}

/// A connection setting that cannot work (it names the problem, never the password).
public struct PostgresSettingsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
