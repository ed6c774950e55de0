// SPDX-License-Identifier: Apache-2.0
import Glibc
private import CPostgres

/// A value bound to a statement parameter. Values always travel separately from the SQL
/// text (`PQexecParams`/`PQexecPrepared`), so no value can change what a statement does.
public enum PostgresValue: Sendable, Equatable {
    case null
    case text(String)
    /// Text whose type the server infers from where the parameter is used (a configured
    /// statement's `$1` may stand for an integer column).
    case untyped(String)
    case integer(Int64)
    case real(Double)
    case bytes([UInt8])

    /// A `text[]` parameter (write `$n::text[]` in the statement): one statement shape for
    /// any number of values, e.g. `INSERT … SELECT … FROM unnest($1::text[])`. Each element is
    /// quoted with `"` and `\` escaped (PostgreSQL's array input syntax, §8.15.6).
    public static func textArray(_ values: some Sequence<String>) -> PostgresValue {
        var literal = "{"
        var first = true
        for v in values {
            if !first { literal += "," }
            first = false
            literal += "\""
            for ch in v.unicodeScalars {
                if ch == "\"" || ch == "\\" { literal += "\\" }
                literal.unicodeScalars.append(ch)
            }
            literal += "\""
        }
        return .untyped(literal + "}")
    }
}

/// A failure reported by libpq or the server. `description` names the SQLSTATE, its class
/// and what was running, never the server's message: messages can quote bound values
/// (personal data), so they stay out of logs and error text.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    /// The five-character SQLSTATE (PostgreSQL appendix A), empty when libpq failed locally.
    public let sqlState: String
    /// The statement's purpose or name, as the caller gave it.
    public let context: String
    /// The violated constraint's name (PG_DIAG_CONSTRAINT_NAME), when the server gave one.
    public let constraint: String?
    /// True when the connection is gone (SQLSTATE class 08, 57P, or libpq saw the socket close):
    /// the connection must be discarded and a new one opened.
    public let isConnectionLost: Bool

    public init(sqlState: String, context: String, constraint: String? = nil, isConnectionLost: Bool = false) {
        self.sqlState = sqlState
        self.context = context
        self.constraint = constraint
        self.isConnectionLost = isConnectionLost
    }

    /// 23505: a unique index would hold a key twice.
    public var isUniqueViolation: Bool { sqlState == "23505" }
    /// 40001 (serialization failure) or 40P01 (deadlock): the transaction may simply be run again.
    public var isRetryableTransaction: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// Short names of the SQLSTATEs the hub meets; others are reported by code only.
    static let names: [String: String] = [
        "23505": "unique violation", "23503": "foreign key violation", "23502": "not-null violation",
        "23514": "check violation", "22001": "value too long",
        "22021": "invalid byte sequence (NUL is not allowed in PostgreSQL text)",
        "22P02": "invalid input syntax", "42P01": "undefined table", "42703": "undefined column",
        "42601": "syntax error", "42501": "insufficient privilege", "40001": "serialization failure",
        "40P01": "deadlock detected", "55P03": "lock not available", "53100": "disk full",
        "53200": "out of memory", "53300": "too many connections", "25P02": "transaction aborted",
        "57P01": "server shutting down", "08006": "connection failure", "08001": "cannot connect",
        "28P01": "password authentication failed", "28000": "invalid authorization", "3D000": "no such database",
    ]

    public var description: String {
        var s = "\(context): PostgreSQL"
        if isConnectionLost { s += " connection lost" }
        if !sqlState.isEmpty { s += " SQLSTATE \(sqlState)" + (Self.names[sqlState].map { " \($0)" } ?? "") }
        if let c = constraint { s += " (constraint \(c))" }
        return s
    }
}

/// Why a connection could not be opened, classified from libpq's message (which is not
/// passed on: it can name the user and host).
public enum PostgresConnectFailure: Sendable {
    /// Wrong user or password, or the role does not exist: retrying will not help.
    case authentication
    /// The database named in the connection string does not exist.
    case noDatabase
    /// The server is down, unreachable, refusing connections or TLS failed.
    case unreachable
}

/// Opening a connection failed.
public struct PostgresConnectError: Error, CustomStringConvertible, Sendable {
    public let failure: PostgresConnectFailure
    public var description: String {
        switch failure {
        case .authentication: "PostgreSQL refused the login: wrong user or password"
        case .noDatabase: "PostgreSQL: the database does not exist"
        case .unreachable: "PostgreSQL: cannot connect (server down or unreachable)"
        }
    }
}

