// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import JSONCore
import Provisioning
import SCIM
import Store

/// Looking people up and acting on one person, for administrators and helpdesk staff:
/// `GET /admin/people?q=` (by user name prefix, exact e-mail, name, title or site), `POST
/// /admin/people/{id}/reconverge`. Their access view is `GET /admin/people/{id}/access`.
struct PeopleEndpoints: FeatureEndpoints {
    let hub: HubContext
}

extension PeopleEndpoints {
    /// The minimum a list shows of a person.
    static func summary(_ r: StoredResource) -> JSONValue {
        let ext = r.doc[SCIMSchemaURN.healthcareUser]?.objectValue
        return .object(
            JSONObject([
                "id": .string(r.id), "userName": r.doc["userName"] ?? .null,
                "displayName": r.doc["displayName"] ?? .null, "title": r.doc["title"] ?? .null,
                "sites": ext?["sites"] ?? .array([]), "active": r.doc["active"] ?? .bool(true),
            ]))
    }

    /// Index rows read per word of a search: a word common to more people than this ("a",
    /// "nurse" at 100,000) narrows nothing and is checked on the candidates instead.
    static let termRows = 20_000
    /// Documents read per search, at most: the person refines a search this broad.
    static let documentsRead = 2_000

    /// People who may match every word, by name, title, department or site, in index order:
    /// the intersection of the words whose index range was read whole (each word is a prefix
    /// range of `person_search_terms`), else the first rows of the longest word.
    static func candidates(_ words: [String], _ conn: any StoreSession) throws -> [Int64] {
        var whole: [[Int64]] = [], longest: [Int64] = []
        for w in Set(words).sorted(by: { ($0.count, $0) > ($1.count, $1) }) {
            let hits = try conn.personSearchSeqs(termPrefix: w, limit: termRows)
            if hits.seqs.isEmpty { return [] }
            if longest.isEmpty { longest = hits.seqs }
            if hits.complete { whole.append(hits.seqs) }
        }
        guard let smallest = whole.min(by: { $0.count < $1.count }) else { return longest }
        var keep = Set(smallest)
        for other in whole where other != smallest { keep.formIntersection(other) }
        return smallest.filter(keep.contains)
    }

    /// `GET /admin/people?q=&count=`: user names starting with `q` (an address also matches
    /// its exact e-mail), then people with a word of their name, title or site starting with
    /// each word of `q`; from the indexes, no scan, so it answers as fast at 100,000 people.
    func search(_ ctx: RequestContext) throws -> HTTPResponse {
        let q = Identifier.canonical((ctx.request.queryValue("q") ?? "").trimmingCharacters(in: .whitespaces))
        guard q.utf8.count <= 256 else { throw SCIMError.invalidValue("'q' is at most 256 characters") }
        var count = 50
        if let c = ctx.request.queryValue("count") {
            guard let n = Int(c), (1...200).contains(n) else {
                throw SCIMError.invalidValue("'count' must be an integer in 1...200")
            }
            count = n
        }
        let words = PeopleSearch.words(q)
        let found: [StoredResource] = try store.read { conn in
            guard !q.isEmpty else { return [] }
            var out = try conn.users(userNamePrefix: q, limit: count)
            if q.contains("@"), out.isEmpty { out = try conn.candidates(type: .user, hint: .email(q)) }
            guard out.count < count, !words.isEmpty else { return out }
            var ids = Set(out.map(\.id)), read = 0
            for seq in try Self.candidates(words, conn) where out.count < count && read < Self.documentsRead {
                read += 1
                guard let r = try conn.fetch(seq: seq), r.type == .user, !ids.contains(r.id),
                    PeopleSearch.matches(words, PeopleSearch.terms(of: r.doc))
                else { continue }
                ids.insert(r.id)
                out.append(r)
            }
            return out
        }
        return jsonResponse(
            200, .object(JSONObject(["people": .array(found.map(Self.summary))])), contentType: "application/json")
    }

    /// `POST /admin/people/{id}/reconverge`: judges the person again and queues whatever differs, now.
    func reconverge(_ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        guard let engine else { throw SCIMError(status: 409, detail: "no policy is loaded: nothing to converge") }
        let principal = ctx.principal.name, requestID = ctx.requestID, now = engine.clock.now()
        let targets = engine.policy.enabledTargets.map(\.name)
        try store.write { w in
            guard let person = try w.connection.fetch(type: .user, id: id) else {
                throw SCIMError.notFound("no person with this id")
            }
            try engine.enqueue(w, personID: id, person: person.doc)
            for t in targets { try w.connection.expedite(personID: id, target: t, now: now) }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "person.reconverge", resourceType: "User", resourceID: id,
                    requestID: requestID))
        }
        engine.wake()
        return jsonResponse(
            202, .object(JSONObject(["id": .string(id), "state": .string("queued")])), contentType: "application/json")
    }

    var routes: [Route] {
        let staff = RouteAccess.anyOf([.admin, .helpdesk])
        return [
            Route.make("GET", "/admin/people", staff, query: ["q", "count"]) { ctx, _ in try self.search(ctx) },
            Route.make("POST", "/admin/people/{id}/reconverge", staff) { ctx, p in try self.reconverge(p[0], ctx) },
        ]
    }
}
