// SPDX-License-Identifier: Apache-2.0
import Foundation
import JSONCore

/// The reference administrative system's tables and statements, read from the `admin`
/// target of `scripts/reference-policy.json` (one source for the demo, tests and benchmarks).
/// The statements run unchanged on SQLite and PostgreSQL; only the DDL differs.
public enum AdminSchema {
    private static let settings: JSONObject = {
        guard let data = FileManager.default.contents(atPath: repoRoot + "/scripts/reference-policy.json"),
            let targets = (try? JSONParser().parse(Array(data)))?.objectValue?["targets"]?.arrayValue,
            let admin = targets.first(where: { $0.objectValue?["name"]?.stringValue == "admin" })?.objectValue?[
                "settings"]?.objectValue
        else {
            preconditionFailure("scripts/reference-policy.json has no admin target")
        }
        return admin
    }()

    /// Statement key → SQL with named parameters.
    public static let statements: [String: String] = {
        var out: [String: String] = [:]
        for m in settings["statements"]?.objectValue?.members ?? [] { out[m.key] = m.value.stringValue }
        return out
    }()

    /// Mapped attributes (parameters and column aliases).
    public static let attributes = ["displayName", "email", "department"]

    public static let sqliteSchema: [String] = (settings["schema"]?.arrayValue ?? []).compactMap(\.stringValue)

    public static let postgresSchema = [
        "CREATE TABLE IF NOT EXISTS accounts (id BIGSERIAL PRIMARY KEY, user_name TEXT NOT NULL, display_name TEXT, "
            + "email TEXT, department TEXT, enabled BOOLEAN NOT NULL DEFAULT TRUE)",
        "CREATE UNIQUE INDEX IF NOT EXISTS accounts_user_name ON accounts (lower(user_name))",
        "CREATE TABLE IF NOT EXISTS account_roles (account_id BIGINT NOT NULL "
            + "REFERENCES accounts(id) ON DELETE CASCADE, role TEXT NOT NULL, "
            + "PRIMARY KEY (account_id, role))",
    ]
}
