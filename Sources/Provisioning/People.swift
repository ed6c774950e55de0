// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import SCIM
import Store

/// Finding people the governance features name: a principal as a SCIM User, a manager, a
/// Group's members, and where to write to them. Principals are named after user names
/// (`Tokens`), so a principal is a person when a User has that user name.
public enum People {
    /// The User whose user name is `name` (canonical comparison), if any.
    public static func user(_ conn: any StoreSession, userName name: String) throws -> StoredResource? {
        let canonical = Identifier.canonical(name)
        guard !canonical.isEmpty else { return nil }
        return try conn.candidates(type: .user, hint: .userName(canonical)).first {
            ($0.doc["userName"]?.stringValue).map(Identifier.canonical) == canonical
        }
    }

    /// The User `person` names as manager (enterprise `manager.value`), if it exists.
    public static func manager(_ conn: any StoreSession, of person: JSONObject) throws -> StoredResource? {
        guard
            let id = person[SCIMSchemaURN.enterpriseUser]?.objectValue?["manager"]?.objectValue?["value"]?.stringValue,
            !id.isEmpty
        else { return nil }
        return try conn.fetch(type: .user, id: id)
    }

    /// User names up the manager chain of `person`, nearest first, at most `depth`, without cycles.
    public static func managerChain(_ conn: any StoreSession, of person: JSONObject, depth: Int = 2) throws -> [String]
    {
        var out: [String] = []
        var next = try manager(conn, of: person)
        var seen = Set<String>()
        while let m = next, out.count < depth, seen.insert(m.id).inserted {
            if let u = m.doc["userName"]?.stringValue { out.append(u) }
            next = try manager(conn, of: m.doc)
        }
        return out
    }

    /// Active members (Users) of the Group named `displayName`.
    public static func members(_ conn: any StoreSession, ofGroup displayName: String, now: Double) throws
        -> [StoredResource]
    {
        var out: [StoredResource] = []
        for g in try conn.candidates(type: .group, hint: .displayName(Identifier.canonical(displayName))) {
            for m in try conn.members(ofGroup: g.seq) {
                if let u = try conn.fetch(type: .user, id: m.id), Policy.isActive(u.doc, now: now) { out.append(u) }
            }
        }
        return out
    }

    /// Whether the principal `name` is an active member of the Group `displayName`.
    public static func isMember(_ conn: any StoreSession, _ name: String, ofGroup displayName: String, now: Double)
        throws -> Bool
    {
        guard let u = try user(conn, userName: name), Policy.isActive(u.doc, now: now) else { return false }
        for g in try conn.candidates(type: .group, hint: .displayName(Identifier.canonical(displayName)))
        where try conn.members(ofGroup: g.seq).contains(where: { $0.id == u.id }) {
            return true
        }
        return false
    }

    /// The person's e-mail address for notices: the primary one, else a `work` one, else the first.
    public static func email(_ doc: JSONObject) -> String? {
        let emails = (doc["emails"]?.arrayValue ?? []).compactMap(\.objectValue)
        let chosen =
            emails.first { $0["primary"]?.boolValue == true } ?? emails.first { $0["type"]?.stringValue == "work" }
            ?? emails.first
        return chosen?["value"]?.stringValue.flatMap { Notifier.isAddress($0) ? $0 : nil }
    }

    /// Where to write to the people named: a name that is an address is used as is; a user
    /// name gives that User's e-mail. With `groups` (names from the configuration or the
    /// policy, never from a feed), `group:<displayName>` gives its active members'.
    public static func addresses(_ conn: any StoreSession, of names: [String], now: Double, groups: Bool = false)
        throws -> [String]
    {
        var out: [String] = []
        for name in names where !name.isEmpty {
            if groups, name.hasPrefix("group:") {
                out += try members(conn, ofGroup: String(name.dropFirst(6)), now: now).compactMap { email($0.doc) }
            } else if Notifier.isAddress(name) {
                out.append(name)
            } else if let u = try user(conn, userName: name), let e = email(u.doc) {
                out.append(e)
            }
        }
        return out
    }
}
