// SPDX-License-Identifier: Apache-2.0
private import CLDAP
import Glibc
import ConnectorKit

/// LDAP result codes the connector acts on (RFC 4511 §4.1.9; negative: libldap's own).
enum LDAPCode {
    static let success: Int32 = 0
    static let timeLimitExceeded: Int32 = 3
    static let adminLimitExceeded: Int32 = 11
    static let noSuchAttribute: Int32 = 16
    static let undefinedAttributeType: Int32 = 17
    static let typeOrValueExists: Int32 = 20
    static let noSuchObject: Int32 = 32
    static let invalidCredentials: Int32 = 49
    static let insufficientAccessRights: Int32 = 50
    static let busy: Int32 = 51
    static let unavailable: Int32 = 52
    static let objectClassViolation: Int32 = 65
    static let alreadyExists: Int32 = 68
    static let serverDown: Int32 = -1
    static let timeout: Int32 = -5
    static let connectError: Int32 = -11

    /// Worth retrying: the server is down, slow or busy (RFC 4511 §4.1.9 busy, unavailable).
    static func isRetryable(_ rc: Int32) -> Bool {
        [serverDown, timeout, connectError, timeLimitExceeded, adminLimitExceeded, busy, unavailable].contains(rc)
    }

    /// The connection itself is broken: drop it, open another.
    static func breaksConnection(_ rc: Int32) -> Bool { rc == serverDown || rc == timeout || rc == connectError }
}

/// An entry as read: its DN and attribute values (names as the server spelled them).
struct LDAPEntry {
    var dn: String
    var attributes: [String: [String]]

    /// Values of `name`, case-insensitively (LDAP attribute names are).
    func values(_ name: String) -> [String] {
        if let v = attributes[name] { return v }
        let lower = name.lowercased()
        return attributes.first { $0.key.lowercased() == lower }?.value ?? []
    }
}

/// One modification of a modify request (RFC 4511 §4.6).
struct LDAPModification {
    enum Operation: Int32 { case add = 0, delete = 1, replace = 2 }
    var operation: Operation
    var attribute: String
    /// Empty with `replace` or `delete`: all values go.
    var values: [String]
}

/// Settings for opening one session.
struct LDAPSessionSettings: Sendable {
    var url: String
    var startTLS: Bool
    var bindDN: String
    var bindPassword: String
    var verifyTLS: Bool
    var caFile: String?
    var connectTimeout: Double
    var timeout: Double
}

/// One bound LDAP session over libldap's synchronous calls. Used by one thread at a time
/// (the pool guarantees it); `isUsable` turns false when the server goes away.
final class LDAPConnection: PooledConnection {
    private let ld: OpaquePointer
    private(set) var isUsable = true

    // libldap option numbers (ldap.h); TLS values from ldap.h's LDAP_OPT_X_TLS_* block.
    private static let optProtocolVersion: Int32 = 0x0011
    private static let optTimeout: Int32 = 0x5002
    private static let optNetworkTimeout: Int32 = 0x5005
    private static let optDiagnosticMessage: Int32 = 0x0032
    private static let optTLSCACertFile: Int32 = 0x6002
    private static let optTLSRequireCert: Int32 = 0x6006
    private static let optTLSNewContext: Int32 = 0x600F
    private static let tlsNever: Int32 = 0
    private static let tlsDemand: Int32 = 2

    /// Connects, optionally runs StartTLS (RFC 4513 §3), and binds.
    init(_ s: LDAPSessionSettings) throws(ConnectorError) {
        var handle: OpaquePointer?
        guard ldap_initialize(&handle, s.url) == LDAPCode.success, let h = handle else {
            throw ConnectorError.permanent("LDAP: the URL is not an ldap:// or ldaps:// URL")
        }
        ld = h
        _ = scimhub_ldap_set_int(h, Self.optProtocolVersion, 3)
        _ = scimhub_ldap_referrals_off(h)
        _ = scimhub_ldap_set_timeout(h, Self.optNetworkTimeout, s.connectTimeout)
        _ = scimhub_ldap_set_timeout(h, Self.optTimeout, s.timeout)
        if s.startTLS || s.url.lowercased().hasPrefix("ldaps://") {
            _ = scimhub_ldap_set_int(h, Self.optTLSRequireCert, s.verifyTLS ? Self.tlsDemand : Self.tlsNever)
            if let ca = s.caFile { _ = scimhub_ldap_set_string(h, Self.optTLSCACertFile, ca) }
            _ = scimhub_ldap_set_int(h, Self.optTLSNewContext, 0)
        }
        if s.startTLS {
            let rc = ldap_start_tls_s(h, nil, nil)
            guard rc == LDAPCode.success else { throw error(rc, "StartTLS") }
        }
        let rc = s.bindPassword.withCString { scimhub_ldap_simple_bind(h, s.bindDN, $0, s.bindPassword.utf8.count) }
        guard rc == LDAPCode.success else {
            if rc == LDAPCode.invalidCredentials {
                throw ConnectorError.permanent(
                    "LDAP bind refused: invalid credentials (LDAP 49); check bindDN and the password")
            }
            throw error(rc, "bind")
        }
    }

    deinit { ldap_unbind_ext_s(ld, nil, nil) }

