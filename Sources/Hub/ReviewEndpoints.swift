// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HTTPServer
import JSONCore
import Provisioning
import SCIM
import Store

/// Access review campaigns and the reviewers' decisions.
struct ReviewEndpoints: FeatureEndpoints {
    let hub: HubContext
    /// Access reviews, when a policy is configured.
    let reviews: AccessReviews?
}

/// Access reviews. Administrators create and follow campaigns under `/admin/reviews`;
/// reviewers (scope `review`) see and decide their own items under `/reviews`.
extension ReviewEndpoints {
    private func reviewService() throws -> AccessReviews {
        guard let r = reviews else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is nothing to review")
        }
        return r
    }

    /// `POST /admin/reviews` `{"name", "target" | "package", "reviewers"?: [...] (default: managers), "dueDays"?: 14,
    /// "defaultDecision": "approve"|"revoke"}`.
    func createReview(_ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        for k in body.keys where !["name", "target", "package", "reviewers", "dueDays", "defaultDecision"].contains(k) {
            throw SCIMError.invalidValue(
                "unknown key '\(k)' (name, target, package, reviewers, dueDays, defaultDecision)")
        }
        guard let name = body["name"]?.stringValue else { throw SCIMError.invalidValue("'name' is required") }
        guard
            let decision = body["defaultDecision"]?.stringValue
                ?? (body["defaultDecision"] == nil ? "keep-and-flag" : nil)
        else {
            throw SCIMError.invalidValue("'defaultDecision' must be keep-and-flag (the default), keep or revoke")
        }
        var reviewers: [String]? = nil
        if let v = body["reviewers"] {
            guard let arr = v.arrayValue else {
                throw SCIMError.invalidValue("'reviewers' must be an array of principal names")
            }
            reviewers = try arr.map { x throws -> String in
                guard let s = x.stringValue else {
                    throw SCIMError.invalidValue("'reviewers' must hold principal names")
                }
                do { try PrincipalName.validate(s, what: "each of 'reviewers'") } catch let e as PrincipalNameError {
                    throw SCIMError.invalidValue(e.description)
                }
                return s
            }
        }
        let due = body["dueDays"].map { $0.numberValue?.double ?? -1 } ?? 14
        do {
            let c = try service.create(
                AccessReviews.CampaignRequest(
                    name: name, target: body["target"]?.stringValue, package: body["package"]?.stringValue,
                    reviewers: reviewers, dueDays: due, defaultDecision: decision),
                principal: ctx.principal.name, requestID: ctx.requestID)
            let items = try store.read { try $0.items(campaignID: c.id) }
            return jsonResponse(
                201, .object(AccessReviews.describe(c, items: items)),
                headers: [("Location", "/admin/reviews/\(c.id)")], contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }

    func listReviews() throws -> HTTPResponse {
        _ = try reviewService()
        let list: [JSONValue] = try store.read { conn in
            try conn.campaigns(limit: 50).map {
                .object(AccessReviews.describe($0, items: try conn.items(campaignID: $0.id)))
            }
        }
        return jsonResponse(200, .object(JSONObject(["campaigns": .array(list)])), contentType: "application/json")
    }

    func reviewStatus(_ id: String) throws -> HTTPResponse {
        _ = try reviewService()
        guard
            let (c, items) = try store.read({ conn in
                try conn.campaign(id: id).map { ($0, try conn.items(campaignID: id)) }
            })
        else {
            throw SCIMError.notFound("no review campaign with this id")
        }
        var o = AccessReviews.describe(c, items: items)
        o["itemList"] = .array(items.map(AccessReviews.itemJSON))
        return jsonResponse(200, .object(o), contentType: "application/json")
    }

    /// `GET /admin/reviews/{id}/report?format=json|csv`: every item with its decision, reason and who decided.
    func reviewReport(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        _ = try reviewService()
        let format = ctx.request.queryValue("format") ?? "json"
        guard format == "json" || format == "csv" else { throw SCIMError.invalidValue("'format' must be json or csv") }
        guard
            let (c, items) = try store.read({ conn in
                try conn.campaign(id: id).map { ($0, try conn.items(campaignID: id)) }
            })
        else {
            throw SCIMError.notFound("no review campaign with this id")
        }
        if format == "csv" {
            return HTTPResponse(
                status: 200, headers: [("Content-Type", "text/csv; charset=utf-8"), ("Cache-Control", "no-store")],
                body: AccessReviews.csv(c, items: items))
        }
        var o = AccessReviews.describe(c, items: items)
        o["itemList"] = .array(items.map(AccessReviews.itemJSON))
        return jsonResponse(200, .object(o), contentType: "application/json")
    }

    /// `GET /reviews`: the caller's inbox across open campaigns: each campaign with items for
    /// them, how many and how many are still undecided (every item for an administrator).
    func inbox(_ ctx: RequestContext) throws -> HTTPResponse {
        _ = try reviewService()
        let p = ctx.principal
        let list: [JSONValue] = try store.read { conn in
            let people = try Tokens.people(conn, tokenID: p.tokenID)
            return try conn.campaigns(limit: 200).filter { $0.state == "open" || $0.state == "awaiting-confirmation" }
                .compactMap { c -> JSONValue? in
                    let items = try conn.items(campaignID: c.id)
                    let mine =
                        p.scopes.contains(.admin)
                        ? items : items.filter { AccessReviews.mayDecide(p, people: people, c, $0) }
                    guard !mine.isEmpty else { return nil }
                    return .object(
                        JSONObject([
                            "id": .string(c.id), "name": .string(c.name), "due": .string(Timestamp.format(c.due)),
                            "state": .string(c.state), "items": .int(mine.count),
                            "undecided": .int(mine.filter { $0.decision == nil }.count),
                        ]))
                }
        }
        return jsonResponse(200, .object(JSONObject(["campaigns": .array(list)])), contentType: "application/json")
    }

    /// `GET /reviews/{id}/items`: the caller's items (all of them for an administrator).
    func myItems(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        _ = try reviewService()
        guard
            let (c, items) = try store.read({ conn in
                try conn.campaign(id: id).map { ($0, try conn.items(campaignID: id)) }
            })
        else {
            throw SCIMError.notFound("no review campaign with this id")
        }
        let people = try store.read { try Tokens.people($0, tokenID: ctx.principal.tokenID) }
        let mine =
            ctx.principal.scopes.contains(.admin)
            ? items : items.filter { AccessReviews.mayDecide(ctx.principal, people: people, c, $0) }
        // Each item with what a reviewer needs to decide it (the package, the person, their peers).
        let context = try reviewService().context(for: mine)
        let described: [JSONValue] = mine.map { i in
            guard case .object(var o) = AccessReviews.itemJSON(i) else { return AccessReviews.itemJSON(i) }
            o["context"] = context[i.seq].map { .object($0) } ?? .null
            return .object(o)
        }
        return jsonResponse(
            200,
            .object(
                JSONObject([
                    "campaign": .string(c.id), "name": .string(c.name), "state": .string(c.state),
                    "due": .string(Timestamp.format(c.due)), "items": .array(described),
                ])),
            contentType: "application/json")
    }

    /// `POST /reviews/{id}/items/{seq}/decision` `{"decision": "approve"|"revoke", "reason": "..."}`.
    func decideItem(_ id: String, _ seq: Int64, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        for k in body.keys where k != "decision" && k != "reason" {
            throw SCIMError.invalidValue("unknown key '\(k)' (decision, reason)")
        }
        do {
            try service.decide(
                campaignID: id, seq: seq, decision: body["decision"]?.stringValue ?? "",
                reason: body["reason"]?.stringValue ?? "",
                principal: ctx.principal, requestID: ctx.requestID)
        } catch let e as GovernanceError {
            throw scimError(e)
        }
        guard let item = try store.read({ try $0.item(campaignID: id, seq: seq) }) else {
            throw SCIMError.notFound("no such item")
        }
        return jsonResponse(200, AccessReviews.itemJSON(item), contentType: "application/json")
    }

    /// `DELETE /admin/people/{id}/revocations/{package}`: lifts a review's revocation.
    func liftRevocation(person: String, package: String, _ ctx: RequestContext) throws -> HTTPResponse {
        do {
            try reviewService().lift(
                // the path is decoded once, by the server
                personID: person, package: package, principal: ctx.principal, requestID: ctx.requestID)
        } catch let e as GovernanceError {
            throw scimError(e)
        }
        return HTTPResponse(status: 204)
    }
}

extension ReviewEndpoints {
    /// `POST /admin/reviews/{id}/confirm` (step-up): applies the revokes a campaign's due
    /// date held because they were risky (someone left with no access, or too many people).
    func confirmReview(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        guard let reviews else {
            throw SCIMError(status: 409, detail: "no policy is loaded: there is nothing to review")
        }
        guard try store.read({ try $0.campaign(id: id) }) != nil else {
            throw SCIMError.notFound("no review campaign with this id")
        }
        try requireStepUp(ctx, action: "confirming a review's revokes")
        do {
            let n = try reviews.confirmOverdue(campaignID: id, principal: ctx.principal.name, requestID: ctx.requestID)
            return jsonResponse(
                200, .object(JSONObject(["id": .string(id), "state": .string("closed"), "revoked": .int(n)])),
                contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }
}

extension ReviewEndpoints {
    /// Runs a governance call, its refusals as SCIM errors.
    private func governed<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as GovernanceError { throw scimError(e) }
    }

    private func keys(_ body: JSONObject, _ allowed: [String]) throws {
        for k in body.keys where !allowed.contains(k) {
            throw SCIMError.invalidValue("unknown key '\(k.prefix(64))' (\(allowed.joined(separator: ", ")))")
        }
    }

    /// `POST /admin/reviews/{id}/cancel`: nothing more is decided or applied.
    func cancelReview(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        try governed { try service.cancel(campaignID: id, principal: ctx.principal.name, requestID: ctx.requestID) }
        return jsonResponse(
            200, .object(JSONObject(["id": .string(id), "state": .string("cancelled")])),
            contentType: "application/json")
    }

    /// `POST /admin/reviews/{id}/extend` `{"dueDays": N}`: the due date moves N days from now.
    func extendReview(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        try keys(body, ["dueDays"])
        guard let days = body["dueDays"]?.numberValue?.double else {
            throw SCIMError.invalidValue("'dueDays' is required")
        }
        let due = try governed {
            try service.extend(campaignID: id, days: days, principal: ctx.principal.name, requestID: ctx.requestID)
        }
        return jsonResponse(
            200, .object(JSONObject(["id": .string(id), "due": .string(Timestamp.format(due))])),
            contentType: "application/json")
    }

    /// `POST /admin/reviews/{id}/items/{seq}/reassign` `{"reviewer": "name"}`.
    func reassign(_ id: String, _ seq: Int64, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        try keys(body, ["reviewer"])
        try governed {
            try service.reassign(
                campaignID: id, seq: seq, reviewer: body["reviewer"]?.stringValue ?? "", principal: ctx.principal.name,
                requestID: ctx.requestID)
        }
        guard let item = try store.read({ try $0.item(campaignID: id, seq: seq) }) else {
            throw SCIMError.notFound("no such item")
        }
        return jsonResponse(200, AccessReviews.itemJSON(item), contentType: "application/json")
    }

    /// `POST /reviews/{id}/items/{seq}/delegate` `{"to": "principal", "reason": "..."}`: the
    /// item's reviewer hands it on.
    func delegate(_ id: String, _ seq: Int64, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        try keys(body, ["to", "reason"])
        guard let to = body["to"]?.stringValue else {
            throw SCIMError.invalidValue("'to' is required: a principal name")
        }
        let item = try governed {
            try service.delegate(
                campaignID: id, seq: seq, to: to, reason: body["reason"]?.stringValue ?? "", principal: ctx.principal,
                requestID: ctx.requestID)
        }
        return jsonResponse(200, AccessReviews.itemJSON(item), contentType: "application/json")
    }

    /// `POST /reviews/{id}/decisions` `{"items": [seq, ...], "decision", "reason"}`: one
    /// decision and reason for many items (at most 1,000). Each item is decided on its own;
    /// the answer lists each one's result.
    func decideMany(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let service = try reviewService()
        let body = try jsonBody(ctx.request)
        try keys(body, ["items", "decision", "reason"])
        guard let list = body["items"]?.arrayValue, !list.isEmpty, list.count <= 1000 else {
            throw SCIMError.invalidValue("'items' must be an array of 1 to 1,000 item numbers")
        }
        let seqs = try list.map { v throws -> Int64 in
            guard let n = v.numberValue?.int64, n > 0 else {
                throw SCIMError.invalidValue("'items' must hold item numbers")
            }
            return n
        }
        var results: [JSONValue] = []
        var decided = 0
        for seq in seqs {
            do {
                try service.decide(
                    campaignID: id, seq: seq, decision: body["decision"]?.stringValue ?? "",
                    reason: body["reason"]?.stringValue ?? "", principal: ctx.principal, requestID: ctx.requestID)
                decided += 1
                results.append(.object(JSONObject(["seq": .int(Int(seq)), "status": .int(200)])))
            } catch let e as GovernanceError {
                let s = scimError(e)
                // A bad decision or reason is the same for every item: refuse the request at the first.
                if case .invalid = e, decided == 0 { throw s }
                results.append(
                    .object(JSONObject(["seq": .int(Int(seq)), "status": .int(s.status), "detail": .string(s.detail)])))
            }
        }
        return jsonResponse(
            200, .object(JSONObject(["decided": .int(decided), "results": .array(results)])),
            contentType: "application/json")
    }
}

extension ReviewEndpoints {
    /// Access review campaigns (admins) and reviewers' own items.
    var routes: [Route] {
        [
            Route.make("DELETE", "/admin/people/{id}/revocations/{package}", .admin) { ctx, p in
                try self.liftRevocation(person: p[0], package: p[1], ctx)
            },
            Route.make("GET", "/admin/reviews", .admin) { _, _ in try self.listReviews() },
            Route.make("POST", "/admin/reviews", .admin) { ctx, _ in try self.createReview(ctx) },
            Route.make("POST", "/admin/reviews/{id}/confirm", .admin) { ctx, p in try self.confirmReview(p[0], ctx) },
            Route.make("POST", "/admin/reviews/{id}/cancel", .admin) { ctx, p in try self.cancelReview(p[0], ctx) },
            Route.make("POST", "/admin/reviews/{id}/extend", .admin) { ctx, p in try self.extendReview(p[0], ctx) },
            Route.make("POST", "/admin/reviews/{id}/items/{seq}/reassign", .admin) { ctx, p in
                guard let seq = Int64(p[1]), seq > 0 else { throw SCIMError.notFound("no such item") }
                return try self.reassign(p[0], seq, ctx)
            },
            Route.make("POST", "/reviews/{id}/decisions", .anyOf([.review, .admin])) { ctx, p in
                try self.decideMany(p[0], ctx)
            },
            Route.make("GET", "/admin/reviews/{id}", .admin) { _, p in try self.reviewStatus(p[0]) },
            Route.make("GET", "/admin/reviews/{id}/report", .admin, query: ["format"]) { ctx, p in
                try self.reviewReport(p[0], ctx)
            },
            Route.make("GET", "/reviews", .anyOf([.review, .admin])) { ctx, _ in try self.inbox(ctx) },
            Route.make("GET", "/reviews/{id}/items", .anyOf([.review, .admin])) { ctx, p in
                try self.myItems(p[0], ctx)
            },
            Route.make("POST", "/reviews/{id}/items/{seq}/decision", .anyOf([.review, .admin])) { ctx, p in
                guard let seq = Int64(p[1]), seq > 0 else { throw SCIMError.notFound("no such item") }
                return try self.decideItem(p[0], seq, ctx)
            },
            Route.make("POST", "/reviews/{id}/items/{seq}/delegate", .anyOf([.review, .admin])) { ctx, p in
                guard let seq = Int64(p[1]), seq > 0 else { throw SCIMError.notFound("no such item") }
                return try self.delegate(p[0], seq, ctx)
            },
        ]
    }
}
