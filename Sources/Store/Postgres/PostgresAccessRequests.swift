// SPDX-License-Identifier: Apache-2.0
import JSONCore
import Postgres

extension PostgresSession {
    private static let requestColumns =
        "id, person_id, user_name, package, requested_by, requested_by_token, justification, days, created, stages, "
        + "sod_rules, extends, lapses, state, stage, approvals, decided_by, decision_reason, decided, granted, "
        + "expires, notice_at, requester_id"

    private func request(_ r: PostgresRow) -> AccessRequestRecord {
        let stages = Self.jsonArray(r.text(9)).compactMap { v -> ApprovalStageRecord? in
            guard let o = v.objectValue, let k = o["kind"]?.stringValue else { return nil }
            return ApprovalStageRecord(kind: k, value: o["value"]?.stringValue ?? "")
        }
        var out = AccessRequestRecord(
            id: r.text(0) ?? "", personID: r.text(1) ?? "", userName: r.text(2) ?? "", package: r.text(3) ?? "",
            requestedBy: r.text(4) ?? "", requestedByToken: r.text(5), justification: r.text(6) ?? "",
            days: r.double(7), created: r.double(8), stages: stages,
            sodRules: (r.text(10) ?? "").split(separator: "\u{1F}").map(String.init), extends: r.text(11),
            lapses: r.double(12))
        out.state = RequestState(rawValue: r.text(13) ?? "")
        out.stage = Int(r.int64(14))
        out.approvals = Self.jsonArray(r.text(15)).compactMap { v in
            guard let o = v.objectValue, let by = o["by"]?.stringValue else { return nil }
            return RequestApproval(
                stage: Int(o["stage"]?.numberValue?.int64 ?? 0), by: by, reason: o["reason"]?.stringValue ?? "",
                at: o["at"]?.numberValue?.double ?? 0, token: o["token"]?.stringValue)
        }
        out.decidedBy = r.text(16)
        out.decisionReason = r.text(17)
        out.decided = r.isNull(18) ? nil : r.double(18)
        out.granted = r.isNull(19) ? nil : r.double(19)
        out.expires = r.isNull(20) ? nil : r.double(20)
        out.noticeAt = r.isNull(21) ? nil : r.double(21)
        out.requesterID = r.text(22)
        return out
    }

    private static func jsonArray(_ text: String?) -> [JSONValue] {
        guard let t = text, let v = try? JSONParser().parse(Array(t.utf8)) else { return [] }
        return v.arrayValue ?? []
    }

    private static func stagesText(_ s: [ApprovalStageRecord]) -> String {
        String(
            decoding: JSONWriter().write(
                .array(s.map { .object(JSONObject(["kind": .string($0.kind), "value": .string($0.value)])) })),
            as: UTF8.self)
    }

    private static func approvalsText(_ a: [RequestApproval]) -> String {
        String(
            decoding: JSONWriter().write(
                .array(
                    a.map {
                        .object(
                            JSONObject([
                                "stage": .int($0.stage), "by": .string($0.by), "reason": .string($0.reason),
                                "at": .number(JSONNumber($0.at)), "token": $0.token.map { .string($0) } ?? .null,
                            ]))
                    })), as: UTF8.self)
    }

    private static func optional(_ d: Double?) -> PostgresValue { d.map { .real($0) } ?? .null }
    private static func optional(_ s: String?) -> PostgresValue { s.map { .text($0) } ?? .null }

    private func requestList(_ clause: String, _ params: [PostgresValue]) throws -> [AccessRequestRecord] {
        var out: [AccessRequestRecord] = []
        try db.query("SELECT \(Self.requestColumns) FROM access_requests WHERE \(clause)", params) {
            out.append(request($0))
        }
        return out
    }

