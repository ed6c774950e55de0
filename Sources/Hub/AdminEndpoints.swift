// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HTTPServer
import HubCrypto
import JSONCore
import Provisioning
import SCIM
import Store

/// Administration of the audit log, targets, the queue, people's access and expiring credentials.
struct AdminEndpoints: FeatureEndpoints {
    let hub: HubContext
    /// The licence-expiry schedule, when a policy is configured.
    let credentials: CredentialExpiry?
    /// The nodes sharing the store and who leads (nil: a hub built without a server, in tests).
    var coordination: (any Coordination)? = nil
}

/// `/admin` endpoints (admin scope). State-changing calls are audit entries.
extension AdminEndpoints {
    /// `GET /admin/audit?since=&until=&principal=&resourceId=&after=&count=`: entries oldest
    /// first; `after` is the last `seq` seen, for paging.
    func listAudit(_ ctx: RequestContext) throws -> HTTPResponse {
        let q = ctx.request
        func time(_ name: String) throws -> String? {
            guard let v = q.queryValue(name) else { return nil }
            guard let t = Timestamp.parse(v) else {
                throw SCIMError.invalidValue("'\(name)' must be an xsd:dateTime such as 2026-01-31T00:00:00Z")
            }
            return Timestamp.format(t)
        }
        let since = try time("since"), until = try time("until")
        var after: Int64 = 0
        if let a = q.queryValue("after") {
            guard let n = Int64(a), n >= 0 else {
                throw SCIMError.invalidValue("'after' must be a non-negative integer")
            }
            after = n
        }
        let count = try countParameter(q)
        let format = q.queryValue("format") ?? "json"
        guard format == "json" || format == "csv" else { throw SCIMError.invalidValue("'format' must be json or csv") }
        let entries = try store.read {
            try AuditLog.list(
                $0, since: since, until: until, principal: q.queryValue("principal"),
                resourceID: q.queryValue("resourceId"), action: q.queryValue("action"),
                afterSeq: after, limit: count)
        }
        if format == "csv" {
            return HTTPResponse(
                status: 200,
                headers: [
                    ("Content-Type", "text/csv; charset=utf-8"),
                    ("Content-Disposition", "attachment; filename=\"scimhub-audit.csv\""),
                ], body: Array(Self.csv(entries).utf8))
        }
        var body = JSONObject(["itemsPerPage": .int(entries.count), "entries": .array(entries.map(\.json))])
        if let last = entries.last, entries.count == count { body["next"] = .string("after=\(last.seq)") }
        return jsonResponse(200, .object(body), contentType: "application/json")
    }

    /// Audit entries as CSV (RFC 4180; cells that a spreadsheet would run as formulas are quoted inert).
    static func csv(_ entries: [AuditEntry]) -> String {
        var out = "seq,time,principal,action,resourceType,resourceId,attributes,requestId,outcome,hash\r\n"
        for e in entries {
            out +=
                [
                    String(e.seq), e.time, e.principal, e.action, e.resourceType, e.resourceID,
                    e.attributes.joined(separator: "; "), e.requestID, e.outcome, hexString(e.hash),
                ].map(ReconciliationReport.csvField).joined(separator: ",") + "\r\n"
        }
        return out
    }

    /// `GET /admin/audit/verify`: walks the whole chain; the head to publish, and any break.
    func verifyAudit() throws -> HTTPResponse {
        let v = try store.read { try AuditLog.verify($0) }
        return jsonResponse(
            200,
            .object(
                JSONObject([
                    "intact": .bool(v.intact), "entries": .int(v.entries), "headSeq": .int(Int(v.headSeq)),
                    "headHash": .string(v.headHash), "breakCount": .int(v.breakCount),
                    "breaks": .array(
                        v.breaks.prefix(20).map {
                            .object(JSONObject(["seq": .int(Int($0.seq)), "reason": .string($0.reason)]))
                        }),
                ])), contentType: "application/json")
    }

    private func countParameter(_ q: HTTPRequest) throws -> Int {
        guard let c = q.queryValue("count") else { return 100 }
        guard let n = Int(c) else { throw SCIMError.invalidValue("'count' must be an integer") }
        return min(1000, max(0, n))
    }

    /// A target's last probe: `{"up", "checkedAt", "milliseconds", "error"}`, or null before the first.
    static func probeJSON(_ r: ProbeResult?) -> JSONValue {
        guard let r else { return .null }
        return .object(
            JSONObject([
                "up": .bool(r.up), "checkedAt": .string(Timestamp.format(r.checkedAt)),
                "milliseconds": .int(Int((r.seconds * 1000).rounded())),
                "error": r.error.map { .string($0) } ?? .null,
            ]))
    }

