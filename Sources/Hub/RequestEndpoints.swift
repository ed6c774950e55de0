// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import JSONCore
import Provisioning
import SCIM
import Store

/// Access requests (scope `request`: people asking for packages and approving what is
/// assigned to them; `admin` sees and decides everything) and separation-of-duties exceptions.
struct RequestEndpoints: FeatureEndpoints {
    let hub: HubContext
    let requests: AccessRequests?
    let exceptions: SoDExceptions?
}

extension RequestEndpoints {
    private func service() throws -> AccessRequests {
        guard let r = requests else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is no package to request")
        }
        return r
    }

    /// Runs a governance call, mapping its refusals to SCIM errors.
    private func governed<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as GovernanceError { throw scimError(e) }
    }

    /// Checks the body's keys and reads an optional string member.
    private func body(_ ctx: RequestContext, keys: [String]) throws -> JSONObject {
        let o = try jsonBody(ctx.request)
        for k in o.keys where !keys.contains(k) {
            throw SCIMError.invalidValue("unknown key '\(k)' (\(keys.joined(separator: ", ")))")
        }
        for k in o.keys where k != "days" && o[k]?.stringValue == nil {
            throw SCIMError.invalidValue("'\(k)' must be a string")
        }
        return o
    }

    private func days(_ o: JSONObject) throws -> Double? {
        guard let v = o["days"] else { return nil }
        guard let d = v.numberValue?.double, d.isFinite else { throw SCIMError.invalidValue("'days' must be a number") }
        return d
    }

    private func ok(_ status: Int, _ r: AccessRequestRecord) -> HTTPResponse {
        jsonResponse(status, AccessRequests.json(r), contentType: "application/json")
    }

    /// `{"package", "justification", "days"?, "for"?, "sodReason"?}` → 201 with the request.
    func submit(_ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        let o = try body(ctx, keys: ["package", "justification", "days", "for", "sodReason"])
        guard let package = o["package"]?.stringValue, !package.isEmpty else {
            throw SCIMError.invalidValue("'package' is required")
        }
        let submission = AccessRequests.Submission(
            package: package, justification: o["justification"]?.stringValue ?? "", days: try days(o),
            beneficiary: o["for"]?.stringValue, sodReason: o["sodReason"]?.stringValue)
        return ok(201, try governed { try s.submit(submission, principal: ctx.principal, requestID: ctx.requestID) })
    }

    /// `GET /admin/requests/packages`: what may be requested, on what terms (for the request form).
    func packages(_ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        let list: [JSONValue] = s.policy.packages.compactMap { p in
            guard let t = p.requestable else { return nil }
            return .object(
                JSONObject([
                    "name": .string(p.name), "description": .string(p.description),
                    "maxDays": .number(JSONNumber(t.maxDays)), "extension": .bool(t.extensionAllowed),
                    "justificationRequired": .bool(t.justificationRequired),
                    "approval": .array(
                        t.approval.map {
                            switch $0 {
                            case .manager: return .string("manager")
                            case .group(let g): return .string("group:" + g)
                            }
                        }),
                ]))
        }
        return jsonResponse(200, .object(JSONObject(["packages": .array(list)])), contentType: "application/json")
    }

    /// `GET /admin/requests?state=…&awaiting=me`.
    func list(_ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        var state: RequestState? = nil
        if let v = ctx.request.queryValue("state") {
            guard RequestState.all.contains(RequestState(rawValue: v)) else {
                throw SCIMError.invalidValue(
                    "'state' must be one of \(RequestState.all.map(\.rawValue).joined(separator: ", "))")
            }
            state = RequestState(rawValue: v)
        }
        let awaiting = ctx.request.queryValue("awaiting")
        guard awaiting == nil || awaiting == "me" else { throw SCIMError.invalidValue("'awaiting' must be 'me'") }
        let list = try s.visible(to: ctx.principal, state: state, awaiting: awaiting != nil)
        return jsonResponse(
            200, .object(JSONObject(["requests": .array(list.map(AccessRequests.json))])),
            contentType: "application/json")
    }

    func show(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        // Only requests the caller may see: a stranger's request is as absent as a missing one.
        guard let r = try store.read({ try $0.accessRequest(id: id) }), try s.mayView(r, ctx.principal) else {
            throw SCIMError.notFound("no access request with this id")
        }
        return ok(200, r)
    }

    /// approve, deny, cancel, end: `{"reason"}`.
    func decide(_ id: String, _ action: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        let o = try body(ctx, keys: ["reason"])
        let reason = o["reason"]?.stringValue ?? ""
        let (p, rid) = (ctx.principal, ctx.requestID)
        let r = try governed { () throws -> AccessRequestRecord in
            switch action {
            case "approve": return try s.approve(id: id, reason: reason, principal: p, requestID: rid)
            case "deny": return try s.deny(id: id, reason: reason, principal: p, requestID: rid)
            case "cancel": return try s.cancel(id: id, reason: reason, principal: p, requestID: rid)
            default: return try s.end(id: id, reason: reason, principal: p, requestID: rid)
            }
        }
        return ok(200, r)
    }

    /// `{"days"?, "justification"}` → 201 with the extension request.
    func extend(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let s = try service()
        let o = try body(ctx, keys: ["days", "justification", "sodReason"])
        let r = try governed {
            try s.extend(
                id: id, days: try days(o), justification: o["justification"]?.stringValue ?? "",
                sodReason: o["sodReason"]?.stringValue, principal: ctx.principal, requestID: ctx.requestID)
        }
        return ok(201, r)
    }

    // MARK: - Separation-of-duties exceptions

    private func exceptionService() throws -> SoDExceptions {
        guard let e = exceptions else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is no separation-of-duties rule")
        }
        return e
    }

    /// `{"rule", "person", "owner", "reason", "days"}` (admin + step-up) → 201.
    func grantException(_ ctx: RequestContext) throws -> HTTPResponse {
        let s = try exceptionService()
        let o = try body(ctx, keys: ["rule", "person", "owner", "reason", "days"])
        for k in ["rule", "person", "owner", "reason"] where (o[k]?.stringValue ?? "").isEmpty {
            throw SCIMError.invalidValue("'\(k)' is required")
        }
        guard let d = try days(o) else { throw SCIMError.invalidValue("'days' is required") }
        let e = try governed {
            try s.grant(
                rule: o["rule"]?.stringValue ?? "", person: o["person"]?.stringValue ?? "",
                owner: o["owner"]?.stringValue ?? "", reason: o["reason"]?.stringValue ?? "", days: d,
                principal: ctx.principal, requestID: ctx.requestID
            ) { try self.requireStepUp(ctx, action: "a separation-of-duties exception") }
        }
        return jsonResponse(
            201, SoDExceptions.json(e, now: s.clock.now()), contentType: "application/json")
    }

    func listExceptions(_ ctx: RequestContext) throws -> HTTPResponse {
        _ = try exceptionService()
        let state = ctx.request.queryValue("state")
        guard state == nil || state == "active" else { throw SCIMError.invalidValue("'state' must be 'active'") }
        let list = try store.read { try $0.sodExceptions(activeOnly: state != nil, limit: 500) }
        let now = try exceptionService().clock.now()
        return jsonResponse(
            200, .object(JSONObject(["exceptions": .array(list.map { SoDExceptions.json($0, now: now) })])),
            contentType: "application/json")
    }

    func endException(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let s = try exceptionService()
        let e = try governed { try s.end(id: id, principal: ctx.principal, requestID: ctx.requestID) }
        return jsonResponse(
            200, SoDExceptions.json(e, now: s.clock.now()), contentType: "application/json")
    }
}

