// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import ConnectorKit
import CurlHTTP
import HubBase
import HubCrypto
import HubLog
import JSONCore
import Store

/// What the hub announces. An open set, as the style guide wants.
public struct NotificationEvent: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static let feedHold = NotificationEvent(rawValue: "feed.hold")
    public static let policyHeld = NotificationEvent(rawValue: "policy.held")
    public static let reviewHeld = NotificationEvent(rawValue: "review.held")
    public static let reviewReminder = NotificationEvent(rawValue: "review.reminder")
    /// A campaign gave a reviewer items (one message per reviewer, with the count).
    public static let reviewAssigned = NotificationEvent(rawValue: "review.assigned")
    /// Undecided items went up from their manager (to the new reviewers and the old one).
    public static let reviewEscalated = NotificationEvent(rawValue: "review.escalated")
    /// A reviewer handed an item on (to the delegate).
    public static let reviewDelegated = NotificationEvent(rawValue: "review.delegated")
    public static let breakGlassGranted = NotificationEvent(rawValue: "break-glass.granted")
    public static let breakGlassExpired = NotificationEvent(rawValue: "break-glass.expired")
    public static let targetUnavailable = NotificationEvent(rawValue: "target.unavailable")
    public static let targetRecovered = NotificationEvent(rawValue: "target.recovered")
    public static let deadLetter = NotificationEvent(rawValue: "job.dead-letter")
    /// A request awaits approval (to the stage's approvers).
    public static let requestSubmitted = NotificationEvent(rawValue: "request.submitted")
    /// Granted, denied, cancelled or lapsed (to the person and the requester).
    public static let requestDecided = NotificationEvent(rawValue: "request.decided")
    /// A granted request ends soon (to the person and their manager).
    public static let requestExpiring = NotificationEvent(rawValue: "request.expiring")
    /// A granted request expired or was ended early.
    public static let requestExpired = NotificationEvent(rawValue: "request.expired")
    /// A separation-of-duties exception ended.
    public static let sodExceptionExpired = NotificationEvent(rawValue: "sod.exception-expired")
    /// A reconciliation run found `leaver-enabled` or `sod-violation` accounts.
    public static let reconciliationFindings = NotificationEvent(rawValue: "reconciliation.findings")
    /// Someone signed in to the console with a local emergency account.
    public static let emergencySignIn = NotificationEvent(rawValue: "console.emergency-sign-in")
    public static let all: [NotificationEvent] = [
        .feedHold, .policyHeld, .reviewHeld, .reviewReminder, .reviewAssigned, .reviewEscalated, .reviewDelegated,
        .breakGlassGranted, .breakGlassExpired, .targetUnavailable, .targetRecovered, .deadLetter,
        .requestSubmitted, .requestDecided, .requestExpiring, .requestExpired, .sodExceptionExpired,
        .reconciliationFindings, .emergencySignIn,
    ]
}

/// Where notifications go: e-mail over SMTP and signed webhooks, and who gets which event.
public struct NotificationSettings: Sendable {
    /// STARTTLS required (the default), tried, or not used (a relay on loopback).
    public enum MailTLS: String, Sendable { case required, optional, none }

    public struct Email: Sendable {
        public var url: String
        public var from: String
        public var tls: MailTLS = .required
        public var username: String?
        public var password: String?
        public init(url: String, from: String) {
            self.url = url
            self.from = from
        }
    }

    public struct Webhook: Sendable {
        public var url: String
        /// The HMAC-SHA256 key for `X-ScimHub-Signature`.
        public var secret: [UInt8]
        /// The events it receives (all when empty).
        public var events: Set<String> = []
        public init(url: String, secret: [UInt8]) {
            self.url = url
            self.secret = secret
        }
    }

    public var email: Email?
    public var webhooks: [Webhook] = []
    /// Event name (or `*`) → e-mail addresses.
    public var recipients: [String: [String]] = [:]
    /// Retry schedule: attempt n waits min(cap, base × 2^(n-1)); a message older than
    /// `maxAge` goes to `dead` (visible in `/admin/notifications`).
    public var backoffBase: Double = 2
    public var backoffCap: Double = 300
    public var maxAge: Double = 7 * 86400
    /// Every event's wording: the built-in templates, with any from `notifications.templates`.
    public var templates = NotificationTemplates()

    public init() {}

    public var isEmpty: Bool { email == nil && webhooks.isEmpty }
}

