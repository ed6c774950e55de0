// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import JSONCore
import SCIM
import Store

/// What an access request announces (names and the package only: never a justification),
/// and how it is shown.
extension AccessRequests {
    // MARK: - Announcements (names and the package only)

    func announceStage(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier, r.state == .pending, r.stage < r.stages.count else { return }
        let s = r.stages[r.stage]
        let names = s.kind == "group" ? ["group:\(s.value)"] : s.value.isEmpty ? [] : [s.value]
        try notifier.announce(
            w, .requestSubmitted,
            [
                "requester": r.requestedBy, "userName": r.userName, "package": r.package,
                "days": Self.number(r.days), "approvers": Self.approvers(r), "stage": String(r.stage + 1),
                "stages": String(r.stages.count), "lapses": Timestamp.format(r.lapses), "requestId": r.id,
            ], to: try People.addresses(w.connection, of: names, now: now, groups: s.kind == "group"))
    }

    func announceOutcome(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier else { return }
        let to = try People.addresses(w.connection, of: [r.userName, r.requestedBy], now: now)
        let what: String
        switch r.state {
        case .granted: what = "was granted until \(Timestamp.format(r.expires ?? now))"
        case .denied: what = "was denied by \(r.decidedBy ?? "an approver")"
        case .cancelled: what = "was cancelled by \(r.decidedBy ?? "its requester")"
        case .lapsed: what = "lapsed: nobody decided it by \(Timestamp.format(r.lapses))"
        case .expired: what = "expired; the access is being taken back"
        default: what = "was ended by \(r.decidedBy ?? "an administrator"); the access is being taken back"
        }
        let event: NotificationEvent = r.state == .expired || r.state == .ended ? .requestExpired : .requestDecided
        try notifier.announce(
            w, event,
            [
                "userName": r.userName, "package": r.package, "state": r.state.rawValue, "outcome": what,
                "requestId": r.id,
            ], to: to)
    }

    func announceExpiring(_ w: any StoreWriter, _ r: AccessRequestRecord, now: Double) throws {
        guard let notifier = engine?.notifier else { return }
        var names = [r.userName]
        if let person = try w.connection.fetch(type: .user, id: r.personID) {
            names += try People.managerChain(w.connection, of: person.doc, depth: 1)
        }
        let extend =
            (try? requestable(r.package).1.extensionAllowed) == true
            ? "To keep it, ask for an extension: POST /admin/requests/\(r.id)/extend." : "It cannot be extended."
        try notifier.announce(
            w, .requestExpiring,
            [
                "userName": r.userName, "package": r.package, "expires": Timestamp.format(r.expires ?? now),
                "extension": extend, "requestId": r.id,
            ], to: try People.addresses(w.connection, of: names, now: now))
    }

    // MARK: - Views

    public static func json(_ r: AccessRequestRecord) -> JSONValue {
        func time(_ d: Double?) -> JSONValue { d.map { .string(Timestamp.format($0)) } ?? .null }
        return .object(
            JSONObject([
                "id": .string(r.id), "personId": .string(r.personID), "userName": .string(r.userName),
                "package": .string(r.package), "requestedBy": .string(r.requestedBy),
                "justification": .string(r.justification), "days": .number(JSONNumber(r.days)),
                "created": time(r.created), "state": .string(r.state.rawValue),
                "stages": .array(
                    r.stages.enumerated().map { i, s in
                        .object(
                            JSONObject([
                                "kind": .string(s.kind), "approver": s.value.isEmpty ? .null : .string(s.value),
                                "approval": r.approvals.first { $0.stage == i }.map { a in
                                    .object(
                                        JSONObject([
                                            "by": .string(a.by), "reason": .string(a.reason), "at": time(a.at),
                                        ]))
                                } ?? .null,
                            ]))
                    }),
                "awaiting": r.state == .pending ? .string(approvers(r)) : .null,
                "separationOfDuties": .array(r.sodRules.map { .string($0) }),
                "extends": r.extends.map { .string($0) } ?? .null,
                "lapses": r.state == .pending ? time(r.lapses) : .null,
                "decidedBy": r.decidedBy.map { .string($0) } ?? .null,
                "decisionReason": r.decisionReason.map { .string($0) } ?? .null, "decided": time(r.decided),
                "granted": time(r.granted), "expires": time(r.expires),
            ]))
    }
}
