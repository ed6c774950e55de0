// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// One PATCH operation (RFC 7644 §3.5.2).
public struct PatchOperation: Sendable {
    public enum Op: String, Sendable { case add, replace, remove }
    public let op: Op
    public let path: String?
    public let value: JSONValue?

    public init(op: Op, path: String?, value: JSONValue?) {
        self.op = op
        self.path = path
        self.value = value
    }
}

/// A parsed PatchOp message and the engine that applies it to a resource.
public struct PatchRequest: Sendable {
    public let operations: [PatchOperation]

    /// Most operations accepted in one request.
    public static let maxOperations = 1000

    /// A request from already parsed operations.
    public init(operations: [PatchOperation]) { self.operations = operations }

    /// Parses a PatchOp body. Op names are case-insensitive (interop: `Add`, `Replace`).
    public init(_ body: JSONObject) throws(SCIMError) {
        guard let schemas = body.value(caseInsensitive: "schemas")?.arrayValue,
            schemas.contains(where: {
                $0.stringValue.map { asciiCaseInsensitiveEquals($0, SCIMSchemaURN.patchOp) } ?? false
            })
        else {
            throw SCIMError.invalidSyntax("'schemas' must include \(SCIMSchemaURN.patchOp)")
        }
        guard let ops = body.value(caseInsensitive: "Operations")?.arrayValue, !ops.isEmpty else {
            throw SCIMError.invalidSyntax("'Operations' must be a non-empty array")
        }
        guard ops.count <= Self.maxOperations else {
            throw SCIMError.invalidSyntax("more than \(Self.maxOperations) operations")
        }
        for m in body.members where !["schemas", "operations"].contains(m.key.lowercased()) {
            throw SCIMError.invalidSyntax("'\(m.key.prefix(100))' is not a member of a PatchOp message")
        }
        var parsed: [PatchOperation] = []
        for (i, raw) in ops.enumerated() {
            guard let o = raw.objectValue else { throw SCIMError.invalidSyntax("operation \(i + 1) is not an object") }
            guard let opName = o.value(caseInsensitive: "op")?.stringValue,
                let op = PatchOperation.Op(rawValue: opName.lowercased())
            else {
                throw SCIMError.invalidSyntax("operation \(i + 1) has an unknown 'op'; use add, replace or remove")
            }
            var path: String? = nil
            if let p = o.value(caseInsensitive: "path"), !p.isNull {
                guard let s = p.stringValue else {
                    throw SCIMError.invalidPath("operation \(i + 1) has a non-string 'path'")
                }
                path = s.isEmpty ? nil : s
            }
            let value = o.value(caseInsensitive: "value")
            if op != .remove, value == nil {
                throw SCIMError.invalidValue("operation \(i + 1) (\(op.rawValue)) needs a 'value'")
            }
            if op == .remove, path == nil {
                // RFC 7644 §3.5.2.2: remove without a path fails with noTarget.
                throw SCIMError.noTarget("operation \(i + 1): remove needs a 'path'")
            }
            parsed.append(PatchOperation(op: op, path: path, value: value))
        }
        operations = parsed
    }

    /// Applies every operation to `resource` (canonical form, without server-computed
    /// attributes) and returns the normalised result. Any failure leaves nothing applied.
    public func apply(to resource: JSONObject, type: SCIMResourceType) throws(SCIMError) -> JSONObject {
        var engine = PatchEngine(doc: resource, type: type)
        for (i, op) in operations.enumerated() {
            do {
                try engine.apply(op)
            } catch {
                throw SCIMError(
                    status: error.status, scimType: error.scimType, detail: "operation \(i + 1): \(error.detail)")
            }
        }
        return try ResourceNormalizer(type: type).normalize(engine.doc, stored: resource)
    }
}

/// A parsed PATCH path: `attrPath`, `attrPath[filter]`, `attrPath[filter].sub`, or an extension URN.
struct PatchPath {
    var extensionURN: String?
    var attribute: SCIMAttribute?
    var subAttribute: SCIMAttribute?
    var filter: SCIMFilter?