extension RequestEndpoints {
    var routes: [Route] {
        let people = RouteAccess.anyOf([.request, .admin])
        return [
            Route.make("POST", "/admin/requests", people) { ctx, _ in try self.submit(ctx) },
            Route.make("GET", "/admin/requests", people, query: ["state", "awaiting"]) { ctx, _ in
                try self.list(ctx)
            },
            Route.make("GET", "/admin/requests/packages", people) { ctx, _ in try self.packages(ctx) },
            Route.make("GET", "/admin/requests/{id}", people) { ctx, p in try self.show(p[0], ctx) },
            Route.make("POST", "/admin/requests/{id}/approve", people) { ctx, p in
                try self.decide(p[0], "approve", ctx)
            },
            Route.make("POST", "/admin/requests/{id}/deny", people) { ctx, p in try self.decide(p[0], "deny", ctx) },
            Route.make("POST", "/admin/requests/{id}/cancel", people) { ctx, p in
                try self.decide(p[0], "cancel", ctx)
            },
            Route.make("POST", "/admin/requests/{id}/end", people) { ctx, p in try self.decide(p[0], "end", ctx) },
            Route.make("POST", "/admin/requests/{id}/extend", people) { ctx, p in try self.extend(p[0], ctx) },
            Route.make("GET", "/admin/sod/exceptions", .admin, query: ["state"]) { ctx, _ in
                try self.listExceptions(ctx)
            },
            Route.make("POST", "/admin/sod/exceptions", .admin) { ctx, _ in try self.grantException(ctx) },
            Route.make("POST", "/admin/sod/exceptions/{id}/end", .admin) { ctx, p in
                try self.endException(p[0], ctx)
            },
        ]
    }
}
