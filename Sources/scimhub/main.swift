// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
private import CLinux
import ConnectorKit
import Hub
import Provisioning
import HubCrypto
import HubLog
import JSONCore
import SCIM
import Store
import Postgres

/// `scimhub`: the hub's command line. Output meant for scripts goes to stdout, everything
/// else to stderr as JSON-lines logs or plain messages.

let usage = """
    scimhub: SCIM 2.0 provisioning hub

    USAGE
      scimhub serve [--listen HOST:PORT] [--data DIR] [--config FILE] [--schemas DIR] [--policy FILE] \
    [--log-level LEVEL]
                    [--audit-key FILE --audit-checkpoints FILE] [--tls-cert FILE --tls-key FILE]
                    [--store postgres://…|'host=… dbname=…' [--store-password-env NAME|--store-password-file FILE]]
      scimhub policy check FILE [--schemas DIR]
      scimhub policy diff OLD NEW --data DIR [--format text|json|csv] [--config FILE]
      scimhub token create --data DIR --principal NAME --scope SCOPE[,SCOPE...] [--expires-days N]
      scimhub token list --data DIR
      scimhub token revoke --data DIR TOKEN_ID
      scimhub audit verify --data DIR [--checkpoint FILE|HASH@SEQ] [--public-key FILE]
      scimhub audit keygen --out FILE      (FILE: Ed25519 private key, FILE.pub: its public key)
      scimhub mfa reset --data DIR --principal NAME
      scimhub console local-account add|disable|enable --data DIR --name NAME
      scimhub reconcile --data DIR --policy FILE [--target NAME[,NAME...]] [--mode report|remediate] \
    [--format json|csv|html]
      scimhub backup --data DIR --to FILE  (a consistent copy while the hub serves; never overwrites FILE)
      scimhub restore --from FILE --data DIR   (into a data directory without a store)
      scimhub notification-templates DIR   (writes the built-in message templates there, to edit)
      scimhub migrate --from DIR --to postgres://… [--to-password-env NAME|--to-password-file FILE]
                                           (a stopped SQLite hub into an empty PostgreSQL database)
      scimhub --help

    With --policy, the hub provisions downstream targets (see README, "Provisioning"). A
    changed policy file is a new policy version at start: the people it changes are queued,
    or the rollout is held when it takes access from more people than policyChangeLimit.
    Every command that takes --data DIR also takes --store (and its password reference) to
    work on a PostgreSQL database several nodes share instead (not backup and restore).
    `policy diff` previews a change offline against the people stored in DIR.
    `reconcile` compares the targets with the policy and writes the report to stdout (progress
    on stderr when it is a terminal); remediate mode enqueues fixes for a running hub to apply.

    SCOPES
      scim:read    read Users, Groups and discovery endpoints
      scim:write   create, replace, patch and delete Users and Groups; Bulk
      admin        /admin endpoints (audit log, provisioning, reconciliation, access reviews)
      review       /reviews: decide the access-review items assigned to this principal (a
                   manager's token carries their userName as the principal)
      break-glass  POST /admin/break-glass: emergency access to an eligible package, bounded in time
      request      /admin/requests: ask for requestable packages (for oneself, or a report) and
                   approve the requests assigned to this principal (a person's userName)

    The new token is the last line of `token create`'s stdout; it is shown once and stored
    only as a SHA-256 hash.
    """

