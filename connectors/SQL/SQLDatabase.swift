// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import Glibc
import Postgres
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

/// A PostgreSQL connection (the shared `Postgres` module). Statements are prepared once per
/// connection and executed with parameters whose types the server infers from the statement;
/// errors are classified by SQLSTATE, and server messages (which can quote values) are never
/// passed on.
final class PostgresDatabase: SQLDatabase {
    private let conn: PostgresConnection
    var isUsable: Bool { conn.isUsable }
    let beginStatement = "BEGIN"

    /// `conninfo` is a libpq connection string or URL; the password travels as its own keyword.
    init(conninfo: String, password: String?) throws(ConnectorError) {
        do {
            conn = try PostgresConnection(conninfo: conninfo, password: password)
        } catch {
            switch error.failure {
            case .authentication, .noDatabase: throw ConnectorError.permanent(error.description)
            case .unreachable: throw ConnectorError.retryable(error.description)
            }
        }
    }

    func execute(_ statement: SQLStatement, _ values: [String?]) throws(ConnectorError) -> SQLRows {
        do {
            // Untyped text parameters: a configured `$1` may stand for any column type.
            let r = try conn.result(
                statement.text, values.map { $0.map(PostgresValue.untyped) ?? .null }, context: statement.name)
            return SQLRows(columns: (0..<r.columnCount).map(r.columnName), rows: r.textRows)
        } catch {
            throw Self.classify(error, statement.name)
        }
    }

    func run(_ sql: String, _ what: String) throws(ConnectorError) {
        do { try conn.execute(sql, context: what) } catch { throw Self.classify(error, what) }
    }

    /// SQLSTATE classes (PostgreSQL appendix A): retry what passes, refuse what will fail again.
    static func classify(_ e: PostgresError, _ what: String) -> ConnectorError {
        if e.isConnectionLost {
            return .retryable(
                "\(what): PostgreSQL connection lost" + (e.sqlState.isEmpty ? "" : " (SQLSTATE \(e.sqlState))"))
        }
        let state = e.sqlState
        let text =
            state == "23505"
            ? "\(what): SQLSTATE 23505 unique violation (the account already exists)" : e.description
        let retryable = state == "40001" || state == "40P01" || state == "55P03" || state.hasPrefix("53")
        return retryable ? .retryable(text) : .permanent(text)
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
