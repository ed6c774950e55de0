// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import Synchronization
import HTTPServer
import HubLog
import SCIM
import Store
import Provisioning
import ConnectorKit
import Postgres

/// A running hub: schemas, store, request handling and the HTTP server, wired together.
public final class HubServer: Sendable {
    public let app: HubApp
    public let http: HTTPServer
    public let store: any HubStore
    /// The provisioning engine, when a policy is configured.
    public let engine: ProvisioningEngine?
    /// Reconciliation runs, when a policy is configured.
    public let reconciliations: ReconciliationRuns?
    /// Access reviews, when a policy is configured.
    public let reviews: AccessReviews?
    /// Break-glass grants, when a policy is configured.
    public let breakGlass: BreakGlass?
    /// The licence-expiry schedule, when a policy is configured.
    public let credentials: CredentialExpiry?
    /// Access requests and separation-of-duties exceptions, when a policy is configured.
    public let requests: AccessRequests?
    public let sodExceptions: SoDExceptions?
    private let logger: Logger
    /// The background services, started in this order and stopped in reverse.
    private let services: ServiceRunner
    /// Signalled when `run` has stopped everything and released the store.
    private let finished = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)
    private let startFailed = Atomic<Bool>(false)
    /// True when `run` returned because a background service could not start (exit non-zero).
    public var failedToStart: Bool { startFailed.load(ordering: .sequentiallyConsistent) }
    /// Signs the audit chain's head periodically and at shutdown, when a key is configured.
    public let checkpointer: AuditCheckpointer?
    /// Who leads scheduled work and how commits wake the dispatchers (one node on SQLite).
    public let coordination: any Coordination

    /// Loads schemas, opens the store and binds the listen address. `connectors`: the
    /// connector plugins this build offers (the executable lists them).
    public init(config: HubConfig, connectors catalog: ConnectorCatalog, logger: Logger) throws {
        guard let dir = SchemaRegistry.locateDirectory(explicit: config.schemasDirectory) else {
            throw ConfigError("cannot find the schemas/ folder; pass --schemas DIR or set SCIMHUB_SCHEMAS")
        }
        let registry = try SchemaRegistry.load(directory: dir, limits: config.attributeLimits)
        guard let address = ListenAddress(config.listen) else {
            throw ConfigError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        }
        // The certificate is checked before anything opens: a bad one refuses to start, naming the file.
        let tls: TLSContext?
        switch (config.tlsCertFile, config.tlsKeyFile) {
        case (nil, nil): tls = nil
        case (let cert?, let key?):
            do { tls = try TLSContext(certificateFile: cert, keyFile: key) } catch {
                throw ConfigError(error.description)
            }
        default: throw ConfigError("--tls-cert and --tls-key go together: give both or neither")
        }
        // The policy and every connector's settings are checked before the store opens, so a
        // bad policy refuses to start without leaving anything running.
        var engine: ProvisioningEngine? = nil
        var policy: Policy? = nil
        var connectors: [String: any Connector] = [:]
        guard let userType = registry.resourceType(named: "User") else { throw ConfigError("schemas must define User") }
        var policyText: [UInt8] = []
        if let file = config.policyFile {
            // Read once: the text stored as the policy version is the one parsed.
            guard let data = FileManager.default.contents(atPath: file) else {
                throw PolicyError("policy file \(file) cannot be read")
            }
            policyText = Array(data)
            let p = try Policy.parse(policyText, userType: userType, knownTypes: catalog.types)
            for t in p.enabledTargets { connectors[t.name] = try catalog.make(t) }
            policy = p
        }
        let auditKey = try config.loadAuditKey()
        let coordination: any Coordination
        let opened: any HubStore
        var engineOptions = config.engine
        if let pg = config.postgres {
            // Several nodes: the store first (it migrates), then the heartbeat and the lease.
            opened = try PostgresStore(
                settings: pg, maxConnections: min(24, config.writeThreads + 4), logger: logger)
            coordination = PostgresCoordination(settings: pg, version: BuildInfo.version, logger: logger)
            // Another node takes a dead node's jobs when their lease ends: keep it short and
            // renewed while the job runs (the engine renews every third of it).
            engineOptions.leaseSeconds = min(engineOptions.leaseSeconds, Self.clusterJobLeaseSeconds)
        } else {
            let local = try LocalCoordination(directory: config.dataDirectory, version: BuildInfo.version)
            coordination = local
            do {
                opened = try SQLiteStore(directory: config.dataDirectory, durability: config.durability, logger: logger)
            } catch {
                local.close()
                throw error
            }
        }
        self.coordination = coordination
        store = opened
        // Anything below that fails leaves nothing open: not the store, not the serve lock.
        var ready = false
        defer { if !ready { opened.close(); coordination.close() } }
        let clock = config.clock
        checkpointer = auditKey.map {
            AuditCheckpointer(
                store: opened, key: $0, path: config.auditCheckpointFile ?? "", interval: config.auditCheckpointSeconds,
                everyEntries: config.auditCheckpointEntries,
                logger: logger)
        }
        // One holder: a version applied over the API takes effect in every service at once.
        let policies = policy.map(PolicyHolder.init)
        // The notification outbox's sender, and the notifier every feature announces through.
        let isLeader: @Sendable () -> Bool = { coordination.isLeader() }
        let sender =
            config.notifications.isEmpty
            ? nil
            : NotificationSender(
                store: opened, settings: config.notifications, clock: clock, logger: logger, isLeader: isLeader)
        let notifier = sender.map { s in
            Notifier(settings: config.notifications, clock: clock, wakeSender: { s.poke() })
        }
        if let p = policies {
            engine = ProvisioningEngine(
                policies: p, store: store, connectors: connectors, logger: logger, options: engineOptions, clock: clock,
                coordination: coordination, notifier: notifier)
            if let sender { engine?.addWakeListener { sender.poke() } }
        }
        self.engine = engine
        var runs: ReconciliationRuns? = nil
        if let p = policies {
            let e = engine
            runs = ReconciliationRuns(
                reconciler: Reconciler(policies: p, store: store, connectors: connectors, clock: clock), store: store,
                logger: logger, notifier: notifier, nodeID: coordination.nodeID, wake: { e?.wake() })
            // Runs left "running" by a stopped process: on a node alone that is certain; with
            // several nodes the run may be going on elsewhere, so the leader fails only the runs
            // of nodes no longer alive, and those of the command line once their leases lapsed
            // (`InterruptedRunWatch`, which a node alone runs for the command line's runs).
            if coordination.isSoleNode { try runs?.failInterrupted() }
        }
        reconciliations = runs
        self.logger = logger
        let openStore = store
        let reviews = policies.map {
            AccessReviews(
                policies: $0, store: openStore, engine: engine, clock: clock, fallbackGroup: config.reviewFallbackGroup)
        }
        self.reviews = reviews
        let breakGlass = policies.map {
            BreakGlass(policies: $0, store: openStore, engine: engine, logger: logger, clock: clock, isLeader: isLeader)
        }
        self.breakGlass = breakGlass
        let credentials = engine.map {
            CredentialExpiry(store: openStore, engine: $0, logger: logger, isLeader: isLeader)
        }
        self.credentials = credentials
        let requests = policies.map {
            AccessRequests(
                policies: $0, store: openStore, engine: engine, logger: logger, clock: clock, isLeader: isLeader)
        }
        self.requests = requests
        let sodExceptions = policies.map {
            SoDExceptions(
                policies: $0, store: openStore, engine: engine, logger: logger, clock: clock, isLeader: isLeader)
        }
        self.sodExceptions = sodExceptions
        // A changed policy file is a new version: the people it changes are queued now, or
        // the rollout is held when it would take access from more people than the limit.
        let parsePolicy: @Sendable ([UInt8]) throws -> Policy = {
            try Policy.parse($0, userType: userType, knownTypes: catalog.types)
        }
        if let engine {
            let startUp = {
                try PolicyRollout.startUp(
                    text: policyText, engine: engine, store: openStore, limit: config.policyChangeLimit, logger: logger,
                    parse: parsePolicy)
            }
            // Nodes starting together with a new file would each store it as a version: one at a time.
            if let pg = openStore as? PostgresStore {
                _ = try pg.whileHoldingStartupLock(startUp)
            } else {
                _ = try startUp()
            }
        }
        // With several nodes, from here on (after the start-up put the newest version in force,
        // before anything else decides): every write transaction that reads a newer version in
        // force puts it in force here first, and the follower keeps an idle node current.
        let follower =
            coordination.isSoleNode
            ? nil
            : engine.map {
                PolicyFollower(
                    engine: $0, store: openStore, parse: parsePolicy, policyFile: config.policyFile, logger: logger)
            }
        if let follower, let engine {
            coordination.listen(.policy) { follower.poke() }
            openStore.adoptPolicies { newest, read in
                if let newest { try engine.adoptPolicy(newest, read: read) }
                return engine.policies.version
            }
        }
        let schedule =
            (runs != nil || reviews != nil)
            ? HubSchedule(
                reconciliations: runs, reconcileEveryHours: config.reconcileEveryHours, reviews: reviews,
                reviewEvery: config.reviewEveryDays, reviewDue: config.reviewDueDays,
                reviewDecision: config.reviewDefaultDecision, reminderDays: config.reviewReminderDays,
                escalationDays: config.reviewEscalationDays, coordination: coordination, logger: logger)
            : nil
        // Break-glass grants and licences that expired, and campaigns that fell due, while no
        // node led (the hub was down, or the leader died) are taken back and decided by the
        // leader: at start-up on a node that leads, else as soon as this node becomes leader.
        let catchUp: @Sendable () throws -> Void = {
            try breakGlass?.expireDue()
            try credentials?.processDue()
            try requests?.processDue()
            try sodExceptions?.expireDue()
            try reviews?.closeOverdue()
        }
        coordination.onLeadershipGained {
            do { try catchUp() } catch {
                logger.error(
                    "catching up on deadlines after gaining leadership failed; the timers retry",
                    ["error": String(describing: error).prefix(200).description])
            }
            // The timers slept as followers: each looks at its next deadline now.
            breakGlass?.poke()
            credentials?.poke()
            requests?.poke()
            sodExceptions?.poke()
            sender?.poke()
            schedule?.poke()
        }
        if coordination.isLeader() { try catchUp() }
        // A deadline set on another node (a break-glass grant, an approval) reaches the
        // leader's timers with the wake-up its commit sends (one node pokes its own at the write).
        if !coordination.isSoleNode {
            engine?.addWakeListener {
                breakGlass?.poke()
                requests?.poke()
                sodExceptions?.poke()
            }
        }
        let forwarder = config.auditForward.map {
            AuditForwarder(
                store: openStore, settings: $0, cursorPath: config.dataDirectory + "/audit-forward.cursor",
                logger: logger, isLeader: isLeader)
        }
        let runWatch = runs.map { InterruptedRunWatch(runs: $0, coordination: coordination, logger: logger) }
        // The checkpointer starts first and stops last: it signs the head once nothing else writes.
        let services: [(any HubService)?] = [
            checkpointer, follower, forwarder, sender, engine, engine?.probes, breakGlass, credentials, requests,
            sodExceptions, schedule, runWatch,
        ]
        self.services = ServiceRunner(services.compactMap { $0 })
        app = try HubApp(
            config: config, registry: registry, store: store, logger: logger, engine: engine, reconciliations: runs,
            reviews: reviews,
            breakGlass: breakGlass, credentials: credentials, requests: requests, sodExceptions: sodExceptions,
            connectorTypes: catalog.types, checkpointer: checkpointer, forwarder: forwarder, coordination: coordination)
        let handler: HTTPHandler = { [app] in app.handle($0) }
        let renderError: HTTPErrorRenderer = { [app] status, reason in
            var r = app.errorResponse(SCIMError(status: status, detail: reason))
            HubApp.addSecurityHeaders(&r)
            return r
        }
        http = try HTTPServer(
            address: address, limits: config.http, readThreads: config.readThreads, writeThreads: config.writeThreads,
            tls: tls, logger: logger, renderError: renderError, handler: handler)
        ready = true
    }

    /// How long a job is leased to a node on PostgreSQL: a dead node's jobs run elsewhere
    /// within this (the issue's target is 15 s).
    public static let clusterJobLeaseSeconds = 12.0

    /// The bound port.
    public var port: UInt16 { http.port }

    /// The SCIM base URL clients should use.
    public var scimURL: String {
        app.config.baseURL ?? "\(http.tls == nil ? "http" : "https")://\(http.address)/scim/v2"
    }

    /// Reads the TLS certificate and key again (SIGHUP): new connections get them, open ones
    /// keep theirs. A failed reload keeps the old certificate and is logged with the reason.
    public func reloadTLS() {
        guard let tls = http.tls else { return }
        do {
            try tls.reload()
            logger.notice("tls certificate reloaded", ["tls.certificate": tls.certificateFile])
        } catch {
            logger.error("tls certificate reload failed; the previous one stays in use", ["error": error.description])
        }
    }

    /// Serves on the calling thread until `shutdown()`; then stops the services in reverse
    /// order (running jobs finish), closes the store and releases the serve lock.
    public func run() {
        running.store(true, ordering: .sequentiallyConsistent)
        defer { finished.signal() }
        do {
            try services.start()
        } catch {
            logger.error(
                "a service failed to start; stopping", ["error": String(describing: error).prefix(200).description])
            startFailed.store(true, ordering: .sequentiallyConsistent)
            // The listener never served: let its loop end at once so `shutdown()` returns.
            http.shutdown()
            http.run()
            store.close()
            coordination.close()
            return
        }
        http.run()
        services.stop()
        store.close()
        coordination.close()
    }

    /// Serves on a new thread (tests, benchmarks).
    public func start() {
        let t = Thread { [self] in self.run() }
        t.name = "http-io"
        t.start()
    }

    /// Graceful stop: no new connections, in-flight requests and running jobs finish, the
    /// store closes and the serve lock is released; then it returns.
    public func shutdown() {
        http.shutdown()
        http.waitUntilStopped()
        if running.load(ordering: .sequentiallyConsistent) {
            finished.wait()
            finished.signal()  // a second shutdown returns at once
        }
    }
}