func out(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
func err(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Parses `--name value` options and positional arguments.
struct Arguments {
    var options: [String: String] = [:]
    var positional: [String] = []

    init(_ args: ArraySlice<String>, allowed: Set<String>) throws {
        var it = args.makeIterator()
        while let a = it.next() {
            if a.hasPrefix("--") {
                let name = String(a.dropFirst(2))
                guard allowed.contains(name) else { throw ConfigError("unknown option --\(name)") }
                guard let v = it.next() else { throw ConfigError("--\(name) needs a value") }
                options[name] = v
            } else {
                positional.append(a)
            }
        }
    }

    func require(_ name: String) throws -> String {
        guard let v = options[name], !v.isEmpty else { throw ConfigError("--\(name) is required") }
        return v
    }
}

/// The store a command works on: `--store` (a PostgreSQL database several nodes share, the
/// password from `--store-password-env` or `--store-password-file`), else SQLite in `--data`.
func openStore(_ args: Arguments) throws -> any HubStore {
    let logger = Logger(label: "scimhub", minimumLevel: .warning)
    if let pg = try storeSettings(args) { return try PostgresStore(settings: pg, maxConnections: 2, logger: logger) }
    return try SQLiteStore(directory: try args.require("data"), logger: logger)
}

/// `--store` and its password reference; nil for SQLite (no `--store`, or `--store sqlite`).
func storeSettings(_ args: Arguments) throws -> PostgresSettings? {
    guard let s = args.options["store"] else {
        guard args.options["store-password-env"] == nil, args.options["store-password-file"] == nil else {
            throw ConfigError("--store-password-env and --store-password-file go with --store")
        }
        return nil
    }
    return try HubConfig.storeSettings(
        s, passwordEnv: args.options["store-password-env"], passwordFile: args.options["store-password-file"])
}

/// Options every command that opens a store accepts.
let storeOptions: Set<String> = ["data", "store", "store-password-env", "store-password-file"]

func serve(_ args: Arguments) throws -> Int32 {
    var config = HubConfig()
    if let file = args.options["config"] { config = try HubConfig.load(path: file) }
    if let v = args.options["listen"] { config.listen = v }
    if let v = args.options["tls-cert"] { config.tlsCertFile = v }
    if let v = args.options["tls-key"] { config.tlsKeyFile = v }
    if let v = args.options["data"] { config.dataDirectory = v }
    if args.options["store"] != nil { config.postgres = try storeSettings(args) }
    if let v = args.options["schemas"] { config.schemasDirectory = v }
    if let v = args.options["policy"] { config.policyFile = v }
    if let v = args.options["audit-key"] { config.auditKeyFile = v }
    if let v = args.options["audit-checkpoints"] { config.auditCheckpointFile = v }
    if let v = args.options["log-level"] {
        guard let l = Logger.Level(name: v) else {
            throw ConfigError("--log-level must be debug, info, warning or error")
        }
        config.logLevel = l
    }
    let logger = Logger(label: "scimhub", minimumLevel: config.logLevel)
    // glibc gives each busy thread its own malloc arena; with ~20 worker threads that
    // multiplies retained memory. Two arenas keep resident memory bounded.
    _ = scimhub_limit_malloc_arenas(2)
    let server = try HubServer(config: config, connectors: connectorCatalog, logger: logger)
    signal(SIGPIPE, SIG_IGN)
    // Past RLIMIT_FSIZE the kernel would kill the process with SIGXFSZ; ignored, the write
    // fails with EFBIG instead, SQLite reports the disk full and the client gets 503.
    signal(SIGXFSZ, SIG_IGN)
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGTERM, SIGINT] {
        signal(sig, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        s.setEventHandler {
            logger.info("shutdown requested", ["signal": String(sig)])
            server.http.shutdown()
        }
        s.resume()
        sources.append(s)
    }
    // SIGHUP: a renewed certificate, without a restart and without dropping connections.
    signal(SIGHUP, SIG_IGN)
    let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
    hup.setEventHandler { server.reloadTLS() }
    hup.resume()
    sources.append(hup)
    // Always emitted, whatever the level: scripts and operators read the URL from it.
    logger.notice(
        "listening",
        [
            "url": server.scimURL, "data": config.dataDirectory, "durability": config.durability.rawValue,
            "store": config.postgres == nil ? "sqlite" : "postgresql", "node": server.coordination.nodeID,
        ])
    server.run()
    _ = sources
    return server.failedToStart ? 1 : 0
}

func token(_ args: Arguments) throws -> Int32 {
    guard let sub = args.positional.first else { throw ConfigError("token needs create, list or revoke") }
    let store = try openStore(args)
    defer { store.close() }
    switch sub {
    case "create":
        let principal = try args.require("principal")
        do { try PrincipalName.validate(principal, what: "--principal") } catch { throw ConfigError(error.description) }
        guard !PrincipalName.isReserved(principal) else {
            throw ConfigError("--principal '\(principal)' is reserved for the hub itself")
        }
        var scopes: [Scope] = []
        for raw in try args.require("scope").split(separator: ",") {
            let s = Scope(rawValue: raw.trimmingCharacters(in: .whitespaces))
            guard Scope.known.contains(s) else {
                throw ConfigError(
                    "unknown scope '\(s.rawValue)'; use \(Scope.known.map(\.rawValue).joined(separator: ", "))")
            }
            if !scopes.contains(s) { scopes.append(s) }
        }
        let granted = scopes
        var expires: Double? = nil
        if let text = args.options["expires-days"] {
            guard let d = Double(text), d > 0, d <= 3650 else {
                throw ConfigError("--expires-days must be a number of days in (0, 3650]")
            }
            expires = Date().timeIntervalSince1970 + d * 86400
        }
        let until = expires
        let created = try store.write { w in
            // The host command line is the trusted path: it may mint any token, recorded as minted by `cli`.
            let t = try Tokens.create(
                w, principal: principal, scopes: granted, now: Date().timeIntervalSince1970, mintedBy: "cli",
                expires: until)
            try AuditLog.append(
                w,
                .now(
                    principal: "cli", action: "token.create", resourceType: "Token", resourceID: t.id,
                    attributes: [principal] + granted.map(\.rawValue), requestID: "cli"))
            return t
        }
        err(
            "created token \(created.id) for principal '\(principal)' with scopes "
                + "\(scopes.map(\.rawValue).joined(separator: ",")); it is shown once:"
        )
        out(created.token)
    case "list":
        let tokens = try store.read { try Tokens.list($0) }
        out(
            "ID                PRINCIPAL            SCOPES                     "
                + "CREATED                   MINTED BY            STATUS"
        )
        for t in tokens {
            let expired = t.expires.map { $0 <= Date().timeIntervalSince1970 } ?? false
            let status =
                t.revoked.map { "revoked \(Timestamp.format($0))" }
                ?? (expired ? "expired" : t.expires.map { "active until \(Timestamp.format($0))" } ?? "active")
            let minted = (t.mintedBy ?? "-") + (t.approvedBy.map { " +\($0)" } ?? "")
            out(
                "\(t.id.padding(toLength: 18, withPad: " ", startingAt: 0))"
                    + "\(t.principal.padding(toLength: 21, withPad: " ", startingAt: 0))"
                    + "\(t.scopes.joined(separator: ",").padding(toLength: 27, withPad: " ", startingAt: 0))"
                    + "\(Timestamp.format(t.created))  "
                    + "\(minted.padding(toLength: 21, withPad: " ", startingAt: 0))\(status)")
        }
    case "revoke":
        guard args.positional.count == 2 else { throw ConfigError("token revoke needs the token id") }
        let id = args.positional[1]
        let revoked = try store.write { w in
            let ok = try Tokens.revoke(w, id: id, now: Date().timeIntervalSince1970)
            if ok {
                try AuditLog.append(
                    w,
                    .now(
                        principal: "cli", action: "token.revoke", resourceType: "Token", resourceID: id,
                        requestID: "cli"))
            }
            return ok
        }
        guard revoked else { err("no active token with id \(id)"); return 1 }
        err("revoked token \(id)")
    default:
        throw ConfigError("token needs create, list or revoke")
    }
    return 0
}

/// `scimhub policy check FILE`: loads and validates a policy as `serve` would, naming the first problem.
func policy(_ args: Arguments) throws -> Int32 {
    let usage = "usage: scimhub policy check FILE | scimhub policy diff OLD NEW --data DIR [--format text|json|csv]"
    guard let verb = args.positional.first,
        (verb == "check" && args.positional.count == 2)
            || (verb == "diff" && args.positional.count == 3)
    else {
        throw ConfigError(usage)
    }
    guard let dir = SchemaRegistry.locateDirectory(explicit: args.options["schemas"]),
        let userType = try SchemaRegistry.load(directory: dir).resourceType(named: "User")
    else {
        throw ConfigError("cannot find the schemas/ folder; pass --schemas DIR")
    }
    if verb == "diff" { return try policyDiff(args, userType: userType) }
    do {
        let p = try Policy.load(path: args.positional[1], userType: userType, knownTypes: connectorCatalog.types)
        for t in p.enabledTargets { _ = try connectorCatalog.make(t) }
        out(
            "policy OK: \(p.targets.count) targets (\(p.enabledTargets.count) enabled), "
                + "\(p.packages.count) access packages"
        )
        return 0
    } catch let e as PolicyError {
        err("policy invalid: \(e.description)")
        return 1
    }
}

/// `scimhub policy diff OLD NEW --data DIR`: what replacing OLD by NEW would do to the
/// people stored in DIR, offline (the same figures as `POST /admin/policy/preview`).
func policyDiff(_ args: Arguments, userType: SCIMResourceType) throws -> Int32 {
    let format = args.options["format"] ?? "text"
    guard ["text", "json", "csv"].contains(format) else { throw ConfigError("--format must be text, json or csv") }
    let (old, new): (Policy, Policy)
    do {
        old = try Policy.load(path: args.positional[1], userType: userType, knownTypes: connectorCatalog.types)
        new = try Policy.load(path: args.positional[2], userType: userType, knownTypes: connectorCatalog.types)
    } catch let e as PolicyError {
        err("policy invalid: \(e.description)")
        return 1
    }
    let store = try openStore(args)
    defer { store.close() }
    let change = try PolicyChange.compute(store: store, current: old, candidate: new, now: Timestamp.now())
    // The hub's change limit, from its config file when given (a bad one is an error, not the default).
    let limit = try args.options["config"].map { try HubConfig.load(path: $0).policyChangeLimit } ?? PolicyChangeLimit()
    switch format {
    case "json": out(JSONWriter().string(.object(change.json(limit: limit))))
    case "csv": FileHandle.standardOutput.write(Data(change.csv().utf8))
    default:
        out(
            "\(change.people) people: \(change.losingAccess.count) would lose access, "
                + "\(change.gainingAccess.count) would gain it"
        )
        for (name, c) in change.packages.sorted(by: { $0.key < $1.key }) {
            out("  package \(name): +\(c.gained.count) −\(c.lost.count)")
        }
        for (name, c) in change.targets.sorted(by: { $0.key < $1.key }) {
            let lost = c.lost.values.reduce(0) { $0 + $1.count }, gained = c.gained.values.reduce(0) { $0 + $1.count }
            out(
                "  target \(name): \(c.enabled.count) accounts enabled, \(c.disabled.count) disabled; "
                    + "entitlements +\(gained) −\(lost)"
            )
        }
        if let held = limit.exceeded(losing: change.losingAccess.count, of: change.people) {
            out("  the change guard would hold this rollout: \(held)")
        }
    }
    return 0
}

func audit(_ args: Arguments) throws -> Int32 {
    switch args.positional.first {
    case "verify": return try auditVerify(args)
    case "keygen":
        let path = try args.require("out")
        let (priv, pub) = try Ed25519.generate()
        // O_EXCL: never overwrite a key; 0600 from the first byte (no window where it is readable).
        func create(_ file: String, _ text: String, mode: mode_t) throws {
            let fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard fd >= 0 else {
                throw ConfigError(
                    errno == EEXIST
                        ? "\(file) exists already; a signing key is never overwritten"
                        : "cannot create \(file) (errno \(errno))")
            }
            defer { close(fd) }
            let bytes = Array(text.utf8)
            guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count, fsync(fd) == 0 else {
                throw ConfigError("cannot write \(file)")
            }
        }
        for f in [path, path + ".pub"] where FileManager.default.fileExists(atPath: f) {
            throw ConfigError("\(f) exists already; a signing key is never overwritten")
        }
        try create(path, priv, mode: 0o600)
        do {
            try create(path + ".pub", pub, mode: 0o644)
        } catch {
            _ = unlink(path)  // no half-made key pair left behind
            throw error
        }
        err(
            "wrote the audit signing key to \(path) (keep it outside the data folder) and its public key to \(path).pub"
        )
        return 0
    default: throw ConfigError("audit needs verify or keygen")
    }
}

/// `scimhub audit verify`: every break in the chain, then each checkpoint: signed by the
/// given key, and reached by the chain with the same hash (else the tail was cut or the
/// chain rewritten).
func auditVerify(_ args: Arguments) throws -> Int32 {
    let store = try openStore(args)
    defer { store.close() }
    var checkpoints: [AuditCheckpoint] = []
    var failures: [String] = []
    if let given = args.options["checkpoint"] {
        if let one = AuditCheckpoint(text: given), !given.hasPrefix("{") {
            checkpoints = [one]
        } else {
            guard let d = FileManager.default.contents(atPath: given) else {
                throw ConfigError("--checkpoint: \(given) is neither HASH@SEQ nor a readable file")
            }
            guard let keyFile = args.options["public-key"], let pem = FileManager.default.contents(atPath: keyFile)
            else {
                throw ConfigError(
                    "--checkpoint FILE needs --public-key FILE (the .pub written by audit keygen) "
                        + "to check the signatures"
                )
            }
            let key = try Ed25519PublicKey(pem: String(decoding: pem, as: UTF8.self))
            for (i, line) in String(decoding: d, as: UTF8.self).split(separator: "\n").enumerated() where !line.isEmpty
            {
                guard let c = AuditCheckpoint(text: String(line)) else {
                    failures.append("checkpoint line \(i + 1) is not a checkpoint"); continue
                }
                guard c.isSigned(by: key) else {
                    failures.append("checkpoint line \(i + 1) (entry \(c.seq)) is not signed by this key"); continue
                }
                checkpoints.append(c)
            }
            if checkpoints.isEmpty && failures.isEmpty { failures.append("the checkpoint file holds no checkpoint") }
        }
    }
    let (v, checks) = try store.read { try AuditLog.verify($0, checkpoints: checkpoints) }
    for b in v.breaks { out("audit chain BROKEN at entry \(b.seq): \(b.reason)") }
    if v.breakCount > v.breaks.count { out("… and \(v.breakCount - v.breaks.count) more breaks") }
    for (c, check) in zip(checkpoints, checks) {
        switch check {
        case .reached: continue
        case .missing:
            failures.append(
                "checkpoint at entry \(c.seq)\(c.time.isEmpty ? "" : " (\(c.time))"): that entry is missing")
        case .cut(let end):
            failures.append(
                "checkpoint at entry \(c.seq)\(c.time.isEmpty ? "" : " (\(c.time))"): "
                    + "the log ends at entry \(end): its tail was cut"
            )
        case .rewritten:
            failures.append(
                "checkpoint at entry \(c.seq)\(c.time.isEmpty ? "" : " (\(c.time))"): "
                    + "the entry's hash differs: the chain was rewritten"
            )
        }
    }
    for f in failures { out("audit CHECKPOINT FAILED: \(f)") }
    guard v.intact, failures.isEmpty else {
        out(
            "audit chain NOT intact: \(v.breakCount) breaks, "
                + "\(failures.count) checkpoint failures (\(v.entries) entries read)"
        )
        return 1
    }
    let reached = checkpoints.map(\.seq).max().map { ", reaches the checkpoint at entry \($0)" } ?? ""
    out("audit chain intact: \(v.entries) entries, head \(v.headHash)@\(v.headSeq)\(reached)")
    return 0
}

/// `scimhub mfa reset`: removes a principal's TOTP authenticator (lost phone); they enrol again.
/// `scimhub console local-account add|disable|enable --data DIR --name NAME`: local accounts
/// for emergency sign-in to the console when the identity provider is down. `add` prints a
/// new random password and the TOTP secret (as an otpauth:// URI) once; the sign-in needs both.
func console(_ args: Arguments) throws -> Int32 {
    guard args.positional.count == 2, args.positional[0] == "local-account",
        ["add", "disable", "enable"].contains(args.positional[1])
    else { throw ConfigError("usage: scimhub console local-account add|disable|enable --data DIR --name NAME") }
    let name = try args.require("name")
    do { try PrincipalName.validate(name, what: "--name") } catch { throw ConfigError(error.description) }
    guard !PrincipalName.isReserved(name) else { throw ConfigError("--name '\(name)' is reserved for the hub itself") }
    let store = try openStore(args)
    defer { store.close() }
    let now = Date().timeIntervalSince1970
    if args.positional[1] != "add" {
        let disabled = args.positional[1] == "disable"
        let changed = try store.write { w -> Bool in
            guard try w.connection.setLocalAccountDisabled(name: name, disabled: disabled) else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: "cli",
                    action: disabled ? "console.local-account-disable" : "console.local-account-enable",
                    resourceType: "Principal", resourceID: name, requestID: "cli"))
            return true
        }
        guard changed else { throw ConfigError("no local account named '\(name)'") }
        err("local account \(name) \(disabled ? "disabled" : "enabled")")
        return 0
    }
    let password = base64URLString(Crypto.randomBytes(18))
    let secret = Crypto.randomBytes(20)
    try store.write { w in
        guard try w.connection.localAccount(name: name) == nil else {
            throw ConfigError("a local account named '\(name)' exists already")
        }
        try w.connection.insertLocalAccount(
            LocalAccountRecord(name: name, passwordHash: PasswordHash.make(password), created: now))
        _ = try w.connection.resetMFA(principal: name)
        guard try w.connection.enrolMFA(principal: name, secret: secret, now: now) else {
            throw ConfigError("the TOTP secret could not be stored")
        }
        try AuditLog.append(
            w,
            .now(
                principal: "cli", action: "console.local-account-add", resourceType: "Principal", resourceID: name,
                requestID: "cli"))
    }
    err("local account \(name) created; the password and authenticator secret are shown once:")
    out("password: \(password)")
    out("otpauth://totp/ScimHub:\(name)?secret=\(TOTP.base32(secret))&issuer=ScimHub&algorithm=SHA1&digits=6&period=30")
    return 0
}

