// SPDX-License-Identifier: Apache-2.0

/// Where an access request is in its life.
public struct RequestState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }
    /// Waiting for the approval of stage `stage`.
    public static let pending = RequestState(rawValue: "pending")
    /// Held until `expires`.
    public static let granted = RequestState(rawValue: "granted")
    public static let denied = RequestState(rawValue: "denied")
    /// Withdrawn before a decision.
    public static let cancelled = RequestState(rawValue: "cancelled")
    /// Nobody decided within the package's approval days.
    public static let lapsed = RequestState(rawValue: "lapsed")
    /// Taken back at `expires`.
    public static let expired = RequestState(rawValue: "expired")
    /// Taken back before `expires` (by the holder, their manager, an administrator or a review).
    public static let ended = RequestState(rawValue: "ended")
    /// Replaced by an approved extension request, which holds the package from then on.
    public static let extended = RequestState(rawValue: "extended")
    public static let all: [RequestState] = [
        .pending, .granted, .denied, .cancelled, .lapsed, .expired, .ended, .extended,
    ]
}

/// One approval stage as fixed when the request was made: `manager` (value: the manager's
/// user name, empty when the person has none, and administrators approve), `group` (value:
/// the Group's displayName; any active member approves) or `sod` (value: the conflicting
/// rules; an administrator approves the exception).
public struct ApprovalStageRecord: Sendable, Equatable {
    public let kind: String
    public let value: String
    public init(kind: String, value: String) {
        self.kind = kind
        self.value = value
    }
}

/// One approval given, with the token it was given through (whoever minted that token may
/// not approve another stage).
public struct RequestApproval: Sendable, Equatable {
    public let stage: Int
    public let by: String
    public let reason: String
    public let at: Double
    public let token: String?
    public init(stage: Int, by: String, reason: String, at: Double, token: String? = nil) {
        self.stage = stage
        self.by = by
        self.reason = reason
        self.at = at
        self.token = token
    }
}

/// A request for a package, for a bounded time, with its approvals.
public struct AccessRequestRecord: Sendable, Equatable {
    public let id: String
    /// The beneficiary.
    public let personID: String
    public let userName: String
    public let package: String
    /// Who asked: the beneficiary, or their manager; and the token used.
    public let requestedBy: String
    public let requestedByToken: String?
    /// The requester's User id: four eyes compare people, not names a feed may change.
    public var requesterID: String?
    public let justification: String
    public let days: Double
    public let created: Double
    public let stages: [ApprovalStageRecord]
    /// Separation-of-duties rules the grant would conflict with (recorded, approved as an exception).
    public let sodRules: [String]
    /// The request this one extends.
    public let extends: String?
    /// When a pending request lapses.
    public let lapses: Double
    public var state: RequestState
    /// Index of the stage awaiting approval.
    public var stage: Int
    public var approvals: [RequestApproval] = []
    public var decidedBy: String?
    public var decisionReason: String?
    public var decided: Double?
    public var granted: Double?
    public var expires: Double?
    /// When the holder is told the end is near; nil once told (or never).
    public var noticeAt: Double?

    public init(
        id: String, personID: String, userName: String, package: String, requestedBy: String,
        requestedByToken: String?, justification: String, days: Double, created: Double,
        stages: [ApprovalStageRecord], sodRules: [String], extends: String?, lapses: Double
    ) {
        self.id = id; self.personID = personID; self.userName = userName; self.package = package
        self.requestedBy = requestedBy; self.requestedByToken = requestedByToken
        self.justification = justification; self.days = days; self.created = created; self.stages = stages
        self.sodRules = sodRules; self.extends = extends; self.lapses = lapses
        state = .pending
        stage = 0
    }
}

/// Access requests and the packages they grant for a time.
public protocol AccessRequestStore {
    func insertAccessRequest(_ r: AccessRequestRecord) throws
    func accessRequest(id: String) throws -> AccessRequestRecord?
    /// Stores `r`'s decision fields if the stored request is still in `state` at `stage`
    /// (two approvers acting at once: one wins). Returns false otherwise.
    func updateAccessRequest(_ r: AccessRequestRecord, ifState state: RequestState, stage: Int) throws -> Bool
    /// Newest first; nil state: every state.
    func accessRequests(state: RequestState?, limit: Int) throws -> [AccessRequestRecord]
    /// A person's requests (as beneficiary), newest first.
    func accessRequests(personID: String) throws -> [AccessRequestRecord]
    /// Requests in force for a person at `now`.
    func activeRequestGrants(personID: String, now: Double) throws -> [AccessRequestRecord]
    /// Granted requests whose time is up, whose expiry notice is due, and pending requests
    /// that lapsed: the deadline work.
    func dueAccessRequests(now: Double) throws -> [AccessRequestRecord]
    /// The earliest such deadline.
    func nextAccessRequestDeadline() throws -> Double?
}

/// A time-limited exception to a separation-of-duties rule for one person.
public struct SoDExceptionRecord: Sendable, Equatable {
    public let id: String
    public let rule: String
    public let personID: String
    public let userName: String
    /// Who answers for the risk while it lasts.
    public let owner: String
    public let reason: String
    public let createdBy: String
    public let created: Double
    public let expires: Double
    public var ended: Double?

    public init(
        id: String, rule: String, personID: String, userName: String, owner: String, reason: String,
        createdBy: String, created: Double, expires: Double, ended: Double? = nil
    ) {
        self.id = id; self.rule = rule; self.personID = personID; self.userName = userName; self.owner = owner
        self.reason = reason; self.createdBy = createdBy; self.created = created; self.expires = expires
        self.ended = ended
    }
}

/// Separation-of-duties exceptions: granted, listed, ended at expiry.
public protocol SoDExceptionStore {
    func insertSoDException(_ e: SoDExceptionRecord) throws
    func sodException(id: String) throws -> SoDExceptionRecord?
    /// Newest first; `active` only those not ended.
    func sodExceptions(activeOnly: Bool, limit: Int) throws -> [SoDExceptionRecord]
    func activeSoDExceptions(personID: String, now: Double) throws -> [SoDExceptionRecord]
    /// Exceptions whose time is up but which are not ended yet.
    func expiredSoDExceptions(now: Double) throws -> [SoDExceptionRecord]
    func nextSoDExceptionExpiry() throws -> Double?
    func endSoDException(id: String, now: Double) throws -> Bool
}