    /// A classified error for result code `rc`. The server's diagnostic names schema
    /// problems ("object class 'x' requires attribute 'sn'"); values are not echoed by slapd.
    func error(_ rc: Int32, _ what: String) -> ConnectorError {
        if LDAPCode.breaksConnection(rc) { isUsable = false }
        var text = "\(what): LDAP \(rc) \(String(cString: ldap_err2string(rc)))"
        var diagnostic: UnsafeMutablePointer<CChar>?
        if ldap_get_option(ld, Self.optDiagnosticMessage, &diagnostic) == LDAPCode.success, let d = diagnostic {
            let message = String(cString: d)
            if !message.isEmpty { text += " (\(message.prefix(160)))" }
            ldap_memfree(d)
        }
        return LDAPCode.isRetryable(rc) ? .retryable(text) : .permanent(text)
    }

    // MARK: - Operations (each returns the result code; callers decide what is fine)

    func add(dn: String, attributes: [(String, [String])]) -> Int32 {
        withMods(attributes.map { LDAPModification(operation: .add, attribute: $0.0, values: $0.1) }) {
            ldap_add_ext_s(ld, dn, $0, nil, nil)
        }
    }

    func modify(dn: String, _ mods: [LDAPModification]) -> Int32 {
        withMods(mods) { ldap_modify_ext_s(ld, dn, $0, nil, nil) }
    }

    func delete(dn: String) -> Int32 { ldap_delete_ext_s(ld, dn, nil, nil) }

    /// modrdn (RFC 4511 §4.9): new RDN, optionally a new parent; the old RDN value goes.
    func rename(dn: String, newRDN: String, newParent: String?) -> Int32 {
        ldap_rename_s(ld, dn, newRDN, newParent, 1, nil, nil)
    }

    /// A subtree search returning every matching entry (small result sets: lookups).
    func search(base: String, filter: String, attributes: [String]) throws(ConnectorError) -> (Int32, [LDAPEntry]) {
        var result: OpaquePointer?
        let rc = withCStrings(attributes) { attrs in
            ldap_search_ext_s(ld, base, 2 /* LDAP_SCOPE_SUBTREE */, filter, attrs, 0, nil, nil, nil, 0, &result)
        }
        defer { if let r = result { ldap_msgfree(r) } }
        guard rc == LDAPCode.success || rc == LDAPCode.noSuchObject else { throw error(rc, "search") }
        return (rc, result.map(entries) ?? [])
    }

    /// One page of a paged subtree search (RFC 2696); the returned cookie is empty on the last page.
    func searchPage(base: String, filter: String, attributes: [String], pageSize: Int, cookie: [UInt8])
        throws(ConnectorError) -> ([LDAPEntry], [UInt8])
    {
        var result: OpaquePointer?
        let rc = withCStrings(attributes) { attrs in
            cookie.withUnsafeBufferPointer { c in
                c.withMemoryRebound(to: CChar.self) { cc in
                    scimhub_ldap_paged_search(
                        ld, base, 2, filter, attrs, Int32(clamping: pageSize), cc.baseAddress, cc.count, &result)
                }
            }
        }
        defer { if let r = result { ldap_msgfree(r) } }
        guard rc == LDAPCode.success, let r = result else {
            throw error(rc == LDAPCode.success ? LDAPCode.serverDown : rc, "paged search")
        }
        var next = [UInt8](repeating: 0, count: 4096)
        let length = next.withUnsafeMutableBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { scimhub_ldap_page_cookie(ld, r, $0.baseAddress, $0.count) }
        }
        guard length >= 0 else {
            throw ConnectorError.retryable("paged search: the server's paging cookie cannot be read")
        }
        return (entries(r), Array(next.prefix(length)))
    }

    // MARK: - C plumbing

    private func entries(_ result: OpaquePointer) -> [LDAPEntry] {
        var out: [LDAPEntry] = []
        var entry = ldap_first_entry(ld, result)
        while let e = entry {
            var dn = ""
            if let p = ldap_get_dn(ld, e) { dn = String(cString: p); ldap_memfree(p) }
            var attributes: [String: [String]] = [:]
            var ber: OpaquePointer?
            var name = ldap_first_attribute(ld, e, &ber)
            while let n = name {
                var values: [String] = []
                if let vals = ldap_get_values_len(ld, e, n) {
                    var i = 0
                    while let bv = vals[i] {
                        values.append(
                            String(
                                decoding: UnsafeRawBufferPointer(
                                    start: bv.pointee.bv_val, count: Int(bv.pointee.bv_len)), as: UTF8.self))
                        i += 1
                    }
                    ldap_value_free_len(vals)
                }
                attributes[String(cString: n)] = values
                ldap_memfree(n)
                name = ldap_next_attribute(ld, e, ber)
            }
            if let b = ber { ber_free(b, 0) }
            out.append(LDAPEntry(dn: dn, attributes: attributes))
            entry = ldap_next_entry(ld, e)
        }
        return out
    }

    /// Builds a C modification list (values with explicit lengths) for one call, then frees it.
    private func withMods(
        _ mods: [LDAPModification], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<LDAPMod>?>) -> Int32
    ) -> Int32 {
        guard let list = scimhub_ldap_mods_new(Int32(mods.count)) else { return -10 /* LDAP_NO_MEMORY */ }
        defer { ldap_mods_free(list, 1) }
        for (i, m) in mods.enumerated() {
            guard let mod = scimhub_ldap_mods_set(list, Int32(i), m.operation.rawValue, m.attribute) else { return -10 }
            for v in m.values {
                let bytes = Array(v.utf8)
                let rc = bytes.withUnsafeBufferPointer { b in
                    b.withMemoryRebound(to: CChar.self) { scimhub_ldap_mod_add_value(mod, $0.baseAddress, $0.count) }
                }
                if rc != 0 { return -10 }
            }
        }
        return body(list)
    }

    /// A NULL-terminated `char *[]` for attribute lists.
    private func withCStrings<T>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> T)
        -> T
    {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
