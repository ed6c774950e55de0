// SPDX-License-Identifier: Apache-2.0
import ConnectorKit
import JSONCore

/// The `ldap` connector plugin.
public struct LDAPConnectorFactory: ConnectorFactory {
    public let typeName = "ldap"
    public init() {}

    public func make(_ target: TargetSettings) throws(ConnectorSettingsError) -> any Connector {
        LDAPConnector(config: try Self.config(target))
    }

    /// An LDAP attribute name (RFC 4512 §1.4 descr): it is spliced into filters, so nothing else passes.
    static func attributeName(_ v: JSONValue?, _ at: String) throws(ConnectorSettingsError) -> String? {
        guard let v else { return nil }
        guard let n = v.stringValue, let first = n.utf8.first, (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A,
            n.utf8.count <= 64,
            n.utf8.allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            )
        else {
            throw ConnectorSettingsError("\(at) must be an LDAP attribute name (a letter, then letters, digits or '-')")
        }
        return n
    }

    /// `settings` of an `ldap` target:
    /// `{"url": "ldap://host" | "ldaps://host", "startTLS"?, "bindDN", "bindPasswordEnv"|"bindPasswordFile",
    ///   "usersBase", "groupsBase", "objectClasses"?, "rdnAttribute"?, "userNameAttribute"?,
    ///   "groupObjectClass"?: "groupOfNames"|"groupOfUniqueNames", "groupNameAttribute"?, "emptyGroupMember"?,
    ///   "disable"?: {"method": "lock"} | {"method": "attribute", "attribute", "value"} | {"method": "move", "base"},
    ///   "pageSize"?, "verifyTLS"?, "caFile"?, "connectTimeoutSeconds"?, "timeoutSeconds"?}`
    /// The mapping's field names are LDAP attribute names.
    static func config(_ t: TargetSettings) throws(ConnectorSettingsError) -> LDAPConfig {
        let s = t.settings, at = t.at
        try t.onlyKnownKeys([
            "url", "startTLS", "bindDN", "bindPassword", "usersBase", "groupsBase", "objectClasses", "rdnAttribute",
            "userNameAttribute",
            "groupObjectClass", "groupNameAttribute", "emptyGroupMember", "disable", "pageSize", "verifyTLS", "caFile",
            "connectTimeoutSeconds", "timeoutSeconds",
        ])
        guard let url = s["url"]?.stringValue,
            url.lowercased().hasPrefix("ldap://") || url.lowercased().hasPrefix("ldaps://")
        else {
            throw ConnectorSettingsError("\(at).url must be an ldap:// or ldaps:// URL")
        }
        guard let bindDN = s["bindDN"]?.stringValue, !bindDN.isEmpty else {
            throw ConnectorSettingsError("\(at).bindDN is required")
        }
        guard let password = s["bindPassword"]?.stringValue else {
            throw ConnectorSettingsError("\(at) needs bindPasswordEnv or bindPasswordFile")
        }
        guard let users = s["usersBase"]?.stringValue, !users.isEmpty else {
            throw ConnectorSettingsError("\(at).usersBase is required")
        }
        guard let groups = s["groupsBase"]?.stringValue, !groups.isEmpty else {
            throw ConnectorSettingsError("\(at).groupsBase is required")
        }
        var c = LDAPConfig(url: url, bindDN: bindDN, bindPassword: password, usersBase: users, groupsBase: groups)
        if let v = s["startTLS"] {
            guard let b = v.boolValue else { throw ConnectorSettingsError("\(at).startTLS must be true or false") }
            c.startTLS = b
        }
        if let v = s["objectClasses"] {
            var names: [String] = []
            for o in v.arrayValue ?? [] { names.append(try attributeName(o, "\(at).objectClasses[]") ?? "") }
            guard !names.isEmpty else {
                throw ConnectorSettingsError("\(at).objectClasses must be a non-empty array of object class names")
            }
            c.objectClasses = names
        }
        if let n = try attributeName(s["rdnAttribute"], "\(at).rdnAttribute") { c.rdnAttribute = n }
        if let n = try attributeName(s["userNameAttribute"], "\(at).userNameAttribute") { c.userNameAttribute = n }
        if let n = try attributeName(s["groupNameAttribute"], "\(at).groupNameAttribute") { c.groupNameAttribute = n }
        if let g = s["groupObjectClass"] {
            guard let n = g.stringValue, ["groupofnames", "groupofuniquenames"].contains(n.lowercased()) else {
                throw ConnectorSettingsError("\(at).groupObjectClass must be groupOfNames or groupOfUniqueNames")
            }
            c.groupObjectClass = n
        }
        if let m = s["emptyGroupMember"]?.stringValue { c.emptyGroupMember = m }
        if let d = s["disable"] {
            guard let o = d.objectValue, let method = o["method"]?.stringValue else {
                throw ConnectorSettingsError("\(at).disable must be {\"method\": \"lock\" | \"attribute\" | \"move\"}")
            }
            switch method {
            case "lock": c.disable = .lock
            case "attribute":
                guard let name = try attributeName(o["attribute"], "\(at).disable.attribute"),
                    let value = o["value"]?.stringValue, !value.isEmpty
                else {
                    throw ConnectorSettingsError("\(at).disable needs 'attribute' and a non-empty 'value'")
                }
                c.disable = .attribute(name: name, value: value)
            case "move":
                guard let base = o["base"]?.stringValue, !base.isEmpty else {
                    throw ConnectorSettingsError("\(at).disable needs 'base' (the disabled subtree)")
                }
                c.disable = .move(base: base)
            default: throw ConnectorSettingsError("\(at).disable.method must be lock, attribute or move")
            }
        }
        if let p = s["pageSize"] {
            guard let n = p.numberValue?.int64, (1...10_000).contains(n) else {
                throw ConnectorSettingsError("\(at).pageSize must be an integer in 1...10000")
            }
            c.pageSize = Int(n)
        }
        if let v = s["verifyTLS"]?.boolValue { c.verifyTLS = v }
        if let f = s["caFile"]?.stringValue { c.caFile = f }
        if let n = s["connectTimeoutSeconds"]?.numberValue?.double, n > 0 { c.connectTimeout = n }
        if let n = s["timeoutSeconds"]?.numberValue?.double, n > 0 { c.timeout = n }
        c.attributes = []
        for f in t.mappedFields {
            c.attributes.append(try attributeName(.string(f), "target '\(t.targetName)' mapping key '\(f)'") ?? f)
        }
        return c
    }
}
