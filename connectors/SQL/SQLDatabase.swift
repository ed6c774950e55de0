// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import Glibc
private import CPostgres
import SQLite

/// Rows of a result, all values as text (NULL as nil), with their column names.
struct SQLRows {
    var columns: [String] = []
    var rows: [[String?]] = []
}

/// One connection of a dialect. Used by one thread at a time (the pool guarantees it).
protocol SQLDatabase: PooledConnection {
    /// Runs a configured statement with positional values.
    func execute(_ statement: SQLStatement, _ values: [String?]) throws(ConnectorError) -> SQLRows
    /// Runs literal SQL without parameters (BEGIN, COMMIT, schema).
    func run(_ sql: String, _ what: String) throws(ConnectorError)
    /// The statement that opens a write transaction.
    var beginStatement: String { get }
}

// MARK: - PostgreSQL (libpq)

/// A PostgreSQL connection. Statements are prepared once per connection and executed with
/// text parameters (PQexecPrepared); errors are classified by SQLSTATE, and their messages
/// (which can quote values) are never passed on.
final class PostgresDatabase: SQLDatabase {
    private let conn: OpaquePointer
    private var prepared: Set<String> = []
    private(set) var isUsable = true
    let beginStatement = "BEGIN"

    /// `conninfo` is a libpq connection string; the password travels as its own keyword.
    init(conninfo: String, password: String?) throws(ConnectorError) {
        var keys = ["dbname"]
        var values = [conninfo]
        if let p = password { keys.append("password"); values.append(p) }
        let c = Self.withCStringArray(keys) { k in Self.withCStringArray(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let handle = c else { throw ConnectorError.retryable("PostgreSQL: out of memory opening a connection") }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle)).lowercased()
            PQfinish(handle)
            if message.contains("password authentication failed") || message.contains("no password supplied")
                || message.contains("role") && message.contains("does not exist")
            {
                throw ConnectorError.permanent("PostgreSQL refused the login: wrong user or password")
            }
            if message.contains("database") && message.contains("does not exist") {
                throw ConnectorError.permanent("PostgreSQL: the database does not exist")
            }
            throw ConnectorError.retryable("PostgreSQL: cannot connect (server down or unreachable)")
        }
        conn = handle
        scimhub_pq_quiet(handle)
    }

    deinit { PQfinish(conn) }

    func execute(_ statement: SQLStatement, _ values: [String?]) throws(ConnectorError) -> SQLRows {
        if !prepared.contains(statement.name) {
            let r = PQprepare(conn, statement.name, statement.text, Int32(statement.parameters.count), nil)
            defer { PQclear(r) }
            try check(r, statement.name)
            prepared.insert(statement.name)
        }
        // libpq passes text parameters as C strings, and PostgreSQL text cannot hold NUL:
        // refuse rather than silently truncate a name.
        if values.contains(where: { $0?.utf8.contains(0) == true }) {
            throw ConnectorError.permanent("\(statement.name): a value contains NUL, which PostgreSQL text cannot hold")
        }
        // Text parameters: PQexecPrepared binds, the server never parses them as SQL.
        let cValues: [UnsafeMutablePointer<CChar>?] = values.map { $0.map { strdup($0) } ?? nil }
        defer { for p in cValues { free(p) } }
        // A statement without parameters (a configured list query, say) passes no array at all.
        let r =
            cValues.isEmpty
            ? PQexecPrepared(conn, statement.name, 0, nil, nil, nil, 0)
            : cValues.withUnsafeBufferPointer { buf in
                buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                    PQexecPrepared(conn, statement.name, Int32(values.count), $0, nil, nil, 0)
                }
            }
        defer { PQclear(r) }
        try check(r, statement.name)
        var out = SQLRows()
        let nCols = PQnfields(r), nRows = PQntuples(r)
        for c in 0..<nCols { out.columns.append(String(cString: PQfname(r, c))) }
        out.rows.reserveCapacity(Int(nRows))
        for row in 0..<nRows {
            var values: [String?] = []
            values.reserveCapacity(Int(nCols))
            for c in 0..<nCols {
                values.append(PQgetisnull(r, row, c) == 1 ? nil : String(cString: PQgetvalue(r, row, c)))
            }
            out.rows.append(values)
        }
        return out
    }

    func run(_ sql: String, _ what: String) throws(ConnectorError) {
        let r = PQexec(conn, sql)
        defer { PQclear(r) }
        try check(r, what)
    }

    private func check(_ r: OpaquePointer?, _ what: String) throws(ConnectorError) {
        let status = r.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK { return }
        let state =
            r.flatMap { PQresultErrorField($0, 67 /* PG_DIAG_SQLSTATE 'C' */) }.map { String(cString: $0) } ?? ""
        if PQstatus(conn) != CONNECTION_OK || state.hasPrefix("08") || state.hasPrefix("57P") {
            isUsable = false
            throw ConnectorError.retryable(
                "\(what): PostgreSQL connection lost" + (state.isEmpty ? "" : " (SQLSTATE \(state))"))
        }
        throw Self.classify(state, what)
    }

    /// SQLSTATE classes (PostgreSQL appendix A): retry what passes, refuse what will fail again.
    static func classify(_ state: String, _ what: String) -> ConnectorError {
        let names: [String: String] = [
            "23505": "unique violation (the account already exists)", "23503": "foreign key violation",
            "23502": "not-null violation",
            "23514": "check violation", "22001": "value too long",
            "22021": "invalid byte sequence (NUL is not allowed in PostgreSQL text)",
            "22P02": "invalid input syntax", "42P01": "undefined table", "42703": "undefined column",
            "42601": "syntax error",
            "42501": "insufficient privilege", "40001": "serialization failure", "40P01": "deadlock detected",
            "55P03": "lock not available",
            "53300": "too many connections", "25P02": "transaction aborted",
        ]
        let text = "\(what): SQLSTATE \(state)" + (names[state].map { " \($0)" } ?? "")
        let retryable = state == "40001" || state == "40P01" || state == "55P03" || state.hasPrefix("53")
        return retryable ? .retryable(text) : .permanent(text)
    }

    private static func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T)
        -> T
    {
        let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { for p in copies { free(p) } }
        return copies.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { body($0) }
        }
    }
}

