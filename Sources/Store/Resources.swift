// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore

/// A resource as stored: canonical attributes plus the server-kept metadata.
public struct StoredResource: Sendable {
    public let seq: Int64
    public let id: String
    public let type: ResourceKind
    public let version: Int64
    public let created: Double
    public let modified: Double
    /// Canonical attributes, without `id`, `meta` and computed attributes (`groups`, `members`).
    public var doc: JSONObject

    /// The ETag (RFC 7644 §3.14): weak, from the version counter.
    public var etag: String { "W/\"\(version)\"" }
}

/// A group member as stored, with the display name the client gave, if any.
public struct MemberRef: Sendable, Equatable {
    public let id: String
    public let type: String
    public let display: String?

    public init(id: String, type: String, display: String? = nil) {
        self.id = id
        self.type = type
        self.display = display
    }
}

/// A group a user belongs to.
public struct GroupRef: Sendable, Equatable {
    public let id: String
    public let display: String?
}

/// An indexed lookup that narrows a filter's candidates before evaluation in Swift.
public enum IndexHint: Sendable, Equatable {
    case id(String)
    case userName(String)
    case externalId(String)
    case email(String)
    case displayName(String)
}

// MARK: - Queries

/// SCIM resources (Users, Groups), their indexes and group memberships.
public protocol ResourceStore {
    /// Ids of resources of `type` written at or after `since` (system time).
    func modifiedIDs(type: ResourceKind, since: Double) throws -> [String]

    /// Sequence numbers of Groups written at or after `since`, for their members.
    func modifiedGroups(since: Double) throws -> [Int64]

    /// The resource of `type` with `id`, or nil.
    func fetch(type: ResourceKind, id: String) throws -> StoredResource?

    /// The resource with listing position `seq`, or nil.
    func fetch(seq: Int64) throws -> StoredResource?

    /// The type of the resource with `id`, or nil.
    func typeOf(id: String) throws -> ResourceKind?

    /// Candidates for an indexed lookup, in listing order.
    func candidates(type: ResourceKind, hint: IndexHint) throws -> [StoredResource]

    /// Calls `body` for every resource of `type` in listing order, in pages, until it returns false.
    func scan(type: ResourceKind, _ body: (StoredResource) throws -> Bool) throws

    /// Number of resources of `type`.
    func count(type: ResourceKind) throws -> Int

    /// Users whose canonical user name starts with `prefix` (canonical), in user name order:
    /// one range scan of the user name index.
    func users(userNamePrefix prefix: String, limit: Int) throws -> [StoredResource]

    /// Listing positions (`seq`) of Users with a search word (`PeopleSearch.terms`) starting
    /// with `prefix`, in word order, each once; at most `limit` rows of the index are read,
    /// and `complete` says whether that was all of them. No document is read.
    func personSearchSeqs(termPrefix prefix: String, limit: Int) throws -> (seqs: [Int64], complete: Bool)

    /// One page of resources of `type` in listing order (`offset` is 0-based).
    func page(type: ResourceKind, offset: Int, limit: Int) throws -> [StoredResource]

    /// The groups `memberID` belongs to directly.
    func groups(ofMember memberID: String) throws -> [GroupRef]

    /// The members of a group, in the order they joined the hub.
    func members(ofGroup seq: Int64) throws -> [MemberRef]

    /// Inserts a new resource; `members` only for groups. Duplicate `userName` answers 409.
    @discardableResult
    func insert(type: ResourceKind, id: String, doc: JSONObject, members: [MemberRef], now: Double) throws
        -> StoredResource

    /// Replaces a resource's attributes (and a group's members), bumping its version.
    @discardableResult
    func update(_ old: StoredResource, doc: JSONObject, members: [MemberRef]?, now: Double) throws -> StoredResource

    /// Deletes a resource and every membership that names it; groups that lose a member get a new version.
    func delete(_ r: StoredResource, now: Double) throws
}
