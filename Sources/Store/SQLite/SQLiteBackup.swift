// SPDX-License-Identifier: Apache-2.0
import Foundation
import SQLite

/// What a backup or restore holds, to compare with the live store.
public struct BackupSummary: Sendable, Equatable {
    public var users = 0
    public var groups = 0
    public var auditEntries = 0
    public var pendingJobs = 0
    public var schemaVersion = 0
    public var bytes = 0
}

/// Backup and restore of a SQLite store (`scimhub backup`, `scimhub restore`).
///
/// A backup is one consistent snapshot taken with SQLite's online backup API while the hub
/// serves (its writes go on in WAL mode), written to a temporary file beside the target,
/// checked (`integrity_check`), flushed and renamed into place: a backup that fails (a full
/// disk) leaves no file and the store untouched. A restore refuses a data directory that
/// already holds a store, checks the file first, and copies it in the same way.
public enum SQLiteBackup {
    static let database = "scimhub.sqlite"

    /// Copies the store in `directory` to `file` (which must not exist).
    @discardableResult
    public static func backup(directory: String, to file: String) throws -> BackupSummary {
        let source = directory + "/" + database
        guard FileManager.default.fileExists(atPath: source) else {
            throw StoreError("no store in \(directory) (\(database) is missing)")
        }
        guard !FileManager.default.fileExists(atPath: file) else {
            throw StoreError("\(file) exists; a backup never overwrites a file")
        }
        return try copy(from: source, to: file, what: "the backup")
    }

    /// Restores `file` into `directory`, which must hold no store yet.
    @discardableResult
    public static func restore(from file: String, directory: String) throws -> BackupSummary {
        guard FileManager.default.fileExists(atPath: file) else { throw StoreError("\(file) does not exist") }
        for f in [database, database + "-wal", database + "-shm"]
        where FileManager.default.fileExists(atPath: directory + "/" + f) {
            throw StoreError(
                "\(directory) already holds a store (\(f)); restore into an empty data directory, never over one")
        }
        let summary = try check(file)
        guard summary.schemaVersion <= Migrations.all.map(\.version).max() ?? 0 else {
            throw StoreError(
                "\(file) was made by a newer ScimHub (schema \(summary.schemaVersion)); restore it with that version")
        }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return try copy(from: file, to: directory + "/" + database, what: "the restore")
    }

    /// What a backup file holds, after SQLite's own integrity check.
    public static func check(_ file: String) throws -> BackupSummary {
        do {
            let db = try SQLiteConnection(path: file, readOnly: true)
            var ok = ""
            try db.query("PRAGMA integrity_check") { if ok.isEmpty { ok = $0.text(0) ?? "" } }
            guard ok == "ok" else { throw StoreError("\(file) is damaged: \(ok.prefix(200))") }
            return try summarize(db, bytes: fileSize(file))
        } catch let e as SQLiteError {
            throw StoreError("\(file) is not a ScimHub store: \(e.description.prefix(200))")
        }
    }

    private static func summarize(_ db: SQLiteConnection, bytes: Int) throws -> BackupSummary {
        var s = BackupSummary(bytes: bytes)
        var tables = Set<String>()
        try db.query("SELECT name FROM sqlite_master WHERE type = 'table'") { tables.insert($0.text(0) ?? "") }
        guard tables.isSuperset(of: ["schema_migrations", "resources", "audit", "provisioning_jobs"]) else {
            throw StoreError("the file is a SQLite database but not a ScimHub store")
        }
        func count(_ sql: String) throws -> Int {
            var n = 0
            try db.query(sql) { n = Int($0.int64(0)) }
            return n
        }
        s.users = try count("SELECT COUNT(*) FROM resources WHERE type = 'User'")
        s.groups = try count("SELECT COUNT(*) FROM resources WHERE type = 'Group'")
        s.auditEntries = try count("SELECT COUNT(*) FROM audit")
        s.pendingJobs = try count("SELECT COUNT(*) FROM provisioning_jobs WHERE state = 'pending'")
        s.schemaVersion = try count("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        return s
    }

    /// One consistent copy into `target + .partial`, checked, flushed, renamed; on failure
    /// the partial file goes and `target` never appears.
    private static func copy(from source: String, to target: String, what: String) throws -> BackupSummary {
        let partial = target + ".partial-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: partial) }
        do {
            let summary: BackupSummary
            do {
                // Read-write open, read-only use: a WAL database opened read-only needs its
                // -shm file to exist already, which it does not when no hub runs.
                let from = try SQLiteConnection(path: source)
                try from.execute("PRAGMA query_only=1")
                let into = try SQLiteConnection(path: partial)
                try from.backup(into: into)
                // One self-contained file: no WAL beside it.
                try into.execute("PRAGMA journal_mode=DELETE")
                var ok = ""
                try into.query("PRAGMA integrity_check") { if ok.isEmpty { ok = $0.text(0) ?? "" } }
                guard ok == "ok" else { throw StoreError("\(what) does not pass SQLite's integrity check: \(ok)") }
                summary = try summarize(into, bytes: 0)
            }
            try sync(partial)
            chmod(partial, 0o600)
            guard rename(partial, target) == 0 else {
                throw StoreError("\(what) cannot be moved into place at \(target) (errno \(errno))")
            }
            try sync((target as NSString).deletingLastPathComponent)
            var s = summary
            s.bytes = fileSize(target)
            return s
        } catch let e as SQLiteError {
            let reason = e.code == 13 ? "the disk is full" : e.description.prefix(200).description
            throw StoreError("\(what) could not be written to \(target): \(reason)", kind: e.code == 13 ? .full : .io)
        }
    }

    private static func sync(_ path: String) throws {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError("cannot open \(path) to flush it (errno \(errno))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError("cannot flush \(path) to disk (errno \(errno))", kind: .io) }
    }

    private static func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }
}
