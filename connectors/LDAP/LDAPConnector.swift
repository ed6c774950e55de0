// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import Foundation
import Synchronization

/// Settings for a directory target (OpenLDAP, 389 DS, AD LDS: any LDAPv3 server).
public struct LDAPConfig: Sendable {
    /// How a disabled account is marked.
    public enum DisableMethod: Sendable, Equatable {
        /// ppolicy lock (draft-behera-ldap-password-policy): `pwdAccountLockedTime: 000001010000Z`
        /// locks the account until an administrator clears it.
        case lock
        /// A chosen attribute set to a chosen value (`employeeType: disabled`).
        case attribute(name: String, value: String)
        /// Moved under a separate subtree that the application does not search (`ou=disabled`).
        case move(base: String)
    }

    /// `ldap://host:389` (with `startTLS` for StartTLS) or `ldaps://host:636`.
    public var url: String
    public var startTLS = false
    public var bindDN: String
    public var bindPassword: String
    public var verifyTLS = true
    public var caFile: String?
    public var connectTimeout = 5.0
    public var timeout = 15.0
    /// Where accounts live (`ou=people,dc=example,dc=org`) and where groups live.
    public var usersBase: String
    public var groupsBase: String
    /// Object classes of a new account; the first one also selects accounts in searches.
    public var objectClasses = ["inetOrgPerson"]
    /// The attribute naming the entry (its RDN) and the one holding the user name.
    public var rdnAttribute = "uid"
    public var userNameAttribute = "uid"
    /// Mapped attributes (LDAP attribute names) the connector reads and writes.
    public var attributes: [String] = []
    /// `groupOfNames` (member) or `groupOfUniqueNames` (uniqueMember); named by `cn`.
    public var groupObjectClass = "groupOfNames"
    public var groupNameAttribute = "cn"
    /// groupOfNames must hold a member (RFC 4519 §3.5): when the last real member is
    /// revoked, this placeholder DN keeps the group valid.
    public var emptyGroupMember = "cn=nobody"
    public var disable = DisableMethod.lock
    /// Page size for listing (RFC 2696).
    public var pageSize = 500

    public var memberAttribute: String {
        groupObjectClass.lowercased() == "groupofuniquenames" ? "uniqueMember" : "member"
    }

    public init(url: String, bindDN: String, bindPassword: String, usersBase: String, groupsBase: String) {
        self.url = url
        self.bindDN = bindDN
        self.bindPassword = bindPassword
        self.usersBase = usersBase
        self.groupsBase = groupsBase
    }
}

/// Provisions into an LDAP directory: accounts are entries under `usersBase` identified by
/// their `entryUUID` (RFC 4530), so renames and moves keep the id; entitlements are
/// memberships of groups under `groupsBase`; every user value entering a DN or a filter is
/// escaped (RFC 4514, RFC 4515). Group member values are kept in step on rename and move,
/// since a directory without the refint overlay does not do it.
public final class LDAPConnector: Connector {
    public let config: LDAPConfig
    private let pool: ConnectionPool<LDAPConnection>
    private let listings = Mutex<[String: Listing]>([:])

    static let lockedForever = "000001010000Z"
    static let lockAttribute = "pwdAccountLockedTime"
    /// Listings left unfinished this long are closed.
    static let listingIdleSeconds = 300.0
    static let maxListings = 4

    public init(config: LDAPConfig) {
        self.config = config
        let settings = LDAPSessionSettings(
            url: config.url, startTLS: config.startTLS, bindDN: config.bindDN, bindPassword: config.bindPassword,
            verifyTLS: config.verifyTLS, caFile: config.caFile, connectTimeout: config.connectTimeout,
            timeout: config.timeout)
        pool = ConnectionPool { () throws(ConnectorError) in try LDAPConnection(settings) }
    }

    public var capabilities: ConnectorCapabilities { ConnectorCapabilities(entitlementKinds: ["group"]) }

    // MARK: - Connector (each call on a pooled session)

