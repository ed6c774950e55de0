// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HTTPServer
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store
import Provisioning
import Postgres

/// Everything the hub can be configured with. Defaults suit a single clinic group on one
/// node; a JSON file (`--config`) overrides any of them, and unknown keys are refused.
public struct HubConfig: Sendable {
    /// `HOST:PORT` to listen on.
    public var listen = "127.0.0.1:8080"
    /// TLS on the hub's own listener: a PEM certificate chain and its PEM key (both or neither).
    public var tlsCertFile: String? = nil
    public var tlsKeyFile: String? = nil
    /// Folder for the database.
    public var dataDirectory = "./data"
    /// The PostgreSQL database several nodes share (`store`: a `postgres://` URL or a libpq
    /// connection string, the password by reference); nil: SQLite in `dataDirectory`.
    public var postgres: PostgresSettings? = nil
    /// Public base URL of the SCIM API (`https://hub.example.org/scim/v2`) for `meta.location`
    /// and `Location`; when unset, it is derived from the listen address.
    public var baseURL: String? = nil
    /// Folder of schema JSON files; found automatically when unset.
    public var schemasDirectory: String? = nil
    /// Provisioning policy (targets and access packages); without one the hub only stores.
    public var policyFile: String? = nil
    /// Retry and circuit-breaker tuning of the provisioning engine.
    public var engine = EngineOptions()
    /// Several authoritative feeds: principal → the User attributes it owns (`title`,
    /// `urn:…:User:department`, `urn:…:User:*`, `*`). Empty: any writer writes anything.
    public var feeds: [String: [String]] = [:]
    /// Which Groups each feed may create, change and delete: display-name patterns (`*`
    /// for all, `ward-*`). With `feeds` set, a feed without patterns writes no Group.
    public var feedGroups: [String: [String]] = [:]
    /// Hours between scheduled reconciliation runs (report mode, every target); nil: none.
    public var reconcileEveryHours: Double? = nil
    /// Days between scheduled access reviews (one campaign per target, managers review);
    /// 182 (every six months, as the clinic group requires); 0 turns the schedule off.
    public var reviewEveryDays: Double = 182
    /// Days reviewers get, and the decision for items still undecided at the due date.
    public var reviewDueDays: Double = 14
    /// What undecided review items become at the due date: `keep-and-flag` (kept, listed as
    /// flagged), `keep`, or `revoke` (which waits for confirmation when risky).
    public var reviewDefaultDecision = "keep-and-flag"
    /// Days before a campaign's due date its reviewers are reminded (with notifications; 0: never).
    public var reviewReminderDays: Double = 3
    /// Days before a campaign's due date its items still undecided with the manager go up to
    /// the manager's manager, else the fallback group, else administrators (0: never).
    public var reviewEscalationDays: Double = 2
    /// The displayName of the Group whose active members review items of people without a
    /// usable manager, and escalated items whose manager has none; nil: administrators do.
    public var reviewFallbackGroup: String? = nil
    public var durability: Durability = .full
    public var logLevel: Logger.Level = .info
    /// Threads that run GET handlers (CPU-bound: about twice the cores).
    public var readThreads = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
    /// Threads that run writes; they mostly wait for the group commit, and a commit groups
    /// at most this many requests.
    public var writeThreads = 16
    public var http = HTTPLimits()
    /// Longest accepted string values (identifiers 256, other strings 1,024, binary 65,536,
    /// per-attribute overrides); config key `attributeLimits`.
    public var attributeLimits = AttributeLimits()
    /// RFC 7644 §3.7: advertised and enforced Bulk limits.
    public var bulkMaxOperations = 1000
    public var bulkMaxPayloadBytes = 4 * 1024 * 1024
    /// List paging: default and maximum `count` (advertised as `filter.maxResults`).
    public var listDefaultCount = 100
    public var listMaxCount = 1000
    /// Failed authentications allowed per client address per window before 429.
    public var authFailureLimit = 10
    public var authFailureWindowSeconds: Double = 60
    /// Reverse proxies (addresses or IPv4 `a.b.c.d/n` networks) whose `X-Forwarded-For` names
    /// the client, for throttling and logs. Empty: the peer address is the client.
    public var trustedProxies: [String] = []
    /// Signed audit checkpoints: the Ed25519 private key (PEM) in a file outside the data
    /// folder, or in an environment variable; the append-only file checkpoints go to; and
    /// how often (seconds) the head is signed when the chain has grown. No key: no checkpoints.
    public var auditKeyFile: String? = nil
    public var auditKeyEnv: String? = nil
    public var auditCheckpointFile: String? = nil
    public var auditCheckpointSeconds: Double = 60
    /// Also checkpoint once the chain has grown by this many entries (0: by time only).
    public var auditCheckpointEntries = 0
    /// Forwarding of the audit chain to a SIEM over syslog, if configured.
    public var auditForward: AuditForwardSettings? = nil
    /// How many people a policy change may take access from before its rollout waits for an
    /// administrator. Here, not in the policy: a change must not raise its own limit.
    public var policyChangeLimit = PolicyChangeLimit()
    /// E-mail and webhooks for holds, held rollouts, break-glass, dead letters and outages.
    public var notifications = NotificationSettings()
    /// The web console: sign-in and sessions.
    public var console = ConsoleSettings()
    /// Where deadlines, reviews, break-glass, backoff and leases read the time. Not a
    /// setting: tests put a `ManualClock` here to move time instead of sleeping.
    public var clock: any WallClock = SystemClock()

