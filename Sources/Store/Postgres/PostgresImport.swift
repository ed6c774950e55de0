// SPDX-License-Identifier: Apache-2.0
import Foundation
import Postgres
import SQLite
import HubLog

/// `scimhub migrate --from DIR --to postgres://…`: a SQLite hub's whole store, audit chain
/// included, copied into an empty PostgreSQL database, then checked there (row counts per
/// table, the audit chain verified, its head the same as the source's).
///
/// The copy is one PostgreSQL transaction: a failure leaves the target as it was. The source
/// is read in one SQLite snapshot under the data directory's serve lock, so no hub writes it
/// meanwhile. Tables and columns are the ones both schemas have (PostgreSQL's migrations
/// mirror SQLite's), each value converted to the target column's type.
public enum PostgresImport {
    /// What was copied.
    public struct Summary: Sendable {
        /// Rows per table, in copy order.
        public var tables: [(name: String, rows: Int)] = []
        public var audit: AuditVerification? = nil
    }

    /// Tables the target keeps as its own: the migration record, the nodes and the lease,
    /// the chain head (set from the copied chain), and the cluster limits' and reconciliation
    /// runs' leases and counters (a stopped SQLite node's slots, throttle windows and leased
    /// targets mean nothing to the nodes).
    static let ownTables: Set<String> = [
        "schema_migrations", "nodes", "leader_lease", "audit_chain_head", "target_slots", "target_slot_waiters",
        "target_circuits", "auth_failures", "reconciliation_leases",
    ]

    /// Copies the store in `directory` into the empty database `settings` names.
    public static func run(from directory: String, to settings: PostgresSettings, logger: Logger) throws -> Summary {
        let file = directory + "/scimhub.sqlite"
        guard FileManager.default.fileExists(atPath: file) else {
            throw StoreError("no ScimHub store in \(directory) (scimhub.sqlite is missing)")
        }
        // The serve lock: a running hub would write after the snapshot and those writes would be lost.
        let lock = try LocalCoordination(directory: directory)
        defer { lock.close() }
        // Brings the source to this build's schema, as `serve` would, before reading it.
        try SQLiteStore(directory: directory, durability: .full, logger: logger).close()
        // The target's schema, migrated under its advisory lock.
        try PostgresStore(settings: settings, maxConnections: 2, logger: logger).close()
        return try StoreError.mappingPostgres {
            let source = try SQLiteConnection(path: file, readOnly: true)
            let target = try PostgresConnection(
                conninfo: settings.conninfo, password: settings.password, defaults: PostgresPool.defaults)
            try target.execute("SET bytea_output = 'hex'; SET extra_float_digits = 3", context: "session settings")
            try source.execute("BEGIN")
            defer { try? source.execute("ROLLBACK") }
            try target.execute("BEGIN", context: "import")
            do {
                let summary = try copy(source, target)
                try target.execute("COMMIT", context: "import")
                return summary
            } catch {
                try? target.execute("ROLLBACK", context: "import")
                throw error
            }
        }
    }

    private static func copy(_ source: SQLiteConnection, _ target: PostgresConnection) throws -> Summary {
        // Nodes starting now wait for the copy (they migrate under the same lock).
        try target.run("SELECT pg_advisory_xact_lock($1)", [.integer(PostgresMigrations.lockKey)], context: "import")
        var sourceTables = Set<String>()
        try source.query("SELECT name FROM sqlite_master WHERE type = 'table'") {
            sourceTables.insert($0.text(0) ?? "")
        }
        var tables: [String] = []
        try target.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                + "AND table_type = 'BASE TABLE' ORDER BY table_name", [], context: "import"
        ) { tables.append($0.text(0) ?? "") }
        tables = tables.filter { !ownTables.contains($0) && sourceTables.contains($0) }
        for t in tables {
            guard isIdentifier(t) else { throw StoreError("import: unexpected table name") }
            var any = false
            try target.query("SELECT 1 FROM \"\(t)\" LIMIT 1", [], context: "import") { _ in any = true }
            if any { throw StoreError("the target database is not empty (table \(t) has rows); import refused") }
        }
        var live = 0
        try target.query(
            "SELECT COUNT(*) FROM nodes WHERE heartbeat > EXTRACT(EPOCH FROM clock_timestamp())::float8 - 60", [],
            context: "import"
        ) { live = Int($0.int64(0)) }
        if live > 0 { throw StoreError("a hub node is running on the target database; import refused") }

