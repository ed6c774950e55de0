// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    /// Stores a principal's TOTP secret; false when one is enrolled already.
    public func enrolMFA(principal: String, secret: [UInt8], now: Double) throws -> Bool {
        try db.run(
            "INSERT INTO mfa_secrets(principal, secret, created) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            [.text(principal), .bytes(secret), .real(now)]) == 1
    }

    /// The principal's TOTP secret, if enrolled.
    public func mfaSecret(principal: String) throws -> [UInt8]? {
        var out: [UInt8]?
        try db.query("SELECT secret FROM mfa_secrets WHERE principal = ?", [.text(principal)]) { out = $0.bytes(0) }
        return out
    }

    /// Accepts a code's time step once: false when this step (or a later one) was used already.
    public func acceptMFAStep(principal: String, step: Int64) throws -> Bool {
        try db.run(
            "UPDATE mfa_secrets SET last_step = ? WHERE principal = ? AND last_step < ?",
            [.integer(step), .text(principal), .integer(step)]) == 1
    }

    public func resetMFA(principal: String) throws -> Bool {
        try db.run("DELETE FROM mfa_secrets WHERE principal = ?", [.text(principal)]) == 1
    }
}
