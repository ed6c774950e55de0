// SPDX-License-Identifier: Apache-2.0
import HubBase
import Foundation
import HTTPServer
import HubCrypto
import JSONCore
import Provisioning
import SCIM
import Store

/// SCIM (RFC 7644): Users and Groups (create, get, replace, patch, delete), lists and searches,
/// Bulk, and the discovery endpoints.
struct SCIMEndpoints: FeatureEndpoints {
    let hub: HubContext
}

/// A resource ready for the store: attributes, and a group's members kept apart.
typealias PreparedResource = (doc: JSONObject, members: [MemberRef])

/// `/Users` and `/Groups`: create, read, list, search, replace, patch, delete (RFC 7644 §3).
extension SCIMEndpoints {
    // MARK: - Create (RFC 7644 §3.3)

    func create(_ type: SCIMResourceType, _ ctx: RequestContext) throws -> HTTPResponse {
        let stored = try audited("create", type, id: "", ctx) {
            let prepared = try prepareForStorage(
                type, try ResourceNormalizer(type: type).normalize(try jsonBody(ctx.request)))
            return try store.write { w in try self.createInWriter(w, type, prepared, ctx) }
        }
        return try resourceResponse(201, stored, type, ctx, created: true)
    }

    /// The writer-side part of a create, shared with Bulk.
    func createInWriter(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ prepared: PreparedResource, _ ctx: RequestContext
    ) throws -> StoredResource {
        let id = UUIDv7.make()
        var written: [String] = []
        if type.name == "User" {
            written = ResourceNormalizer(type: type).changedAttributes(from: JSONObject(), to: prepared.doc)
            try feeds.check(ctx.principal.name, writes: written)
        } else {
            try feeds.checkGroup(ctx.principal.name, displayName: prepared.doc["displayName"]?.stringValue)
        }
        let r = try clientErrors {
            try w.connection.insert(
                type: type.kind, id: id, doc: prepared.doc, members: prepared.members, now: Timestamp.now())
        }
        if !written.isEmpty {
            try w.connection.recordAttributeSources(
                personID: id, attributes: written, principal: ctx.principal.name, now: Timestamp.now())
        }
        try AuditLog.append(
            w,
            .now(
                principal: ctx.principal.name, action: "create", resourceType: type.name, resourceID: id,
                attributes: attributeNames(prepared), requestID: ctx.requestID))
        try provision(
            w, type, id, doc: r.doc, members: prepared.members.map(\.id),
            groupNames: [r.doc["displayName"]?.stringValue],
            origin: ChangeOrigin(feed: ctx.principal.name, tokenID: ctx.principal.tokenID), created: true)
        return r
    }

    // MARK: - Read (RFC 7644 §3.4.1)

    func get(_ type: SCIMResourceType, _ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let projection = Projection(
            attributes: ctx.request.queryValue("attributes"),
            excludedAttributes: ctx.request.queryValue("excludedAttributes"), type: type)
        // A User and its computed groups need no snapshot: a membership is not part of the
        // User's version (its ETag), so reading it a statement later is as right as reading it
        // with the User, and on PostgreSQL that spares a transaction's two round trips (BEGIN,
        // COMMIT) per GET. A Group's members are part of its version: read in one snapshot.
        let result: (StoredResource, JSONObject)? = try store.read(snapshot: type.kind != .user) { conn in
            guard let r = try conn.fetch(type: type.kind, id: id) else { return nil }
            if Self.etagMatches(ctx.request.headers["If-None-Match"], r.etag) { return (r, JSONObject()) }
            return (r, try render(r, type, conn, projection, ctx.baseURL))
        }
        guard let (r, body) = result else { throw SCIMError.notFound("\(type.name) not found") }
        if Self.etagMatches(ctx.request.headers["If-None-Match"], r.etag) {
            return HTTPResponse(status: 304, headers: [("ETag", r.etag)])
        }
        return jsonResponse(200, .object(body), headers: [("ETag", r.etag)])
    }

    // MARK: - Replace (RFC 7644 §3.5.1)

