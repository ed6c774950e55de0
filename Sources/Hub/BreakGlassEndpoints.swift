// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import JSONCore
import Provisioning
import SCIM
import Store

/// Break-glass grants and their post-use reviews.
struct BreakGlassEndpoints: FeatureEndpoints {
    let hub: HubContext
    /// Break-glass grants, when a policy is configured.
    let breakGlass: BreakGlass?
    /// Access reviews (a post-use review may lift a revocation).
    let reviews: AccessReviews?
}

/// Break-glass: `POST /admin/break-glass` (scope `break-glass`) grants; administrators list
/// grants and close their post-use reviews.
extension BreakGlassEndpoints {
    private func breakGlassService() throws -> BreakGlass {
        guard let b = breakGlass else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is no package to grant")
        }
        return b
    }

    /// `{"personId", "package", "reason", "hours"?}` → 201 with the grant.
    func grantBreakGlass(_ ctx: RequestContext) throws -> HTTPResponse {
        let service = try breakGlassService()
        let body = try jsonBody(ctx.request)
        for k in body.keys where !["personId", "userName", "package", "reason", "hours"].contains(k) {
            throw SCIMError.invalidValue("unknown key '\(k)' (personId or userName, package, reason, hours)")
        }
        // The on-call clinician knows a colleague's user name, not their id.
        var person = body["personId"]?.stringValue ?? ""
        if person.isEmpty, let name = body["userName"]?.stringValue, !name.isEmpty {
            person = try store.read { try People.user($0, userName: name)?.id } ?? ""
            guard !person.isEmpty else { throw SCIMError.notFound("no person with this user name") }
        }
        guard !person.isEmpty else { throw SCIMError.invalidValue("'personId' or 'userName' is required") }
        guard let package = body["package"]?.stringValue else { throw SCIMError.invalidValue("'package' is required") }
        guard let reason = body["reason"]?.stringValue else { throw SCIMError.invalidValue("'reason' is required") }
        var hours: Double? = nil
        if let h = body["hours"] {
            guard let n = h.numberValue?.double else { throw SCIMError.invalidValue("'hours' must be a number") }
            hours = n
        }
        do {
            let g = try service.grant(
                personID: person, package: package, reason: reason, hours: hours, principal: ctx.principal,
                requestID: ctx.requestID
            ) {
                try self.requireStepUp(ctx, action: "a break-glass grant")
            }
            return jsonResponse(201, BreakGlass.json(g), contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }

    /// `POST /admin/break-glass/{id}/end`: the emergency is over before the grant's time.
    func endBreakGlass(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try breakGlassService()
        do {
            let g = try service.endEarly(id: id, principal: ctx.principal, requestID: ctx.requestID)
            return jsonResponse(200, BreakGlass.json(g), contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }

    /// `GET /admin/break-glass?state=active|pending-review|reviewed`.
    func listBreakGlass(_ ctx: RequestContext) throws -> HTTPResponse {
        _ = try breakGlassService()
        let state = ctx.request.queryValue("state")
        if let s = state, !["active", "pending-review", "reviewed"].contains(s) {
            throw SCIMError.invalidValue("'state' must be active, pending-review or reviewed")
        }
        let grants = try store.read { try $0.breakGlassGrants(state: state, limit: 500) }
        return jsonResponse(
            200, .object(JSONObject(["grants": .array(grants.map { BreakGlass.json($0) })])),
            contentType: "application/json")
    }

    /// `POST /admin/break-glass/{id}/review` `{"decision": "justified"|"unjustified", "reason"}`.
    func reviewBreakGlass(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try breakGlassService()
        let body = try jsonBody(ctx.request)
        do {
            try service.review(
                id: id, decision: body["decision"]?.stringValue ?? "", reason: body["reason"]?.stringValue ?? "",
                principal: ctx.principal, requestID: ctx.requestID)
        } catch let e as GovernanceError {
            throw scimError(e)
        }
        guard let g = try store.read({ try $0.breakGlass(id: id) }) else {
            throw SCIMError.notFound("no break-glass grant with this id")
        }
        return jsonResponse(200, BreakGlass.json(g), contentType: "application/json")
    }
}

extension BreakGlassEndpoints {
    /// Break-glass grants and their reviews. Granting has its own scope: an admin token alone cannot.
    var routes: [Route] {
        [
            // The on-call clinician sees the grants in force too.
            Route.make("GET", "/admin/break-glass", .anyOf([.admin, .breakGlass]), query: ["state"]) { ctx, _ in
                try self.listBreakGlass(ctx)
            },
            Route.make("POST", "/admin/break-glass/{id}/end", .anyOf([.admin, .breakGlass])) { ctx, p in
                try self.endBreakGlass(p[0], ctx)
            },
            Route.make("POST", "/admin/break-glass", .anyOf([.breakGlass])) { ctx, _ in
                try self.grantBreakGlass(ctx)
            },
            Route.make("POST", "/admin/break-glass/{id}/review", .admin) { ctx, p in
                try self.reviewBreakGlass(p[0], ctx)
            },
        ]
    }
}