    static func parse(_ text: String, type: SCIMResourceType) throws(SCIMError) -> PatchPath {
        guard text.utf8.count <= SCIMFilter.maxLength else { throw SCIMError.invalidPath("path is too long") }
        if let open = text.firstIndex(of: "[") {
            guard let close = text.lastIndex(of: "]"), close > open else {
                throw SCIMError.invalidPath("path has an unclosed '['")
            }
            let attrText = String(text[..<open])
            let filterText = String(text[text.index(after: open)..<close])
            let after = text[text.index(after: close)...]
            let base = try AttributePath.resolve(attrText, in: type)
            guard base.subAttribute == nil, base.attribute.type == .complex, base.attribute.multiValued else {
                throw SCIMError.invalidPath("'\(attrText.prefix(100))' is not a multi-valued complex attribute")
            }
            var sub: SCIMAttribute? = nil
            if !after.isEmpty {
                guard after.hasPrefix("."), let s = base.attribute.subAttribute(String(after.dropFirst())) else {
                    throw SCIMError.invalidPath(
                        "'\(after.prefix(100))' is not a sub-attribute of \(base.attribute.name)")
                }
                sub = s
            }
            let filter: SCIMFilter
            do throws(SCIMError) {
                var p = FilterParser(tokens: try FilterLexer.tokens(filterText), type: type)
                filter = try p.parseOr(depth: 1, context: base.attribute)
                guard p.atEnd else { throw SCIMError.invalidFilter("unexpected '\(p.peekText)'") }
            } catch {
                throw SCIMError.invalidPath("invalid value filter in path: \(error.detail)")
            }
            return PatchPath(
                extensionURN: base.extensionURN, attribute: base.attribute, subAttribute: sub, filter: filter)
        }
        guard let r = try AttributePath.resolveAllowingExtension(text, in: type) else {
            throw SCIMError.invalidPath("invalid path")
        }
        return PatchPath(extensionURN: r.extensionURN, attribute: r.attribute, subAttribute: r.sub, filter: nil)
    }

    var label: String {
        var s = extensionURN.map { $0 + (attribute == nil ? "" : ":") } ?? ""
        s += attribute?.name ?? ""
        if filter != nil { s += "[…]" }
        if let sub = subAttribute { s += "." + sub.name }
        return s
    }
}

struct PatchEngine {
    var doc: JSONObject
    let type: SCIMResourceType
    let normalizer: ResourceNormalizer

    init(doc: JSONObject, type: SCIMResourceType) {
        self.doc = doc
        self.type = type
        self.normalizer = ResourceNormalizer(type: type)
    }

    mutating func apply(_ op: PatchOperation) throws(SCIMError) {
        guard let pathText = op.path else {
            // No path (RFC 7644 §3.5.2.1/.3): the value is an object whose keys are paths
            // (interop: Okta sends dotted keys and full extension URNs).
            guard let obj = op.value?.objectValue else {
                throw SCIMError.invalidValue("\(op.op.rawValue) without a path needs an object value")
            }
            for m in obj.members {
                if ["schemas", "id", "meta"].contains(m.key.lowercased()) { continue }
                if let ext = type.extensionSchema(m.key) {
                    guard let inner = m.value.objectValue else {
                        if m.value.isNull { continue }
                        throw SCIMError.invalidValue("'\(ext.id)' must be an object")
                    }
                    for im in inner.members where !asciiCaseInsensitiveEquals(im.key, "schemas") {
                        try applyPath(op.op, path: "\(ext.id):\(im.key)", value: im.value, fromObject: true)
                    }
                    continue
                }
                try applyPath(op.op, path: m.key, value: m.value, fromObject: true)
            }
            return
        }
        try applyPath(op.op, path: pathText, value: op.value, fromObject: false)
    }

    private mutating func applyPath(_ op: PatchOperation.Op, path text: String, value: JSONValue?, fromObject: Bool)
        throws(SCIMError)
    {
        let path: PatchPath
        do {
            path = try PatchPath.parse(text, type: type)
        } catch {
            throw fromObject
                ? SCIMError.invalidValue("'\(text.prefix(100))' is not an attribute of \(type.name)") : error
        }
        guard let attr = path.attribute else {
            // The whole extension object.
            try applyExtensionRoot(op, urn: path.extensionURN!, value: value)
            return
        }
        let leaf = path.subAttribute ?? attr
        if attr.mutability == .readOnly || leaf.mutability == .readOnly {
            // Interop: read-only keys inside a no-path object are ignored, not fatal.
            if fromObject { return }
            throw SCIMError.mutability("'\(path.label)' is read-only")
        }
        if attr === CommonAttributes.externalId || attr.mutability != .readOnly {
            switch op {
            case .add, .replace: try set(op, path, attr, value ?? .null)
            case .remove: try remove(path, attr, value)
            }
        }
    }

