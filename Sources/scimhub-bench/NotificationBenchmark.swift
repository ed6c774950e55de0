// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubHarness
import HubLog
import Provisioning
import Store

/// Notifications delivered per second: `--people` messages in the outbox, sent by the
/// hub's sender to a real SMTP server (aiosmtpd from the test virtualenv) on loopback.
func runNotificationBenchmark(_ o: Options) throws {
    let smtp = try SMTPServer()
    defer { smtp.stop() }
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    let logger = Logger(label: "bench", minimumLevel: .error, silent: true)
    let store = try SQLiteStore(directory: dir.path, logger: logger)
    defer { store.close() }
    var settings = NotificationSettings()
    var email = NotificationSettings.Email(url: smtp.url, from: "hub@clinic.example")
    email.tls = .none
    settings.email = email
    settings.recipients["*"] = ["identity@clinic.example"]
    let clock = SystemClock()
    let notifier = Notifier(settings: settings, clock: clock)
    let n = o.people
    say("scimhub-bench --notifications: \(n) e-mails to aiosmtpd on loopback, one sender thread")
    var start = 0
    while start < n {
        let (first, batch) = (start, min(500, n - start))
        try store.write { w in
            for i in first..<(first + batch) {
                try notifier.announce(
                    w, .deadLetter,
                    ["userName": "user\(i)@x.org", "target": "ehr", "attempts": "5", "errorKind": "unavailable"])
            }
        }
        start += batch
    }
    let sender = NotificationSender(store: store, settings: settings, clock: clock, logger: logger)
    let t0 = Date()
    let sent = sender.sendDue()
    let seconds = Date().timeIntervalSince(t0)
    var received = smtp.messages().count
    let wait = Date()
    while received < sent && Date().timeIntervalSince(wait) < 30 {
        Thread.sleep(forTimeInterval: 0.1)
        received = smtp.messages().count
    }
    say(
        String(
            format: "delivered %d of %d in %.1f s: %.0f messages/s (%d in the mailbox)", sent, n, seconds,
            Double(sent) / seconds, received))
}
