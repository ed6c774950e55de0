// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import Synchronization

/// Settings for a SQL target: where the database is and the statements that manage accounts.
public struct SQLConfig: Sendable {
    public enum Database: Sendable {
        /// A libpq connection string (`host=db port=5432 dbname=admin user=scimhub`) and the password.
        case postgresql(conninfo: String, password: String?)
        /// A database file.
        case sqlite(path: String)
    }

    public var database: Database
    /// Statement key → SQL with named parameters. See `SQLConnector.statementKeys`.
    public var statements: [String: String]
    /// Mapped attributes: column aliases in read/find/list results and parameters of create/update.
    public var attributes: [String] = []
    /// DDL run once before the first statement (`CREATE TABLE IF NOT EXISTS ...`), in order.
    public var schema: [String] = []

    public var dialect: SQLStatement.Dialect {
        if case .sqlite = database { return .sqlite }
        return .postgresql
    }

    public init(database: Database, statements: [String: String]) {
        self.database = database
        self.statements = statements
    }
}

/// Provisions into an application's own tables on PostgreSQL (libpq) or SQLite: every
/// action is a configured statement with named parameters, bound, never interpolated.
/// A convergence runs in one transaction on one connection (`transaction`), so a target
/// never sees half of a change; a lost connection is retried on a fresh one.
///
/// Statements (parameters in brackets; results name their columns `id`, `userName`,
/// `enabled` and the mapped attributes):
/// - `find` [userName], `read` [id]: one account row
/// - `create` [userName, enabled, attributes…]: returns `id` (`RETURNING id`)
/// - `update` [id, attributes…], `rename` [id, userName], `setEnabled` [id, enabled], `delete` [id]
/// - `grant` / `revoke` [id, entitlement]: idempotent (`ON CONFLICT DO NOTHING`)
/// - `entitlements` [id]: rows of `entitlement`
/// - `list` [after, limit]: account rows ordered by id after `after` (NULL on the first page)
/// - `listEntitlements` [after, last]: rows of `id`, `entitlement` for ids in (after, last]
public final class SQLConnector: Connector {
    public static let statementKeys = [
        "find", "read", "create", "update", "rename", "setEnabled", "delete", "grant", "revoke",
        "entitlements", "list", "listEntitlements",
    ]
    /// Parameters every statement may use besides the mapped attributes.
    static let builtinParameters: Set<String> = ["id", "userName", "enabled", "entitlement", "after", "limit", "last"]

    public let config: SQLConfig
    let statements: [String: SQLStatement]
    private let pool: ConnectionPool<AnySQLDatabase>
    private let schemaApplied = Mutex(false)

    /// Parses every statement and checks its parameters; a typo fails here, at start-up.
    public init(config: SQLConfig) throws(SQLConfigError) {
        self.config = config
        var parsed: [String: SQLStatement] = [:]
        let allowed = Self.builtinParameters.union(config.attributes)
        for (key, source) in config.statements {
            guard Self.statementKeys.contains(key) else {
                throw SQLConfigError(
                    "unknown statement '\(key)' (known: \(Self.statementKeys.joined(separator: ", ")))")
            }
            let s = try SQLStatement(name: key, source: source, dialect: config.dialect)
            for p in s.parameters where !allowed.contains(p) {
                throw SQLConfigError(
                    "statement '\(key)': unknown parameter ':\(p)' (known: \(allowed.sorted().joined(separator: ", ")))"
                )
            }
            parsed[key] = s
        }
        for key in Self.statementKeys where key != "rename" && parsed[key] == nil {
            throw SQLConfigError("statement '\(key)' is required")
        }
        statements = parsed
        let database = config.database
        pool = ConnectionPool { () throws(ConnectorError) in
            switch database {
            case .postgresql(let conninfo, let password):
                return AnySQLDatabase(try PostgresDatabase(conninfo: conninfo, password: password))
            case .sqlite(let path): return AnySQLDatabase(try SQLiteDatabase(path: path))
            }
        }
    }

    public var capabilities: ConnectorCapabilities { ConnectorCapabilities(entitlementKinds: ["role"]) }

    // MARK: - Connector: each call on its own connection in autocommit

