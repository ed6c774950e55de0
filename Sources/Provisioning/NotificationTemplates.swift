// SPDX-License-Identifier: Apache-2.0
import Foundation

/// One message template: a subject line and a plain-text body with `{{name}}` placeholders.
/// The file form is a `Subject: …` line, a blank line, then the body.
public struct NotificationTemplate: Sendable, Equatable {
    public let subject: String
    public let body: String

    /// The `{{name}}` placeholders the template uses.
    public var placeholders: Set<String> { Self.placeholders(in: subject).union(Self.placeholders(in: body)) }

    public init(subject: String, body: String) {
        self.subject = subject
        self.body = body
    }

    /// Parses the file form; nil when the first line is not `Subject: …` followed by a blank line.
    public init?(file text: String) {
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(
            separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, lines[0].hasPrefix("Subject: "), lines[1].isEmpty else { return nil }
        subject = String(lines[0].dropFirst("Subject: ".count))
        var body = lines.dropFirst(2).joined(separator: "\n")
        while body.hasSuffix("\n") { body.removeLast() }
        self.body = body
    }

    /// The file form.
    public var file: String { "Subject: \(subject)\n\n\(body)\n" }

    /// Fills the placeholders in one pass over the template, so a value that itself holds
    /// `{{…}}` (a user name a feed chose) stays text; a subject (a header) gets no control or
    /// line-separator characters from any value. Unknown placeholders stay as written.
    public func render(_ values: [String: String]) -> (subject: String, body: String) {
        func fill(_ s: String, header: Bool) -> String {
            var out = ""
            var rest = Substring(s)
            while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
                out += rest[..<open.lowerBound]
                let key = String(rest[open.upperBound..<close.lowerBound])
                if let v = values[key] {
                    out += header ? String(v.unicodeScalars.filter { !Self.breaksHeader($0) }) : v
                } else {
                    out += rest[open.lowerBound..<close.upperBound]
                }
                rest = rest[close.upperBound...]
            }
            return out + rest
        }
        return (fill(subject, header: true), fill(body, header: false))
    }

    /// Control characters and line or paragraph separators (NEL, U+2028, U+2029).
    static func breaksHeader(_ u: Unicode.Scalar) -> Bool {
        let c = u.properties.generalCategory
        return c == .control || c == .lineSeparator || c == .paragraphSeparator
    }

    static func placeholders(in s: String) -> Set<String> {
        var out = Set<String>()
        var rest = Substring(s)
        while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
            out.insert(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return out
    }
}

/// The message of every event. The built-in templates below are the defaults; a file
/// `<event>.txt` in the configured `notifications.templates` folder replaces one (for the
/// group's wording, language or contact details). `scimhub notification-templates DIR`
/// writes the defaults there to start from. A file may use only the placeholders of its
/// event's default, so a typo is refused at start-up instead of mailed as `{{nmae}}`.
/// Bodies carry names, packages and counts only: no patient or other personal data.
public struct NotificationTemplates: Sendable {
    public let byEvent: [String: NotificationTemplate]

    public init(byEvent: [String: NotificationTemplate] = [:]) {
        var all = Self.defaults
        for (k, v) in byEvent { all[k] = v }
        self.byEvent = all
    }

    public func template(_ event: NotificationEvent) -> NotificationTemplate {
        byEvent[event.rawValue] ?? NotificationTemplate(subject: "ScimHub: \(event.rawValue)", body: "{{text}}")
    }

    /// Reads the overrides in `directory`: only `<event>.txt` files for known events, each
    /// well-formed and using only its event's placeholders.
    public static func load(directory: String) throws -> NotificationTemplates {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw TemplateError("notifications.templates: the folder \(directory) cannot be read")
        }
        var out: [String: NotificationTemplate] = [:]
        for name in names.sorted() where !name.hasPrefix(".") {
            guard name.hasSuffix(".txt"), let base = defaults[String(name.dropLast(4))] else {
                throw TemplateError(
                    "notifications.templates: \(name) is not <event>.txt for a known event "
                        + "(\(defaults.keys.sorted().joined(separator: ", ")))")
            }
            let event = String(name.dropLast(4))
            guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                let text = String(data: data, encoding: .utf8), data.count <= 64 * 1024
            else {
                throw TemplateError("notifications.templates: \(name) cannot be read as UTF-8 text of at most 64 KiB")
            }
            guard let t = NotificationTemplate(file: text) else {
                throw TemplateError("notifications.templates: \(name) must start with 'Subject: …' and a blank line")
            }
            if let unknown = t.placeholders.subtracting(base.placeholders).sorted().first {
                throw TemplateError(
                    "notifications.templates: \(name) uses {{\(unknown)}}; \(event) offers "
                        + base.placeholders.sorted().map { "{{\($0)}}" }.joined(separator: ", "))
            }
            out[event] = t
        }
        return NotificationTemplates(byEvent: out)
    }

    /// Writes the defaults as files into `directory` (created if needed); never overwrites.
    public static func writeDefaults(to directory: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var written: [String] = []
        for (event, t) in defaults.sorted(by: { $0.key < $1.key }) {
            let path = directory + "/\(event).txt"
            guard !FileManager.default.fileExists(atPath: path) else { continue }
            guard FileManager.default.createFile(atPath: path, contents: Data(t.file.utf8)) else {
                throw TemplateError("cannot write \(path)")
            }
            written.append(path)
        }
        return written
    }

    private static func t(_ subject: String, _ body: String) -> NotificationTemplate {
        NotificationTemplate(subject: subject, body: body)
    }