func mfa(_ args: Arguments) throws -> Int32 {
    guard args.positional == ["reset"] else {
        throw ConfigError("usage: scimhub mfa reset --data DIR --principal NAME")
    }
    let principal = try args.require("principal")
    let store = try openStore(args)
    defer { store.close() }
    let removed = try store.write { w -> Bool in
        let ok = try w.connection.resetMFA(principal: principal)
        if ok {
            try AuditLog.append(
                w,
                .now(
                    principal: "cli", action: "mfa.reset", resourceType: "Principal", resourceID: principal,
                    requestID: "cli"))
        }
        return ok
    }
    guard removed else { err("no TOTP authenticator enrolled for \(principal)"); return 1 }
    err("TOTP authenticator of \(principal) removed; they enrol again with POST /mfa/enrol")
    return 0
}

/// `scimhub reconcile`: one run, in this process, against the data folder and policy a hub uses.
func reconcile(_ args: Arguments) throws -> Int32 {
    let policyFile = try args.require("policy")
    guard let dir = SchemaRegistry.locateDirectory(explicit: args.options["schemas"]),
        let userType = try SchemaRegistry.load(directory: dir).resourceType(named: "User")
    else {
        throw ConfigError("cannot find the schemas/ folder; pass --schemas DIR")
    }
    guard let format = ReconciliationReport.Format(rawValue: args.options["format"] ?? "json") else {
        throw ConfigError("--format must be json, csv or html")
    }
    guard let mode = ReconciliationRuns.Mode(rawValue: args.options["mode"] ?? "report") else {
        throw ConfigError("--mode must be report or remediate")
    }
    let p: Policy
    var connectors: [String: any Connector] = [:]
    do {
        p = try Policy.load(path: policyFile, userType: userType, knownTypes: connectorCatalog.types)
        for t in p.enabledTargets { connectors[t.name] = try connectorCatalog.make(t) }
    } catch let e as PolicyError {
        err("policy invalid: \(e.description)")
        return 1
    }
    let logger = Logger(label: "scimhub", minimumLevel: .warning)
    let store = try openStore(args)
    defer { store.close() }
    let runs = ReconciliationRuns(
        reconciler: Reconciler(policies: PolicyHolder(p), store: store, connectors: connectors), store: store,
        logger: logger)
    let targets = args.options["target"].map { $0.split(separator: ",").map(String.init) }
    let tty = isatty(2) == 1
    let id: String
    do {
        id = try runs.start(
            targets: targets, mode: mode, categories: nil, principal: "cli", requestID: "cli", wait: true
        ) { target, listed in
            // A progress line on a terminal only: a redirected stderr stays clean.
            if tty { FileHandle.standardError.write(Data("\r\(target): \(listed) accounts compared\u{1B}[K".utf8)) }
        }
    } catch let e as ReconciliationRequestError {
        err("scimhub: \(e.description)")
        return 2
    }
    if tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else { return 1 }
    FileHandle.standardOutput.write(Data(try ReconciliationReport.render(run, format: format, store: store)))
    let failed =
        ReconciliationRuns.describe(run)["summary"]?.objectValue?["targets"]?.objectValue?.members.contains {
            $0.value.objectValue?["state"]?.stringValue == "failed"
        } ?? false
    err("reconciliation \(id): \(run.state)\(failed ? " (some targets failed; see the report)" : "")")
    return failed ? 1 : 0
}