    func replace(_ type: SCIMResourceType, _ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let stored = try audited("replace", type, id: id, ctx) {
            // Values the PUT repeats exactly as stored are kept without validating them again,
            // as for PATCH: a value stored before a rule tightened must not block a leaver's PUT.
            let body = try jsonBody(ctx.request)
            let current = try store.read(snapshot: false) { try $0.fetch(type: type.kind, id: id) }
            let prepared = try prepareForStorage(
                type, try ResourceNormalizer(type: type).normalize(body, stored: current?.doc))
            let ifMatch = ctx.request.headers["If-Match"]
            return try store.write { w in try self.replaceInWriter(w, type, id, prepared, ifMatch: ifMatch, ctx) }
        }
        return try resourceResponse(200, stored, type, ctx, created: false)
    }

    func replaceInWriter(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ id: String, _ prepared: PreparedResource, ifMatch: String?,
        _ ctx: RequestContext
    ) throws -> StoredResource {
        let cur = try fetchForUpdate(w, type, id, ifMatch: ifMatch, ctx)
        var doc =
            type.name == "User"
            ? feeds.merge(ctx.principal.name, stored: cur.doc, into: prepared.doc, type: type) : prepared.doc
        try Self.checkImmutable(type, old: cur.doc, new: doc)
        // A PUT without a password keeps the stored hash: writeOnly values are never sent back, so clients
        // cannot echo them.
        if doc["password"] == nil, let pw = cur.doc["password"] { doc["password"] = pw }
        return try commitChange(w, type, cur, doc, prepared.members, action: "replace", ctx)
    }

    // MARK: - Patch (RFC 7644 §3.5.2)

    func patch(_ type: SCIMResourceType, _ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let stored = try audited("patch", type, id: id, ctx) {
            let request = try hashingPasswords(PatchRequest(try jsonBody(ctx.request)), type)
            let ifMatch = ctx.request.headers["If-Match"]
            return try store.write { w in try self.patchInWriter(w, type, id, request, ifMatch: ifMatch, ctx) }
        }
        // RFC 7644 §3.5.2: 200 with the resource (interop: clients expect the body).
        return try resourceResponse(200, stored, type, ctx, created: false)
    }

    func patchInWriter(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ id: String, _ request: PatchRequest, ifMatch: String?,
        _ ctx: RequestContext
    ) throws -> StoredResource {
        let cur = try fetchForUpdate(w, type, id, ifMatch: ifMatch, ctx)
        var working = cur.doc
        let storedPassword = working["password"]
        working["password"] = nil
        var oldMembers: [MemberRef]? = nil
        if type.name == "Group" {
            let m = try w.connection.members(ofGroup: cur.seq)
            oldMembers = m
            if !m.isEmpty {
                working["members"] = .array(
                    m.map { ref in
                        var o = JSONObject(["value": .string(ref.id), "type": .string(ref.type)])
                        if let d = ref.display { o["display"] = .string(d) }
                        return .object(o)
                    })
            }
        }
        let prepared = try extractMembers(type, try request.apply(to: working, type: type))
        var doc = prepared.doc
        let touchesPassword = request.operations.contains { Self.targetsPassword($0, type) }
        if !touchesPassword, let pw = storedPassword { doc["password"] = pw }
        return try commitChange(w, type, cur, doc, prepared.members, oldMembers: oldMembers, action: "patch", ctx)
    }

    // MARK: - Delete (RFC 7644 §3.6)

    func delete(_ type: SCIMResourceType, _ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        let ifMatch = ctx.request.headers["If-Match"]
        try audited("delete", type, id: id, ctx) {
            try store.write { w in try self.deleteInWriter(w, type, id, ifMatch: ifMatch, ctx) }
        }
        return HTTPResponse(status: 204)
    }

    func deleteInWriter(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ id: String, ifMatch: String?, _ ctx: RequestContext
    ) throws {
        let cur = try fetchForUpdate(w, type, id, ifMatch: ifMatch, ctx)
        if type.name == "User" {
            // Deleting a person is for the feed that owns the identity (userName).
            try feeds.check(ctx.principal.name, writes: ["userName"])
            try w.connection.forgetAttributeSources(personID: id)
        }
        let formerMembers = type.name == "Group" ? try w.connection.members(ofGroup: cur.seq).map(\.id) : []
        try w.connection.delete(cur, now: Timestamp.now())
        try AuditLog.append(
            w,
            .now(
                principal: ctx.principal.name, action: "delete", resourceType: type.name, resourceID: id,
                requestID: ctx.requestID))
        try provision(
            w, type, id, doc: nil, members: formerMembers, groupNames: [cur.doc["displayName"]?.stringValue],
            origin: ChangeOrigin(feed: ctx.principal.name, tokenID: ctx.principal.tokenID))
    }