    private mutating func applyExtensionRoot(_ op: PatchOperation.Op, urn: String, value: JSONValue?) throws(SCIMError)
    {
        switch op {
        case .remove:
            doc[urn] = nil
        case .add, .replace:
            guard let obj = value?.objectValue else { throw SCIMError.invalidValue("'\(urn)' must be an object") }
            for m in obj.members where !asciiCaseInsensitiveEquals(m.key, "schemas") {
                try applyPath(op, path: "\(urn):\(m.key)", value: m.value, fromObject: true)
            }
        }
    }

    // MARK: - Containers

    private func container(_ urn: String?) -> JSONObject {
        guard let u = urn else { return doc }
        return doc[u]?.objectValue ?? JSONObject()
    }

    private mutating func setContainer(_ urn: String?, _ c: JSONObject) {
        guard let u = urn else { doc = c; return }
        doc[u] = c.isEmpty ? nil : .object(c)
    }

    // MARK: - add / replace

    private mutating func set(_ op: PatchOperation.Op, _ path: PatchPath, _ attr: SCIMAttribute, _ value: JSONValue)
        throws(SCIMError)
    {
        var c = container(path.extensionURN)
        let current = c[attr.name]
        let label = path.label

        if let filter = path.filter {
            var items = current?.arrayValue ?? []
            let matches = items.indices.filter {
                items[$0].objectValue.map { FilterEvaluator.matches(filter, doc, element: $0) } ?? false
            }
            if let sub = path.subAttribute {
                guard let v = try normalizer.canonicalValue(sub, value, path: "\(attr.name).\(sub.name)") else {
                    throw SCIMError.invalidValue("'\(label)' needs a value")
                }
                if sub.mutability == .immutable,
                    matches.contains(where: {
                        items[$0].objectValue?[sub.name] != nil && items[$0].objectValue?[sub.name] != v
                    })
                {
                    throw SCIMError.mutability("'\(label)' is immutable")
                }
                if matches.isEmpty {
                    // Interop: replace on `emails[type eq "work"].value` with no match adds the entry.
                    guard var element = Self.elementFromEqualities(filter) else {
                        throw SCIMError.noTarget("'\(label)' matched no value")
                    }
                    element[sub.name] = v
                    items.append(.object(element))
                } else {
                    for i in matches {
                        var o = items[i].objectValue!
                        o[sub.name] = v
                        items[i] = .object(o)
                    }
                }
            } else {
                guard !matches.isEmpty else { throw SCIMError.noTarget("'\(label)' matched no value") }
                guard let canon = try normalizer.canonicalValue(attr, value, path: attr.name),
                    let newItems = canon.arrayValue, newItems.count == 1,
                    let newObj = newItems[0].objectValue
                else {
                    throw SCIMError.invalidValue("'\(label)' needs one object value")
                }
                for i in matches {
                    if op == .replace {
                        items[i] = .object(newObj)
                    } else {
                        var o = items[i].objectValue!
                        for m in newObj.members { o[m.key] = m.value }
                        items[i] = .object(o)
                    }
                }
                if newObj["primary"]?.boolValue == true { Self.clearPrimary(&items, except: Set(matches)) }
            }
            c[attr.name] = items.isEmpty ? nil : .array(items)
            setContainer(path.extensionURN, c)
            return
        }

        if let sub = path.subAttribute {
            let v = try normalizer.canonicalValue(sub, value, path: "\(attr.name).\(sub.name)")
            if attr.multiValued {
                // `emails.value` without a filter: applies to every element.
                var items = current?.arrayValue ?? []
                if items.isEmpty, let v {
                    items = [.object(JSONObject([JSONObject.Member(key: sub.name, value: v)]))]
                } else {
                    for i in items.indices {
                        var o = items[i].objectValue ?? JSONObject()
                        o[sub.name] = v
                        items[i] = .object(o)
                    }
                }
                c[attr.name] = items.isEmpty ? nil : .array(items)
            } else {
                var o = current?.objectValue ?? JSONObject()
                if sub.mutability == .immutable, let old = o[sub.name], old != v {
                    throw SCIMError.mutability("'\(label)' is immutable")
                }
                o[sub.name] = v
                c[attr.name] = o.isEmpty ? nil : .object(o)
            }
            setContainer(path.extensionURN, c)
            return
        }

        let canon = try normalizer.canonicalValue(attr, value, path: label)
        if attr.mutability == .immutable, let old = current, canon != old {
            throw SCIMError.mutability("'\(label)' is immutable")
        }
        if attr.multiValued {
            let newItems = canon?.arrayValue ?? []
            if op == .replace {
                c[attr.name] = newItems.isEmpty ? nil : .array(newItems)
            } else {
                // add: append values not already present (RFC 7644 §3.5.2.1).
                var items = current?.arrayValue ?? []
                var added: Set<Int> = []
                for v in newItems where !items.contains(v) {
                    items.append(v)
                    added.insert(items.count - 1)
                }
                if newItems.contains(where: { $0.objectValue?["primary"]?.boolValue == true }) {
                    Self.clearPrimary(&items, except: added)
                }
                c[attr.name] = items.isEmpty ? nil : .array(items)
            }
        } else if attr.type == .complex, let newObj = canon?.objectValue, let oldObj = current?.objectValue {
            // Complex single-valued: given sub-attributes replace, others stay (RFC 7644 §3.5.2.3).
            var merged = oldObj
            for m in newObj.members { merged[m.key] = m.value }
            c[attr.name] = .object(merged)
        } else {
            c[attr.name] = canon
        }
        setContainer(path.extensionURN, c)
    }