/// `scimhub backup --data DIR --to FILE` and `scimhub restore --from FILE --data DIR`; a
/// restore ends by verifying the audit chain it brought back.
func backupOrRestore(_ command: String, _ args: Arguments) throws -> Int32 {
    // A full disk or quota makes writes fail with EFBIG instead of killing the process.
    signal(SIGXFSZ, SIG_IGN)
    let data = try args.require("data")
    let s: BackupSummary
    if command == "backup" {
        s = try SQLiteBackup.backup(directory: data, to: try args.require("to"))
    } else {
        s = try SQLiteBackup.restore(from: try args.require("from"), directory: data)
    }
    out(
        "\(command): \(s.users) users, \(s.groups) groups, \(s.auditEntries) audit entries, "
            + "\(s.pendingJobs) pending jobs, schema \(s.schemaVersion), \(s.bytes) bytes")
    guard command == "restore" else { return 0 }
    let store = try SQLiteStore(directory: data, logger: Logger(label: "scimhub", minimumLevel: .warning))
    defer { store.close() }
    let v = try store.read { try AuditLog.verify($0) }
    out("audit chain: \(v.intact ? "intact" : "BROKEN"), \(v.entries) entries, head \(v.headSeq) \(v.headHash)")
    return v.intact ? 0 : 1
}