    // MARK: - Shared write steps

    /// Marks the downstream accounts this write may change (transactional outbox): the user
    /// itself, or the users whose group memberships changed.
    /// For a Group, `groupNames` are its names before and after the write: when the policy
    /// reads neither, its members' desired state cannot have changed, and the writer skips
    /// evaluating them (a 5,000-member ward group no longer holds every other write back).
    /// Queues the provisioning a change of `id` causes; `created`: inserted in this transaction.
    func provision(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ id: String, doc: JSONObject?, members: [String],
        groupNames: [String?], origin: ChangeOrigin, created: Bool = false
    ) throws {
        guard let engine else { return }
        // Whether a Group's members depend on it is a decision under the policy in force.
        try engine.adoptPolicyInForce(w)
        if type.name == "User" {
            try engine.enqueue(w, personID: id, person: doc, origin: origin, created: created)
            return
        }
        guard groupNames.contains(where: { engine.policy.grantsDepend(onGroupNamed: $0) }) else { return }
        // In id order: two writes locking the same people lock them in the same order, so they
        // wait for each other instead of deadlocking (PostgreSQL locks each one read).
        for m in Set(members).sorted() {
            guard let user = try w.connection.fetch(type: .user, id: m) else { continue }
            try engine.enqueue(w, personID: m, person: user.doc, origin: origin)
        }
    }

    /// The current resource for a replace, patch or delete: 404 when absent, 412 when
    /// `If-Match` names another version (RFC 7644 §3.14), 403 when the caller's feed does
    /// not own the Group (even a change that turns out to change nothing).
    func fetchForUpdate(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ id: String, ifMatch: String?, _ ctx: RequestContext
    ) throws -> StoredResource {
        guard let cur = try w.connection.fetch(type: type.kind, id: id) else {
            throw SCIMError.notFound("\(type.name) not found")
        }
        if type.name != "User" {
            try feeds.checkGroup(ctx.principal.name, displayName: cur.doc["displayName"]?.stringValue)
        }
        try Self.checkIfMatch(ifMatch, cur)
        return cur
    }

    /// Writes a changed resource and its audit entry; an unchanged one is left as it is
    /// (no new version), so a client re-sending the same state causes no churn.
    func commitChange(
        _ w: any StoreWriter, _ type: SCIMResourceType, _ cur: StoredResource, _ doc: JSONObject,
        _ members: [MemberRef],
        oldMembers: [MemberRef]? = nil, action: String, _ ctx: RequestContext
    ) throws -> StoredResource {
        var changed = ResourceNormalizer(type: type).changedAttributes(from: cur.doc, to: doc)
        var newMembers: [MemberRef]? = nil
        var affected: [String] = []
        if type.name == "Group" {
            let old = try oldMembers ?? w.connection.members(ofGroup: cur.seq)
            func keyed(_ ms: [MemberRef]) -> [String: String] {
                Dictionary(ms.map { ($0.id, $0.display ?? "") }, uniquingKeysWith: { a, _ in a })
            }
            if keyed(old) != keyed(members) {
                changed.append("members")
                newMembers = members
            }
            // Group-granted packages: joiners and leavers of the group, or everyone when it is renamed.
            let before = Set(old.map(\.id)), after = Set(members.map(\.id))
            affected =
                changed.contains("displayName") ? Array(before.union(after)) : Array(before.symmetricDifference(after))
        }
        if changed.isEmpty { return cur }
        if type.name != "User" && changed.contains("displayName") {
            // renamed: the new name too
            try feeds.checkGroup(ctx.principal.name, displayName: doc["displayName"]?.stringValue)
        }
        if type.name == "User" {
            try feeds.check(ctx.principal.name, writes: changed)
            try w.connection.recordAttributeSources(
                personID: cur.id, attributes: changed, principal: ctx.principal.name, now: Timestamp.now())
        }
        let updated = try clientErrors {
            try w.connection.update(cur, doc: doc, members: newMembers, now: Timestamp.now())
        }
        try AuditLog.append(
            w,
            .now(
                principal: ctx.principal.name, action: action, resourceType: type.name, resourceID: cur.id,
                attributes: changed, requestID: ctx.requestID))
        try provision(
            w, type, cur.id, doc: doc, members: affected,
            groupNames: [cur.doc["displayName"]?.stringValue, doc["displayName"]?.stringValue],
            origin: ChangeOrigin(feed: ctx.principal.name, tokenID: ctx.principal.tokenID))
        return updated
    }