/// Puts notifications in the outbox, in the caller's write transaction: the event and its
/// announcement commit together, so a hold can never exist unannounced. Bodies hold names,
/// packages and counts only.
public final class Notifier: Sendable {
    public let settings: NotificationSettings
    private let clock: any WallClock
    private let wakeSender: @Sendable () -> Void

    public init(settings: NotificationSettings, clock: any WallClock, wakeSender: @escaping @Sendable () -> Void = {}) {
        self.settings = settings
        self.clock = clock
        self.wakeSender = wakeSender
    }

    /// Queues `event`, worded by its template filled with `values`, for every configured
    /// recipient of it (and `to`, extra addresses) and every webhook that takes it. Returns
    /// how many messages were queued.
    @discardableResult
    public func announce(
        _ w: any StoreWriter, _ event: NotificationEvent, _ values: [String: String], to extra: [String] = []
    ) throws -> Int {
        guard !settings.isEmpty else { return 0 }
        let now = clock.now()
        var count = 0
        let (filled, text) = settings.templates.template(event).render(values)
        let subject = String(filled.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }.prefix(200))
        if settings.email != nil {
            // Configured recipients may name a Group (`group:<displayName>`): its active members' addresses.
            let configured = (settings.recipients[event.rawValue] ?? []) + (settings.recipients["*"] ?? [])
            let addresses = Set(try People.addresses(w.connection, of: configured, now: now, groups: true) + extra)
            for a in addresses.sorted() where Self.isAddress(a) {
                try w.connection.insertNotification(
                    NotificationRecord(
                        id: UUIDv7.make(), event: event.rawValue, channel: "email", recipient: a, subject: subject,
                        body: text, created: now, notBefore: now))
                count += 1
            }
        }
        for hook in settings.webhooks where hook.events.isEmpty || hook.events.contains(event.rawValue) {
            try w.connection.insertNotification(
                NotificationRecord(
                    id: UUIDv7.make(), event: event.rawValue, channel: "webhook", recipient: hook.url,
                    subject: subject, body: text, created: now, notBefore: now))
            count += 1
        }
        return count
    }

    /// After the commit that queued messages: the sender looks at once.
    public func wake() { wakeSender() }

    /// A plain address: one `@`, no spaces, no angle brackets or line breaks (it goes into
    /// SMTP commands and headers).
    public static func isAddress(_ a: String) -> Bool {
        a.utf8.count <= 254 && a.split(separator: "@", omittingEmptySubsequences: false).count == 2
            && !a.contains(where: { $0 == " " || $0 == "<" || $0 == ">" || $0 == "\r" || $0 == "\n" || $0 == "," })
    }
}

/// Delivers the outbox: e-mail over SMTP (libcurl; STARTTLS required unless configured
/// otherwise), webhooks as JSON with an HMAC-SHA256 signature. A failure is retried with
/// backoff; nothing is lost while a server is down or the hub restarts.
public final class NotificationSender: HubService {
    public var serviceName: String { "notifications" }
    private let store: any HubStore
    private let settings: NotificationSettings
    private let clock: any WallClock
    private let logger: Logger
    private let curl = CurlClient(options: CurlClient.Options(connectTimeout: 5, totalTimeout: 30))
    private let timer: DeadlineThread
    private let stopping = Atomic<Bool>(false)

    /// `isLeader`: only the leader sends, so several nodes never deliver one message twice.
    public init(
        store: any HubStore, settings: NotificationSettings, clock: any WallClock, logger: Logger,
        isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.store = store
        self.settings = settings
        self.clock = clock
        self.logger = logger
        let box = SenderBox()
        timer = DeadlineThread(
            name: "notifications", clock: clock, isLeader: isLeader, logger: logger,
            what: "reading the notification outbox",
            next: { try store.read { try $0.nextNotificationDue(after: clock.now()) } },
            process: { box.sender?.sendDue() })
        box.sender = self
    }

    /// Breaks the init-time cycle between the sender and its timer's closure.
    private final class SenderBox: @unchecked Sendable {
        // @unchecked Sendable: set once in init, before the timer thread starts; read only after.
        weak var sender: NotificationSender?
    }

