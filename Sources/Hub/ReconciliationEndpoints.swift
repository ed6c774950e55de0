// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HTTPServer
import JSONCore
import Provisioning
import SCIM
import Store

/// Reconciliation runs, their reports and confirmations, and permission creep.
struct ReconciliationEndpoints: FeatureEndpoints {
    let hub: HubContext
    /// Reconciliation runs, when a policy is configured.
    let reconciliations: ReconciliationRuns?
}

/// `/admin/reconciliations` (admin scope): start runs, follow them, read their reports,
/// confirm a run held by the mass-change guard.
extension ReconciliationEndpoints {
    private func runs() throws -> ReconciliationRuns {
        guard let r = reconciliations else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is nothing to reconcile")
        }
        return r
    }

    private func scim(_ e: ReconciliationRequestError) -> SCIMError {
        switch e {
        case .invalid(let m): return SCIMError.invalidValue(m)
        case .conflict(let m): return SCIMError(status: 409, detail: m)
        case .notFound: return SCIMError.notFound(e.description)
        }
    }

    /// `POST /admin/reconciliations`
    /// `{"targets"?: [...], "mode"?: "report"|"remediate", "categories"?: [...]}` → 202.
    func startReconciliation(_ ctx: RequestContext) throws -> HTTPResponse {
        let r = try runs()
        let body = ctx.request.body.isEmpty ? JSONObject() : try jsonBody(ctx.request)
        for k in body.keys where !["targets", "mode", "categories"].contains(k) {
            throw SCIMError.invalidValue("unknown key '\(k)' (targets, mode, categories)")
        }
        func strings(_ key: String) throws -> [String]? {
            guard let v = body[key] else { return nil }
            guard let arr = v.arrayValue, !arr.isEmpty, arr.count <= 64 else {
                throw SCIMError.invalidValue("'\(key)' must be a non-empty array of names")
            }
            return try arr.map { x throws -> String in
                guard let s = x.stringValue, !s.isEmpty, s.utf8.count <= 64 else {
                    throw SCIMError.invalidValue("'\(key)' must hold names")
                }
                return s
            }
        }
        let modeText = body["mode"].map { $0.stringValue ?? "" } ?? "report"
        guard let mode = ReconciliationRuns.Mode(rawValue: modeText) else {
            throw SCIMError.invalidValue("'mode' must be report or remediate")
        }
        do {
            let id = try r.start(
                targets: try strings("targets"), mode: mode, categories: try strings("categories"),
                principal: ctx.principal.name, requestID: ctx.requestID)
            return jsonResponse(
                202, .object(try r.status(id: id)), headers: [("Location", "/admin/reconciliations/\(id)")],
                contentType: "application/json")
        } catch let e as ReconciliationRequestError {
            throw scim(e)
        }
    }

    func listReconciliations(_ ctx: RequestContext) throws -> HTTPResponse {
        _ = try runs()
        let items = try store.read { try $0.reconciliationRuns(limit: 50) }.map {
            JSONValue.object(ReconciliationRuns.describe($0))
        }
        return jsonResponse(200, .object(JSONObject(["runs": .array(items)])), contentType: "application/json")
    }

    /// `POST /admin/reconciliations/{id}/sign-off` `{"comment"}`: once per finished run.
    func signOff(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let r = try runs()
        let body = try jsonBody(ctx.request)
        for k in body.keys where k != "comment" { throw SCIMError.invalidValue("unknown key '\(k)' (comment)") }
        do {
            try r.signOff(
                id: id, comment: body["comment"]?.stringValue ?? "", principal: ctx.principal.name,
                requestID: ctx.requestID, now: Date().timeIntervalSince1970)
            return jsonResponse(200, .object(try r.status(id: id)), contentType: "application/json")
        } catch let e as ReconciliationRequestError { throw scim(e) }
    }

    func reconciliationStatus(_ id: String) throws -> HTTPResponse {
        do { return jsonResponse(200, .object(try runs().status(id: id)), contentType: "application/json") } catch let e
            as ReconciliationRequestError
        { throw scim(e) }
    }

    /// `GET /admin/reconciliations/{id}/report?format=json|csv|html`.
    func reconciliationReport(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        _ = try runs()
        let formatText = ctx.request.queryValue("format") ?? "json"
        guard let format = ReconciliationReport.Format(rawValue: formatText) else {
            throw SCIMError.invalidValue("'format' must be json, csv or html")
        }
        guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else {
            throw SCIMError.notFound("no reconciliation run with this id")
        }
        let types: [ReconciliationReport.Format: String] = [
            .json: "application/json", .csv: "text/csv; charset=utf-8", .html: "text/html; charset=utf-8",
        ]
        var headers = [("Content-Type", types[format]!), ("Cache-Control", "no-store")]
        if format == .html {
            headers.append(
                ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"))
        }
        if format == .csv {
            headers.append(("Content-Disposition", "attachment; filename=\"reconciliation-\(run.id).csv\""))
        }
        return HTTPResponse(
            status: 200, headers: headers, body: try ReconciliationReport.render(run, format: format, store: store))
    }

    /// `GET /admin/permission-creep?run=ID` (default: the latest finished run): per person,
    /// what they hold beyond their current packages, and break-glass in force.
    func permissionCreep(_ ctx: RequestContext) throws -> HTTPResponse {
        _ = try runs()
        let run: ReconciliationRunRecord?
        if let id = ctx.request.queryValue("run") {
            run = try store.read { try $0.reconciliationRun(id: id) }
            guard run != nil else { throw SCIMError.notFound("no reconciliation run with this id") }
        } else {
            run = try store.read { try $0.reconciliationRuns(limit: 50) }.first { $0.state == .done }
            guard run != nil else {
                throw SCIMError(
                    status: 409, detail: "no finished reconciliation run yet: POST /admin/reconciliations first")
            }
        }
        guard let r = run else { throw SCIMError.notFound("no reconciliation run") }
        let people = try ReconciliationReport.permissionCreep(r, store: store)
        return jsonResponse(
            200,
            .object(
                JSONObject([
                    "run": .string(r.id), "runFinished": r.finished.map { .string(Timestamp.format($0)) } ?? .null,
                    "people": .array(people),
                ])), contentType: "application/json")
    }

    func confirmReconciliation(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let r = try runs()
        // Refusals that need no code come first, so they do not use one up.
        guard let run = try store.read({ try $0.reconciliationRun(id: id) }) else {
            throw SCIMError.notFound("no reconciliation run with this id")
        }
        guard run.state == .awaitingConfirmation else {
            throw SCIMError(status: 409, detail: "the run is \(run.state), not awaiting confirmation")
        }
        try requireStepUp(ctx, action: "confirming a remediation")
        do {
            try r.confirm(id: id, principal: ctx.principal.name, requestID: ctx.requestID)
            return jsonResponse(202, .object(try r.status(id: id)), contentType: "application/json")
        } catch let e as ReconciliationRequestError {
            throw scim(e)
        }
    }
}

