// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import JSONCore
import SCIM
import Store

/// `POST /Bulk` (RFC 7644 §3.7). Bodies are validated on the worker thread; the writes then
/// run as one transaction with a savepoint per operation, so a thousand creates cost one
/// fsync and a failing operation rolls back alone.
extension SCIMEndpoints {
    private enum BulkMethod: String { case POST, PUT, PATCH, DELETE }

    private enum Prepared {
        case create(SCIMResourceType, PreparedResource)
        case replace(SCIMResourceType, String, PreparedResource)
        case patch(SCIMResourceType, String, PatchRequest)
        case delete(SCIMResourceType, String)
    }

    private struct BulkOp {
        let index: Int
        let method: String
        let bulkId: String?
        let version: String?
        var prepared: Result<Prepared, SCIMError>
        var action: String
        var typeName: String
        var targetID: String
    }

    func bulk(_ ctx: RequestContext) throws -> HTTPResponse {
        guard ctx.request.body.count <= config.bulkMaxPayloadBytes else {
            throw SCIMError(
                status: 413, detail: "Bulk payload exceeds maxPayloadSize of \(config.bulkMaxPayloadBytes) bytes")
        }
        let body = try jsonBody(ctx.request)
        guard let schemas = body.value(caseInsensitive: "schemas")?.arrayValue,
            schemas.contains(where: {
                $0.stringValue.map { asciiCaseInsensitiveEquals($0, SCIMSchemaURN.bulkRequest) } ?? false
            })
        else {
            throw SCIMError.invalidSyntax("'schemas' must include \(SCIMSchemaURN.bulkRequest)")
        }
        guard let rawOps = body.value(caseInsensitive: "Operations")?.arrayValue else {
            throw SCIMError.invalidSyntax("'Operations' must be an array")
        }
        guard rawOps.count <= config.bulkMaxOperations else {
            throw SCIMError(
                status: 413,
                detail: "Bulk request has \(rawOps.count) operations; maxOperations is \(config.bulkMaxOperations)")
        }
        var failOnErrors = Int.max
        if let f = body.value(caseInsensitive: "failOnErrors"), !f.isNull {
            guard let n = f.numberValue?.int64, n >= 1 else {
                throw SCIMError.invalidValue("'failOnErrors' must be a positive integer")
            }
            failOnErrors = Int(clamping: n)
        }
        let maxErrors = failOnErrors
        let ops = prepareAll(rawOps)
        // bulkIds must be unique (RFC 7644 §3.7): a duplicate would make references ambiguous.
        var seen = Set<String>()
        for op in ops {
            if let b = op.bulkId, !seen.insert(b).inserted {
                throw SCIMError.invalidValue("bulkId '\(b.prefix(100))' is used twice")
            }
        }

        // Each operation takes its own savepoint in `execute`, so the job runs without an enclosing one.
        let results: [Int: JSONValue] = try store.write(isolated: false) { w in
            var results: [Int: JSONValue] = [:]
            var created: [String: String] = [:]  // bulkId -> id
            var errors = 0
            var queue = ops
            let laterBulkIds = Set(ops.compactMap(\.bulkId))
            var progress = true
            while !queue.isEmpty && progress && errors < maxErrors {
                progress = false
                var deferred: [BulkOp] = []
                for var op in queue {
                    if errors >= maxErrors { break }
                    // Resolve bulkId references; wait for ones another operation will create.
                    let unresolved = Self.unresolvedReferences(op, created)
                    if !unresolved.isEmpty && unresolved.isSubset(of: laterBulkIds)
                        && !unresolved.contains(op.bulkId ?? "")
                    {
                        deferred.append(op)
                        continue
                    }
                    progress = true
                    op.prepared = op.prepared.flatMap { p in
                        unresolved.isEmpty
                            ? .success(Self.resolve(p, created))
                            : .failure(
                                SCIMError(
                                    status: 409, scimType: .invalidValue,
                                    detail: "bulkId reference cannot be resolved"))
                    }
                    let outcome = try self.execute(w, op, ctx)
                    switch outcome {
                    case .success(let (status, r)):
                        if let b = op.bulkId, let r { created[b] = r.id }
                        results[op.index] = Self.resultEntry(
                            op, status: status, resource: r, ctx, registry: self.registry)
                    case .failure(let e):
                        errors += 1
                        try AuditLog.append(
                            w, Self.failureEntry(e, op.action, self.typeOrUser(op.typeName), id: op.targetID, ctx))
                        results[op.index] = Self.errorEntry(op, e)
                    }
                }
                queue = deferred
            }
            // Whatever still waits depends on a failed or circular reference.
            if errors < maxErrors {
                for op in queue {
                    if errors >= maxErrors { break }
                    errors += 1
                    results[op.index] = Self.errorEntry(
                        op,
                        SCIMError(status: 409, scimType: .invalidValue, detail: "bulkId reference cannot be resolved"))
                }
            }
            return results
        }
        engine?.wake()
        let ordered = results.keys.sorted().compactMap { results[$0] }
        return jsonResponse(
            200,
            .object(
                JSONObject(["schemas": .array([.string(SCIMSchemaURN.bulkResponse)]), "Operations": .array(ordered)])))
    }