    public func start() { timer.start() }
    /// Stops after the message being sent (each is bounded by curl's timeouts).
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        timer.stop()
    }
    /// Something was queued: look now.
    public func poke() { timer.poke() }

    /// Sends everything due now; returns how many were delivered.
    @discardableResult
    public func sendDue() -> Int {
        var sent = 0
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let now = clock.now()
            let due: [NotificationRecord]
            do {
                due = try store.read { try $0.dueNotifications(now: now, limit: 50) }
            } catch {
                // Nothing is lost: the outbox is read again at the next check.
                logger.error("notification outbox cannot be read", ["error": "\(error)".prefix(200).description])
                return sent
            }
            guard !due.isEmpty else { return sent }
            for n in due where !stopping.load(ordering: .sequentiallyConsistent) {
                let result: ConnectorError?
                do {
                    try deliver(n)
                    result = nil
                } catch {
                    result = error
                }
                let at = clock.now()
                do {
                    if let e = result {
                        let attempts = n.attempts + 1
                        let dead = !e.isRetryable || at - n.created >= settings.maxAge
                        let delay = min(settings.backoffCap, settings.backoffBase * pow(2, Double(attempts - 1)))
                        try store.write {
                            try $0.connection.notificationFailed(
                                id: n.id, attempts: attempts, until: at + delay, error: e.description, dead: dead)
                        }
                        logger.warning(
                            dead ? "notification dead (see GET /admin/notifications)" : "notification will retry",
                            ["event": n.event, "channel": n.channel, "attempts": String(attempts)])
                    } else {
                        try store.write { try $0.connection.markNotificationSent(id: n.id, now: at) }
                        sent += 1
                    }
                } catch {
                    logger.error("notification outbox cannot be updated", ["error": "\(error)".prefix(200).description])
                    return sent
                }
            }
        }
        return sent
    }

    private func deliver(_ n: NotificationRecord) throws(ConnectorError) {
        switch n.channel {
        case "email":
            guard let email = settings.email else { throw ConnectorError.permanent("e-mail is not configured") }
            try curl.sendMail(
                url: email.url, from: email.from, to: [n.recipient], message: Self.message(n, from: email.from),
                tls: CurlClient.MailTLS(rawValue: email.tls.rawValue) ?? .required, username: email.username,
                password: email.password)
        case "webhook":
            guard let hook = settings.webhooks.first(where: { $0.url == n.recipient }) else {
                throw ConnectorError.permanent("no webhook is configured for this URL any more")
            }
            let body = JSONWriter().write(
                .object(
                    JSONObject([
                        "id": .string(n.id), "event": .string(n.event), "subject": .string(n.subject),
                        "text": .string(n.body), "time": .string(Timestamp.format(n.created)),
                    ])))
            let timestamp = String(Int(clock.now()))
            let signature = hexString(Crypto.hmacSHA256(key: hook.secret, data: Array((timestamp + ".").utf8) + body))
            let r = try curl.perform(
                method: "POST", url: hook.url,
                headers: [
                    "Content-Type: application/json", "X-ScimHub-Event: \(n.event)",
                    "X-ScimHub-Timestamp: \(timestamp)",
                    "X-ScimHub-Signature: sha256=\(signature)",
                ], body: body, maxResponseBytes: 64 * 1024)
            try r.requireSuccess("webhook")
        default:
            throw ConnectorError.permanent("unknown channel '\(n.channel)'")
        }
    }

    /// The RFC 5322 message: plain text, UTF-8, CRLF line ends; header values without line breaks.
    static func message(_ n: NotificationRecord, from: String) -> [UInt8] {
        func clean(_ s: String) -> String { String(s.unicodeScalars.filter { $0 != "\r" && $0 != "\n" }) }
        let date = DateFormatter()
        date.locale = Locale(identifier: "en_US_POSIX")
        date.timeZone = TimeZone(identifier: "UTC")
        date.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        var text = "From: ScimHub <\(clean(from))>\r\nTo: <\(clean(n.recipient))>\r\n"
        text += "Subject: \(clean(n.subject))\r\nDate: \(date.string(from: Date(timeIntervalSince1970: n.created)))\r\n"
        text += "Message-ID: <\(n.id)@scimhub>\r\nMIME-Version: 1.0\r\n"
        text += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        text += "X-ScimHub-Event: \(clean(n.event))\r\n\r\n"
        // libcurl escapes lines that begin with "." itself (RFC 5321 §4.5.2).
        for line in n.body.split(separator: "\n", omittingEmptySubsequences: false) {
            text += line.replacingOccurrences(of: "\r", with: "") + "\r\n"
        }
        return Array(text.utf8)
    }
}
