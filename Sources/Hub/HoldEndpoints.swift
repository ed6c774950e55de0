// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import JSONCore
import Provisioning
import SCIM
import Store

/// Feed holds: removals a feed's guard keeps until an administrator releases (they run) or
/// discards them (the people are judged again from their current state).
struct HoldEndpoints: FeatureEndpoints {
    let hub: HubContext

    var routes: [Route] {
        [
            Route.make("GET", "/admin/holds", .admin) { _, _ in try list() },
            Route.make("GET", "/admin/holds/{id}", .admin) { _, p in try show(p[0]) },
            Route.make("POST", "/admin/holds/{id}/release", .admin) { ctx, p in try release(p[0], ctx) },
            Route.make("POST", "/admin/holds/{id}/discard", .admin) { ctx, p in try discard(p[0], ctx) },
        ]
    }

    private func loadedEngine() throws -> ProvisioningEngine {
        guard let engine else { throw SCIMError(status: 409, detail: "no policy is loaded") }
        return engine
    }

    /// A hold with how many people it keeps and, for an open one, their user names (the first 500).
    private func describe(_ h: HoldRecord, _ conn: any StoreSession) throws -> JSONValue {
        let people = try conn.heldPeople(holdID: h.id)
        var names: [JSONValue] = []
        for id in people.prefix(500) {
            let userName = try conn.fetch(type: .user, id: id)?.doc["userName"] ?? .null
            names.append(.object(JSONObject(["id": .string(id), "userName": userName])))
        }
        return .object(
            JSONObject([
                "id": .string(h.id), "feed": .string(h.feed), "state": .string(h.state.rawValue),
                "created": .string(Timestamp.format(h.created)), "reason": .string(h.reason),
                "people": .int(people.count), "held": .array(names),
                "decidedBy": h.decidedBy.map { .string($0) } ?? .null,
                "decided": h.decided.map { .string(Timestamp.format($0)) } ?? .null,
            ]))
    }

    /// `GET /admin/holds`: newest first.
    func list() throws -> HTTPResponse {
        let items = try store.read { conn in try conn.holds(limit: 200).map { try describe($0, conn) } }
        return jsonResponse(200, .object(JSONObject(["holds": .array(items)])), contentType: "application/json")
    }

    func show(_ id: String) throws -> HTTPResponse {
        let item = try store.read { conn in try conn.hold(id: id).map { try describe($0, conn) } }
        guard let item else { throw SCIMError.notFound("no hold \(id.prefix(64))") }
        return jsonResponse(200, item, contentType: "application/json")
    }

    /// `POST /admin/holds/{id}/release` (step-up): the held removals run now.
    func release(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let engine = try loadedEngine()
        guard try store.read({ try $0.hold(id: id) }) != nil else {
            throw SCIMError.notFound("no hold \(id.prefix(64))")
        }
        try requireStepUp(ctx, action: "releasing a feed hold")
        do {
            let n = try FeedHolds.release(id, by: ctx.principal, requestID: ctx.requestID, engine: engine, store: store)
            return jsonResponse(
                200, .object(JSONObject(["id": .string(id), "state": .string("released"), "jobs": .int(n)])),
                contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }

    /// `POST /admin/holds/{id}/discard` (step-up): the held removals are dropped and each
    /// person is judged again from their current state, through the guard.
    func discard(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let engine = try loadedEngine()
        guard try store.read({ try $0.hold(id: id) }) != nil else {
            throw SCIMError.notFound("no hold \(id.prefix(64))")
        }
        try requireStepUp(ctx, action: "discarding a feed hold")
        do {
            let n = try FeedHolds.discard(
                id, by: ctx.principal, requestID: ctx.requestID, engine: engine, store: store)
            return jsonResponse(
                200, .object(JSONObject(["id": .string(id), "state": .string("discarded"), "people": .int(n)])),
                contentType: "application/json")
        } catch let e as GovernanceError {
            throw scimError(e)
        }
    }
}
