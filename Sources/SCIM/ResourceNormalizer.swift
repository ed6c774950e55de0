// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore

/// Validates client-supplied resources against their schemas and returns them in
/// canonical form: schema spelling of names, extension attributes under their URN,
/// read-only attributes dropped (RFC 7643 §2.2: ignored on input), `schemas` computed.
/// Errors name attributes, never values.
public struct ResourceNormalizer: Sendable {
    public let type: SCIMResourceType

    public init(type: SCIMResourceType) { self.type = type }

    /// Normalises a whole resource body (POST, PUT, and the result of a PATCH).
    ///
    /// `stored`: for a PATCH, the resource before it. Attributes the PATCH left exactly as
    /// stored are kept without being validated again, so a value stored before a rule
    /// tightened (a longer limit, an identifier with a trailing space) never blocks an
    /// unrelated change, such as a leaver's `active: false`.
    public func normalize(_ input: JSONObject, stored: JSONObject? = nil) throws(SCIMError) -> JSONObject {
        var declared: [String] = []
        var core: [String: JSONValue] = [:]
        var ext: [String: [String: JSONValue]] = [:]
        var externalId: JSONValue? = nil
        var seen = Set<String>()

        func put(_ urn: String?, _ attr: SCIMAttribute, _ raw: JSONValue, _ label: String) throws(SCIMError) {
            let key = (urn ?? "") + "|" + attr.name.lowercased()
            guard seen.insert(key).inserted else {
                throw SCIMError.invalidSyntax("attribute '\(label)' appears more than once")
            }
            let before = urn.map { stored?[$0]?.objectValue?[attr.name] } ?? stored?[attr.name]
            if let b = before, b == raw {
                if let u = urn { ext[u, default: [:]][attr.name] = raw } else { core[attr.name] = raw }
                return
            }
            guard let v = try canonicalValue(attr, raw, path: label) else { return }
            if let u = urn { ext[u, default: [:]][attr.name] = v } else { core[attr.name] = v }
        }

        for m in input.members {
            let key = m.key
            if asciiCaseInsensitiveEquals(key, "schemas") {
                guard let arr = m.value.arrayValue else {
                    throw SCIMError.invalidValue("'schemas' must be an array of schema URNs")
                }
                for s in arr {
                    guard let urn = s.stringValue else {
                        throw SCIMError.invalidValue("'schemas' must be an array of schema URNs")
                    }
                    guard let known = type.schema(for: urn) else {
                        throw SCIMError.invalidValue("schema '\(urn.prefix(120))' is not supported for \(type.name)")
                    }
                    declared.append(known.id)
                }
                continue
            }
            if let common = CommonAttributes.named(key) {
                if common.mutability == .readOnly { continue }  // id, meta: ignored on input
                guard seen.insert("|externalid").inserted else {
                    throw SCIMError.invalidSyntax("attribute 'externalId' appears more than once")
                }
                externalId = try canonicalValue(common, m.value, path: "externalId")
                continue
            }
            if let extSchema = type.extensionSchema(key) {
                if m.value.isNull { continue }
                guard let obj = m.value.objectValue else {
                    throw SCIMError.invalidValue("'\(extSchema.id)' must be an object")
                }
                for sm in obj.members {
                    guard let attr = extSchema.attribute(sm.key) else {
                        throw SCIMError.invalidValue("'\(sm.key.prefix(100))' is not an attribute of \(extSchema.id)")
                    }
                    try put(extSchema.id, attr, sm.value, "\(extSchema.id):\(attr.name)")
                }
                continue
            }
            if let attr = type.schema.attribute(key) {
                try put(nil, attr, m.value, attr.name)
                continue
            }
            if asciiCaseInsensitiveHasPrefix(key, "urn:") {
                // A fully qualified attribute name (RFC 7644 §3.10).
                let path: AttributePath
                do { path = try AttributePath.resolve(key, in: type) } catch {
                    throw SCIMError.invalidValue(error.detail)
                }
                if path.subAttribute != nil {
                    throw SCIMError.invalidValue("'\(key.prefix(200))' names a sub-attribute; send the whole attribute")
                }
                if path.attribute === CommonAttributes.externalId {
                    externalId = try canonicalValue(path.attribute, m.value, path: "externalId")
                } else if path.attribute.mutability != .readOnly {
                    try put(path.extensionURN, path.attribute, m.value, path.description)
                }
                continue
            }
            throw SCIMError.invalidValue("'\(key.prefix(100))' is not an attribute of \(type.name)")
        }
        guard declared.contains(where: { $0 == type.schema.id }) else {
            throw SCIMError.invalidValue("'schemas' must include \(type.schema.id)")
        }

        // Required attributes (RFC 7643 §2.2), then assemble in schema order.
        for a in type.schema.attributes where a.required && core[a.name] == nil {
            throw SCIMError.invalidValue("'\(a.name)' is required for \(type.name)")
        }
        var out = JSONObject()
        var schemas: [JSONValue] = [.string(type.schema.id)]
        for e in type.extensions where e.required && ext[e.schema.id] == nil {
            throw SCIMError.invalidValue("extension \(e.schema.id) is required for \(type.name)")
        }
        for e in type.extensions where ext[e.schema.id] != nil { schemas.append(.string(e.schema.id)) }
        out["schemas"] = .array(schemas)
        if let x = externalId { out["externalId"] = x }
        for a in type.schema.attributes { if let v = core[a.name] { out[a.name] = v } }
        for e in type.extensions {
            guard let values = ext[e.schema.id] else { continue }
            for a in e.schema.attributes where a.required && values[a.name] == nil {
                throw SCIMError.invalidValue("'\(e.schema.id):\(a.name)' is required")
            }
            var o = JSONObject()
            for a in e.schema.attributes { if let v = values[a.name] { o[a.name] = v } }
            out[e.schema.id] = .object(o)
        }
        return out
    }