        var summary = Summary()
        for t in tables {
            var targetColumns: [(name: String, type: String, serial: Bool)] = []
            try target.query(
                "SELECT column_name, data_type, COALESCE(column_default, '') FROM information_schema.columns "
                    + "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                [.text(t)], context: "import"
            ) { targetColumns.append(($0.text(0) ?? "", $0.text(1) ?? "", ($0.text(2) ?? "").hasPrefix("nextval("))) }
            var sourceColumns = Set<String>()
            try source.query("SELECT name FROM pragma_table_info(?)", [.text(t)]) {
                sourceColumns.insert($0.text(0) ?? "")
            }
            let columns = targetColumns.filter { sourceColumns.contains($0.name) }
            guard !columns.isEmpty, columns.allSatisfy({ isIdentifier($0.name) }) else {
                throw StoreError("import: table \(t) has no columns in common")
            }
            let names = columns.map { "\"\($0.name)\"" }.joined(separator: ", ")
            let placeholders = (1...columns.count).map { "$\($0)" }.joined(separator: ", ")
            let insert = "INSERT INTO \"\(t)\" (\(names)) VALUES (\(placeholders))"
            var rows = 0
            try source.query("SELECT \(names) FROM \"\(t)\"") { r in
                let values = columns.indices.map { i in convert(r.value(Int32(i)), to: columns[i].type) }
                try target.run(insert, values, context: "import \(t)")
                rows += 1
            }
            // Serial columns go on after the highest copied value.
            for c in columns where c.serial {
                try target.query(
                    "SELECT setval(pg_get_serial_sequence($1, $2), MAX(\"\(c.name)\")) FROM \"\(t)\" "
                        + "HAVING MAX(\"\(c.name)\") IS NOT NULL", [.text(t), .text(c.name)], context: "import"
                ) { _ in }
            }
            var copied = 0
            try target.query("SELECT COUNT(*) FROM \"\(t)\"", [], context: "import") { copied = Int($0.int64(0)) }
            guard copied == rows else { throw StoreError("import: table \(t) has \(copied) rows, the source \(rows)") }
            summary.tables.append((t, rows))
        }
        // The chain head follows the copied chain, which must verify as it did in SQLite.
        var head: (seq: Int64, hash: [UInt8])? = nil
        try target.query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", [], context: "import") {
            head = ($0.int64(0), $0.bytes(1))
        }
        if let head {
            try target.run(
                "UPDATE audit_chain_head SET seq = $1, hash = $2, policy_version = "
                    + "COALESCE((SELECT max(version) FROM policy_versions WHERE state = 'active'), 0) WHERE id = 1",
                [.integer(head.seq), .bytes(head.hash)],
                context: "import")
        }
        let verified = try AuditLog.verify(PostgresSession(target))
        guard verified.intact else {
            throw StoreError(
                "import: the audit chain does not verify on the target: \(verified.firstBroken?.reason ?? "")")
        }
        summary.audit = verified
        return summary
    }

    /// A PostgreSQL value for a SQLite one, by the target column's type.
    static func convert(_ v: SQLiteValue, to type: String) -> PostgresValue {
        switch (v, type) {
        case (.null, _): return .null
        case (.integer(let i), "bigint"), (.integer(let i), "integer"), (.integer(let i), "smallint"):
            return .integer(i)
        case (.real(let d), "bigint"), (.real(let d), "integer"), (.real(let d), "smallint"): return .integer(Int64(d))
        case (.integer(let i), "double precision"), (.integer(let i), "real"), (.integer(let i), "numeric"):
            return .real(Double(i))
        case (.real(let d), _) where type != "text" && type != "bytea": return .real(d)
        case (.integer(let i), "boolean"): return .untyped(i != 0 ? "true" : "false")
        case (.blob(let b), "bytea"): return .bytes(b)
        case (.text(let s), "bytea"): return .bytes(Array(s.utf8))
        case (.blob(let b), _): return .text(String(decoding: b, as: UTF8.self))
        case (.text(let s), "text"), (.text(let s), "character varying"): return .text(s)
        case (.text(let s), _): return .untyped(s)
        case (.integer(let i), _): return .untyped(String(i))
        case (.real(let d), _): return .untyped(String(d))
        }
    }

    /// Catalog names are put in SQL text (identifiers cannot be bound): only plain ones pass.
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.utf8.first, first == 95 || (97...122).contains(first) else { return false }
        return s.utf8.count <= 63 && s.utf8.allSatisfy { $0 == 95 || (97...122).contains($0) || (48...57).contains($0) }
    }
}