    public func read(id: String) throws(ConnectorError) -> Account? {
        try session { s throws(ConnectorError) in try s.read(id: id) }
    }
    public func find(userName: String) throws(ConnectorError) -> Account? {
        try session { s throws(ConnectorError) in try s.find(userName: userName) }
    }
    public func create(_ spec: AccountSpec) throws(ConnectorError) -> Account {
        try transaction { s throws(ConnectorError) in try s.create(spec) }
    }
    public func update(id: String, attributes: [String: String]) throws(ConnectorError) {
        try session { s throws(ConnectorError) in try s.update(id: id, attributes: attributes) }
    }
    public func rename(id: String, userName: String) throws(ConnectorError) {
        try session { s throws(ConnectorError) in try s.rename(id: id, userName: userName) }
    }
    public func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
        try session { s throws(ConnectorError) in try s.setEnabled(id: id, enabled) }
    }
    public func delete(id: String) throws(ConnectorError) {
        try transaction { s throws(ConnectorError) in try s.delete(id: id) }
    }
    public func grant(id: String, entitlement: String) throws(ConnectorError) {
        try session { s throws(ConnectorError) in try s.grant(id: id, entitlement: entitlement) }
    }
    public func revoke(id: String, entitlement: String) throws(ConnectorError) {
        try session { s throws(ConnectorError) in try s.revoke(id: id, entitlement: entitlement) }
    }
    public func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
        try session { s throws(ConnectorError) in try s.list(cursor: cursor, pageSize: pageSize) }
    }

    /// One transaction on one connection: `body` gets a connector bound to it. Committed when
    /// `body` returns, rolled back when it throws. A connection found dead at BEGIN (a database
    /// restart) is replaced before anything ran, so that costs no retry.
    public func transaction<T>(_ body: (any Connector) throws(ConnectorError) -> T) throws(ConnectorError) -> T {
        try applySchemaOnce()
        return try pool.with { db throws(ConnectorError) in
            try db.base.run(db.base.beginStatement, "begin")
            let s = SQLSession(db: db.base, statements: statements, attributes: config.attributes)
            do throws(ConnectorError) {
                let result = try body(s)
                try db.base.run("COMMIT", "commit")
                return result
            } catch {
                if db.base.isUsable { try? db.base.run("ROLLBACK", "rollback") }
                throw error
            }
        }
    }

    private func session<T>(_ body: (SQLSession) throws(ConnectorError) -> T) throws(ConnectorError) -> T {
        try applySchemaOnce()
        return try pool.with { db throws(ConnectorError) in
            try body(SQLSession(db: db.base, statements: statements, attributes: config.attributes))
        }
    }

    /// Runs the configured DDL once, holding the lock so concurrent first calls wait for it
    /// (concurrent `CREATE TABLE IF NOT EXISTS` can still collide in PostgreSQL).
    private func applySchemaOnce() throws(ConnectorError) {
        guard !config.schema.isEmpty else { return }
        try schemaApplied.withLock { (applied: inout Bool) throws(ConnectorError) in
            guard !applied else { return }
            try pool.with { db throws(ConnectorError) in
                for (i, ddl) in config.schema.enumerated() { try db.base.run(ddl, "schema[\(i)]") }
            }
            applied = true
        }
    }
}

/// Boxes a dialect's connection for the pool.
final class AnySQLDatabase: PooledConnection {
    let base: any SQLDatabase
    init(_ base: any SQLDatabase) { self.base = base }
    var isUsable: Bool { base.isUsable }
}

/// The account operations on one connection (inside or outside a transaction).
struct SQLSession: Connector, @unchecked Sendable {
    // @unchecked Sendable: a session lives within one convergence on one thread; its connection is not shared.
    let db: any SQLDatabase
    let statements: [String: SQLStatement]
    let attributes: [String]

    var capabilities: ConnectorCapabilities { ConnectorCapabilities(entitlementKinds: ["role"]) }

    func read(id: String) throws(ConnectorError) -> Account? {
        guard let row = try one("read", ["id": id]) else { return nil }
        return try account(row, entitlements: try entitlements(row.id))
    }

    func find(userName: String) throws(ConnectorError) -> Account? {
        guard let row = try one("find", ["userName": userName]) else { return nil }
        return try account(row, entitlements: try entitlements(row.id))
    }

    func create(_ spec: AccountSpec) throws(ConnectorError) -> Account {
        var values = attributeValues(spec.attributes)
        values["userName"] = spec.userName
        values["enabled"] = spec.enabled ? "1" : "0"
        let rows = try exec("create", values)
        guard let idColumn = rows.columns.firstIndex(where: { $0.lowercased() == "id" }),
            let id = rows.rows.first?[idColumn] ?? nil
        else {
            throw ConnectorError.permanent("create: the statement must return the new id (RETURNING id)")
        }
        for e in spec.entitlements.sorted() { try grant(id: id, entitlement: e) }
        guard let created = try read(id: id) else {
            throw ConnectorError.retryable("create: the new account cannot be read back")
        }
        return created
    }