extension ReconciliationEndpoints {
    /// Reconciliation runs, their reports and permission creep.
    var routes: [Route] {
        [
            Route.make("GET", "/admin/permission-creep", .admin, query: ["run"]) { ctx, _ in
                try self.permissionCreep(ctx)
            },
            Route.make("GET", "/admin/reconciliations", .admin) { ctx, _ in try self.listReconciliations(ctx) },
            Route.make("POST", "/admin/reconciliations", .admin) { ctx, _ in try self.startReconciliation(ctx) },
            Route.make("GET", "/admin/reconciliations/{id}", .admin) { _, p in try self.reconciliationStatus(p[0])
            },
            Route.make("GET", "/admin/reconciliations/{id}/report", .admin, query: ["format"]) { ctx, p in
                try self.reconciliationReport(p[0], ctx)
            },
            Route.make("POST", "/admin/reconciliations/{id}/confirm", .admin) { ctx, p in
                try self.confirmReconciliation(p[0], ctx)
            },
            // The compliance officer's attestation: evidence, not a change to anyone's access,
            // so an auditor may give it.
            Route.make("POST", "/admin/reconciliations/{id}/sign-off", .anyOf([.auditor, .admin])) { ctx, p in
                try self.signOff(p[0], ctx)
            },
        ]
    }
}
