// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    /// Records (or, with nil, forgets) when a person's licence expires.
    public func setCredentialExpiry(personID: String, expires: Double?) throws {
        if let e = expires {
            try db.run(
                "INSERT INTO credential_expiries(person_id, expires) VALUES (?, ?) "
                    + "ON CONFLICT(person_id) DO UPDATE SET expires = excluded.expires",
                [.text(personID), .real(e)])
        } else {
            try db.run("DELETE FROM credential_expiries WHERE person_id = ?", [.text(personID)])
        }
    }

    /// People whose licence expired by `now` (still scheduled).
    public func dueCredentialExpiries(now: Double, limit: Int = 1000) throws -> [String] {
        var out: [String] = []
        try db.query(
            "SELECT person_id FROM credential_expiries WHERE expires <= ? ORDER BY expires LIMIT ?",
            [.real(now), .integer(Int64(limit))]
        ) {
            if let p = $0.text(0) { out.append(p) }
        }
        return out
    }

    public func nextCredentialExpiry() throws -> Double? {
        var out: Double?
        try db.query("SELECT MIN(expires) FROM credential_expiries") { r in out = r.isNull(0) ? nil : r.double(0)
        }
        return out
    }

    /// Licences expiring in [from, to], soonest first.
    public func expiringCredentials(from: Double, to: Double, limit: Int) throws -> [(
        personID: String, expires: Double
    )] {
        var out: [(String, Double)] = []
        try db.query(
            "SELECT person_id, expires FROM credential_expiries WHERE expires >= ? AND expires <= ? "
                + "ORDER BY expires LIMIT ?",
            [.real(from), .real(to), .integer(Int64(limit))]
        ) { r in out.append((r.text(0) ?? "", r.double(1))) }
        return out
    }

    public func credentialScheduleSize() throws -> Int {
        var n = 0
        try db.query("SELECT COUNT(*) FROM credential_expiries") { n = Int($0.int64(0)) }
        return n
    }
}