    public func read(id: String) throws(ConnectorError) -> Account? {
        try pool.with { c throws(ConnectorError) in try read(Context(c), id: id) }
    }
    public func find(userName: String) throws(ConnectorError) -> Account? {
        try pool.with { c throws(ConnectorError) in try find(Context(c), userName: userName) }
    }
    public func create(_ spec: AccountSpec) throws(ConnectorError) -> Account {
        try pool.with { c throws(ConnectorError) in try create(Context(c), spec) }
    }
    public func update(id: String, attributes: [String: String]) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try update(Context(c), id: id, attributes: attributes) }
    }
    public func rename(id: String, userName: String) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try rename(Context(c), id: id, userName: userName) }
    }
    public func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try setEnabled(Context(c), id: id, enabled) }
    }
    public func delete(id: String) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try delete(Context(c), id: id) }
    }
    public func grant(id: String, entitlement: String) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try grant(Context(c), id: id, entitlement: entitlement) }
    }
    public func revoke(id: String, entitlement: String) throws(ConnectorError) {
        try pool.with { c throws(ConnectorError) in try revoke(Context(c), id: id, entitlement: entitlement) }
    }

    /// One convergence on one session: the entry found by the first read is remembered, so
    /// each following write goes straight to its DN instead of searching for the entryUUID
    /// again (LDAP has no transactions; this only saves round trips).
    public func transaction<T>(_ body: (any Connector) throws(ConnectorError) -> T) throws(ConnectorError) -> T {
        try pool.with { c throws(ConnectorError) in try body(Session(owner: self, context: Context(c))) }
    }

    /// A pooled connection plus the entries this unit of work has already located (id → entry).
    final class Context {
        let c: LDAPConnection
        var located: [String: LDAPEntry] = [:]
        init(_ c: LDAPConnection) { self.c = c }
    }

    /// The connector bound to one context for the length of a convergence.
    struct Session: Connector, @unchecked Sendable {
        // @unchecked Sendable: bound to one context for one convergence on one thread; never shared.
        let owner: LDAPConnector
        let context: Context
        var capabilities: ConnectorCapabilities { owner.capabilities }
        func read(id: String) throws(ConnectorError) -> Account? { try owner.read(context, id: id) }
        func find(userName: String) throws(ConnectorError) -> Account? { try owner.find(context, userName: userName) }
        func create(_ spec: AccountSpec) throws(ConnectorError) -> Account { try owner.create(context, spec) }
        func update(id: String, attributes: [String: String]) throws(ConnectorError) {
            try owner.update(context, id: id, attributes: attributes)
        }
        func rename(id: String, userName: String) throws(ConnectorError) {
            try owner.rename(context, id: id, userName: userName)
        }
        func setEnabled(id: String, _ enabled: Bool) throws(ConnectorError) {
            try owner.setEnabled(context, id: id, enabled)
        }
        func delete(id: String) throws(ConnectorError) { try owner.delete(context, id: id) }
        func grant(id: String, entitlement: String) throws(ConnectorError) {
            try owner.grant(context, id: id, entitlement: entitlement)
        }
        func revoke(id: String, entitlement: String) throws(ConnectorError) {
            try owner.revoke(context, id: id, entitlement: entitlement)
        }
        func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
            try owner.list(cursor: cursor, pageSize: pageSize)
        }
    }

    // MARK: - Operations

    func read(_ x: Context, id: String) throws(ConnectorError) -> Account? {
        x.located[id] = nil  // a read is always fresh
        guard let e = try entry(x, id: id) else { return nil }
        return try account(x.c, e)
    }

    func find(_ x: Context, userName: String) throws(ConnectorError) -> Account? {
        let filter =
            "(&(objectClass=\(config.objectClasses[0]))"
            + "(\(config.userNameAttribute)=\(LDAPEscaping.filterValue(userName))))"
        guard let e = try searchAccounts(x.c, filter: filter).first else { return nil }
        remember(x, e)
        return try account(x.c, e)
    }

    func create(_ x: Context, _ spec: AccountSpec) throws(ConnectorError) -> Account {
        let c = x.c
        let rdnValue =
            config.rdnAttribute.lowercased() == config.userNameAttribute.lowercased()
            ? spec.userName : (spec.attributes[config.rdnAttribute] ?? spec.userName)
        let parent: String
        if case .move(let base) = config.disable, !spec.enabled { parent = base } else { parent = config.usersBase }
        let dn = "\(config.rdnAttribute)=\(LDAPEscaping.dnValue(rdnValue)),\(parent)"
        var attrs: [(String, [String])] = [
            ("objectClass", config.objectClasses), (config.userNameAttribute, [spec.userName]),
        ]
        if config.rdnAttribute.lowercased() != config.userNameAttribute.lowercased() {
            attrs.append((config.rdnAttribute, [rdnValue]))
        }
        for (k, v) in spec.attributes.sorted(by: { $0.key < $1.key })
        where !v.isEmpty && !attrs.contains(where: { $0.0.lowercased() == k.lowercased() }) {
            attrs.append((k, [v]))
        }
        // person (RFC 4519 §3.12) requires cn and sn: the user name stands in when unmapped.
        if config.objectClasses.contains(where: {
            ["person", "organizationalperson", "inetorgperson"].contains($0.lowercased())
        }) {
            for required in ["cn", "sn"] where !attrs.contains(where: { $0.0.lowercased() == required }) {
                attrs.append((required, [spec.userName]))
            }
        }
        if !spec.enabled {
            if case .lock = config.disable { attrs.append((Self.lockAttribute, [Self.lockedForever])) }
            if case .attribute(let name, let value) = config.disable { attrs.append((name, [value])) }
        }
        let rc = c.add(dn: dn, attributes: attrs)
        if rc == LDAPCode.alreadyExists {
            throw ConnectorError.permanent("create: an entry with this name already exists (LDAP 68)")
        }
        guard rc == LDAPCode.success else { throw c.error(rc, "create") }
        for e in spec.entitlements.sorted() { try addMember(c, dn: dn, entitlement: e) }
        let (_, found) = try c.search(base: dn, filter: "(objectClass=*)", attributes: readAttributes)
        guard let e = found.first else { throw ConnectorError.retryable("create: the new entry cannot be read back") }
        remember(x, e)
        return try account(e, entitlements: spec.entitlements)  // just granted: no group search needed
    }

    func update(_ x: Context, id: String, attributes: [String: String]) throws(ConnectorError) {
        let c = x.c
        guard var e = try entry(x, id: id) else { throw ConnectorError.permanent("update: no such account") }
        let rdnIsUserName = config.rdnAttribute.lowercased() == config.userNameAttribute.lowercased()
        if !rdnIsUserName, let newRDN = attributes[config.rdnAttribute], !newRDN.isEmpty,
            e.values(config.rdnAttribute).first != newRDN
        {
            e = try move(x, e, rdnValue: newRDN, parent: parent(of: e.dn))
        }
        var mods: [LDAPModification] = []
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) {
            let lower = k.lowercased()
            if lower == config.userNameAttribute.lowercased() || lower == config.rdnAttribute.lowercased() { continue }
            // An empty value removes the attribute (LDAP has no empty strings).
            mods.append(LDAPModification(operation: .replace, attribute: k, values: v.isEmpty ? [] : [v]))
        }
        guard !mods.isEmpty else { return }
        let rc = c.modify(dn: e.dn, mods)
        guard rc == LDAPCode.success else { throw c.error(rc, "update") }
    }

    func rename(_ x: Context, id: String, userName: String) throws(ConnectorError) {
        let c = x.c
        guard let e = try entry(x, id: id) else { throw ConnectorError.permanent("rename: no such account") }
        if config.rdnAttribute.lowercased() == config.userNameAttribute.lowercased() {
            _ = try move(x, e, rdnValue: userName, parent: parent(of: e.dn))
        } else {
            let rc = c.modify(
                dn: e.dn,
                [LDAPModification(operation: .replace, attribute: config.userNameAttribute, values: [userName])])
            guard rc == LDAPCode.success else { throw c.error(rc, "rename") }
        }
    }

    func setEnabled(_ x: Context, id: String, _ enabled: Bool) throws(ConnectorError) {
        let c = x.c
        guard let e = try entry(x, id: id) else { throw ConnectorError.permanent("enable/disable: no such account") }
        let rc: Int32
        switch config.disable {
        case .lock:
            rc = c.modify(
                dn: e.dn,
                [
                    LDAPModification(
                        operation: enabled ? .delete : .replace, attribute: Self.lockAttribute,
                        values: enabled ? [] : [Self.lockedForever])
                ])
        case .attribute(let name, let value):
            rc = c.modify(
                dn: e.dn, [LDAPModification(operation: enabled ? .delete : .replace, attribute: name, values: [value])])
        case .move(let base):
            let target = enabled ? config.usersBase : base
            if !Self.sameDN(parent(of: e.dn), target) { _ = try move(x, e, rdnValue: nil, parent: target) }
            return
        }
        // Enabling an account that was never disabled: the attribute is absent, which is fine.
        guard rc == LDAPCode.success || (enabled && rc == LDAPCode.noSuchAttribute) else {
            throw c.error(rc, enabled ? "enable" : "disable")
        }
    }

    func delete(_ x: Context, id: String) throws(ConnectorError) {
        let c = x.c
        guard let e = try entry(x, id: id) else { return }
        x.located[id] = nil
        for g in try groups(c, memberDN: e.dn) { try removeMember(c, dn: e.dn, groupDN: g.dn) }
        let rc = c.delete(dn: e.dn)
        guard rc == LDAPCode.success || rc == LDAPCode.noSuchObject else { throw c.error(rc, "delete") }
    }

    func grant(_ x: Context, id: String, entitlement: String) throws(ConnectorError) {
        let c = x.c
        guard let e = try entry(x, id: id) else { throw ConnectorError.permanent("grant: no such account") }
        try addMember(c, dn: e.dn, entitlement: entitlement)
    }

    func revoke(_ x: Context, id: String, entitlement: String) throws(ConnectorError) {
        let c = x.c
        guard let e = try entry(x, id: id) else { return }
        try removeMember(c, dn: e.dn, groupDN: groupDN(entitlement))
    }

    public func list(cursor: String?, pageSize: Int) throws(ConnectorError) -> AccountPage {
        let listing: Listing
        if let token = cursor {
            guard let l = listings.withLock({ $0.removeValue(forKey: token) }) else {
                throw ConnectorError.permanent("list: the cursor has expired or is unknown")
            }
            listing = l
        } else {
            listing = try startListing()
        }
        do {
            let page = try listing.next(self, pageSize: pageSize)
            guard !listing.finished else {
                pool.checkin(listing.connection)
                return AccountPage(accounts: page, next: nil)
            }
            let token = HexToken.make()
            listing.touched = Date().timeIntervalSince1970
            listings.withLock { $0[token] = listing }
            return AccountPage(accounts: page, next: token)
        } catch {
            pool.checkin(listing.connection)
            throw error
        }
    }

    // MARK: - Entries and groups

    /// Attributes read for an account.
    private var readAttributes: [String] {
        var a = ["entryUUID", config.userNameAttribute, config.rdnAttribute] + config.attributes
        switch config.disable {
        case .lock: a.append(Self.lockAttribute)
        case .attribute(let name, _): a.append(name)
        case .move: break
        }
        return a
    }

    /// Subtrees holding accounts: the users base, and the disabled subtree when it lies elsewhere.
    private var accountBases: [String] {
        if case .move(let base) = config.disable, !Self.isUnder(base, config.usersBase) {
            return [config.usersBase, base]
        }
        return [config.usersBase]
    }

    private func searchAccounts(_ c: LDAPConnection, filter: String) throws(ConnectorError) -> [LDAPEntry] {
        var out: [LDAPEntry] = []
        for base in accountBases { out += try c.search(base: base, filter: filter, attributes: readAttributes).1 }
        return out
    }

    /// The entry whose entryUUID is `id` (nil when none; an id that is not a UUID names nothing),
    /// from this unit of work's memory when it was located already.
    private func entry(_ x: Context, id: String) throws(ConnectorError) -> LDAPEntry? {
        if let e = x.located[id] { return e }
        guard id.utf8.count == 36,
            id.utf8.allSatisfy({
                $0 == 0x2D || ($0 >= 0x30 && $0 <= 0x39) || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x66)
            })
        else { return nil }
        guard let e = try searchAccounts(x.c, filter: "(entryUUID=\(LDAPEscaping.filterValue(id)))").first else {
            return nil
        }
        remember(x, e)
        return e
    }

    private func remember(_ x: Context, _ e: LDAPEntry) {
        if let id = e.values("entryUUID").first { x.located[id] = e }
    }

    private func account(_ c: LDAPConnection, _ e: LDAPEntry) throws(ConnectorError) -> Account {
        try account(e, entitlements: Set(try groups(c, memberDN: e.dn).map(\.name)))
    }

    func account(_ e: LDAPEntry, entitlements: Set<String>) throws(ConnectorError) -> Account {
        guard let id = e.values("entryUUID").first else {
            throw ConnectorError.retryable("LDAP entry without entryUUID")
        }
        var attrs: [String: String] = [:]
        for a in config.attributes {
            let v = e.values(a)
            if !v.isEmpty { attrs[a] = v.joined(separator: ",") }
        }
        let enabled: Bool
        switch config.disable {
        case .lock: enabled = e.values(Self.lockAttribute).isEmpty
        case .attribute(let name, let value): enabled = !e.values(name).contains(value)
        case .move(let base): enabled = !Self.isUnder(e.dn, base)
        }
        return Account(
            id: id, userName: e.values(config.userNameAttribute).first ?? "", attributes: attrs, enabled: enabled,
            entitlements: entitlements)
    }

    private func groupDN(_ entitlement: String) -> String {
        "\(config.groupNameAttribute)=\(LDAPEscaping.dnValue(entitlement)),\(config.groupsBase)"
    }

    /// Groups that hold `memberDN`, with their names.
    private func groups(_ c: LDAPConnection, memberDN: String) throws(ConnectorError) -> [(dn: String, name: String)] {
        let filter =
            "(&(objectClass=\(config.groupObjectClass))"
            + "(\(config.memberAttribute)=\(LDAPEscaping.filterValue(memberDN))))"
        return try c.search(base: config.groupsBase, filter: filter, attributes: [config.groupNameAttribute]).1
            .compactMap { g in
                g.values(config.groupNameAttribute).first.map { (g.dn, $0) }
            }
    }

    private func addMember(_ c: LDAPConnection, dn: String, entitlement: String) throws(ConnectorError) {
        let group = groupDN(entitlement)
        for _ in 0..<2 {
            let rc = c.modify(
                dn: group, [LDAPModification(operation: .add, attribute: config.memberAttribute, values: [dn])])
            if rc == LDAPCode.success || rc == LDAPCode.typeOrValueExists { return }
            guard rc == LDAPCode.noSuchObject else { throw c.error(rc, "grant") }
            // First member of a new group. Another worker may create it at the same moment
            // (alreadyExists): then the modify above is tried once more.
            let added = c.add(
                dn: group,
                attributes: [
                    ("objectClass", [config.groupObjectClass]), (config.groupNameAttribute, [entitlement]),
                    (config.memberAttribute, [dn]),
                ])
            if added == LDAPCode.success { return }
            guard added == LDAPCode.alreadyExists else { throw c.error(added, "grant (group create)") }
        }
        throw ConnectorError.retryable("grant: the group kept changing")
    }

    private func removeMember(_ c: LDAPConnection, dn: String, groupDN: String) throws(ConnectorError) {
        let rc = c.modify(
            dn: groupDN, [LDAPModification(operation: .delete, attribute: config.memberAttribute, values: [dn])])
        if rc == LDAPCode.success || rc == LDAPCode.noSuchAttribute || rc == LDAPCode.noSuchObject { return }
        guard rc == LDAPCode.objectClassViolation else { throw c.error(rc, "revoke") }
        // It was the last member: swap in the placeholder in one modify (RFC 4511 §4.6 is atomic).
        let swap = c.modify(
            dn: groupDN,
            [
                LDAPModification(operation: .add, attribute: config.memberAttribute, values: [config.emptyGroupMember]),
                LDAPModification(operation: .delete, attribute: config.memberAttribute, values: [dn]),
            ])
        guard swap == LDAPCode.success || swap == LDAPCode.noSuchAttribute else { throw c.error(swap, "revoke") }
    }

    /// Renames and/or moves an entry and rewrites its group memberships to the new DN.
    private func move(_ x: Context, _ e: LDAPEntry, rdnValue: String?, parent newParent: String) throws(ConnectorError)
        -> LDAPEntry
    {
        let c = x.c
        let value = rdnValue ?? e.values(config.rdnAttribute).first ?? ""
        let newRDN = "\(config.rdnAttribute)=\(LDAPEscaping.dnValue(value))"
        let memberships = try groups(c, memberDN: e.dn)
        let movesParent = !Self.sameDN(parent(of: e.dn), newParent)
        let rc = c.rename(dn: e.dn, newRDN: newRDN, newParent: movesParent ? newParent : nil)
        if rc == LDAPCode.alreadyExists {
            throw ConnectorError.permanent("rename: an entry with the new name already exists (LDAP 68)")
        }
        guard rc == LDAPCode.success else { throw c.error(rc, "rename") }
        guard let id = e.values("entryUUID").first else {
            throw ConnectorError.retryable("rename: the entry has no entryUUID")
        }
        x.located[id] = nil
        guard let moved = try entry(x, id: id) else {
            throw ConnectorError.retryable("rename: the entry cannot be read back")
        }
        for g in memberships {
            let r = c.modify(
                dn: g.dn,
                [
                    LDAPModification(operation: .add, attribute: config.memberAttribute, values: [moved.dn]),
                    LDAPModification(operation: .delete, attribute: config.memberAttribute, values: [e.dn]),
                ])
            guard r == LDAPCode.success || r == LDAPCode.typeOrValueExists || r == LDAPCode.noSuchAttribute else {
                throw c.error(r, "rename (group membership)")
            }
        }
        return moved
    }

    // MARK: - Listing (RFC 2696 paged results on one connection)

    private func startListing() throws(ConnectorError) -> Listing {
        let now = Date().timeIntervalSince1970
        let stale = listings.withLock { all -> [Listing] in
            let old = all.filter { now - $0.value.touched > Self.listingIdleSeconds }
            for k in old.keys { all[k] = nil }
            return Array(old.values)
        }
        _ = stale  // dropping them closes their connections
        guard listings.withLock({ $0.count }) < Self.maxListings else {
            throw ConnectorError.retryable("list: too many listings in progress")
        }
        let (c, _) = try pool.checkout()
        do {
            // Every group once, so each page's entitlements come from memory, not a search per account.
            var members: [String: Set<String>] = [:]
            var cookie: [UInt8] = []
            repeat {
                let (page, next) = try c.searchPage(
                    base: config.groupsBase, filter: "(objectClass=\(config.groupObjectClass))",
                    attributes: [config.groupNameAttribute, config.memberAttribute], pageSize: 1000, cookie: cookie)
                for g in page {
                    guard let name = g.values(config.groupNameAttribute).first else { continue }
                    for m in g.values(config.memberAttribute) { members[Self.normalized(m), default: []].insert(name) }
                }
                cookie = next
            } while !cookie.isEmpty
            return Listing(connection: c, bases: accountBases, memberships: members, touched: now)
        } catch {
            pool.checkin(c)
            throw error
        }
    }

    final class Listing: @unchecked Sendable {
        // @unchecked Sendable: taken out of `listings` while a page is read, so one caller uses it at a time.
        let connection: LDAPConnection
        var bases: [String]
        let memberships: [String: Set<String>]
        var cookie: [UInt8] = []
        var touched: Double
        var finished: Bool { bases.isEmpty }

        init(connection: LDAPConnection, bases: [String], memberships: [String: Set<String>], touched: Double) {
            self.connection = connection
            self.bases = bases
            self.memberships = memberships
            self.touched = touched
        }

        func next(_ owner: LDAPConnector, pageSize: Int) throws(ConnectorError) -> [Account] {
            guard let base = bases.first else { return [] }
            let (entries, next) = try connection.searchPage(
                base: base, filter: "(objectClass=\(owner.config.objectClasses[0]))",
                attributes: owner.readAttributes, pageSize: max(1, pageSize), cookie: cookie)
            cookie = next
            if next.isEmpty { bases.removeFirst() }
            var out: [Account] = []
            out.reserveCapacity(entries.count)
            for e in entries {
                out.append(try owner.account(e, entitlements: memberships[LDAPConnector.normalized(e.dn)] ?? []))
            }
            return out
        }
    }

    // MARK: - DN helpers

    /// A DN for comparison: case folded, spaces after separators removed.
    static func normalized(_ dn: String) -> String {
        dn.lowercased().replacingOccurrences(of: ", ", with: ",")
    }

    static func sameDN(_ a: String, _ b: String) -> Bool { normalized(a) == normalized(b) }

    static func isUnder(_ dn: String, _ base: String) -> Bool {
        let d = normalized(dn), b = normalized(base)
        return d == b || d.hasSuffix("," + b)
    }

    /// Everything after the first unescaped comma.
    private func parent(of dn: String) -> String {
        var escaped = false
        for (i, ch) in dn.utf8.enumerated() {
            if escaped { escaped = false; continue }
            if ch == 0x5C { escaped = true; continue }
            if ch == 0x2C { return String(decoding: dn.utf8.dropFirst(i + 1), as: UTF8.self) }
        }
        return ""
    }
}

/// Unguessable listing cursors.
enum HexToken {
    static func make() -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(g.next() as UInt64, radix: 16) }.joined()
    }
}
