// SPDX-License-Identifier: Apache-2.0

/// One message in the notification outbox: written in the same transaction as the event
/// it announces, delivered by the sender with retries, never lost on a restart.
public struct NotificationRecord: Sendable, Equatable {
    public let id: String
    /// `feed.hold`, `policy.held`, …
    public let event: String
    /// `email` or `webhook`.
    public let channel: String
    /// An e-mail address, or the webhook's URL.
    public let recipient: String
    public let subject: String
    public let body: String
    public let created: Double
    public var state: String
    public var attempts: Int
    public var notBefore: Double
    public var lastError: String?

    public init(
        id: String, event: String, channel: String, recipient: String, subject: String, body: String, created: Double,
        state: String = "pending", attempts: Int = 0, notBefore: Double, lastError: String? = nil
    ) {
        self.id = id
        self.event = event
        self.channel = channel
        self.recipient = recipient
        self.subject = subject
        self.body = body
        self.created = created
        self.state = state
        self.attempts = attempts
        self.notBefore = notBefore
        self.lastError = lastError
    }
}

/// The notification outbox.
public protocol NotificationStore {
    func insertNotification(_ n: NotificationRecord) throws
    /// Pending messages due at `now`, oldest first.
    func dueNotifications(now: Double, limit: Int) throws -> [NotificationRecord]
    /// The earliest future time a pending message falls due.
    func nextNotificationDue(after now: Double) throws -> Double?
    func markNotificationSent(id: String, now: Double) throws
    /// After a failed attempt: due again at `until`, or `dead` when `dead`.
    func notificationFailed(id: String, attempts: Int, until: Double, error: String, dead: Bool) throws
    /// Newest first.
    func notifications(limit: Int) throws -> [NotificationRecord]
}