    /// `GET /admin/targets`: every target with its health, circuit, queue depth and oldest pending job age.
    /// `GET /admin/nodes` (admin, auditor): every node sharing the store, its version, start,
    /// last heartbeat, whether it leads and how many jobs it holds leases on. One node on SQLite.
    func listNodes() throws -> HTTPResponse {
        let nodes = try coordination?.nodes() ?? []
        let now = engine?.clock.now() ?? Date().timeIntervalSince1970
        let leased = try store.read(snapshot: false) { try $0.leasedJobsByOwner(now: now) }
        let items: [JSONValue] = nodes.map { n in
            .object(
                JSONObject([
                    "id": .string(n.nodeID),
                    "version": .string(n.version),
                    "started": .string(Timestamp.format(n.started)),
                    "lastHeartbeat": .string(Timestamp.format(n.heartbeat)),
                    "alive": .bool(n.alive),
                    "leader": .bool(n.leader),
                    "self": .bool(n.nodeID == coordination?.nodeID),
                    "jobsLeased": .int(leased[n.nodeID] ?? 0),
                ]))
        }
        var body = JSONObject(["nodes": .array(items)])
        if let leader = nodes.first(where: \.leader) { body["leader"] = .string(leader.nodeID) }
        return jsonResponse(200, .object(body), contentType: "application/json")
    }

    func listTargets(_ ctx: RequestContext) throws -> HTTPResponse {
        let now = engine?.clock.now() ?? Date().timeIntervalSince1970
        let targets = engine?.policy.targets ?? []
        let items: [JSONValue] = try store.read { conn in
            try targets.map { t in
                let stats = try conn.queueStats(target: t.name, now: now)
                let circuit = t.enabled ? (engine?.circuit(t.name) ?? .closed) : nil
                let health = t.enabled ? (engine?.health(t.name, deadLetters: stats.dead) ?? "healthy") : "disabled"
                return .object(
                    JSONObject([
                        "name": .string(t.name),
                        "type": .string(t.type),
                        "enabled": .bool(t.enabled),
                        "health": .string(health),
                        "circuit": circuit.map { .string($0.rawValue) } ?? .null,
                        "probe": Self.probeJSON(t.enabled ? engine?.probes.last(t.name) : nil),
                        "queueDepth": .int(stats.pending),
                        "oldestPendingSeconds": stats.oldestPending.map {
                            .number(JSONNumber(($0 * 1000).rounded() / 1000))
                        } ?? .null,
                        "deadLetters": .int(stats.dead),
                        "heldJobs": .int(stats.held),
                    ]))
            }
        }
        return jsonResponse(200, .object(JSONObject(["targets": .array(items)])), contentType: "application/json")
    }

    /// `POST /admin/targets/{name}/probe`: probes the target now (the console's "check now")
    /// and answers its result; reading a target changes nothing, so no audit entry.
    func probeTarget(_ name: String) throws -> HTTPResponse {
        guard let t = engine?.policy.target(name) else { throw SCIMError.notFound("no target with this name") }
        guard t.enabled, let r = engine?.probes.probeNow(t.name) else {
            throw SCIMError(status: 409, detail: "target '\(t.name)' is disabled: nothing to probe")
        }
        return jsonResponse(
            200, .object(JSONObject(["name": .string(t.name), "probe": Self.probeJSON(r)])),
            contentType: "application/json")
    }

    /// `GET /admin/jobs?target=&state=pending|dead&count=`.
    func listJobs(_ ctx: RequestContext) throws -> HTTPResponse {
        let q = ctx.request
        let target = q.queryValue("target")
        if let t = target, engine?.policy.target(t) == nil {
            throw SCIMError.invalidValue("'target': no target with this name")
        }
        let state = q.queryValue("state").map(JobState.init(rawValue:))
        if let s = state, s != .pending && s != .dead {
            throw SCIMError.invalidValue("'state' must be pending or dead")
        }
        let jobs = try store.read { try $0.jobs(target: target, state: state, limit: try countParameter(q)) }
        // Whose job it is, by name: a dead letter is acted on by people, not by ids.
        let names: [String: String] = try store.read { conn in
            var out: [String: String] = [:]
            for id in Set(jobs.map(\.personID)) {
                if let n = try conn.fetch(type: .user, id: id)?.doc["userName"]?.stringValue { out[id] = n }
            }
            return out
        }
        let items: [JSONValue] = jobs.map { j in
            .object(
                JSONObject([
                    "id": .string("\(j.personID):\(j.target)"),
                    "personId": .string(j.personID),
                    "userName": names[j.personID].map { .string($0) } ?? .null,
                    "target": .string(j.target),
                    "state": .string(j.state.rawValue),
                    "priority": .string(j.priority == 0 ? "removes-access" : "normal"),
                    "attempts": .int(j.attempts),
                    "notBefore": .string(Timestamp.format(j.notBefore)),
                    "enqueued": .string(Timestamp.format(j.enqueued)),
                    "lastError": j.lastError.map { .string($0) } ?? .null,
                ]))
        }
        return jsonResponse(
            200, .object(JSONObject(["itemsPerPage": .int(items.count), "jobs": .array(items)])),
            contentType: "application/json")
    }