    // MARK: - remove

    private mutating func remove(_ path: PatchPath, _ attr: SCIMAttribute, _ value: JSONValue?) throws(SCIMError) {
        var c = container(path.extensionURN)
        let label = path.label
        if attr.mutability == .immutable && path.subAttribute == nil && path.filter == nil && c[attr.name] != nil
            && !attr.multiValued
        {
            throw SCIMError.mutability("'\(label)' is immutable")
        }
        if let filter = path.filter {
            var items = c[attr.name]?.arrayValue ?? []
            let matches = items.indices.filter {
                items[$0].objectValue.map { FilterEvaluator.matches(filter, doc, element: $0) } ?? false
            }
            guard !matches.isEmpty else { throw SCIMError.noTarget("'\(label)' matched no value") }
            if let sub = path.subAttribute {
                if sub.mutability == .immutable || sub.required {
                    throw SCIMError.mutability("'\(label)' cannot be removed")
                }
                for i in matches {
                    var o = items[i].objectValue!
                    o[sub.name] = nil
                    items[i] = .object(o)
                }
                items.removeAll { $0.objectValue?.isEmpty ?? false }
            } else {
                let drop = Set(matches)
                items = items.enumerated().filter { !drop.contains($0.offset) }.map(\.element)
            }
            c[attr.name] = items.isEmpty ? nil : .array(items)
        } else if let sub = path.subAttribute {
            if attr.multiValued {
                var items = c[attr.name]?.arrayValue ?? []
                for i in items.indices {
                    var o = items[i].objectValue ?? JSONObject()
                    o[sub.name] = nil
                    items[i] = .object(o)
                }
                items.removeAll { $0.objectValue?.isEmpty ?? false }
                c[attr.name] = items.isEmpty ? nil : .array(items)
            } else if var o = c[attr.name]?.objectValue {
                if sub.mutability == .immutable { throw SCIMError.mutability("'\(label)' is immutable") }
                o[sub.name] = nil
                c[attr.name] = o.isEmpty ? nil : .object(o)
            }
        } else if attr.multiValued, let v = value, !v.isNull {
            // Interop: remove with a value array removes only those values (by `value`).
            let targets = v.arrayValue ?? [v]
            var items = c[attr.name]?.arrayValue ?? []
            items.removeAll { item in
                targets.contains { t in
                    if let tv = t.objectValue?.value(caseInsensitive: "value"), let iv = item.objectValue?["value"] {
                        return tv == iv
                    }
                    return t == item
                }
            }
            c[attr.name] = items.isEmpty ? nil : .array(items)
        } else {
            c[attr.name] = nil
        }
        setContainer(path.extensionURN, c)
    }

    // MARK: - Helpers

    /// For an upsert: the element implied by `a eq "x" and b eq "y"`, or nil for other filters.
    static func elementFromEqualities(_ f: SCIMFilter) -> JSONObject? {
        switch f {
        case .compare(let p, .eq, let v) where p.relative != nil && !v.isNull:
            return JSONObject([JSONObject.Member(key: p.relative!.name, value: v)])
        case .and(let a, let b):
            guard let x = elementFromEqualities(a), let y = elementFromEqualities(b) else { return nil }
            return JSONObject(x.members + y.members)
        default:
            return nil
        }
    }

    /// RFC 7643 §2.4: setting primary on one value clears it on the others.
    static func clearPrimary(_ items: inout [JSONValue], except keep: Set<Int>) {
        for i in items.indices where !keep.contains(i) {
            guard var o = items[i].objectValue, o["primary"]?.boolValue == true else { continue }
            o["primary"] = nil
            items[i] = .object(o)
        }
    }
}
