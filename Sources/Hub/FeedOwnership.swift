// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import SCIM
import Store

/// Several authoritative feeds: each feed principal owns a set of User attributes and,
/// optionally, Groups by display-name pattern (config `feeds`). A feed writing an attribute
/// or a Group it does not own gets 403 naming it and nothing is stored; a feed's PUT keeps
/// the attributes other feeds own; every write records which feed set each attribute.
/// Group memberships grant access packages exactly as attributes do, so Group writes are
/// owned too, on every path (POST, PUT, PATCH, DELETE, Bulk all pass through here).
/// Without `feeds` in the config, any writer may write anything.
struct FeedOwnership: Sendable {
    /// Principal → owned attribute names: `title`, `name`, an extension attribute
    /// `urn:…:User:department`, a whole extension `urn:…:User:*`, or `*`.
    let owners: [String: [String]]
    /// Principal → Group display-name patterns (`*`, `ward-*`), compared in canonical form.
    let groupOwners: [String: [String]]

    init(owners: [String: [String]], groupOwners: [String: [String]] = [:]) {
        self.owners = owners
        self.groupOwners = groupOwners
    }

    var isConfigured: Bool { !owners.isEmpty || !groupOwners.isEmpty }

    /// Throws 403 unless `principal` owns Groups named `displayName` (a create, or a Group
    /// before and after a change).
    func checkGroup(_ principal: String, displayName: String?) throws {
        guard isConfigured else { return }
        guard owners[principal] != nil || groupOwners[principal] != nil else {
            throw SCIMError(
                status: 403, detail: "principal '\(principal)' is not a configured feed: it may not write Groups")
        }
        let name = displayName ?? ""
        guard let patterns = groupOwners[principal], !patterns.isEmpty else {
            throw SCIMError(status: 403, detail: "feed '\(principal)' does not own Groups; nothing was stored")
        }
        guard patterns.contains(where: { Identifier.matches(pattern: $0, name) }) else {
            throw SCIMError(
                status: 403,
                detail:
                    "feed '\(principal)' does not own the Group "
                    + "'\(String((displayName ?? "").prefix(256)))'; nothing was stored"
            )
        }
    }

    func owns(_ principal: String, _ attribute: String) -> Bool {
        guard let owned = owners[principal] else { return false }
        return owned.contains { o in
            o == "*" || o == attribute || (o.hasSuffix(":*") && attribute.hasPrefix(String(o.dropLast())))
        }
    }

    /// Throws 403 naming the first attribute `principal` may not write.
    func check(_ principal: String, writes attributes: [String]) throws {
        guard isConfigured else { return }
        guard owners[principal] != nil else {
            throw SCIMError(
                status: 403, detail: "principal '\(principal)' is not a configured feed: it may not write Users")
        }
        if let foreign = attributes.first(where: { !owns(principal, $0) }) {
            throw SCIMError(
                status: 403,
                detail: "feed '\(principal)' does not own attribute '\(foreign)'; the stored value is unchanged")
        }
    }

    /// A feed's PUT replaces only what it owns: attributes it does not own keep their stored
    /// values (an HR system's full PUT must not erase the credentialing feed's licence data).
    func merge(_ principal: String, stored: JSONObject, into doc: JSONObject, type: SCIMResourceType) -> JSONObject {
        guard isConfigured, owners[principal] != nil else { return doc }
        var out = doc
        for k in stored.keys where k != "schemas" && k != "meta" && k != "id" {
            if type.extensionSchema(k) != nil {
                guard let storedExt = stored[k]?.objectValue else { continue }
                var ext = out[k]?.objectValue ?? JSONObject()
                for sub in storedExt.keys where !owns(principal, "\(k):\(sub)") && ext[sub] == nil {
                    ext[sub] = storedExt[sub]
                }
                if !ext.isEmpty { out[k] = .object(ext) }
                if case .array(let schemas)? = out["schemas"], !schemas.contains(.string(k)), !ext.isEmpty {
                    out["schemas"] = .array(schemas + [.string(k)])
                }
            } else if !owns(principal, k) && out[k] == nil {
                out[k] = stored[k]
            }
        }
        return out
    }
}
