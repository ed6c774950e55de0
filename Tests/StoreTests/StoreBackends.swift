// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import Testing
import HubLog
import Postgres
import SQLite
@testable import Store
import TestSupport

/// The store backends every parameterised store test runs on.
enum StoreBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// One PostgreSQL cluster for the whole test process, started on first use and stopped when
/// the process exits; each test gets a database of its own in it.
enum SharedPostgres {
    private static let started = Mutex<Result<PostgresServer, TestError>?>(nil)

    /// The running cluster. A cluster that cannot start fails the test (never skips it).
    static func server() throws -> PostgresServer {
        try started.withLock { state in
            if state == nil {
                do {
                    state = .success(try PostgresServer())
                    atexit { SharedPostgres.stopAtExit() }
                } catch {
                    state = .failure(TestError("PostgreSQL for the store tests did not start: \(error)"))
                }
            }
            return try state!.get()
        }
    }

    /// A static is never deinitialised: stop the cluster and remove its folder here.
    private static func stopAtExit() {
        if case .success(let s)? = started.withLock({ $0 }) {
            s.stop()
            s.directory.remove()
        }
    }

    private static let counter = Atomic<Int>(0)

    /// A new, empty database, and the settings that reach it.
    static func freshDatabase() throws -> (name: String, settings: PostgresSettings) {
        let s = try server()
        let name = "t\(getpid())_\(counter.add(1, ordering: .relaxed).newValue)"
        let admin = try PostgresConnection(conninfo: s.connectionString, password: nil)
        // CREATE DATABASE takes no parameters; the name is ours (letters, digits and '_').
        try admin.execute("CREATE DATABASE \(name)", context: "create database")
        return (name, try settings(s, database: name))
    }

    static func settings(_ s: PostgresServer, database: String) throws -> PostgresSettings {
        try PostgresSettings(
            conninfo: "host=127.0.0.1 port=\(s.port) dbname=\(database) user=\(s.user) connect_timeout=5",
            password: s.password)
    }
}

/// Each test gets a fresh store: a SQLite file in a temporary folder, or a new database in
/// the shared PostgreSQL cluster.
final class TempStore: Sendable {
    let backend: StoreBackend
    let dir = TemporaryDirectory()
    let store: any HubStore
    /// The PostgreSQL settings (nil on SQLite).
    let postgres: PostgresSettings?

    init(_ backend: StoreBackend = .sqlite) throws {
        self.backend = backend
        switch backend {
        case .sqlite:
            store = try SQLiteStore(directory: dir.path, durability: .normal, logger: Logger(label: "t", silent: true))
            postgres = nil
        case .postgres:
            let db = try SharedPostgres.freshDatabase()
            postgres = db.settings
            store = try PostgresStore(
                settings: db.settings, maxConnections: 4, logger: Logger(label: "t", silent: true))
        }
    }

    /// The SQLite store (tests of SQLite's own machinery).
    var sqlite: SQLiteStore { store as! SQLiteStore }

    /// Runs literal SQL behind the store's back (tampering, inspection).
    func raw(_ sql: String) throws {
        switch backend {
        case .sqlite: try SQLiteConnection(path: sqlite.path).execute(sql)
        case .postgres:
            try PostgresConnection(conninfo: postgres!.conninfo, password: postgres!.password).execute(
                sql, context: "raw")
        }
    }

    /// The first column of every row of `sql`, as bytes (blobs) — for inspection.
    func rawBytes(_ sql: String) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        switch backend {
        case .sqlite: try SQLiteConnection(path: sqlite.path).query(sql) { out.append($0.blob(0)) }
        case .postgres:
            try PostgresConnection(conninfo: postgres!.conninfo, password: postgres!.password).query(sql) {
                out.append($0.bytes(0))
            }
        }
        return out
    }

    deinit {
        store.close()
        dir.remove()
    }
}
