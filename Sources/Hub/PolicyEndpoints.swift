// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import HubBase
import HubCrypto
import JSONCore
import Provisioning
import SCIM
import Store

/// The policy's versions, a preview of a candidate policy, and the confirmation of a
/// rollout the change guard held.
struct PolicyEndpoints: FeatureEndpoints {
    let hub: HubContext
    /// Connector types this build offers: a candidate naming another is refused.
    let connectorTypes: Set<String>
    /// One `PUT /admin/policy` at a time: a second one meanwhile gets 409.
    let applying = ApplyLock()

    final class ApplyLock: Sendable {
        let busy = Atomic<Bool>(false)
        /// One preview at a time: each reads every person.
        let previewing = Atomic<Bool>(false)
    }

    var routes: [Route] {
        [
            Route.make("GET", "/admin/policy", .admin) { _, _ in try current() },
            Route.make("GET", "/admin/policy/versions", .admin, query: ["count"]) { ctx, _ in try versions(ctx) },
            Route.make("PUT", "/admin/policy", .admin) { ctx, _ in try apply(ctx) },
            Route.make("POST", "/admin/policy/preview", .admin, query: ["format"]) { ctx, _ in try preview(ctx) },
            Route.make("POST", "/admin/policy/versions/{v}/confirm", .admin) { ctx, p in try confirm(p[0], ctx) },
        ]
    }

    private func loadedEngine() throws -> ProvisioningEngine {
        guard let engine else { throw SCIMError(status: 409, detail: "no policy is loaded") }
        return engine
    }

    private static func describe(_ v: PolicyVersion) -> JSONObject {
        JSONObject([
            "version": .number(JSONNumber(Int(v.version))), "hash": .string(v.hash), "author": .string(v.author),
            "created": .string(Timestamp.format(v.created)), "state": .string(v.state.rawValue),
            "heldReason": v.heldReason.map { .string($0) } ?? .null,
            "confirmedBy": v.confirmedBy.map { .string($0) } ?? .null,
            "rolledOut": v.rolledOut.map { .string(Timestamp.format($0)) } ?? .null,
        ])
    }

    /// `GET /admin/policy`: the version the hub runs, with its text (secret references only).
    func current() throws -> HTTPResponse {
        guard let v = try store.read({ try $0.latestPolicyVersion() }) else {
            throw SCIMError.notFound("no policy version is stored (the hub runs without a policy)")
        }
        var o = Self.describe(v)
        o["policy"] = (try? JSONParser().parse(v.text)) ?? .null
        return jsonResponse(200, .object(o), contentType: "application/json")
    }

    /// `GET /admin/policy/versions?count=`: newest first.
    func versions(_ ctx: RequestContext) throws -> HTTPResponse {
        let text = ctx.request.queryValue("count") ?? "50"
        guard let n = Int(text), n >= 1, n <= 1000 else { throw SCIMError.invalidValue("'count' must be 1 to 1000") }
        let list = try store.read { try $0.policyVersions(limit: n) }
        return jsonResponse(
            200, .object(JSONObject(["versions": .array(list.map { .object(Self.describe($0)) })])),
            contentType: "application/json")
    }

