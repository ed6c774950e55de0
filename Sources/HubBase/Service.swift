// SPDX-License-Identifier: Apache-2.0

/// Background work the hub runs between start and stop: the provisioning dispatcher,
/// deadline timers, schedules, audit checkpoints. `ServiceRunner` starts services in order
/// and stops them in reverse.
public protocol HubService: Sendable {
    /// For logs: which service started, stopped or failed.
    var serviceName: String { get }
    /// Starts the service's threads; returns once it runs.
    func start() throws
    /// Stops taking new work, lets work in progress finish, and returns when it has.
    func stop()
}

/// Starts services in order and stops them in reverse, so a service never outlives what it
/// depends on (the dispatcher stops after the timers that enqueue work for it). If one
/// fails to start, those already started are stopped and the error is rethrown.
public final class ServiceRunner: Sendable {
    public let services: [any HubService]

    public init(_ services: [any HubService]) { self.services = services }

    public func start() throws {
        for (i, s) in services.enumerated() {
            do {
                try s.start()
            } catch {
                for started in services[..<i].reversed() { started.stop() }
                throw error
            }
        }
    }

    public func stop() {
        for s in services.reversed() { s.stop() }
    }
}
