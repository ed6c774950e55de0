// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubLog
import SCIM
import Store

/// A running hub: schemas, store, request handling and the HTTP server, wired together.
public final class HubServer: Sendable {
    public let app: HubApp
    public let http: HTTPServer
    public let store: Store

    /// Loads schemas, opens the store and binds the listen address.
    public init(config: HubConfig, logger: Logger) throws {
        guard let dir = SchemaRegistry.locateDirectory(explicit: config.schemasDirectory) else {
            throw ConfigError("cannot find the schemas/ folder; pass --schemas DIR or set SCIMHUB_SCHEMAS")
        }
        let registry = try SchemaRegistry.load(directory: dir)
        guard let address = ListenAddress(config.listen) else { throw ConfigError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080") }
        store = try Store(directory: config.dataDirectory, durability: config.durability, logger: logger)
        app = try HubApp(config: config, registry: registry, store: store, logger: logger)
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

    /// The bound port.
    public var port: UInt16 { http.port }

    /// The SCIM base URL clients should use.
    public var scimURL: String { app.config.baseURL ?? "http://\(http.address)/scim/v2" }

    /// Serves on the calling thread until `shutdown()`; then closes the store.
    public func run() {
        http.run()
        store.close()
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