    /// Validates every operation, in parallel chunks: validation is CPU work that would
    /// otherwise leave the other cores idle while one request's writes wait for it.
    private func prepareAll(_ raw: [JSONValue]) -> [BulkOp] {
        let chunks = min(raw.count, max(1, ProcessInfo.processInfo.activeProcessorCount))
        guard chunks > 1, raw.count >= 64 else { return raw.enumerated().map { prepare($0.offset, $0.element) } }
        let size = (raw.count + chunks - 1) / chunks
        let parts = Mutex<[Int: [BulkOp]]>([:])
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let range = (c * size)..<min(raw.count, (c + 1) * size)
            let prepared = range.map { prepare($0, raw[$0]) }
            parts.withLock { $0[c] = prepared }
        }
        return parts.withLock { p in (0..<chunks).flatMap { p[$0] ?? [] } }
    }

    private func typeOrUser(_ name: String) -> SCIMResourceType { registry.resourceType(named: name) ?? userType }

    /// Validates one operation without touching the store.
    private func prepare(_ index: Int, _ raw: JSONValue) -> BulkOp {
        var op = BulkOp(
            index: index, method: "", bulkId: nil, version: nil,
            prepared: .failure(SCIMError.invalidSyntax("operation is not an object")),
            action: "bulk", typeName: "User", targetID: "")
        guard let o = raw.objectValue else { return op }
        let methodText = o.value(caseInsensitive: "method")?.stringValue ?? ""
        op = BulkOp(
            index: index, method: methodText.uppercased(), bulkId: o.value(caseInsensitive: "bulkId")?.stringValue,
            version: o.value(caseInsensitive: "version")?.stringValue, prepared: op.prepared, action: "bulk",
            typeName: "User", targetID: "")
        op.prepared = Result { () throws(SCIMError) -> Prepared in
            guard let method = BulkMethod(rawValue: methodText.uppercased()) else {
                throw SCIMError.invalidSyntax("'method' must be POST, PUT, PATCH or DELETE")
            }
            guard let path = o.value(caseInsensitive: "path")?.stringValue else {
                throw SCIMError.invalidSyntax("'path' is required")
            }
            let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            guard let first = parts.first, let type = registry.resourceType(endpoint: "/" + first), parts.count <= 2
            else {
                throw SCIMError.invalidPath("'path' must be a resource endpoint such as /Users or /Users/{id}")
            }
            let data = o.value(caseInsensitive: "data")
            switch (method, parts.count) {
            case (.POST, 1):
                guard op.bulkId != nil else { throw SCIMError.invalidSyntax("POST operations need a 'bulkId'") }
                guard let d = data?.objectValue else { throw SCIMError.invalidSyntax("'data' must be an object") }
                return .create(
                    type,
                    try throwsSCIM { try prepareForStorage(type, try ResourceNormalizer(type: type).normalize(d)) })
            case (.PUT, 2):
                guard let d = data?.objectValue else { throw SCIMError.invalidSyntax("'data' must be an object") }
                return .replace(
                    type, parts[1],
                    try throwsSCIM { try prepareForStorage(type, try ResourceNormalizer(type: type).normalize(d)) })
            case (.PATCH, 2):
                guard let d = data?.objectValue else {
                    throw SCIMError.invalidSyntax("'data' must be a PatchOp object")
                }
                return .patch(type, parts[1], try throwsSCIM { try hashingPasswords(try PatchRequest(d), type) })
            case (.DELETE, 2):
                return .delete(type, parts[1])
            default:
                throw SCIMError.invalidPath("'\(method.rawValue)' does not apply to this path")
            }
        }
        switch op.prepared {
        case .success(.create(let t, _)): op.action = "create"; op.typeName = t.name
        case .success(.replace(let t, let id, _)): op.action = "replace"; op.typeName = t.name; op.targetID = id
        case .success(.patch(let t, let id, _)): op.action = "patch"; op.typeName = t.name; op.targetID = id
        case .success(.delete(let t, let id)): op.action = "delete"; op.typeName = t.name; op.targetID = id
        case .failure: break
        }
        return op
    }

    private func throwsSCIM<T>(_ body: () throws -> T) throws(SCIMError) -> T {
        do { return try body() } catch let e as SCIMError { throw e } catch {
            throw SCIMError.invalidValue("operation data is invalid")
        }
    }

    /// Runs one prepared operation in its own savepoint. A client error is that operation's
    /// result; a storage failure ends the whole request (503, nothing committed), since the
    /// transaction may be gone.
    private func execute(_ w: any StoreWriter, _ op: BulkOp, _ ctx: RequestContext) throws -> Result<
        (Int, StoredResource?), SCIMError
    > {
        let prepared: Prepared
        switch op.prepared {
        case .failure(let e): return .failure(e)
        case .success(let p): prepared = p
        }
        do {
            return .success(
                try w.savepoint { () throws -> (Int, StoredResource?) in
                    switch prepared {
                    case .create(let t, let p): return (201, try createInWriter(w, t, p, ctx))
                    case .replace(let t, let id, let p):
                        return (200, try replaceInWriter(w, t, id, p, ifMatch: op.version, ctx))
                    case .patch(let t, let id, let r):
                        return (200, try patchInWriter(w, t, id, r, ifMatch: op.version, ctx))
                    case .delete(let t, let id):
                        try deleteInWriter(w, t, id, ifMatch: op.version, ctx); return (204, nil)
                    }
                })
        } catch let e as SCIMError {
            return .failure(e)
        }
    }

    // MARK: - bulkId references (RFC 7644 §3.7.2)

    private static func references(_ value: JSONValue, into out: inout Set<String>) {
        switch value {
        case .string(let s) where s.hasPrefix("bulkId:"): out.insert(String(s.dropFirst(7)))
        case .array(let a): for v in a { references(v, into: &out) }
        case .object(let o): for m in o.members { references(m.value, into: &out) }
        default: break
        }
    }

    private static func unresolvedReferences(_ op: BulkOp, _ created: [String: String]) -> Set<String> {
        var refs = Set<String>()
        guard case .success(let p) = op.prepared else { return [] }
        switch p {
        case .create(_, let r), .replace(_, _, let r):
            references(.object(r.doc), into: &refs)
            for m in r.members where m.id.hasPrefix("bulkId:") { refs.insert(String(m.id.dropFirst(7))) }
        case .patch(_, _, let req):
            for o in req.operations { if let v = o.value { references(v, into: &refs) } }
        case .delete:
            break
        }
        if case .replace(_, let id, _) = p, id.hasPrefix("bulkId:") { refs.insert(String(id.dropFirst(7))) }
        if case .patch(_, let id, _) = p, id.hasPrefix("bulkId:") { refs.insert(String(id.dropFirst(7))) }
        if case .delete(_, let id) = p, id.hasPrefix("bulkId:") { refs.insert(String(id.dropFirst(7))) }
        return refs.filter { created[$0] == nil }
    }

    private static func substitute(_ value: JSONValue, _ created: [String: String]) -> JSONValue {
        switch value {
        case .string(let s) where s.hasPrefix("bulkId:"): return .string(created[String(s.dropFirst(7))] ?? s)
        case .array(let a): return .array(a.map { substitute($0, created) })
        case .object(var o):
            for i in o.members.indices { o.members[i].value = substitute(o.members[i].value, created) }
            return .object(o)
        default: return value
        }
    }

    private static func resolveID(_ id: String, _ created: [String: String]) -> String {
        id.hasPrefix("bulkId:") ? (created[String(id.dropFirst(7))] ?? id) : id
    }

    private static func resolve(_ p: Prepared, _ created: [String: String]) -> Prepared {
        func res(_ r: PreparedResource) -> PreparedResource {
            (
                substitute(.object(r.doc), created).objectValue ?? r.doc,
                r.members.map { MemberRef(id: resolveID($0.id, created), type: $0.type, display: $0.display) }
            )
        }
        switch p {
        case .create(let t, let r): return .create(t, res(r))
        case .replace(let t, let id, let r): return .replace(t, resolveID(id, created), res(r))
        case .patch(let t, let id, let req):
            return .patch(
                t, resolveID(id, created),
                PatchRequest(
                    operations: req.operations.map {
                        PatchOperation(op: $0.op, path: $0.path, value: $0.value.map { substitute($0, created) })
                    }))
        case .delete(let t, let id): return .delete(t, resolveID(id, created))
        }
    }

    // MARK: - Response entries

    private static func resultEntry(
        _ op: BulkOp, status: Int, resource: StoredResource?, _ ctx: RequestContext, registry: SchemaRegistry
    ) -> JSONValue {
        var o = JSONObject()
        o["method"] = .string(op.method)
        if let b = op.bulkId { o["bulkId"] = .string(b) }
        if let r = resource, let t = registry.resourceType(named: r.type.rawValue) {
            o["location"] = .string("\(ctx.baseURL)\(t.endpoint)/\(r.id)")
            o["version"] = .string(r.etag)
        }
        o["status"] = .string(String(status))
        return .object(o)
    }

    private static func errorEntry(_ op: BulkOp, _ e: SCIMError) -> JSONValue {
        var o = JSONObject()
        o["method"] = .string(op.method.isEmpty ? "UNKNOWN" : op.method)
        if let b = op.bulkId { o["bulkId"] = .string(b) }
        o["status"] = .string(String(e.status))
        o["response"] = e.json
        return .object(o)
    }
}
