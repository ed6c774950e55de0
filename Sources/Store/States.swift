// SPDX-License-Identifier: Apache-2.0

/// What a stored resource is. An open set (a schema may add resource types), so a
/// `RawRepresentable` struct with the two every hub has as constants; the raw value is the
/// SCIM resource type name (RFC 7643 §6).
public struct ResourceKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ name: String) { rawValue = name }
    public var description: String { rawValue }
    public static let user = ResourceKind("User")
    public static let group = ResourceKind("Group")
}

/// Where a provisioning job is: waiting to run (possibly after a backoff or leased to a
/// worker), or in the dead letter for an administrator.
public struct JobState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static let pending = JobState(rawValue: "pending")
    public static let dead = JobState(rawValue: "dead")
}

/// Where a reconciliation run is. `queued` → `running` → `done`; a remediation past the
/// mass-change guard stops at `awaiting-confirmation` until confirmed (`remediating`); a
/// hub that stopped mid-run marks it `failed` at the next start.
public struct RunState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    public static let queued = RunState(rawValue: "queued")
    public static let running = RunState(rawValue: "running")
    public static let awaitingConfirmation = RunState(rawValue: "awaiting-confirmation")
    public static let remediating = RunState(rawValue: "remediating")
    public static let done = RunState(rawValue: "done")
    public static let failed = RunState(rawValue: "failed")
}