    func update(id: String, attributes: [String: String]) throws(ConnectorError) {
        var values = attributeValues(attributes)
        values["id"] = id
        _ = try exec("update", values)
    }

    func rename(id: String, userName: String) throws(ConnectorError) {
        guard statements["rename"] != nil else {
            throw ConnectorError.permanent("rename: no 'rename' statement is configured")
        }
        _ = try exec("rename", ["id": id, "userName": userName])
    }

    func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
        _ = try exec("setEnabled", ["id": id, "enabled": enabled ? "1" : "0"])
    }

    func delete(id: String) throws(ConnectorError) {
        for e in try entitlements(id) { try revoke(id: id, entitlement: e) }
        _ = try exec("delete", ["id": id])
    }

    func grant(id: String, entitlement: String) throws(ConnectorError) {
        // The account must exist: a grant to nobody is an error, not a silent orphan row.
        guard try one("read", ["id": id]) != nil else { throw ConnectorError.permanent("grant: no such account") }
        _ = try exec("grant", ["id": id, "entitlement": entitlement])
    }

    func revoke(id: String, entitlement: String) throws(ConnectorError) {
        _ = try exec("revoke", ["id": id, "entitlement": entitlement])
    }

    func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
        let rows = try exec("list", ["after": cursor, "limit": String(max(1, pageSize))])
        let accounts = try rows.rows.map { r throws(ConnectorError) in try Row(columns: rows.columns, values: r) }
        guard let last = accounts.last else { return AccountPage(accounts: [], next: nil) }
        // Entitlements of the whole page in one statement, not one per account.
        var held: [String: Set<String>] = [:]
        let ent = try exec("listEntitlements", ["after": cursor, "last": last.id])
        let idColumn = ent.columns.firstIndex { $0.lowercased() == "id" } ?? 0
        let entColumn = ent.columns.firstIndex { $0.lowercased() == "entitlement" } ?? 1
        for r in ent.rows where r.count > max(idColumn, entColumn) {
            if let id = r[idColumn], let e = r[entColumn] { held[id, default: []].insert(e) }
        }
        let out = try accounts.map { a throws(ConnectorError) in try account(a, entitlements: held[a.id] ?? []) }
        return AccountPage(accounts: out, next: accounts.count < max(1, pageSize) ? nil : last.id)
    }

    // MARK: - Rows

    /// An account row: id, userName, enabled and the rest by lower-cased column name.
    struct Row {
        var id: String
        var userName: String
        var enabled: Bool
        var columns: [String: String]

        init(columns names: [String], values: [String?]) throws(ConnectorError) {
            var byName: [String: String] = [:]
            for (i, n) in names.enumerated() where i < values.count {
                if let v = values[i] { byName[n.lowercased()] = v }
            }
            guard let id = byName["id"] else {
                throw ConnectorError.permanent("the account statements must return an 'id' column")
            }
            self.id = id
            userName = byName["username"] ?? ""
            enabled = ["1", "t", "true", "yes", "on"].contains((byName["enabled"] ?? "1").lowercased())
            columns = byName
        }
    }

    private func one(_ key: String, _ values: [String: String?]) throws(ConnectorError) -> Row? {
        let rows = try exec(key, values)
        guard let first = rows.rows.first else { return nil }
        return try Row(columns: rows.columns, values: first)
    }

    private func entitlements(_ id: String) throws(ConnectorError) -> Set<String> {
        Set(try exec("entitlements", ["id": id]).rows.compactMap { $0.first ?? nil })
    }

    private func account(_ row: Row, entitlements: Set<String>) throws(ConnectorError) -> Account {
        var attrs: [String: String] = [:]
        for a in attributes { if let v = row.columns[a.lowercased()] { attrs[a] = v } }
        return Account(
            id: row.id, userName: row.userName, attributes: attrs, enabled: row.enabled, entitlements: entitlements)
    }

    /// Every mapped attribute gets a value (NULL when the person has none), so an update clears what went away.
    private func attributeValues(_ given: [String: String]) -> [String: String?] {
        var out: [String: String?] = [:]
        for a in attributes { out[a] = given[a].flatMap { $0.isEmpty ? nil : $0 } }
        return out
    }

    private func exec(_ key: String, _ values: [String: String?]) throws(ConnectorError) -> SQLRows {
        guard let s = statements[key] else { throw ConnectorError.permanent("no '\(key)' statement is configured") }
        return try db.execute(s, s.bind(values))
    }
}
