// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubLog
import SCIM
import Store
import Provisioning
import ConnectorKit

/// A running hub: schemas, store, request handling and the HTTP server, wired together.
public final class HubServer: Sendable {
    public let app: HubApp
    public let http: HTTPServer
    public let store: Store
    /// The provisioning engine, when a policy is configured.
    public let engine: ProvisioningEngine?
    /// Reconciliation runs, when a policy is configured.
    public let reconciliations: ReconciliationRuns?
    private let reconcileEvery: Double?
    private let stopSchedule = DispatchSemaphore(value: 0)

    /// Loads schemas, opens the store and binds the listen address.
    public init(config: HubConfig, logger: Logger) throws {
        guard let dir = SchemaRegistry.locateDirectory(explicit: config.schemasDirectory) else {
            throw ConfigError("cannot find the schemas/ folder; pass --schemas DIR or set SCIMHUB_SCHEMAS")
        }
        let registry = try SchemaRegistry.load(directory: dir)
        guard let address = ListenAddress(config.listen) else { throw ConfigError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080") }
        // The policy and every connector's settings are checked before the store opens, so a
        // bad policy refuses to start without leaving anything running.
        var engine: ProvisioningEngine? = nil
        var policy: Policy? = nil
        var connectors: [String: any Connector] = [:]
        guard let userType = registry.resourceType(named: "User") else { throw ConfigError("schemas must define User") }
        if let file = config.policyFile {
            let p = try Policy.load(path: file, userType: userType, knownTypes: ConnectorRegistry.types)
            for t in p.enabledTargets { connectors[t.name] = try ConnectorRegistry.make(t) }
            policy = p
        }
        store = try Store(directory: config.dataDirectory, durability: config.durability, logger: logger)
        if let p = policy {
            engine = ProvisioningEngine(policy: p, store: store, connectors: connectors, userType: userType, logger: logger, options: config.engine)
        }
        self.engine = engine
        var runs: ReconciliationRuns? = nil
        if let p = policy {
            let e = engine
            runs = ReconciliationRuns(reconciler: Reconciler(policy: p, store: store, connectors: connectors), store: store, logger: logger, wake: { e?.wake() })
            try runs?.failInterrupted()
        }
        reconciliations = runs
        reconcileEvery = config.reconcileEveryHours
        app = try HubApp(config: config, registry: registry, store: store, logger: logger, engine: engine, reconciliations: runs)
        let handler: HTTPHandler = { [app] in app.handle($0) }
        let renderError: HTTPErrorRenderer = { [app] status, reason in app.errorResponse(SCIMError(status: status, detail: reason)) }
        do {
            http = try HTTPServer(address: address, limits: config.http, readThreads: config.readThreads, writeThreads: config.writeThreads,
                                  logger: logger, renderError: renderError, handler: handler)
        } catch {
            store.close()
            throw error
        }
    }

    /// Connector plugin types this build offers.
    public static var connectorTypes: Set<String> { ConnectorRegistry.types }

    /// Builds the connector for a target (validates its settings).
    public static func makeConnector(_ t: Target) throws -> any Connector { try ConnectorRegistry.make(t) }

    /// The bound port.
    public var port: UInt16 { http.port }

    /// The SCIM base URL clients should use.
    public var scimURL: String { app.config.baseURL ?? "http://\(http.address)/scim/v2" }

    /// Serves on the calling thread until `shutdown()`; then stops the engine and closes the store.
    public func run() {
        engine?.start()
        startSchedule()
        http.run()
        stopSchedule.signal()
        engine?.stop()
        store.close()
    }

    /// Scheduled reconciliation (`reconcileEveryHours`): a report run of every target.
    private func startSchedule() {
        guard let hours = reconcileEvery, let runs = reconciliations else { return }
        let stop = stopSchedule
        let t = Thread {
            while stop.wait(timeout: .now() + hours * 3600) == .timedOut {
                _ = try? runs.start(targets: nil, mode: .report, categories: nil, principal: "scheduler", requestID: "schedule")
            }
        }
        t.name = "reconcile-schedule"
        t.start()
    }

    /// Serves on a new thread (tests, benchmarks).
    public func start() {
        let t = Thread { [self] in self.run() }
        t.name = "http-io"
        t.start()
    }

    /// Graceful stop: no new connections, in-flight requests finish.
    public func shutdown() {
        http.shutdown()
        http.waitUntilStopped()
    }
}