    /// Runs a write; a client error is recorded in the audit log as a failed attempt before it is returned.
    func audited<T>(
        _ action: String, _ type: SCIMResourceType, id: String, _ ctx: RequestContext, _ body: () throws -> T
    ) throws -> T {
        do {
            let result = try body()
            engine?.wake()  // committed: jobs it enqueued may run now
            return result
        } catch let e as SCIMError {
            let entry = Self.failureEntry(e, action, type, id: id, ctx)
            _ = try? store.write { try AuditLog.append($0, entry) }
            throw e
        }
    }

    /// The audit entry for a rejected write.
    static func failureEntry(
        _ e: SCIMError, _ action: String, _ type: SCIMResourceType, id: String, _ ctx: RequestContext
    ) -> AuditEntry {
        let outcome = "failure \(e.status)" + (e.scimType.map { " \($0.rawValue)" } ?? "")
        return AuditEntry.now(
            principal: ctx.principal.name, action: action, resourceType: type.name, resourceID: id,
            requestID: ctx.requestID, outcome: outcome)
    }

    /// A normalised resource split into what the resources table stores and a group's members;
    /// a new password is hashed here, on the request's worker thread, not in the writer.
    func prepareForStorage(_ type: SCIMResourceType, _ normalized: JSONObject) throws -> PreparedResource {
        var doc = normalized
        if let pw = doc["password"]?.stringValue { doc["password"] = .string(PasswordHash.make(pw)) }
        return try extractMembers(type, doc)
    }

    func extractMembers(_ type: SCIMResourceType, _ normalized: JSONObject) throws -> PreparedResource {
        var doc = normalized
        guard type.name == "Group", let arr = doc["members"]?.arrayValue else { return (doc, []) }
        doc["members"] = nil
        var members: [MemberRef] = []
        for item in arr {
            guard let o = item.objectValue, let v = o["value"]?.stringValue, !v.isEmpty else {
                throw SCIMError.invalidValue("members.value is required")
            }
            members.append(MemberRef(id: v, type: o["type"]?.stringValue ?? "", display: o["display"]?.stringValue))
        }
        return (doc, members)
    }

    /// Audit names for a newly created resource: its top-level attributes, each extension
    /// by its URN (a create sets everything, so per-sub-attribute detail adds bytes, not facts).
    func attributeNames(_ prepared: PreparedResource) -> [String] {
        var names: [String] = []
        for m in prepared.doc.members where m.key != "schemas" { names.append(m.key) }
        if !prepared.members.isEmpty { names.append("members") }
        return names
    }

    /// Replaces password values in PATCH operations with their salted hashes.
    func hashingPasswords(_ request: PatchRequest, _ type: SCIMResourceType) throws -> PatchRequest {
        let ops = request.operations.map { op -> PatchOperation in
            if Self.targetsPassword(op, type), op.path != nil, let pw = op.value?.stringValue {
                return PatchOperation(op: op.op, path: op.path, value: .string(PasswordHash.make(pw)))
            }
            if op.path == nil, var o = op.value?.objectValue, let i = o.index(caseInsensitive: "password"),
                let pw = o.members[i].value.stringValue
            {
                o.members[i].value = .string(PasswordHash.make(pw))
                return PatchOperation(op: op.op, path: nil, value: .object(o))
            }
            return op
        }
        return PatchRequest(operations: ops)
    }

    static func targetsPassword(_ op: PatchOperation, _ type: SCIMResourceType) -> Bool {
        if let p = op.path {
            return (try? AttributePath.resolve(p, in: type))?.attribute.name == "password"
                && type.schema.attribute("password") != nil
        }
        return op.value?.objectValue?.index(caseInsensitive: "password") != nil
    }

    /// RFC 7643 §7: an immutable attribute that has a value may not change.
    static func checkImmutable(_ type: SCIMResourceType, old: JSONObject, new: JSONObject) throws {
        for a in type.schema.attributes where a.mutability == .immutable {
            if let o = old[a.name], new[a.name] != o { throw SCIMError.mutability("'\(a.name)' is immutable") }
        }
        for e in type.extensions {
            for a in e.schema.attributes where a.mutability == .immutable {
                if let o = old[e.schema.id]?.objectValue?[a.name], new[e.schema.id]?.objectValue?[a.name] != o {
                    throw SCIMError.mutability("'\(e.schema.id):\(a.name)' is immutable")
                }
            }
        }
    }