    public init() {}

    /// Reads a JSON config file over the defaults.
    public static func load(path: String, over base: HubConfig = HubConfig()) throws -> HubConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError("config file \(path) cannot be read")
        }
        let value: JSONValue
        do { value = try JSONParser().parse(Array(data)) } catch {
            throw ConfigError("config file \(path) is not valid JSON: \(error)")
        }
        guard let o = value.objectValue else { throw ConfigError("config file \(path) must hold a JSON object") }
        var c = base
        for m in o.members {
            let v = m.value
            switch m.key {
            case "listen": c.listen = try string(v, m.key)
            case "tlsCertFile": c.tlsCertFile = try string(v, m.key)
            case "tlsKeyFile": c.tlsKeyFile = try string(v, m.key)
            case "data": c.dataDirectory = try string(v, m.key)
            case "baseURL": c.baseURL = try string(v, m.key)
            case "schemas": c.schemasDirectory = try string(v, m.key)
            case "policy": c.policyFile = try string(v, m.key)
            case "feeds":
                guard let o = v.objectValue else {
                    throw ConfigError("feeds must be an object of principal: [attributes] or {attributes, groups}")
                }
                c.feeds = [:]
                c.feedGroups = [:]
                for f in o.members {
                    do { try PrincipalName.validate(f.key, what: "feeds key") } catch {
                        throw ConfigError(error.description)
                    }
                    if let arr = f.value.arrayValue {
                        c.feeds[f.key] = try names(arr, "feeds.\(f.key)", allowEmpty: false)
                        continue
                    }
                    guard let fo = f.value.objectValue else {
                        throw ConfigError("feeds.\(f.key) must be an array of attribute names or an object")
                    }
                    c.feeds[f.key] = []
                    for fm in fo.members {
                        guard let arr = fm.value.arrayValue else {
                            throw ConfigError("feeds.\(f.key).\(fm.key) must be an array of strings")
                        }
                        switch fm.key {
                        case "attributes":
                            c.feeds[f.key] = try names(arr, "feeds.\(f.key).attributes", allowEmpty: true)
                        case "groups": c.feedGroups[f.key] = try names(arr, "feeds.\(f.key).groups", allowEmpty: true)
                        default:
                            throw ConfigError("unknown config key feeds.\(f.key).\(fm.key) (use attributes, groups)")
                        }
                    }
                }
            case "reviewEveryDays":
                guard let d = v.numberValue?.double, d >= 0, d <= 3660 else {
                    throw ConfigError("reviewEveryDays must be a number of days (0 turns the schedule off)")
                }
                c.reviewEveryDays = d
            case "reviewDueDays":
                guard let d = v.numberValue?.double, d > 0, d <= 366 else {
                    throw ConfigError("reviewDueDays must be a number of days in 0...366")
                }
                c.reviewDueDays = d
            case "targetUnavailableMinutes":
                guard let d = v.numberValue?.double, d >= 0, d <= 1440 else {
                    throw ConfigError("targetUnavailableMinutes must be a number of minutes in 0...1440")
                }
                c.engine.unavailableNoticeSeconds = d * 60
            case "targetProbeSeconds":
                guard let d = v.numberValue?.double, d == 0 || (1...3600).contains(d) else {
                    throw ConfigError("targetProbeSeconds must be a number of seconds in 1...3600, or 0 (no probes)")
                }
                c.engine.probeInterval = d
            case "reviewReminderDays":
                guard let d = v.numberValue?.double, d >= 0, d <= 366 else {
                    throw ConfigError("reviewReminderDays must be a number of days in 0...366")
                }
                c.reviewReminderDays = d
            case "reviewEscalationDays":
                guard let d = v.numberValue?.double, d >= 0, d <= 366 else {
                    throw ConfigError("reviewEscalationDays must be a number of days in 0...366 (0: never escalate)")
                }
                c.reviewEscalationDays = d
            case "reviewFallbackGroup":
                guard let g = v.stringValue, !g.isEmpty, g.unicodeScalars.count <= 256, SCIMIdentifier.problem(g) == nil
                else {
                    throw ConfigError(
                        "reviewFallbackGroup must be a Group's displayName: 1 to 256 characters, no control characters "
                            + "or leading and trailing spaces")
                }
                c.reviewFallbackGroup = g
            case "reviewDefaultDecision":
                let d = try string(v, m.key)
                guard AccessReviews.dueDateRules.contains(d) else {
                    throw ConfigError("reviewDefaultDecision must be keep-and-flag, keep or revoke")
                }
                c.reviewDefaultDecision = d
            case "reconcileEveryHours":
                guard let h = v.numberValue?.double, h >= 0.01, h <= 24 * 366 else {
                    throw ConfigError("reconcileEveryHours must be a number of hours (0.01 to 8784)")
                }
                c.reconcileEveryHours = h
            case "store":
                if let s = v.stringValue {
                    c.postgres = try storeSettings(s, passwordEnv: nil, passwordFile: nil)
                } else if let so = v.objectValue {
                    var conn: String? = nil
                    var env: String? = nil
                    var file: String? = nil
                    for sm in so.members {
                        switch sm.key {
                        case "connection": conn = try string(sm.value, "store.connection")
                        case "passwordEnv": env = try string(sm.value, "store.passwordEnv")
                        case "passwordFile": file = try string(sm.value, "store.passwordFile")
                        default: throw ConfigError("unknown key store.\(sm.key)")
                        }
                    }
                    guard let conn else { throw ConfigError("store.connection is required") }
                    c.postgres = try storeSettings(conn, passwordEnv: env, passwordFile: file)
                } else {
                    throw ConfigError("store must be a string or {connection, passwordEnv, passwordFile}")
                }
            case "durability":
                guard let d = Durability(rawValue: try string(v, m.key)) else {
                    throw ConfigError("durability must be full or normal")
                }
                c.durability = d
            case "logLevel":
                guard let l = Logger.Level(name: try string(v, m.key)) else {
                    throw ConfigError("logLevel must be debug, info, warning or error")
                }
                c.logLevel = l
            case "readThreads": c.readThreads = try int(v, m.key, 1...512)
            case "writeThreads": c.writeThreads = try int(v, m.key, 1...512)
            case "bulkMaxOperations": c.bulkMaxOperations = try int(v, m.key, 1...100_000)
            case "bulkMaxPayloadBytes": c.bulkMaxPayloadBytes = try int(v, m.key, 1024...(256 << 20))
            case "listDefaultCount": c.listDefaultCount = try int(v, m.key, 1...100_000)
            case "listMaxCount": c.listMaxCount = try int(v, m.key, 1...100_000)
            case "authFailureLimit": c.authFailureLimit = try int(v, m.key, 1...1_000_000)
            case "authFailureWindowSeconds": c.authFailureWindowSeconds = Double(try int(v, m.key, 1...86_400))
            case "attributeLimits":
                guard let l = v.objectValue else { throw ConfigError("attributeLimits must be an object") }
                for lm in l.members {
                    let key = "attributeLimits.\(lm.key)"
                    switch lm.key {
                    case "identifier": c.attributeLimits.identifier = try int(lm.value, key, 1...65_536)
                    case "string": c.attributeLimits.string = try int(lm.value, key, 1...(1 << 24))
                    case "binary": c.attributeLimits.binary = try int(lm.value, key, 1...(1 << 24))
                    case "attributes":
                        guard let a = lm.value.objectValue else {
                            throw ConfigError("\(key) must be an object of attribute: maximum")
                        }
                        for am in a.members {
                            c.attributeLimits.overrides[am.key] = try int(am.value, "\(key).\(am.key)", 1...(1 << 24))
                        }
                    default: throw ConfigError("unknown config key \(key) (identifier, string, binary, attributes)")
                    }
                }
            case "trustedProxies":
                guard let arr = v.arrayValue else {
                    throw ConfigError("trustedProxies must be an array of addresses or IPv4 networks")
                }
                c.trustedProxies = try arr.map { x throws -> String in
                    guard let a = x.stringValue,
                        ClientAddressResolver.looksLikeAddress(a.split(separator: "/").first.map(String.init) ?? ""),
                        !a.contains("/") || ClientAddressResolver.ipv4(String(a.split(separator: "/")[0])) != nil
                    else {
                        throw ConfigError(
                            "trustedProxies must hold addresses (127.0.0.1, ::1) or IPv4 networks (10.0.0.0/8)")
                    }
                    return a
                }
            case "auditKeyFile": c.auditKeyFile = try string(v, m.key)
            case "auditKeyEnv": c.auditKeyEnv = try string(v, m.key)
            case "auditCheckpointFile": c.auditCheckpointFile = try string(v, m.key)
            case "auditCheckpointSeconds": c.auditCheckpointSeconds = Double(try int(v, m.key, 1...86_400))
            case "auditCheckpointEntries": c.auditCheckpointEntries = try int(v, m.key, 0...10_000_000)
            case "auditForward": c.auditForward = try auditForwardSettings(v)
            case "notifications": c.notifications = try notificationSettings(v)
            case "console": c.console = try ConsoleSettings.parse(v)
            case "feedGuard":
                guard let g = v.objectValue else { throw ConfigError("feedGuard must be an object") }
                for gm in g.members {
                    let key = "feedGuard.\(gm.key)"
                    switch gm.key {
                    case "enabled": c.engine.feedGuard.enabled = try bool(gm.value, key)
                    case "windowMinutes": c.engine.feedGuard.window = Double(try int(gm.value, key, 1...1440)) * 60
                    case "people": c.engine.feedGuard.limit.people = try int(gm.value, key, 0...10_000_000)
                    case "share": c.engine.feedGuard.limit.share = try share(gm.value, key)
                    case "twoPerson": c.engine.feedGuard.twoPerson = try bool(gm.value, key)
                    default: throw ConfigError("unknown config key \(key)")
                    }
                }
            case "policyChangeLimit":
                guard let l = v.objectValue else { throw ConfigError("policyChangeLimit must be an object") }
                for lm in l.members {
                    let key = "policyChangeLimit.\(lm.key)"
                    switch lm.key {
                    case "people": c.policyChangeLimit.people = try int(lm.value, key, 0...10_000_000)
                    case "share": c.policyChangeLimit.share = try share(lm.value, key)
                    default: throw ConfigError("unknown config key \(key)")
                    }
                }
            case "http":
                guard let h = v.objectValue else { throw ConfigError("http must be an object") }
                for hm in h.members {
                    let key = "http.\(hm.key)"
                    switch hm.key {
                    case "maxRequestLineBytes": c.http.maxRequestLineBytes = try int(hm.value, key, 256...(1 << 20))
                    case "maxHeaderBytes": c.http.maxHeaderBytes = try int(hm.value, key, 1024...(1 << 22))
                    case "maxHeaderCount": c.http.maxHeaderCount = try int(hm.value, key, 8...10_000)
                    case "maxBodyBytes": c.http.maxBodyBytes = try int(hm.value, key, 1024...(256 << 20))
                    case "maxConnections": c.http.maxConnections = try int(hm.value, key, 1...100_000)
                    case "headerReadTimeoutSeconds": c.http.headerReadTimeout = Double(try int(hm.value, key, 1...3600))
                    case "bodyReadTimeoutSeconds": c.http.bodyReadTimeout = Double(try int(hm.value, key, 1...3600))
                    case "idleTimeoutSeconds": c.http.idleTimeout = Double(try int(hm.value, key, 1...86_400))
                    case "writeTimeoutSeconds": c.http.writeTimeout = Double(try int(hm.value, key, 1...3600))
                    case "shutdownGraceSeconds": c.http.shutdownGrace = Double(try int(hm.value, key, 0...3600))
                    case "lingerMaxBytes": c.http.lingerMaxBytes = try int(hm.value, key, 0...(1 << 30))
                    case "lingerTimeoutSeconds": c.http.lingerTimeout = Double(try int(hm.value, key, 0...300))
                    default: throw ConfigError("unknown config key \(key)")
                    }
                }
            default:
                throw ConfigError("unknown config key \(m.key)")
            }
        }
        if c.listDefaultCount > c.listMaxCount { throw ConfigError("listDefaultCount must not exceed listMaxCount") }
        // A Bulk body must fit through the HTTP body limit.
        c.http.maxBodyBytes = max(c.http.maxBodyBytes, c.bulkMaxPayloadBytes)
        return c
    }

    /// The audit signing key, when one is configured. The key must not live in the data
    /// folder: whoever can rewrite the database must not also be able to re-sign it.
    func loadAuditKey() throws -> Ed25519PrivateKey? {
        let pem: String
        let data = URL(fileURLWithPath: dataDirectory).resolvingSymlinksInPath().path
        func inData(_ path: String) -> Bool {
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            return real == data || real.hasPrefix(data + "/")
        }
        if let checkpoints = auditCheckpointFile, inData(checkpoints) {
            throw ConfigError(
                "auditCheckpointFile must be outside the data folder \(dataDirectory): "
                    + "whoever can rewrite the database must not also cut the checkpoints"
            )
        }
        if let file = auditKeyFile {
            guard !inData(file) else {
                throw ConfigError(
                    "auditKeyFile must be outside the data folder \(dataDirectory): "
                        + "the key proves the database was not rewritten"
                )
            }
            guard let d = FileManager.default.contents(atPath: file) else {
                throw ConfigError("auditKeyFile \(file) cannot be read")
            }
            pem = String(decoding: d, as: UTF8.self)
        } else if let env = auditKeyEnv {
            guard let v = ProcessInfo.processInfo.environment[env], !v.isEmpty else {
                throw ConfigError("auditKeyEnv: the environment variable \(env) is not set")
            }
            pem = v
        } else {
            return nil
        }
        guard auditCheckpointFile != nil else {
            throw ConfigError("an audit key needs auditCheckpointFile: where the signed checkpoints are appended")
        }
        do { return try Ed25519PrivateKey(pem: pem) } catch { throw ConfigError("audit key: \(error.description)") }
    }

    private static func names(_ arr: [JSONValue], _ key: String, allowEmpty: Bool) throws -> [String] {
        if arr.isEmpty && !allowEmpty { throw ConfigError("\(key) must be a non-empty array of attribute names") }
        return try arr.map { x throws -> String in
            guard let a = x.stringValue, !a.isEmpty else { throw ConfigError("\(key) must hold non-empty strings") }
            return a
        }
    }

    /// `notifications`: `{"email": {"url", "from", "tls"?, "username"?, "passwordEnv"? | "passwordFile"?},
    /// "webhooks": [{"url", "secretEnv" | "secretFile", "events"?}], "recipients": {"event" | "*": [addresses]},
    /// "templates"?: folder, "backoffBaseSeconds"?}`. Secrets by reference only.
    public static func notificationSettings(_ v: JSONValue) throws -> NotificationSettings {
        guard let o = v.objectValue else { throw ConfigError("notifications must be an object") }
        var n = NotificationSettings()
        let events = Set(NotificationEvent.all.map(\.rawValue))
        func secret(_ o: JSONObject, _ key: String, _ at: String) throws -> String? {
            if let env = o[key + "Env"]?.stringValue {
                guard let value = ProcessInfo.processInfo.environment[env], !value.isEmpty else {
                    throw ConfigError("\(at).\(key)Env: environment variable \(env) is not set")
                }
                return value
            }
            if let file = o[key + "File"]?.stringValue {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ConfigError("\(at).\(key)File: \(file) cannot be read")
                }
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return nil
        }
        for m in o.members {
            let at = "notifications.\(m.key)"
            switch m.key {
            case "email":
                guard let e = m.value.objectValue, let url = e["url"]?.stringValue, let from = e["from"]?.stringValue,
                    url.hasPrefix("smtp://") || url.hasPrefix("smtps://"), Notifier.isAddress(from)
                else { throw ConfigError("\(at) needs 'url' (smtp:// or smtps://) and 'from' (an address)") }
                var email = NotificationSettings.Email(url: url, from: from)
                if let t = e["tls"]?.stringValue {
                    guard let tls = NotificationSettings.MailTLS(rawValue: t) else {
                        throw ConfigError("\(at).tls must be required, optional or none")
                    }
                    email.tls = tls
                }
                // Cleartext SMTP only to a relay on this machine: a password must not cross the network in clear.
                let host =
                    url.split(separator: "/").dropFirst(1).first.map { $0.split(separator: ":").first ?? "" } ?? ""
                if email.tls == .none, url.hasPrefix("smtp://"),
                    !["127.0.0.1", "localhost", "[::1]"].contains(String(host))
                {
                    throw ConfigError("\(at).tls: none is only for a relay on 127.0.0.1 or localhost")
                }
                email.username = e["username"]?.stringValue
                email.password = try secret(e, "password", at)
                for k in e.keys where !["url", "from", "tls", "username", "passwordEnv", "passwordFile"].contains(k) {
                    throw ConfigError("unknown config key \(at).\(k)")
                }
                n.email = email
            case "webhooks":
                guard let list = m.value.arrayValue else { throw ConfigError("\(at) must be an array") }
                for (i, item) in list.enumerated() {
                    let wat = "\(at)[\(i)]"
                    guard let h = item.objectValue, let url = h["url"]?.stringValue,
                        url.hasPrefix("https://") || url.hasPrefix("http://")
                    else { throw ConfigError("\(wat).url must be an http(s) URL") }
                    guard let key = try secret(h, "secret", wat), key.utf8.count >= 16 else {
                        throw ConfigError("\(wat) needs secretEnv or secretFile (at least 16 characters)")
                    }
                    var hook = NotificationSettings.Webhook(url: url, secret: Array(key.utf8))
                    let wanted = (h["events"]?.arrayValue ?? []).compactMap(\.stringValue)
                    if let bad = wanted.first(where: { !events.contains($0) }) {
                        throw ConfigError("\(wat).events: unknown event '\(bad)'")
                    }
                    hook.events = Set(wanted)
                    n.webhooks.append(hook)
                }
            case "recipients":
                guard let r = m.value.objectValue else { throw ConfigError("\(at) must be an object") }
                for rm in r.members {
                    guard rm.key == "*" || events.contains(rm.key) else {
                        throw ConfigError(
                            "\(at): unknown event '\(rm.key)' (\(events.sorted().joined(separator: ", ")), *)")
                    }
                    let list = (rm.value.arrayValue ?? []).compactMap(\.stringValue)
                    let valid: (String) -> Bool = { a in
                        Notifier.isAddress(a)
                            || (a.hasPrefix("group:") && a.count > 6 && !a.contains(where: \.isNewline))
                    }
                    guard !list.isEmpty, list.allSatisfy(valid) else {
                        throw ConfigError(
                            "\(at).\(rm.key) must be a non-empty array of e-mail addresses or group:<displayName>")
                    }
                    n.recipients[rm.key] = list
                }
            case "templates":
                // A folder of `<event>.txt` files replacing the built-in wording.
                guard let dir = m.value.stringValue, !dir.isEmpty else {
                    throw ConfigError("\(at) must be the path of a folder of <event>.txt templates")
                }
                do { n.templates = try NotificationTemplates.load(directory: dir) } catch let e as TemplateError {
                    throw ConfigError(e.description)
                }
            case "backoffBaseSeconds":
                guard let d = m.value.numberValue?.double, d > 0, d <= 3600 else {
                    throw ConfigError("\(at) must be a number of seconds from 0 to 3600")
                }
                n.backoffBase = d
            default:
                throw ConfigError("unknown config key \(at)")
            }
        }
        return n
    }

    /// The `store` setting (config key or `--store`): `sqlite` (the default, in the data
    /// folder), or a PostgreSQL database as a `postgres://` URL or a libpq `key=value` string.
    /// A password written in it is refused: it comes from `passwordEnv` or `passwordFile`.
    public static func storeSettings(
        _ connection: String, passwordEnv: String?, passwordFile: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> PostgresSettings? {
        let trimmed = connection.trimmingCharacters(in: .whitespaces)
        if trimmed == "sqlite" {
            guard passwordEnv == nil, passwordFile == nil else {
                throw ConfigError("store: a password reference needs a PostgreSQL store")
            }
            return nil
        }
        guard trimmed.hasPrefix("postgres://") || trimmed.hasPrefix("postgresql://") || trimmed.contains("=") else {
            throw ConfigError("store must be sqlite, a postgres:// URL or a libpq connection string (key=value ...)")
        }
        guard passwordEnv == nil || passwordFile == nil else {
            throw ConfigError("store: give passwordEnv or passwordFile, not both")
        }
        do {
            return try PostgresSettings(
                conninfo: trimmed, passwordEnv: passwordEnv, passwordFile: passwordFile, environment: environment,
                readFile: { path in
                    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
                })
        } catch {
            throw ConfigError("store: \(error.description)")
        }
    }

    private static func bool(_ v: JSONValue, _ key: String) throws -> Bool {
        guard let b = v.boolValue else { throw ConfigError("\(key) must be true or false") }
        return b
    }

    /// A share of everyone, from 0 to 1.
    private static func share(_ v: JSONValue, _ key: String) throws -> Double {
        guard let d = v.numberValue?.double, d >= 0, d <= 1 else {
            throw ConfigError("\(key) must be a number from 0 to 1")
        }
        return d
    }

    private static func string(_ v: JSONValue, _ key: String) throws -> String {
        guard let s = v.stringValue else { throw ConfigError("\(key) must be a string") }
        return s
    }

    private static func int(_ v: JSONValue, _ key: String, _ range: ClosedRange<Int>) throws -> Int {
        guard let n = v.numberValue?.int64, range.contains(Int(n)) else {
            throw ConfigError("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(n)
    }
}

/// A configuration problem; the hub refuses to start and prints it.
extension HubConfig {
    /// `{"url": "tcp://siem:514" | "tls://siem:6514", "caFile": "/etc/ssl/siem-ca.pem", "hostname": "hub-1"}`.
    static func auditForwardSettings(_ v: JSONValue) throws -> AuditForwardSettings {
        guard let o = v.objectValue else { throw ConfigError("auditForward must be an object") }
        guard let url = o["url"]?.stringValue, var s = AuditForwardSettings(url: url) else {
            throw ConfigError("auditForward.url must be tcp://HOST:PORT or tls://HOST:PORT")
        }
        for m in o.members {
            switch m.key {
            case "url": break
            case "caFile":
                guard let f = m.value.stringValue, FileManager.default.isReadableFile(atPath: f) else {
                    throw ConfigError("auditForward.caFile must name a readable PEM file")
                }
                s.caFile = f
            case "hostname":
                guard let h = m.value.stringValue, !h.isEmpty, h.utf8.count <= 255 else {
                    throw ConfigError("auditForward.hostname must be 1 to 255 characters")
                }
                s.hostname = h
            default: throw ConfigError("unknown config key auditForward.\(m.key) (url, caFile, hostname)")
            }
        }
        if s.caFile != nil && !s.tls { throw ConfigError("auditForward.caFile needs a tls:// url") }
        return s
    }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