/// One PostgreSQL connection (a `PGconn`). Not thread-safe: one user at a time (a pool
/// hands it out). Statements with parameters are prepared once per connection and cached
/// by their text; results are read in text format.
public final class PostgresConnection {
    private let conn: OpaquePointer
    /// SQL text → prepared statement name.
    private var prepared: [String: String] = [:]
    private var nextName = 0
    private static let maxPrepared = 512

    /// `conninfo` is a libpq connection string (`host=… dbname=…`) or URL (`postgres://…`);
    /// the password travels as its own keyword so it is never part of a string we build.
    /// `defaults` are keywords (`connect_timeout`, `application_name`) that apply unless
    /// `conninfo` sets them: libpq lets a later keyword override an earlier one, and the
    /// connection string comes after them.
    public init(conninfo: String, password: String?, defaults: [(String, String)] = [])
        throws(PostgresConnectError)
    {
        var keys = defaults.map(\.0) + ["dbname"]
        var values = defaults.map(\.1) + [conninfo]
        if let p = password { keys.append("password"); values.append(p) }
        // expand_dbname = 1: the `dbname` value is parsed as a whole connection string or URL.
        let c = withCStringArray(keys) { k in withCStringArray(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let handle = c else { throw PostgresConnectError(failure: .unreachable) }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle)).lowercased()
            PQfinish(handle)
            if message.contains("password authentication failed") || message.contains("no password supplied")
                || (message.contains("role") && message.contains("does not exist"))
            {
                throw PostgresConnectError(failure: .authentication)
            }
            if message.contains("database") && message.contains("does not exist") {
                throw PostgresConnectError(failure: .noDatabase)
            }
            throw PostgresConnectError(failure: .unreachable)
        }
        conn = handle
        scimhub_pq_quiet(handle)
    }

    deinit { PQfinish(conn) }

    /// False once the connection broke: the owner discards it and opens another.
    public var isUsable: Bool { PQstatus(conn) == CONNECTION_OK }

    /// Reads whatever the server sent while the connection sat idle, without waiting: a
    /// server that restarted or ended the session has closed the socket, and libpq notices
    /// only when it reads. False when the connection is gone (one non-blocking read, no
    /// round trip).
    public func checkAlive() -> Bool {
        PQconsumeInput(conn) == 1 && PQstatus(conn) == CONNECTION_OK
    }

    /// True while a transaction is open (also when it is aborted and awaits ROLLBACK).
    public var isInTransaction: Bool {
        let s = PQtransactionStatus(conn)
        return s == PQTRANS_INTRANS || s == PQTRANS_INERROR
    }

    /// True while a transaction is open and not aborted: further statements can run in it
    /// (after an error outside a savepoint it is aborted, and COMMIT would roll it back).
    public var isInOpenTransaction: Bool { PQtransactionStatus(conn) == PQTRANS_INTRANS }

    /// True when no transaction is open and the connection is idle: safe to hand to someone else.
    public var isIdle: Bool { PQtransactionStatus(conn) == PQTRANS_IDLE }

    /// The server's backend process id (`pg_backend_pid()`), for tests that end a session.
    public var backendPID: Int32 { PQbackendPID(conn) }

    /// Runs literal SQL without parameters (BEGIN, COMMIT, SAVEPOINT, schema scripts with
    /// several statements).
    public func execute(_ sql: String, context: String = "statement") throws(PostgresError) {
        let r = PQexec(conn, sql)
        defer { PQclear(r) }
        try check(r, context)
    }

    /// Runs a statement with `$n` parameters and returns its whole result.
    public func result(_ sql: String, _ params: [PostgresValue], context: String = "statement")
        throws(PostgresError) -> PostgresResult
    {
        let r = try send(sql, params, context)
        return PostgresResult(r)
    }

    /// Runs a statement and calls `row` for each row of its result.
    public func query(
        _ sql: String, _ params: [PostgresValue] = [], context: String = "query", row: (PostgresRow) throws -> Void
    ) throws {
        let r = try result(sql, params, context: context)
        for i in 0..<r.count { try row(PostgresRow(result: r, index: Int32(i))) }
    }

    /// Runs a statement and returns how many rows it changed (INSERT, UPDATE, DELETE).
    @discardableResult
    public func run(_ sql: String, _ params: [PostgresValue] = [], context: String = "statement")
        throws(PostgresError) -> Int
    {
        try result(sql, params, context: context).affectedRows
    }

    /// Waits up to `timeout` seconds for `NOTIFY` messages on channels this connection
    /// `LISTEN`s to and returns them (channel and payload), in the order they came; an empty
    /// list when none came. Throws a lost connection (PostgreSQL restarted): the owner opens
    /// another and listens again. Blocks the calling thread: call it from a thread of its own.
    public func waitForNotifications(timeout: Double) throws(PostgresError) -> [(channel: String, payload: String)] {
        var out = drainNotifications()
        if !out.isEmpty { return out }
        let fd = PQsocket(conn)
        guard fd >= 0 else { throw PostgresError(sqlState: "08006", context: "listen", isConnectionLost: true) }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&p, 1, Int32(max(0, timeout) * 1000))
        if ready < 0 && errno != EINTR {
            throw PostgresError(sqlState: "08006", context: "listen", isConnectionLost: true)
        }
        if ready > 0 {
            // Reads what arrived; 0 means the socket failed (the server went away).
            guard PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK else {
                throw PostgresError(sqlState: "08006", context: "listen", isConnectionLost: true)
            }
        }
        out = drainNotifications()
        return out
    }

    private func drainNotifications() -> [(channel: String, payload: String)] {
        var out: [(channel: String, payload: String)] = []
        while let n = PQnotifies(conn) {
            out.append((String(cString: n.pointee.relname), String(cString: n.pointee.extra)))
            PQfreemem(n)
        }
        return out
    }

    private func send(_ sql: String, _ params: [PostgresValue], _ context: String) throws(PostgresError)
        -> OpaquePointer?
    {
        // PostgreSQL text cannot hold NUL, and libpq passes text as C strings: refuse rather
        // than truncate a value silently.
        for p in params {
            if case .text(let s) = p, s.utf8.contains(0) { throw PostgresError(sqlState: "22021", context: context) }
            if case .untyped(let s) = p, s.utf8.contains(0) { throw PostgresError(sqlState: "22021", context: context) }
        }
        var types: [Oid] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        defer { for b in buffers { free(b) } }
        for p in params {
            switch p {
            case .null:
                types.append(0); lengths.append(0); formats.append(0); buffers.append(nil)
            case .text(let s):
                types.append(25); lengths.append(0); formats.append(0); buffers.append(strdup(s))
            case .untyped(let s):
                types.append(0); lengths.append(0); formats.append(0); buffers.append(strdup(s))
            case .integer(let i):
                types.append(20); lengths.append(0); formats.append(0); buffers.append(strdup(String(i)))
            case .real(let d):
                // Swift prints the shortest text that reads back as the same Double.
                let text = d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : "\(d)"
                types.append(701); lengths.append(0); formats.append(0); buffers.append(strdup(text))
            case .bytes(let b):
                // bytea in binary format: no escaping, any byte.
                let m = malloc(max(b.count, 1))!.assumingMemoryBound(to: CChar.self)
                b.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(m, base, b.count) }
                }
                types.append(17); lengths.append(Int32(b.count)); formats.append(1); buffers.append(m)
            }
        }
        let name = try preparedName(sql, types, context)
        let r = buffers.withUnsafeBufferPointer { buf -> OpaquePointer? in
            // No parameters: libpq takes null arrays.
            guard let base = buf.baseAddress, !buf.isEmpty else {
                return PQexecPrepared(conn, name, 0, nil, nil, nil, 0)
            }
            return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { values in
                PQexecPrepared(conn, name, Int32(params.count), values, lengths, formats, 0)
            }
        }
        do { try check(r, context) } catch {
            PQclear(r)
            throw error
        }
        return r
    }

    /// The prepared statement for `sql` with these parameter types, preparing it on first use.
    /// The cache is bounded: past it, every statement is deallocated (queries built from
    /// optional clauses have a few shapes each, so this is rare).
    private func preparedName(_ sql: String, _ types: [Oid], _ context: String) throws(PostgresError) -> String {
        // A NULL has no type of its own (0: the server infers it), so the same text with a NULL
        // in another place is another statement.
        let key = types.map { String($0) }.joined(separator: ",") + "|" + sql
        if let n = prepared[key] { return n }
        if prepared.count >= Self.maxPrepared {
            try execute("DEALLOCATE ALL", context: "deallocate")
            prepared.removeAll()
        }
        nextName += 1
        let name = "s\(nextName)"
        let r = PQprepare(conn, name, sql, Int32(types.count), types)
        defer { PQclear(r) }
        try check(r, context)
        prepared[key] = name
        return name
    }

    private func check(_ r: OpaquePointer?, _ context: String) throws(PostgresError) {
        let status = r.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK { return }
        let state =
            r.flatMap { PQresultErrorField($0, 67 /* PG_DIAG_SQLSTATE 'C' */) }.map { String(cString: $0) } ?? ""
        let constraint = r.flatMap { PQresultErrorField($0, 110 /* PG_DIAG_CONSTRAINT_NAME 'n' */) }.map {
            String(cString: $0)
        }
        let lost = PQstatus(conn) != CONNECTION_OK || state.hasPrefix("08") || state.hasPrefix("57P")
        throw PostgresError(sqlState: state, context: context, constraint: constraint, isConnectionLost: lost)
    }
}

