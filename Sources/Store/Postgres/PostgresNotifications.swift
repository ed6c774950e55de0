// SPDX-License-Identifier: Apache-2.0
import Postgres

extension PostgresSession: NotificationStore {
    private static let notificationColumns =
        "id, event, channel, recipient, subject, body, created, state, attempts, not_before, last_error"

    private func notification(_ r: PostgresRow) -> NotificationRecord {
        NotificationRecord(
            id: r.text(0) ?? "", event: r.text(1) ?? "", channel: r.text(2) ?? "", recipient: r.text(3) ?? "",
            subject: r.text(4) ?? "", body: r.text(5) ?? "", created: r.double(6), state: r.text(7) ?? "",
            attempts: Int(r.int64(8)), notBefore: r.double(9), lastError: r.text(10))
    }

    public func insertNotification(_ n: NotificationRecord) throws {
        try db.run(
            "INSERT INTO notifications(\(Self.notificationColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(n.id), .text(n.event), .text(n.channel), .text(n.recipient), .text(n.subject), .text(n.body),
                .real(n.created), .text(n.state), .integer(Int64(n.attempts)), .real(n.notBefore),
                n.lastError.map { .text($0) } ?? .null,
            ])
    }

    public func dueNotifications(now: Double, limit: Int) throws -> [NotificationRecord] {
        var out: [NotificationRecord] = []
        try db.query(
            "SELECT \(Self.notificationColumns) FROM notifications WHERE state = 'pending' AND not_before <= ? "
                + "ORDER BY created LIMIT ?", [.real(now), .integer(Int64(limit))]
        ) { out.append(notification($0)) }
        return out
    }

    public func nextNotificationDue(after now: Double) throws -> Double? {
        var t: Double?
        try db.query(
            "SELECT MIN(not_before) FROM notifications WHERE state = 'pending' AND not_before > ?", [.real(now)]
        ) { if !$0.isNull(0) { t = $0.double(0) } }
        return t
    }

    public func markNotificationSent(id: String, now: Double) throws {
        try db.run(
            "UPDATE notifications SET state = 'sent', sent = ?, attempts = attempts + 1, last_error = NULL "
                + "WHERE id = ?",
            [.real(now), .text(id)])
    }

    public func notificationFailed(id: String, attempts: Int, until: Double, error: String, dead: Bool) throws {
        try db.run(
            "UPDATE notifications SET state = ?, attempts = ?, not_before = ?, last_error = ? WHERE id = ?",
            [.text(dead ? "dead" : "pending"), .integer(Int64(attempts)), .real(until), .text(error), .text(id)])
    }

    public func notifications(limit: Int) throws -> [NotificationRecord] {
        var out: [NotificationRecord] = []
        try db.query(
            "SELECT \(Self.notificationColumns) FROM notifications ORDER BY created DESC LIMIT ?",
            [.integer(Int64(limit))]
        ) { out.append(notification($0)) }
        return out
    }
}
