// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// A resolved `attrPath` (RFC 7644 §3.10): `[URI ":"] ATTRNAME [ "." subAttr ]`.
public struct AttributePath: Sendable, CustomStringConvertible {
    /// The extension schema URN the attribute lives under, or nil for core and common attributes.
    public let extensionURN: String?
    /// The top-level attribute.
    public let attribute: SCIMAttribute
    /// The sub-attribute, when the path names one.
    public let subAttribute: SCIMAttribute?

    public init(extensionURN: String?, attribute: SCIMAttribute, subAttribute: SCIMAttribute?) {
        self.extensionURN = extensionURN
        self.attribute = attribute
        self.subAttribute = subAttribute
    }

    /// The attribute the path ends at.
    public var leaf: SCIMAttribute { subAttribute ?? attribute }

    /// Canonical text, e.g. `name.givenName` or `urn:…:User:department`.
    public var description: String {
        var s = extensionURN.map { $0 + ":" } ?? ""
        s += attribute.name
        if let sub = subAttribute { s += "." + sub.name }
        return s
    }

    /// Resolves `text` against a resource type. Unqualified names are core or common
    /// attributes; extension attributes need their schema URN prefix (RFC 7644 §3.10).
    public static func resolve(_ text: String, in type: SCIMResourceType) throws(SCIMError) -> AttributePath {
        guard let r = try resolveAllowingExtension(text, in: type), let attr = r.attribute else {
            throw SCIMError.invalidPath("'\(text.prefix(200))' names a schema, not an attribute")
        }
        return AttributePath(extensionURN: r.extensionURN, attribute: attr, subAttribute: r.sub)
    }

    /// Like `resolve`, but a bare extension URN resolves to (urn, nil, nil).
    static func resolveAllowingExtension(_ text: String, in type: SCIMResourceType) throws(SCIMError)
        -> (extensionURN: String?, attribute: SCIMAttribute?, sub: SCIMAttribute?)?
    {
        var rest = Substring(text)
        var schema = type.schema
        var extURN: String? = nil
        if asciiCaseInsensitiveHasPrefix(text, "urn:") {
            // The longest known schema URN that prefixes the path, followed by ':' or the end.
            let candidates = type.allSchemaIDs.filter { asciiCaseInsensitiveHasPrefix(text, $0) }.sorted {
                $0.count > $1.count
            }
            guard
                let urn = candidates.first(where: {
                    text.utf8.count == $0.utf8.count || text.utf8.dropFirst($0.utf8.count).first == UInt8(ascii: ":")
                })
            else {
                throw SCIMError.invalidPath("'\(text.prefix(200))' names an unknown schema for \(type.name)")
            }
            let s = type.schema(for: urn)!
            if s.id != type.schema.id { extURN = s.id }
            schema = s
            if text.utf8.count == urn.utf8.count {
                guard extURN != nil else {
                    throw SCIMError.invalidPath("'\(text.prefix(200))' names the core schema, not an attribute")
                }
                return (extURN, nil, nil)
            }
            rest = Substring(text.utf8.dropFirst(urn.utf8.count + 1))
        }
        let parts = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let name = String(parts[0])
        guard isAttributeName(name) else {
            throw SCIMError.invalidPath("'\(text.prefix(200))' is not a valid attribute path")
        }
        let attr: SCIMAttribute?
        if extURN == nil {
            attr = schema.attribute(name) ?? CommonAttributes.named(name)
        } else {
            attr = schema.attribute(name)
        }
        guard let a = attr else { throw SCIMError.invalidPath("'\(name)' is not an attribute of \(type.name)") }
        var sub: SCIMAttribute? = nil
        if parts.count == 2 {
            guard a.type == .complex, let s = a.subAttribute(String(parts[1])) else {
                throw SCIMError.invalidPath("'\(parts[1].prefix(100))' is not a sub-attribute of \(a.name)")
            }
            sub = s
        }
        return (extURN, a, sub)
    }

    /// ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA, plus `$ref` (RFC 7643 §2.1).
    static func isAttributeName(_ s: String) -> Bool {
        if s == "$ref" || s.lowercased() == "$ref" { return true }
        guard let f = s.utf8.first, (f | 0x20) >= 0x61 && (f | 0x20) <= 0x7A else { return false }
        return s.utf8.allSatisfy { c in
            (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A || (c >= 0x30 && c <= 0x39) || c == 0x2D || c == 0x5F
        }
    }
}

extension JSONObject {
    /// The value at a resolved path's top-level attribute: extension attributes sit under
    /// their URN key. Keys in stored resources are canonical, so lookups are exact.
    public func topValue(_ path: AttributePath) -> JSONValue? {
        if let urn = path.extensionURN {
            return self[urn]?.objectValue?[path.attribute.name]
        }
        return self[path.attribute.name]
    }
}