    /// `POST /admin/jobs/{personId}:{target}/retry`: re-drives a dead-lettered job.
    func retryJob(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        guard let colon = id.lastIndex(of: ":") else {
            throw SCIMError.notFound("job ids look like <personId>:<target>")
        }
        let person = String(id[..<colon]), target = String(id[id.index(after: colon)...])
        // Due on the engine's clock: the queue is judged by it.
        let now = engine?.clock.now() ?? Date().timeIntervalSince1970
        let principal = ctx.principal.name, requestID = ctx.requestID
        let redriven = try store.write { w -> Bool in
            let ok = try w.connection.redrive(personID: person, target: target, now: now)
            if ok {
                try AuditLog.append(
                    w,
                    .now(
                        principal: principal, action: "job.retry", resourceType: "User", resourceID: person,
                        attributes: [target], requestID: requestID))
            }
            return ok
        }
        guard redriven else { throw SCIMError.notFound("no dead-lettered job with this id") }
        engine?.wake()
        return jsonResponse(
            202, .object(JSONObject(["id": .string(id), "state": .string("pending")])), contentType: "application/json")
    }

    /// `GET /admin/people/{id}/access`: packages held and the rule or group that granted
    /// each, and per target the desired state, what was last applied and the last result.
    func personAccess(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let engine = self.engine
        let body: JSONObject? = try store.read { conn in
            let user = try conn.fetch(type: .user, id: id)
            let applied = try conn.applied(personID: id)
            guard user != nil || !applied.isEmpty else { return nil }
            var out = JSONObject(["id": .string(id), "exists": .bool(user != nil)])
            if let u = user {
                out["userName"] = u.doc["userName"] ?? .null
                out["active"] = u.doc["active"] ?? .bool(true)
            }
            guard let engine else {
                out["packages"] = .array([])
                out["targets"] = .object(JSONObject())
                return out
            }
            let now = engine.clock.now()
            let snapshot = try PersonSnapshot.load(conn, personID: id, person: user?.doc, now: now)
            let grants =
                snapshot.document.map {
                    engine.policy.grants(
                        person: $0, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now)
                } ?? []
            out["sodConflicts"] = .array(
                (snapshot.document.map {
                    engine.policy.sodConflicts(
                        person: $0, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: now)
                } ?? []).map(\.json))
            out["revokedByReview"] = .array(snapshot.overrides.revoked.sorted().map { .string($0) })
            out["breakGlass"] = .array(
                try conn.activeBreakGlass(personID: id, now: now).map { BreakGlass.json($0, now: now) })
            // Which feed set each attribute (the packages' rules read these).
            var sources = JSONObject()
            for src in try conn.attributeSources(personID: id) {
                sources[src.attribute] = .object(
                    JSONObject(["feed": .string(src.principal), "time": .string(Timestamp.format(src.time))]))
            }
            out["attributeSources"] = .object(sources)
            out["packages"] = .array(
                grants.map { .object(JSONObject(["name": .string($0.package), "why": .string($0.reason)])) })
            var targets = JSONObject()
            for t in engine.policy.targets {
                let decision = engine.policy.decide(snapshot, target: t)
                let (record, previous, desired) = (
                    decision.record, decision.lastApplied, t.enabled ? decision.desired : nil
                )
                let job = try conn.job(personID: id, target: t.name)
                targets[t.name] = .object(
                    JSONObject([
                        "enabled": .bool(t.enabled),
                        "desired": desired?.json ?? .null,
                        "applied": previous?.json ?? .null,
                        "accountId": record?.accountID.map { .string($0) } ?? .null,
                        "lastApplied": record.map { .string(Timestamp.format($0.applied)) } ?? .null,
                        "lastResult": record?.lastResult.map { .string($0) } ?? .null,
                        "pendingJob": job.map { .string($0.state.rawValue) } ?? .null,
                    ]))
            }
            out["targets"] = .object(targets)
            return out
        }
        guard let b = body else { throw SCIMError.notFound("no person with this id") }
        return jsonResponse(200, .object(b), contentType: "application/json")
    }