    // MARK: - Preconditions (RFC 7644 §3.14)

    static func checkIfMatch(_ header: String?, _ current: StoredResource) throws {
        guard let h = header else { return }
        guard etagMatches(h, current.etag) else {
            throw SCIMError.preconditionFailed("the resource has changed: its version is \(current.etag)")
        }
    }

    /// Weak comparison of a header's ETag list (or `*`) against `etag`.
    static func etagMatches(_ header: String?, _ etag: String) -> Bool {
        guard let h = header else { return false }
        func opaque(_ t: Substring) -> Substring {
            var s = t.drop { $0 == " " }
            if s.hasPrefix("W/") { s = s.dropFirst(2) }
            while s.last == " " { s = s.dropLast() }
            return s
        }
        let mine = opaque(etag[...])
        return h.split(separator: ",").contains {
            let o = opaque($0); return o == "*" || o == mine
        }
    }

    // MARK: - Rendering

    /// The resource as the response body; `created` adds `Location` (RFC 7644 §3.3).
    func resourceResponse(
        _ status: Int, _ r: StoredResource, _ type: SCIMResourceType, _ ctx: RequestContext, created: Bool
    ) throws -> HTTPResponse {
        let projection = Projection(
            attributes: ctx.request.queryValue("attributes"),
            excludedAttributes: ctx.request.queryValue("excludedAttributes"), type: type)
        let body: JSONObject
        if created && type.name == "User" {
            // A User just created is in no Group: members name resources that exist, and its id
            // is new. Nothing to read.
            body = try render(r, type, nil, projection, ctx.baseURL)
        } else {
            // Rendering reads one thing (a User's groups or a Group's members): no snapshot
            // needed, which spares a transaction's two round trips on PostgreSQL.
            body = try store.read(snapshot: false) { try render(r, type, $0, projection, ctx.baseURL) }
        }
        var headers = [("ETag", r.etag)]
        if created { headers.append(("Location", "\(ctx.baseURL)\(type.endpoint)/\(r.id)")) }
        return jsonResponse(status, .object(body), headers: headers)
    }

    /// The full resource as returned: stored attributes, `id`, computed `groups`/`members`
    /// (read from `conn`; none without it), and `meta`.
    func render(
        _ r: StoredResource, _ type: SCIMResourceType, _ conn: (any StoreSession)?, _ projection: Projection,
        _ baseURL: String
    ) throws -> JSONObject {
        var out = try fullResource(
            r, type, conn, baseURL, computed: projection.mayInclude(type.name == "User" ? "groups" : "members"))
        out["meta"] = meta(r, type, baseURL)
        out = projection.apply(out, type: type)
        return out
    }

    /// Stored attributes plus `id` and (optionally) computed attributes, before projection.
    func fullResource(
        _ r: StoredResource, _ type: SCIMResourceType, _ conn: (any StoreSession)?, _ baseURL: String, computed: Bool
    ) throws -> JSONObject {
        var out = JSONObject()
        out.members.reserveCapacity(r.doc.members.count + 3)
        out.members.append(
            JSONObject.Member(key: "schemas", value: r.doc["schemas"] ?? .array([.string(type.schema.id)])))
        out.members.append(JSONObject.Member(key: "id", value: .string(r.id)))
        var computedInserted = false
        func insertComputed() throws {
            computedInserted = true
            guard computed, let conn else { return }
            if type.name == "User" {
                let groups = try conn.groups(ofMember: r.id)
                if !groups.isEmpty {
                    out["groups"] = .array(
                        groups.map { g in
                            var o = JSONObject(["value": .string(g.id), "$ref": .string("\(baseURL)/Groups/\(g.id)")])
                            if let d = g.display { o["display"] = .string(d) }
                            o["type"] = .string("direct")
                            return .object(o)
                        })
                }
            } else if type.name == "Group" {
                let members = try conn.members(ofGroup: r.seq)
                if !members.isEmpty {
                    out["members"] = .array(
                        members.map { m in
                            var o = JSONObject([
                                "value": .string(m.id),
                                "$ref": .string("\(baseURL)/\(m.type == "Group" ? "Groups" : "Users")/\(m.id)"),
                                "type": .string(m.type),
                            ])
                            if let d = m.display { o["display"] = .string(d) }
                            return .object(o)
                        })
                }
            }
        }
        for m in r.doc.members where m.key != "schemas" {
            if !computedInserted && m.key.hasPrefix("urn:") { try insertComputed() }
            out.members.append(m)
        }
        if !computedInserted { try insertComputed() }
        return out
    }