    /// `POST /admin/policy/preview[?format=csv]` with a candidate policy as the body: who
    /// would gain and lose what, against the stored people, and whether the change guard
    /// would hold it. Nothing is stored or queued; one audit entry records the preview.
    func preview(_ ctx: RequestContext) throws -> HTTPResponse {
        let engine = try loadedEngine()
        let format = ctx.request.queryValue("format") ?? "json"
        guard format == "json" || format == "csv" else { throw SCIMError.invalidValue("'format' must be json or csv") }
        let candidate = try candidate(ctx, resolveSecrets: false)
        guard applying.previewing.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw SCIMError(status: 409, detail: "another preview is running; retry when it is done")
        }
        defer { applying.previewing.store(false, ordering: .releasing) }
        let change = try PolicyChange.compute(
            store: store, current: engine.policy, candidate: candidate, now: engine.clock.now())
        let (principal, requestID) = (ctx.principal.name, ctx.requestID)
        let hash = hexString(Crypto.sha256(ctx.request.body))
        let counts = [
            "hash:\(hash.prefix(16))", "losing:\(change.losingAccess.count)", "gaining:\(change.gainingAccess.count)",
        ]
        try store.write { w in
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "policy.preview", resourceType: "Policy", resourceID: "candidate",
                    attributes: counts, requestID: requestID))
        }
        if format == "csv" {
            return HTTPResponse(
                status: 200, headers: [("Content-Type", "text/csv; charset=utf-8")], body: Array(change.csv().utf8))
        }
        var body = change.json(limit: config.policyChangeLimit)
        body["candidateHash"] = .string(hash)
        if let v = try store.read({ try $0.latestPolicyVersion() }) {
            body["currentVersion"] = .number(JSONNumber(Int(v.version)))
        }
        return jsonResponse(200, .object(body), contentType: "application/json")
    }

    /// A candidate policy from a request body, or 400 naming what is wrong with it. With
    /// `resolveSecrets: false` (a preview), secret files are not read: a candidate cannot make
    /// the hub read an arbitrary file, and the preview needs no secret.
    private func candidate(_ ctx: RequestContext, resolveSecrets: Bool) throws -> Policy {
        _ = try jsonBody(ctx.request)  // media type, size and JSON checked like every body
        do {
            return resolveSecrets
                ? try parse(ctx.request.body)
                : try Policy.parse(
                    ctx.request.body, userType: userType, knownTypes: connectorTypes, readFile: { _ in "not-read" })
        } catch let e as PolicyError {
            throw SCIMError.invalidValue(e.description)
        }
    }

    /// Parses a stored or applied policy text as the hub runs it.
    func parse(_ text: [UInt8]) throws -> Policy {
        try Policy.parse(text, userType: userType, knownTypes: connectorTypes)
    }

    /// Runs `body` holding the apply lock: one apply or confirmation at a time, else 409.
    private func exclusively<T>(_ body: () throws -> T) throws -> T {
        guard applying.busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            throw SCIMError(status: 409, detail: "another policy is being applied or confirmed; retry when it is done")
        }
        defer { applying.busy.store(false, ordering: .releasing) }
        return try body()
    }

    /// `PUT /admin/policy` (step-up) with the new policy as the body: the next version, in
    /// force at once and written to the policy file; the people it changes are queued, or the
    /// rollout is held (202) when it would take access from more people than the limit.
    func apply(_ ctx: RequestContext) throws -> HTTPResponse {
        let engine = try loadedEngine()
        // Busy: refused before the step-up code is spent. Step-up before parsing: the body
        // names secret files the hub reads.
        guard !applying.busy.load(ordering: .acquiring) else {
            throw SCIMError(status: 409, detail: "another policy is being applied or confirmed; retry when it is done")
        }
        try requireStepUp(ctx, action: "applying a policy")
        let candidate = try candidate(ctx, resolveSecrets: true)
        let result = try exclusively { () throws -> (version: PolicyVersion, queued: Int, fileError: String?) in
            do {
                return try PolicyRollout.apply(
                    text: ctx.request.body, candidate: candidate, principal: ctx.principal.name,
                    requestID: ctx.requestID, engine: engine, store: store, limit: config.policyChangeLimit,
                    policyFile: config.policyFile, logger: logger)
            } catch let e as GovernanceError {
                throw scimError(e)
            }
        }
        var body = Self.describe(result.version)
        body["queued"] = .int(result.queued)
        if let e = result.fileError { body["policyFileError"] = .string(e) }
        return jsonResponse(result.version.state == .held ? 202 : 200, .object(body), contentType: "application/json")
    }

    /// `POST /admin/policy/versions/{v}/confirm` (step-up): rolls out a held version.
    func confirm(_ text: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let engine = try loadedEngine()
        guard let v = Int64(text), v > 0 else { throw SCIMError.notFound("no policy version \(text.prefix(20))") }
        guard try store.read({ try $0.policyVersion(v) }) != nil else {
            throw SCIMError.notFound("no policy version \(v)")
        }
        try requireStepUp(ctx, action: "confirming a held policy rollout")
        let queued = try exclusively { () throws -> Int in
            do {
                return try PolicyRollout.confirm(
                    v, principal: ctx.principal.name, requestID: ctx.requestID, engine: engine, store: store,
                    logger: logger, parse: parse)
            } catch let e as GovernanceError {
                throw scimError(e)
            }
        }
        return jsonResponse(
            200,
            .object(
                JSONObject(["version": .number(JSONNumber(Int(v))), "state": .string("active"), "queued": .int(queued)])
            ),
            contentType: "application/json")
    }
}
