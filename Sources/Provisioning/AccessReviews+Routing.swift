// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import SCIM
import Store

/// Where review items go, and where they go up to. An item is never silently left to
/// administrators: a person without a usable manager goes to the fallback group's members,
/// and administrators are the last resort, said so in the audit entry and the message.
extension AccessReviews {
    /// An item's reviewers and the rule that chose them (`manager` at an escalation: the
    /// manager's manager).
    struct Route: Sendable {
        var reviewers: [String]
        var assignment: ReviewAssignment
    }

    /// Looks reviewers up on one read session, each manager and the fallback group once.
    struct Router {
        let conn: any StoreSession
        let now: Double
        /// The fallback group's active members (empty: no group, or nobody in it).
        let fallback: [String]
        /// User name → their manager's user name, if an active User who may review.
        private var managers: [String: String?] = [:]

        init(_ reviews: AccessReviews, _ conn: any StoreSession, now: Double) throws {
            self.conn = conn
            self.now = now
            fallback = try Self.members(conn, group: reviews.fallbackGroup, now: now)
        }

        /// At creation: a named campaign's reviewers (unless the person is the only one), else
        /// the person's manager, else the fallback group, else administrators.
        mutating func route(person doc: JSONObject, userName: String, named: [String]?) throws -> Route {
            let me = Identifier.canonical(userName)
            if let named {
                if named.contains(where: { Identifier.canonical($0) != me }) {
                    return Route(reviewers: [], assignment: .named)
                }
            } else if let m = try AccessReviews.managerName(conn, of: doc, now: now), Identifier.canonical(m) != me {
                return Route(reviewers: [m], assignment: .manager)
            }
            return fallbackRoute(excluding: [userName])
        }

        /// At escalation of an item still with its manager `old`: the manager's manager, else
        /// the fallback group (but the person and `old`), else administrators. Never the person.
        mutating func escalation(of item: ReviewItemRecord) throws -> Route {
            let old = item.reviewers.first ?? ""
            let skip = Set([item.userName, old].map(Identifier.canonical))
            if let boss = try managerOf(userName: old), !skip.contains(Identifier.canonical(boss)) {
                return Route(reviewers: [boss], assignment: .manager)
            }
            return fallbackRoute(excluding: [item.userName, old])
        }

        private mutating func managerOf(userName: String) throws -> String? {
            if let hit = managers[userName] { return hit }
            let found = try People.user(conn, userName: userName).flatMap { u in
                try AccessReviews.managerName(conn, of: u.doc, now: now)
            }
            managers[userName] = .some(found)  // a known "none" is cached too
            return found
        }

        private func fallbackRoute(excluding: [String]) -> Route {
            let skip = Set(excluding.map(Identifier.canonical))
            let left = fallback.filter { !skip.contains(Identifier.canonical($0)) }
            return Route(reviewers: left, assignment: left.isEmpty ? .admins : .fallback)
        }

        /// The active members of the Group named `group` who may review, sorted.
        static func members(_ conn: any StoreSession, group: String?, now: Double) throws -> [String] {
            guard let group else { return [] }
            let name = Identifier.canonical(group)
            let found = try conn.candidates(type: .group, hint: .displayName(name)).first {
                ($0.doc["displayName"]?.stringValue).map(Identifier.canonical) == name
            }
            guard let g = found else { return [] }
            return try conn.members(ofGroup: g.seq).compactMap {
                try AccessReviews.reviewerName(conn, userID: $0.id, now: now)
            }.sorted()
        }
    }

    // MARK: - People as reviewers

    /// The user name of User `userID` when they can review: an active User whose user name
    /// is a principal name a `review` token can carry.
    static func reviewerName(_ conn: any StoreSession, userID: String, now: Double) throws -> String? {
        guard let doc = try conn.fetch(type: .user, id: userID)?.doc, Policy.isActive(doc, now: now),
            let name = doc["userName"]?.stringValue, (try? PrincipalName.validate(name)) != nil,
            !PrincipalName.isReserved(name)
        else { return nil }
        return name
    }

    /// The manager (enterprise `manager.value`) of the person `doc`, when they can review.
    static func managerName(_ conn: any StoreSession, of doc: JSONObject, now: Double) throws -> String? {
        guard
            let id = doc[SCIMSchemaURN.enterpriseUser]?.objectValue?["manager"]?.objectValue?["value"]?.stringValue
        else { return nil }
        return try reviewerName(conn, userID: id, now: now)
    }

    // MARK: - Escalation

    /// Escalates, once, the undecided items still with their manager in open campaigns due
    /// within `days` (and that ran longer than `days`, so a short campaign is not taken from
    /// its managers at once): see `Router.escalation`. Driven by the stored items, checked
    /// every minute: an escalated item is marked, so a restart neither repeats nor forgets
    /// one. Returns how many items were escalated.
    @discardableResult
    public func escalateDue(days: Double, now: Double? = nil) throws -> Int {
        guard days > 0 else { return 0 }
        let now = now ?? clock.now()
        let window = days * 86400
        let due = try store.read { try $0.campaignsToEscalate(now: now, window: window) }
        var count = 0
        for c in due { count += try escalate(c, now: now) }
        if count > 0 { engine?.notifier?.wake() }
        return count
    }

    /// Decides where each item goes on one snapshot, then moves those still with their
    /// manager, with an audit entry each and the messages, in one write.
    private func escalate(_ c: ReviewCampaignRecord, now: Double) throws -> Int {
        let plans: [(ReviewItemRecord, Route)] = try store.read { conn in
            var router = try Router(self, conn, now: now)
            return try conn.itemsToEscalate(campaignID: c.id).map { ($0, try router.escalation(of: $0)) }
        }
        let fallbackGroup = self.fallbackGroup
        return try store.write { w in
            var done: [(ReviewItemRecord, Route)] = []
            for (i, route) in plans {
                // Decided or handed on since the snapshot: it stays where it is.
                guard try w.connection.escalateItem(campaignID: c.id, seq: i.seq, reviewers: route.reviewers, now: now)
                else { continue }
                try AuditLog.append(
                    w,
                    .now(
                        principal: "scheduler", action: "review.escalate", resourceType: "User", resourceID: i.personID,
                        attributes: [
                            "\(c.id)#\(i.seq)", i.package, "from \(i.reviewers.first ?? "")",
                            Self.destination(route, fallbackGroup: fallbackGroup),
                        ], requestID: "review-escalation"))
                done.append((i, route))
            }
            try self.announceEscalated(w, c, done)
            return done.count
        }
    }

    /// Where an escalation sent an item, in words for the audit entry and the message.
    static func destination(_ route: Route, fallbackGroup: String?) -> String {
        switch route.assignment {
        case .manager: return "to \(route.reviewers.joined()) (manager's manager)"
        case .fallback: return "to the fallback group '\(fallbackGroup ?? "")' (\(route.reviewers.count) member(s))"
        default: return "to administrators (no manager's manager, no fallback reviewer)"
        }
    }
}