    func meta(_ r: StoredResource, _ type: SCIMResourceType, _ baseURL: String) -> JSONValue {
        .object(
            JSONObject([
                "resourceType": .string(type.name),
                "created": .string(Timestamp.format(r.created)),
                "lastModified": .string(Timestamp.format(r.modified)),
                "location": .string("\(baseURL)\(type.endpoint)/\(r.id)"),
                "version": .string(r.etag),
            ]))
    }
}

/// Store errors the client's input caused become SCIM errors: a taken unique key is 409
/// `uniqueness`, a member that does not exist 400 `invalidValue` (RFC 7644 §3.12).
/// Storage failures pass through (503).
func clientErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as StoreError where e.kind == .uniqueness {
        throw SCIMError.uniqueness(e.description)
    } catch let e as StoreError where e.kind == .invalidReference {
        throw SCIMError.invalidValue(e.description)
    }
}

extension SCIMEndpoints {
    /// SCIM (RFC 7644 §3): discovery, resources, search and Bulk. Query parameters are not checked:
    /// clients send what the RFC and their own habits suggest.
    var routes: [Route] {
        [
            Route.make("GET", "/scim/v2/ServiceProviderConfig", .anyOf([.scimRead, .admin]), query: nil) {
                ctx, _ in self.jsonResponse(200, self.serviceProviderConfig(ctx))
            },
            Route.make("GET", "/scim/v2/ResourceTypes", .anyOf([.scimRead, .admin]), query: nil) { ctx, _ in
                try self.discoveryList("ResourceTypes", ctx)
            },
            Route.make("GET", "/scim/v2/Schemas", .anyOf([.scimRead, .admin]), query: nil) { ctx, _ in
                try self.discoveryList("Schemas", ctx)
            },
            Route.make("GET", "/scim/v2/ResourceTypes/{id}", .anyOf([.scimRead, .admin]), query: nil) { ctx, p in
                try self.discoveryItem("ResourceTypes", p[0], ctx)
            },
            Route.make("GET", "/scim/v2/Schemas/{id}", .anyOf([.scimRead, .admin]), query: nil) { ctx, p in
                try self.discoveryItem("Schemas", p[0], ctx)
            },
            Route.make("POST", "/scim/v2/.search", .read, query: nil) { ctx, _ in try self.searchAll(ctx) },
            Route.make("POST", "/scim/v2/Bulk", .write, query: nil) { ctx, _ in try self.bulk(ctx) },
            Route.make("GET", "/scim/v2/{type}", .read, query: nil) { ctx, p in
                try self.list(try self.resourceType(p[0]), ListQuery(query: ctx.request.query), ctx)
            },
            Route.make("POST", "/scim/v2/{type}", .write, query: nil) { ctx, p in
                try self.create(try self.resourceType(p[0]), ctx)
            },
            Route.make("POST", "/scim/v2/{type}/.search", .read, query: nil) { ctx, p in
                try self.search(try self.resourceType(p[0]), ctx)
            },
            Route.make("GET", "/scim/v2/{type}/{id}", .read, query: nil) { ctx, p in
                try self.get(try self.resourceType(p[0]), p[1], ctx)
            },
            Route.make("PUT", "/scim/v2/{type}/{id}", .write, query: nil) { ctx, p in
                try self.replace(try self.resourceType(p[0]), p[1], ctx)
            },
            Route.make("PATCH", "/scim/v2/{type}/{id}", .write, query: nil) { ctx, p in
                try self.patch(try self.resourceType(p[0]), p[1], ctx)
            },
            Route.make("DELETE", "/scim/v2/{type}/{id}", .write, query: nil) { ctx, p in
                try self.delete(try self.resourceType(p[0]), p[1], ctx)
            },
        ]
    }
}

extension SCIMEndpoints {
    /// The resource type served at `/scim/v2/{endpoint}` (the table only matches known ones).
    func resourceType(_ endpoint: String) throws -> SCIMResourceType {
        guard let t = registry.resourceType(endpoint: "/" + endpoint) else {
            throw SCIMError.notFound("no endpoint at this path")
        }
        return t
    }
}