@available(*, unavailable) extension PostgresConnection: Sendable {}

/// A statement's result, read in text format. Owns the `PGresult` and frees it.
public final class PostgresResult {
    fileprivate let r: OpaquePointer?
    /// Rows in the result.
    public let count: Int
    /// Columns in each row.
    public let columnCount: Int

    fileprivate init(_ r: OpaquePointer?) {
        self.r = r
        count = r.map { Int(PQntuples($0)) } ?? 0
        columnCount = r.map { Int(PQnfields($0)) } ?? 0
    }

    deinit { PQclear(r) }

    /// Rows an INSERT, UPDATE or DELETE changed (PQcmdTuples), 0 for other statements.
    public var affectedRows: Int {
        guard let r else { return 0 }
        return Int(String(cString: PQcmdTuples(r))) ?? 0
    }

    /// The name of column `i`.
    public func columnName(_ i: Int) -> String { String(cString: PQfname(r, Int32(i))) }

    /// Every value as text (NULL as nil), row by row.
    public var textRows: [[String?]] {
        (0..<count).map { row in
            (0..<columnCount).map { c in
                PQgetisnull(r, Int32(row), Int32(c)) == 1 ? nil : String(cString: PQgetvalue(r, Int32(row), Int32(c)))
            }
        }
    }
}