// MARK: - SQLite

/// An SQLite database file (the demo's administrative system, small sites).
final class SQLiteDatabase: SQLDatabase {
    private let db: SQLiteConnection
    let isUsable = true
    /// IMMEDIATE takes the write lock up front, so two convergences wait for each other
    /// (busy timeout) instead of failing on a lock upgrade.
    let beginStatement = "BEGIN IMMEDIATE"

    init(path: String) throws(ConnectorError) {
        do {
            db = try SQLiteConnection(path: path)
            try db.execute("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
        } catch {
            throw ConnectorError.permanent("SQLite: cannot open the database (\(error.extendedCode))")
        }
    }

    func execute(_ statement: SQLStatement, _ values: [String?]) throws(ConnectorError) -> SQLRows {
        var out = SQLRows()
        do {
            try db.query(statement.text, values.map { $0.map(SQLiteValue.text) ?? .null }) { row in
                if out.columns.isEmpty { out.columns = (0..<row.columnCount).map(row.columnName) }
                out.rows.append((0..<row.columnCount).map { row.isNull($0) ? nil : row.text($0) })
            }
        } catch let e as SQLiteError {
            throw Self.classify(e, statement.name)
        } catch {
            throw ConnectorError.retryable("\(statement.name): SQLite failed")
        }
        return out
    }

    func run(_ sql: String, _ what: String) throws(ConnectorError) {
        do { try db.execute(sql) } catch { throw Self.classify(error, what) }
    }

    /// SQLite result codes: busy/locked and I/O trouble pass; constraints and SQL errors do not.
    static func classify(_ e: SQLiteError, _ what: String) -> ConnectorError {
        let text = "\(what): SQLite \(e.extendedCode) \(e.message.prefix(120))"
        if e.isUniqueViolation { return .permanent("\(what): unique violation (the account already exists)") }
        return e.isBusy || e.code == 10 /* IOERR */ || e.code == 13 /* FULL */ ? .retryable(text) : .permanent(text)
    }
}