    public func insertAccessRequest(_ r: AccessRequestRecord) throws {
        try db.run(
            """
            INSERT INTO access_requests(\(Self.requestColumns))
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(r.id), .text(r.personID), .text(r.userName), .text(r.package), .text(r.requestedBy),
                Self.optional(r.requestedByToken), .text(r.justification), .real(r.days), .real(r.created),
                .text(Self.stagesText(r.stages)), .text(r.sodRules.joined(separator: "\u{1F}")),
                Self.optional(r.extends), .real(r.lapses), .text(r.state.rawValue), .integer(Int64(r.stage)),
                .text(Self.approvalsText(r.approvals)), Self.optional(r.decidedBy), Self.optional(r.decisionReason),
                Self.optional(r.decided), Self.optional(r.granted), Self.optional(r.expires),
                Self.optional(r.noticeAt), Self.optional(r.requesterID),
            ])
    }

    public func accessRequest(id: String) throws -> AccessRequestRecord? {
        try requestList("id = ?", [.text(id)]).first
    }

    public func updateAccessRequest(_ r: AccessRequestRecord, ifState state: RequestState, stage: Int) throws -> Bool {
        try db.run(
            """
            UPDATE access_requests SET state = ?, stage = ?, approvals = ?, decided_by = ?, decision_reason = ?,
            decided = ?, granted = ?, expires = ?, notice_at = ?
            WHERE id = ? AND state = ? AND stage = ?
            """,
            [
                .text(r.state.rawValue), .integer(Int64(r.stage)), .text(Self.approvalsText(r.approvals)),
                Self.optional(r.decidedBy), Self.optional(r.decisionReason), Self.optional(r.decided),
                Self.optional(r.granted), Self.optional(r.expires), Self.optional(r.noticeAt), .text(r.id),
                .text(state.rawValue), .integer(Int64(stage)),
            ]) == 1
    }

    public func accessRequests(state: RequestState?, limit: Int) throws -> [AccessRequestRecord] {
        if let s = state {
            return try requestList(
                "state = ? ORDER BY created DESC LIMIT ?", [.text(s.rawValue), .integer(Int64(limit))])
        }
        return try requestList("1 = 1 ORDER BY created DESC LIMIT ?", [.integer(Int64(limit))])
    }

    public func accessRequests(personID: String) throws -> [AccessRequestRecord] {
        try requestList("person_id = ? ORDER BY created DESC", [.text(personID)])
    }

    public func activeRequestGrants(personID: String, now: Double) throws -> [AccessRequestRecord] {
        try requestList(
            "person_id = ? AND state = 'granted' AND expires > ? ORDER BY expires", [.text(personID), .real(now)])
    }

    public func dueAccessRequests(now: Double) throws -> [AccessRequestRecord] {
        try requestList(
            """
            (state = 'granted' AND (expires <= ?1 OR notice_at <= ?1)) OR (state = 'pending' AND lapses <= ?1)
            ORDER BY created
            """, [.real(now)])
    }

    public func nextAccessRequestDeadline() throws -> Double? {
        var out: Double?
        try db.query(
            """
            SELECT MIN(t) FROM (
              SELECT MIN(expires) AS t FROM access_requests WHERE state = 'granted'
              UNION ALL SELECT MIN(notice_at) FROM access_requests WHERE state = 'granted'
              UNION ALL SELECT MIN(lapses) FROM access_requests WHERE state = 'pending') AS deadlines
            """
        ) { r in out = r.isNull(0) ? nil : r.double(0) }
        return out
    }

    // MARK: - Separation-of-duties exceptions

    private static let exceptionColumns =
        "id, rule, person_id, user_name, owner, reason, created_by, created, expires, ended"

    private func exceptionList(_ clause: String, _ params: [PostgresValue]) throws -> [SoDExceptionRecord] {
        var out: [SoDExceptionRecord] = []
        try db.query("SELECT \(Self.exceptionColumns) FROM sod_exceptions WHERE \(clause)", params) { r in
            out.append(
                SoDExceptionRecord(
                    id: r.text(0) ?? "", rule: r.text(1) ?? "", personID: r.text(2) ?? "", userName: r.text(3) ?? "",
                    owner: r.text(4) ?? "", reason: r.text(5) ?? "", createdBy: r.text(6) ?? "",
                    created: r.double(7), expires: r.double(8),
                    ended: r.isNull(9) ? nil : r.double(9)))
        }
        return out
    }

    public func insertSoDException(_ e: SoDExceptionRecord) throws {
        try db.run(
            "INSERT INTO sod_exceptions(\(Self.exceptionColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                .text(e.id), .text(e.rule), .text(e.personID), .text(e.userName), .text(e.owner), .text(e.reason),
                .text(e.createdBy), .real(e.created), .real(e.expires), Self.optional(e.ended),
            ])
    }

    public func sodException(id: String) throws -> SoDExceptionRecord? {
        try exceptionList("id = ?", [.text(id)]).first
    }

    public func sodExceptions(activeOnly: Bool, limit: Int) throws -> [SoDExceptionRecord] {
        try exceptionList(
            (activeOnly ? "ended IS NULL" : "1 = 1") + " ORDER BY created DESC LIMIT ?", [.integer(Int64(limit))])
    }

    public func activeSoDExceptions(personID: String, now: Double) throws -> [SoDExceptionRecord] {
        try exceptionList("person_id = ? AND ended IS NULL AND expires > ?", [.text(personID), .real(now)])
    }

    public func expiredSoDExceptions(now: Double) throws -> [SoDExceptionRecord] {
        try exceptionList("ended IS NULL AND expires <= ? ORDER BY expires", [.real(now)])
    }

    public func nextSoDExceptionExpiry() throws -> Double? {
        var out: Double?
        try db.query("SELECT MIN(expires) FROM sod_exceptions WHERE ended IS NULL") { r in
            out = r.isNull(0) ? nil : r.double(0)
        }
        return out
    }

    public func endSoDException(id: String, now: Double) throws -> Bool {
        try db.run("UPDATE sod_exceptions SET ended = ? WHERE id = ? AND ended IS NULL", [.real(now), .text(id)]) == 1
    }
}