/// `scimhub migrate --from DIR --to postgres://…`: copies a stopped SQLite hub, audit chain
/// included, into an empty PostgreSQL database and checks the copy there (counts per table, the
/// chain verified). A non-empty target, or a hub serving DIR, is refused; a failure copies nothing.
func migrate(_ args: Arguments) throws -> Int32 {
    let from = try args.require("from")
    guard
        let settings = try HubConfig.storeSettings(
            try args.require("to"), passwordEnv: args.options["to-password-env"],
            passwordFile: args.options["to-password-file"])
    else { throw ConfigError("--to must be a PostgreSQL database (postgres://… or a libpq key=value string)") }
    let s = try PostgresImport.run(
        from: from, to: settings, logger: Logger(label: "scimhub", minimumLevel: .warning))
    for t in s.tables { out("\(t.name): \(t.rows) rows") }
    if let a = s.audit {
        out("audit chain: intact on the target, \(a.entries) entries, head \(a.headHash)@\(a.headSeq)")
    }
    return 0
}

func main() -> Int32 {
    let argv = CommandLine.arguments
    guard argv.count >= 2 else { err(usage); return 2 }
    do {
        switch argv[1] {
        case "--help", "-h", "help":
            out(usage)
            return 0
        case "serve":
            return try serve(
                Arguments(
                    argv.dropFirst(2),
                    allowed: [
                        "listen", "data", "config", "schemas", "policy", "log-level", "audit-key", "audit-checkpoints",
                        "tls-cert", "tls-key", "store", "store-password-env", "store-password-file",
                    ]))
        case "policy":
            return try policy(
                Arguments(argv.dropFirst(2), allowed: storeOptions.union(["schemas", "format", "config"])))
        case "token":
            return try token(
                Arguments(argv.dropFirst(2), allowed: storeOptions.union(["principal", "scope", "expires-days"])))
        case "audit":
            return try audit(
                Arguments(argv.dropFirst(2), allowed: storeOptions.union(["checkpoint", "public-key", "out"])))
        case "mfa":
            return try mfa(Arguments(argv.dropFirst(2), allowed: storeOptions.union(["principal"])))
        case "console":
            return try console(Arguments(argv.dropFirst(2), allowed: storeOptions.union(["name"])))
        case "notification-templates":
            // Writes the built-in message templates as files to edit (`notifications.templates`).
            let a = try Arguments(argv.dropFirst(2), allowed: [])
            guard a.positional.count == 1 else { throw ConfigError("usage: scimhub notification-templates DIR") }
            let written = try NotificationTemplates.writeDefaults(to: a.positional[0])
            for path in written { out(path) }
            err("\(written.count) template(s) written; existing files were left as they were")
            return 0
        case "backup", "restore":
            return try backupOrRestore(argv[1], Arguments(argv.dropFirst(2), allowed: ["data", "to", "from"]))
        case "migrate":
            return try migrate(
                Arguments(argv.dropFirst(2), allowed: ["from", "to", "to-password-env", "to-password-file"]))
        case "reconcile":
            return try reconcile(
                Arguments(
                    argv.dropFirst(2), allowed: storeOptions.union(["policy", "schemas", "target", "mode", "format"])))
        default:
            err("unknown command '\(argv[1])'\n\n\(usage)")
            return 2
        }
    } catch let e as ConfigError {
        err("scimhub: \(e.description)")
        return 2
    } catch {
        err("scimhub: \(error)")
        return 1
    }
}

exit(main())