    /// Validates one attribute value and returns its canonical form, or nil when the value
    /// means "unassigned" (null, empty array, empty object) or the attribute is read-only.
    public func canonicalValue(_ attr: SCIMAttribute, _ raw: JSONValue, path: String) throws(SCIMError) -> JSONValue? {
        if raw.isNull || attr.mutability == .readOnly { return nil }
        if attr.multiValued {
            let items = raw.arrayValue ?? [raw]
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for item in items {
                if item.isNull { throw SCIMError.invalidValue("'\(path)' must not contain null values") }
                if item.arrayValue != nil { throw SCIMError.invalidValue("'\(path)' must not contain nested arrays") }
                if let v = try singleValue(attr, item, path: path) { out.append(v) }
            }
            if out.isEmpty { return nil }
            if attr.type == .complex {
                // RFC 7643 §2.4: "primary" true appears no more than once.
                let primaries = out.filter { $0.objectValue?["primary"]?.boolValue == true }.count
                if primaries > 1 { throw SCIMError.invalidValue("'\(path)' has more than one primary value") }
            }
            return .array(out)
        }
        if raw.arrayValue != nil { throw SCIMError.invalidValue("'\(path)' is single-valued; an array was sent") }
        return try singleValue(attr, raw, path: path)
    }

    private func singleValue(_ attr: SCIMAttribute, _ raw: JSONValue, path: String) throws(SCIMError) -> JSONValue? {
        switch attr.type {
        case .complex:
            var input: JSONObject
            if let o = raw.objectValue {
                input = o
            } else if let s = raw.stringValue, attr.subAttribute("value") != nil {
                // Interop: `"manager": "<id>"` means `{"value": "<id>"}`.
                input = JSONObject(["value": .string(s)])
            } else {
                throw SCIMError.invalidValue("'\(path)' must be an object")
            }
            var out = JSONObject()
            var seen = Set<String>()
            for m in input.members {
                guard let sub = attr.subAttribute(m.key) else {
                    throw SCIMError.invalidValue("'\(m.key.prefix(100))' is not a sub-attribute of \(path)")
                }
                guard seen.insert(sub.name).inserted else {
                    throw SCIMError.invalidSyntax("'\(path).\(sub.name)' appears more than once")
                }
                if let v = try canonicalValue(sub, m.value, path: "\(path).\(sub.name)") { out[sub.name] = v }
            }
            // Keep schema order for readable, stable output.
            out.members.sort { a, b in
                (attr.subAttributes.firstIndex { $0.name == a.key } ?? 0)
                    < (attr.subAttributes.firstIndex { $0.name == b.key } ?? 0)
            }
            for sub in attr.subAttributes where sub.required && out[sub.name] == nil {
                throw SCIMError.invalidValue("'\(path).\(sub.name)' is required")
            }
            return out.isEmpty ? nil : .object(out)
        case .string, .reference:
            guard let s = raw.stringValue else { throw SCIMError.invalidValue("'\(path)' must be a string") }
            try Self.checkLength(attr, s, path: path)
            if attr.isIdentifier, let problem = SCIMIdentifier.problem(s) {
                throw SCIMError.invalidValue("'\(path)' \(problem)")
            }
            if !attr.canonicalValues.isEmpty {
                guard let c = attr.canonicalValues.first(where: { $0.caseInsensitiveEquals(s) }) else {
                    throw SCIMError.invalidValue(
                        "'\(path)' must be one of: \(attr.canonicalValues.joined(separator: ", "))")
                }
                return .string(c)
            }
            return .string(s)
        case .boolean:
            if let b = raw.boolValue { return .bool(b) }
            // Interop: Entra ID sends "True"/"False" strings.
            if let s = raw.stringValue {
                if s.caseInsensitiveEquals("true") { return .bool(true) }
                if s.caseInsensitiveEquals("false") { return .bool(false) }
            }
            throw SCIMError.invalidValue("'\(path)' must be a boolean")
        case .integer:
            guard let n = raw.numberValue else { throw SCIMError.invalidValue("'\(path)' must be an integer") }
            guard n.int64 != nil else { throw SCIMError.invalidValue("'\(path)' must be an integer within 64 bits") }
            return raw
        case .decimal:
            guard let n = raw.numberValue else { throw SCIMError.invalidValue("'\(path)' must be a number") }
            guard n.double != nil else { throw SCIMError.invalidValue("'\(path)' is out of range") }
            return raw
        case .dateTime:
            guard let s = raw.stringValue, Timestamp.parse(s) != nil else {
                throw SCIMError.invalidValue("'\(path)' must be an xsd:dateTime such as 2026-01-31T23:59:59Z")
            }
            return raw
        case .binary:
            guard let s = raw.stringValue else { throw SCIMError.invalidValue("'\(path)' must be base64") }
            try Self.checkLength(attr, s, path: path)
            guard isBase64(s) else { throw SCIMError.invalidValue("'\(path)' must be base64") }
            return raw
        }
    }