/// One row of a result; column indexes are 0-based, as in SQLiteRow.
public struct PostgresRow {
    let result: PostgresResult
    let index: Int32

    /// True when the value is SQL NULL.
    public func isNull(_ i: Int32) -> Bool { PQgetisnull(result.r, index, i) == 1 }

    private func raw(_ i: Int32) -> String? {
        isNull(i) ? nil : String(cString: PQgetvalue(result.r, index, i))
    }

    /// The value as text, nil when NULL.
    public func text(_ i: Int32) -> String? { raw(i) }

    /// An integer column (0 when NULL); numeric text such as `12.0` is truncated.
    public func int64(_ i: Int32) -> Int64 {
        guard let s = raw(i) else { return 0 }
        return Int64(s) ?? Double(s).map { Int64($0) } ?? 0
    }

    /// A floating point (or integer) column (0 when NULL).
    public func double(_ i: Int32) -> Double {
        guard let s = raw(i) else { return 0 }
        return Double(s) ?? 0
    }

    /// A bytea column: text format is `\x` followed by hex digits.
    public func bytes(_ i: Int32) -> [UInt8] {
        guard !isNull(i), let p = PQgetvalue(result.r, index, i) else { return [] }
        let n = Int(PQgetlength(result.r, index, i))
        let b = UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self)
        guard n >= 2, b[0] == 0x5C, b[1] == 0x78 else { return Array(UnsafeBufferPointer(start: b, count: n)) }
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            case 0x41...0x46: c - 0x41 + 10
            default: 0
            }
        }
        var out = [UInt8]()
        out.reserveCapacity((n - 2) / 2)
        var k = 2
        while k + 1 < n {
            out.append(nibble(b[k]) << 4 | nibble(b[k + 1]))
            k += 2
        }
        return out
    }
}

private func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for p in copies { free(p) } }
    return copies.withUnsafeBufferPointer { buf in
        buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { body($0) }
    }
}
