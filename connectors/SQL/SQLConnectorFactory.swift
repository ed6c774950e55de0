// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import JSONCore

/// The `sql` connector plugin.
public struct SQLConnectorFactory: ConnectorFactory {
    public let typeName = "sql"
    public init() {}

    public func make(_ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector {
        do {
            return try SQLConnector(config: try Self.config(target))
        } catch let e as SQLConfigError {
            throw ConnectorSettingsError("\(target.at): \(e)")
        } catch let e as ConnectorSettingsError {
            throw e
        } catch {
            throw ConnectorSettingsError("\(target.at): \(error)")
        }
    }

    /// `settings` of a `sql` target:
    /// `{"dialect": "postgresql", "connection": "host=… port=… dbname=… user=…", "passwordEnv"|"passwordFile"?,
    ///   "schema"?: [DDL], "statements": {…}}`
    /// or `{"dialect": "sqlite", "path": "admin.db", "schema"?, "statements"}`. Statement keys and
    /// parameters are in `SQLConnector`; the mapping's field names are the parameter and column names.
    static func config(_ t: TargetSettings) throws(ConnectorSettingsError) -> SQLConfig {
        let s = t.settings, at = t.at
        try t.onlyKnownKeys(["dialect", "connection", "password", "path", "schema", "statements"])
        let database: SQLConfig.Database
        switch s["dialect"]?.stringValue {
        case "postgresql":
            guard let conninfo = s["connection"]?.stringValue, !conninfo.isEmpty else {
                throw ConnectorSettingsError("\(at).connection (a libpq connection string) is required")
            }
            guard !conninfo.lowercased().contains("password") else {
                throw ConnectorSettingsError(
                    "\(at).connection must not hold the password: use passwordEnv or passwordFile")
            }
            database = .postgresql(conninfo: conninfo, password: s["password"]?.stringValue)
        case "sqlite":
            guard let path = s["path"]?.stringValue, !path.isEmpty else {
                throw ConnectorSettingsError("\(at).path (the database file) is required")
            }
            database = .sqlite(path: path)
        default:
            throw ConnectorSettingsError("\(at).dialect must be postgresql or sqlite")
        }
        guard let so = s["statements"]?.objectValue else {
            throw ConnectorSettingsError("\(at).statements must be an object of name: SQL")
        }
        var statements: [String: String] = [:]
        for m in so.members {
            guard let text = m.value.stringValue else {
                throw ConnectorSettingsError("\(at).statements.\(m.key) must be a string")
            }
            statements[m.key] = text
        }
        var c = SQLConfig(database: database, statements: statements)
        c.schema = []
        for v in s["schema"]?.arrayValue ?? [] {
            guard let ddl = v.stringValue else {
                throw ConnectorSettingsError("\(at).schema must be an array of SQL statements")
            }
            c.schema.append(ddl)
        }
        c.attributes = t.mappedFields
        for a in c.attributes
        where !a.utf8.allSatisfy({
            ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F
        }) {
            throw ConnectorSettingsError(
                "target '\(t.targetName)' mapping key '\(a)' must be a parameter name (letters, digits, '_')")
        }
        return c
    }
}