    /// The built-in wording of every event.
    public static let defaults: [String: NotificationTemplate] = [
        "feed.hold": t(
            "ScimHub: access removals held for feed {{feed}}",
            """
            The feed '{{feed}}' took all access from more people than its guard allows:
            {{reason}}.
            Its writes are stored; the access removals are held until an administrator releases them
            (POST /admin/holds/{{holdId}}/release) or discards them (POST /admin/holds/{{holdId}}/discard).
            The people held: GET /admin/holds/{{holdId}}.
            """),
        "policy.held": t(
            "ScimHub: policy version {{version}} held",
            """
            Policy version {{version}} would take access from more people than the change limit allows:
            {{reason}}.
            Nothing is queued and the previous version stays in force until an administrator confirms it
            (POST /admin/policy/versions/{{version}}/confirm) or applies another.
            """),
        "review.held": t(
            "ScimHub: review '{{campaign}}' waits for confirmation",
            """
            The access review '{{campaign}}' reached its due date with undecided items and the rule
            'revoke', but {{reason}}.
            Nothing was revoked. Confirm (POST /admin/reviews/{{campaignId}}/confirm) or decide the items.
            """),
        "review.reminder": t(
            "ScimHub: {{count}} access review items due {{due}}",
            """
            The access review '{{campaign}}' is due {{due}}; {{count}} item(s) {{whose}} are undecided.
            At the due date undecided items are {{outcome}}.
            Decide them: GET /reviews/{{campaignId}}/items.
            """),
        "review.assigned": t(
            "ScimHub: {{count}} access review item(s) in '{{campaign}}', due {{due}}",
            """
            Access review '{{campaign}}', due {{due}}: {{whose}}.
            {{packages}}
            Decide them: GET /reviews/{{campaignId}}/items.
            """),
        "review.escalated": t(
            "ScimHub: {{count}} access review item(s) escalated in '{{campaign}}'",
            """
            Access review '{{campaign}}', due {{due}}: {{count}} item(s) still undecided with {{from}} went {{to}}.
            {{packages}}
            Decide them: GET /reviews/{{campaignId}}/items.
            """),
        "review.delegated": t(
            "ScimHub: an access review item for you in '{{campaign}}', due {{due}}",
            """
            Access review '{{campaign}}', due {{due}}: {{by}} handed 1 item to {{delegate}}.
            {{packages}}
            Decide it: GET /reviews/{{campaignId}}/items (item {{item}}).
            """),
        "break-glass.granted": t(
            "ScimHub: break-glass access granted to {{userName}}",
            """
            {{granter}} granted {{userName}} the package '{{package}}' by break-glass until {{expires}}.
            Its use is to be reviewed afterwards: POST /admin/break-glass/{{grantId}}/review.
            """),
        "break-glass.expired": t(
            "ScimHub: break-glass access of {{userName}} ended",
            """
            The break-glass grant of '{{package}}' to {{userName}} ended; the access is being taken back.
            Its use awaits review: POST /admin/break-glass/{{grantId}}/review.
            """),
        "target.unavailable": t(
            "ScimHub: target {{target}} is unavailable",
            """
            The target {{target}} stopped answering; its changes wait in the queue and are applied when it is back.
            Health: GET /admin/targets.
            """),
        "target.recovered": t(
            "ScimHub: target {{target}} is back",
            "The target {{target}} answers again; the changes that waited are being applied."),
        "job.dead-letter": t(
            "ScimHub: a change for {{userName}} on {{target}} needs attention",
            """
            The change for {{userName}} on the target {{target}} failed {{attempts}} times ({{errorKind}}) and was
            set aside. Others that fail in the next 15 minutes are not announced one by one.
            Reasons and retry: GET /admin/jobs?state=dead.
            """),
        "request.submitted": t(
            "ScimHub: {{userName}} requests '{{package}}'",
            """
            {{requester}} requested the package '{{package}}' for {{userName}} for {{days}} days.
            It awaits {{approvers}} (stage {{stage}} of {{stages}}) until {{lapses}}.
            Approve or deny: POST /admin/requests/{{requestId}}/approve or /deny.
            """),
        "request.decided": t(
            "ScimHub: the request for '{{package}}' for {{userName}} {{state}}",
            """
            The request for the package '{{package}}' for {{userName}} {{outcome}}.
            Details: GET /admin/requests/{{requestId}}.
            """),
        "request.expiring": t(
            "ScimHub: '{{package}}' of {{userName}} ends soon",
            """
            The package '{{package}}' granted to {{userName}} by request ends {{expires}}.
            {{extension}}
            """),
        "request.expired": t(
            "ScimHub: the request for '{{package}}' for {{userName}} {{state}}",
            """
            The request for the package '{{package}}' for {{userName}} {{outcome}}.
            Details: GET /admin/requests/{{requestId}}.
            """),
        "sod.exception-expired": t(
            "ScimHub: separation-of-duties exception for {{userName}} ended",
            """
            The exception to the separation-of-duties rule '{{rule}}' for {{userName}} (owner {{owner}}) ended;
            the rule applies again.
            """),
        "console.emergency-sign-in": t(
            "ScimHub: emergency sign-in to the console by {{account}}",
            """
            The local emergency account {{account}} signed in to the ScimHub console at {{time}}, bypassing the
            identity provider. If the provider is not down, find out why: the audit log has the entry
            (action console.sign-in).
            """),
        "reconciliation.findings": t(
            "ScimHub: reconciliation found {{leaverEnabled}} enabled leavers, {{sodViolations}} SoD violations",
            """
            The reconciliation run {{runId}} (policy version {{policyVersion}}) found {{leaverEnabled}} account(s)
            of people who left still enabled and {{sodViolations}} separation-of-duties violation(s).
            Report: GET /admin/reconciliations/{{runId}}/report.
            """),
    ]
}

/// A template folder problem: the hub refuses to start and says which file and why.
public struct TemplateError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
