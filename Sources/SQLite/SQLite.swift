// SPDX-License-Identifier: Apache-2.0
private import CSQLite

/// A value bound to, or read from, a statement.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// An SQLite failure. It keeps the result code, SQLite's message and the SQL text, and
/// never the bound values: they are personal data.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// Primary result code (`SQLITE_CONSTRAINT` = 19, `SQLITE_BUSY` = 5, ...).
    public let code: Int32
    /// Extended result code (`SQLITE_CONSTRAINT_UNIQUE` = 2067, ...).
    public let extendedCode: Int32
    public let message: String
    public let sql: String?

    public init(code: Int32, extendedCode: Int32, message: String, sql: String?) {
        self.code = code
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
    }

    /// True for a UNIQUE or PRIMARY KEY constraint violation.
    public var isUniqueViolation: Bool { extendedCode == 2067 || extendedCode == 1555 }
    /// True when the database was locked by another connection.
    public var isBusy: Bool { code == 5 || code == 6 }

    public var description: String {
        "SQLite error \(extendedCode): \(message)" + (sql.map { " in «\($0.prefix(120))»" } ?? "")
    }
}

/// One SQLite connection with a cache of prepared statements. Every statement is
/// prepared and bound; there is no API that splices values into SQL.
///
/// `@unchecked Sendable`: the handle is opened with `SQLITE_OPEN_NOMUTEX`, so it may move
/// between threads but must be used by one thread at a time. Owners (the store's writer
/// thread and the reader pool's check-out) guarantee that.
public final class SQLiteConnection: @unchecked Sendable {
    private var db: OpaquePointer?
    private var cache: [String: OpaquePointer] = [:]

    /// Opens (and creates unless `readOnly`) the database at `path`.
    public init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        let flags =
            (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        var handle: OpaquePointer?
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        if rc != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open database"
            // sqlite3_open_v2 allocates a handle even on failure; close it.
            sqlite3_close_v2(handle)
            throw SQLiteError(code: rc, extendedCode: rc, message: message, sql: nil)
        }
        db = handle
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
    }

    /// True while a transaction is open. SQLite ends a transaction by itself on some errors
    /// (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM): savepoint rollbacks then fail and later
    /// statements would run, and commit, outside it.
    public var isInTransaction: Bool { sqlite3_get_autocommit(db) == 0 }

    deinit {
        for (_, stmt) in cache { sqlite3_finalize(stmt) }
        sqlite3_close_v2(db)
    }

    private func error(_ rc: Int32, _ sql: String?) -> SQLiteError {
        SQLiteError(
            code: rc & 0xFF, extendedCode: sqlite3_extended_errcode(db), message: String(cString: sqlite3_errmsg(db)),
            sql: sql)
    }

    /// Runs SQL text without parameters (migrations, pragmas). May hold several statements.
    public func execute(_ sql: String) throws(SQLiteError) {
        var errmsg: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errmsg)
        if rc != SQLITE_OK {
            let message = errmsg.map { String(cString: $0) } ?? "error"
            sqlite3_free(errmsg)
            throw SQLiteError(code: rc & 0xFF, extendedCode: sqlite3_extended_errcode(db), message: message, sql: sql)
        }
    }

    private func statement(_ sql: String) throws(SQLiteError) -> OpaquePointer {
        if let s = cache[sql] { return s }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let s = stmt else { throw error(rc, sql) }
        cache[sql] = s
        return s
    }

    private func bind(_ stmt: OpaquePointer, _ params: [SQLiteValue], _ sql: String) throws(SQLiteError) {
        for (i, p) in params.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch p {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case .integer(let v): rc = sqlite3_bind_int64(stmt, idx, v)
            case .real(let v): rc = sqlite3_bind_double(stmt, idx, v)
            case .text(let v):
                // Explicit length: a NUL inside the value is data, not the end of it.
                rc = v.utf8CString.withUnsafeBufferPointer {
                    sqlite3_bind_text(stmt, idx, $0.baseAddress, Int32($0.count - 1), scimhub_sqlite_transient())
                }
            case .blob(let v):
                rc = v.withUnsafeBytes {
                    sqlite3_bind_blob(
                        stmt, idx, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(v.count),
                        scimhub_sqlite_transient())
                }
            }
            if rc != SQLITE_OK { throw error(rc, sql) }
        }
    }

    /// Runs one statement with bound parameters, ignoring any rows. Returns rows changed.
    @discardableResult
    public func run(_ sql: String, _ params: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let stmt = try statement(sql)
        defer { sqlite3_reset(stmt); sqlite3_clear_bindings(stmt) }
        try bind(stmt, params, sql)
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            if rc != SQLITE_ROW { throw error(rc, sql) }
        }
        return Int(sqlite3_changes(db))
    }

    /// Runs one query and calls `row` for each result row.
    public func query(_ sql: String, _ params: [SQLiteValue] = [], row: (SQLiteRow) throws -> Void) throws {
        let stmt = try statement(sql)
        defer { sqlite3_reset(stmt); sqlite3_clear_bindings(stmt) }
        try bind(stmt, params, sql)
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            if rc != SQLITE_ROW { throw error(rc, sql) }
            try row(SQLiteRow(stmt: stmt))
        }
    }

    /// Rowid of the last insert on this connection.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }

    /// Copies this whole database into `destination` with SQLite's online backup API
    /// (https://sqlite.org/backup.html): in one step, so the copy is one consistent snapshot
    /// (one read transaction here) while other connections go on writing in WAL mode.
    public func backup(into destination: SQLiteConnection) throws(SQLiteError) {
        guard let b = sqlite3_backup_init(destination.db, "main", db, "main") else {
            throw destination.error(sqlite3_errcode(destination.db), "backup")
        }
        let rc = sqlite3_backup_step(b, -1)
        let finished = sqlite3_backup_finish(b)
        guard rc == SQLITE_DONE else { throw destination.error(rc == SQLITE_OK ? finished : rc, "backup") }
        guard finished == SQLITE_OK else { throw destination.error(finished, "backup") }
    }
}

/// The current row of a running query; valid only inside the `row` callback.
public struct SQLiteRow {
    fileprivate let stmt: OpaquePointer

    fileprivate init(stmt: OpaquePointer) { self.stmt = stmt }

    /// Number of columns in the result.
    public var columnCount: Int32 { sqlite3_column_count(stmt) }

    /// Name of column `i` (its alias when the query gives one).
    public func columnName(_ i: Int32) -> String { sqlite3_column_name(stmt, i).map { String(cString: $0) } ?? "" }

    /// True when column `i` is NULL.
    public func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }

    /// Column `i` as an integer (0 when NULL).
    public func int64(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }

    /// Column `i` as text, or nil when NULL.
    public func text(_ i: Int32) -> String? {
        guard let p = sqlite3_column_text(stmt, i) else { return nil }
        let n = Int(sqlite3_column_bytes(stmt, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Column `i` as bytes ([] when NULL or empty).
    public func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// Column `i` as a typed value.
    public func value(_ i: Int32) -> SQLiteValue {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_INTEGER: return .integer(int64(i))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(stmt, i))
        case SQLITE_TEXT: return .text(text(i) ?? "")
        case SQLITE_BLOB: return .blob(blob(i))
        default: return .null
        }
    }
}