    /// Every string attribute has a maximum length (`AttributeLimits`); the byte count is a
    /// cheap upper bound of the scalar count, so most values need no counting.
    static func checkLength(_ attr: SCIMAttribute, _ s: String, path: String) throws(SCIMError) {
        guard s.utf8.count > attr.maxLength, s.unicodeScalars.count > attr.maxLength else { return }
        throw SCIMError.invalidValue("'\(path)' is longer than \(attr.maxLength) characters")
    }

    private func isBase64(_ s: String) -> Bool {
        var n = 0
        var padding = 0
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                if padding > 0 { return false }
            case UInt8(ascii: "="): padding += 1
            case 0x0D, 0x0A: continue
            default: return false
            }
            n += 1
        }
        return padding <= 2
    }

    /// Top-level attribute names whose values differ between two canonical resources;
    /// extension attributes are named `urn:…:attr`. Used for the audit log (names, never values).
    public func changedAttributes(from old: JSONObject, to new: JSONObject) -> [String] {
        var names: [String] = []
        func diff(_ a: JSONObject?, _ b: JSONObject?, prefix: String) {
            let keys = Set((a?.keys ?? []) + (b?.keys ?? []))
            for k in keys.sorted() where k != "schemas" && k != "meta" && k != "id" {
                if prefix.isEmpty, type.extensionSchema(k) != nil {
                    diff(a?[k]?.objectValue, b?[k]?.objectValue, prefix: k + ":")
                } else if a?[k] != b?[k] {
                    names.append(prefix + k)
                }
            }
        }
        diff(old, new, prefix: "")
        return names
    }
}

extension String {
    /// Unicode case-insensitive equality (canonical values, booleans in strings).
    func caseInsensitiveEquals(_ other: String) -> Bool {
        asciiCaseInsensitiveEquals(self, other) || lowercased() == other.lowercased()
    }
}