    /// `GET /admin/credentials/expiring?within=30d&count=` (`d`, `h` or `m`; default 30 days,
    /// at most 366): who is about to lose clinical access, soonest first, with their manager;
    /// `total` counts them all, `count` (0 to 1,000, default 1,000) bounds the list (the
    /// dashboard asks for the total only: judging 1,000 people's packages costs ~50 ms).
    func expiringCredentials(_ ctx: RequestContext) throws -> HTTPResponse {
        guard let credentials, let engine else { throw SCIMError(status: 409, detail: "no policy is loaded") }
        let text = ctx.request.queryValue("within") ?? "30d"
        let units: [Character: Double] = ["d": 86400, "h": 3600, "m": 60]
        guard let unit = text.last.flatMap({ units[$0] }), let n = Double(text.dropLast()), n > 0,
            n * unit <= 366 * 86400
        else {
            throw SCIMError.invalidValue("'within' must be a duration such as 30d, 12h or 90m (at most 366d)")
        }
        var count = 1000
        if let c = ctx.request.queryValue("count") {
            guard let v = Int(c), (0...1000).contains(v) else {
                throw SCIMError.invalidValue("'count' must be an integer in 0...1000")
            }
            count = v
        }
        let now = engine.clock.now()
        let people = count == 0 ? [] : try credentials.expiring(within: n * unit, policy: engine.policy, limit: count)
        // Entries only (an index range, no judging): cheap at 100,000 people.
        let total = try store.read { try $0.expiringCredentials(from: now, to: now + n * unit, limit: 1_000_000).count }
        return jsonResponse(
            200, .object(JSONObject(["within": .string(text), "total": .int(total), "people": .array(people)])),
            contentType: "application/json")
    }
}

extension AdminEndpoints {
    /// `GET /admin/notifications`: the outbox, newest first (pending ones show their last error).
    func listNotifications() throws -> HTTPResponse {
        let list = try store.read { try $0.notifications(limit: 200) }
        let items: [JSONValue] = list.map { n in
            .object(
                JSONObject([
                    "id": .string(n.id), "event": .string(n.event), "channel": .string(n.channel),
                    "recipient": .string(n.recipient), "subject": .string(n.subject), "state": .string(n.state),
                    "attempts": .int(n.attempts), "created": .string(Timestamp.format(n.created)),
                    "lastError": n.lastError.map { .string($0) } ?? .null,
                ]))
        }
        return jsonResponse(200, .object(JSONObject(["notifications": .array(items)])), contentType: "application/json")
    }
}

extension AdminEndpoints {
    /// Audit, targets, the queue and people's access.
    var routes: [Route] {
        [
            Route.make(
                "GET", "/admin/audit", .admin,
                query: ["since", "until", "principal", "resourceId", "action", "after", "count", "format"]
            ) { ctx, _ in try self.listAudit(ctx) },
            Route.make("GET", "/admin/audit/verify", .admin) { _, _ in try self.verifyAudit() },
            Route.make("GET", "/admin/nodes", .admin) { _, _ in try self.listNodes() },
            Route.make("GET", "/admin/targets", .anyOf([.admin, .helpdesk])) { ctx, _ in try self.listTargets(ctx) },
            Route.make("POST", "/admin/targets/{name}/probe", .anyOf([.admin, .helpdesk])) { _, p in
                try self.probeTarget(p[0])
            },
            Route.make("GET", "/admin/jobs", .anyOf([.admin, .helpdesk]), query: ["target", "state", "count"]) {
                ctx, _ in try self.listJobs(ctx)
            },
            Route.make("POST", "/admin/jobs/{id}/retry", .anyOf([.admin, .helpdesk])) { ctx, p in
                try self.retryJob(p[0], ctx)
            },
            Route.make("GET", "/admin/people/{id}/access", .anyOf([.admin, .helpdesk])) { ctx, p in
                try self.personAccess(p[0], ctx)
            },
            Route.make("GET", "/admin/notifications", .admin) { _, _ in try self.listNotifications() },
            Route.make("GET", "/admin/credentials/expiring", .admin, query: ["within", "count"]) { ctx, _ in
                try self.expiringCredentials(ctx)
            },
        ]
    }
}
