// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession {
    private static let sessionColumns =
        "id_hash, user_name, person_id, roles, method, csrf, created, last_seen, expires, ended"

    public func insertConsoleSession(_ s: ConsoleSessionRecord) throws {
        try db.run(
            "INSERT INTO console_sessions(\(Self.sessionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(s.idHash), .text(s.userName), s.personID.map { .text($0) } ?? .null,
                .text(s.roles.joined(separator: " ")), .text(s.method), .text(s.csrf), .real(s.created),
                .real(s.lastSeen), .real(s.expires), s.ended.map { .real($0) } ?? .null,
            ])
    }

    public func consoleSession(idHash: String) throws -> ConsoleSessionRecord? {
        var out: ConsoleSessionRecord?
        try db.query("SELECT \(Self.sessionColumns) FROM console_sessions WHERE id_hash = ?", [.text(idHash)]) { r in
            out = ConsoleSessionRecord(
                idHash: r.text(0) ?? "", userName: r.text(1) ?? "", personID: r.text(2),
                roles: (r.text(3) ?? "").split(separator: " ").map(String.init), method: r.text(4) ?? "",
                csrf: r.text(5) ?? "", created: r.double(6), lastSeen: r.double(7),
                expires: r.double(8), ended: r.isNull(9) ? nil : r.double(9))
        }
        return out
    }

    public func touchConsoleSession(idHash: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE console_sessions SET last_seen = ? WHERE id_hash = ? AND ended IS NULL",
            [.real(now), .text(idHash)])
            == 1
    }

    public func endConsoleSession(idHash: String, now: Double) throws -> Bool {
        try db.run(
            "UPDATE console_sessions SET ended = ? WHERE id_hash = ? AND ended IS NULL", [.real(now), .text(idHash)])
            == 1
    }

    public func endConsoleSessions(userName: String, now: Double) throws -> Int {
        try db.run(
            "UPDATE console_sessions SET ended = ? WHERE user_name = ? AND ended IS NULL",
            [.real(now), .text(userName)])
    }

    public func insertPendingSignIn(_ p: PendingSignIn) throws {
        try db.run(
            "INSERT INTO console_sign_ins(state_hash, nonce, verifier, return_to, created) VALUES (?, ?, ?, ?, ?)",
            [.text(p.stateHash), .text(p.nonce), .text(p.verifier), .text(p.returnTo), .real(p.created)])
    }

    public func takePendingSignIn(stateHash: String) throws -> PendingSignIn? {
        var out: PendingSignIn?
        // One statement: of two nodes taking the same sign-in at once, only the one whose
        // DELETE removed the row gets it (a sign-in is used once).
        try db.query(
            "DELETE FROM console_sign_ins WHERE state_hash = ? "
                + "RETURNING state_hash, nonce, verifier, return_to, created",
            [.text(stateHash)]
        ) { r in
            out = PendingSignIn(
                stateHash: r.text(0) ?? "", nonce: r.text(1) ?? "", verifier: r.text(2) ?? "",
                returnTo: r.text(3) ?? "", created: r.double(4))
        }
        return out
    }

    public func prunePendingSignIns(before: Double) throws {
        try db.run("DELETE FROM console_sign_ins WHERE created < ?", [.real(before)])
    }

    public func insertLocalAccount(_ a: LocalAccountRecord) throws {
        try db.run(
            "INSERT INTO console_local_accounts(name, password_hash, created, disabled) VALUES (?, ?, ?, ?)",
            [.text(a.name), .text(a.passwordHash), .real(a.created), .integer(a.disabled ? 1 : 0)])
    }

    public func localAccount(name: String) throws -> LocalAccountRecord? {
        try localAccountList("name = ?", [.text(name)]).first
    }

    public func localAccounts() throws -> [LocalAccountRecord] { try localAccountList("1 = 1 ORDER BY name", []) }

    private func localAccountList(_ clause: String, _ params: [PostgresValue]) throws -> [LocalAccountRecord] {
        var out: [LocalAccountRecord] = []
        try db.query(
            "SELECT name, password_hash, created, disabled FROM console_local_accounts WHERE \(clause)", params
        ) { r in
            out.append(
                LocalAccountRecord(
                    name: r.text(0) ?? "", passwordHash: r.text(1) ?? "", created: r.double(2),
                    disabled: r.int64(3) != 0))
        }
        return out
    }

    public func setLocalAccountDisabled(name: String, disabled: Bool) throws -> Bool {
        try db.run(
            "UPDATE console_local_accounts SET disabled = ? WHERE name = ?", [.integer(disabled ? 1 : 0), .text(name)])
            == 1
    }
}
