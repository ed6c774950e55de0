// SPDX-License-Identifier: Apache-2.0
import JSONCore

/// Which attributes a response carries (RFC 7644 §3.4.2.5 and RFC 7643 §7 `returned`):
/// `always` ones always, `never` ones never, `request` ones only when asked for, and
/// `default` ones unless `attributes` narrows or `excludedAttributes` removes them.
public struct Projection: Sendable {
    private let include: [AttributePath]?
    private let includeExtensions: [String]
    private let exclude: [AttributePath]
    private let excludeExtensions: [String]

    private init(
        include: [AttributePath]?, includeExtensions: [String], exclude: [AttributePath], excludeExtensions: [String]
    ) {
        self.include = include
        self.includeExtensions = includeExtensions
        self.exclude = exclude
        self.excludeExtensions = excludeExtensions
    }

    /// Parses comma-separated attribute paths. Names that no schema declares are ignored,
    /// as RFC 7644 §3.4.2.5 leaves them meaningless rather than wrong.
    public init(attributes: String?, excludedAttributes: String?, type: SCIMResourceType) {
        func parse(_ text: String?) -> ([AttributePath], [String]) {
            guard let t = text else { return ([], []) }
            var paths: [AttributePath] = []
            var exts: [String] = []
            for raw in t.split(separator: ",") {
                let name = raw.trimmingCharacters(in: " ")
                guard !name.isEmpty, name.utf8.count <= 300 else { continue }
                if let r = try? AttributePath.resolveAllowingExtension(name, in: type) {
                    if let a = r.attribute {
                        paths.append(AttributePath(extensionURN: r.extensionURN, attribute: a, subAttribute: r.sub))
                    } else if let u = r.extensionURN {
                        exts.append(u)
                    }
                }
            }
            return (paths, exts)
        }
        let inc = parse(attributes)
        let exc = parse(excludedAttributes)
        let hasInclude = attributes.map { !$0.trimmingCharacters(in: " ").isEmpty } ?? false
        self.init(include: hasInclude ? inc.0 : nil, includeExtensions: inc.1, exclude: exc.0, excludeExtensions: exc.1)
    }

    /// False when the projection certainly drops the core attribute `name` (so the caller
    /// can skip computing it, e.g. a group's members with `excludedAttributes=members`).
    public func mayInclude(_ name: String) -> Bool {
        if exclude.contains(where: { $0.extensionURN == nil && $0.attribute.name == name && $0.subAttribute == nil }) {
            return false
        }
        if let inc = include { return inc.contains { $0.extensionURN == nil && $0.attribute.name == name } }
        return true
    }

    /// Applies the projection to a full resource for `type`.
    public func apply(_ resource: JSONObject, type: SCIMResourceType) -> JSONObject {
        var out = JSONObject()
        for m in resource.members {
            if m.key == "schemas" { out.members.append(m); continue }
            if let ext = type.extensionSchema(m.key) {
                guard let obj = m.value.objectValue else { continue }
                let projected = project(obj, attributes: ext.attributes, urn: ext.id)
                if !projected.isEmpty { out[m.key] = .object(projected) }
                continue
            }
            guard let attr = type.schema.attribute(m.key) ?? CommonAttributes.named(m.key) else { continue }
            if let v = projectAttribute(attr, m.value, urn: nil) {
                out.members.append(JSONObject.Member(key: m.key, value: v))
            }
        }
        return out
    }

    private func project(_ obj: JSONObject, attributes: [SCIMAttribute], urn: String) -> JSONObject {
        var out = JSONObject()
        let wholeIncluded = includeExtensions.contains(urn)
        let wholeExcluded = excludeExtensions.contains(urn)
        for m in obj.members {
            guard let attr = attributes.first(where: { $0.name == m.key }) else { continue }
            if attr.returned == .never { continue }
            if wholeExcluded && attr.returned != .always { continue }
            if wholeIncluded && attr.returned != .request {
                out.members.append(m)
                continue
            }
            if let v = projectAttribute(attr, m.value, urn: urn) {
                out.members.append(JSONObject.Member(key: m.key, value: v))
            }
        }
        return out
    }

    private func projectAttribute(_ attr: SCIMAttribute, _ value: JSONValue, urn: String?) -> JSONValue? {
        if attr.returned == .never { return nil }
        if attr.returned == .always { return value }
        let matching = { (p: AttributePath) in p.extensionURN == urn && p.attribute === attr }
        if exclude.contains(where: { matching($0) && $0.subAttribute == nil }) { return nil }
        var subsToDrop = exclude.filter(matching).compactMap(\.subAttribute)
        if let inc = include {
            let requested = inc.filter(matching)
            if requested.isEmpty { return nil }
            if !requested.contains(where: { $0.subAttribute == nil }) {
                // Only some sub-attributes were asked for.
                let keep = Set(requested.compactMap(\.subAttribute?.name))
                subsToDrop = attr.subAttributes.filter { !keep.contains($0.name) && $0.returned != .always }
            }
        } else if attr.returned == .request {
            return nil
        }
        subsToDrop += attr.subAttributes.filter { $0.returned == .never }
        guard attr.type == .complex, !subsToDrop.isEmpty else { return value }
        let names = Set(subsToDrop.map(\.name))
        func strip(_ v: JSONValue) -> JSONValue? {
            guard var o = v.objectValue else { return v }
            o.members.removeAll { names.contains($0.key) }
            return o.isEmpty ? nil : .object(o)
        }
        if let arr = value.arrayValue {
            let kept = arr.compactMap(strip)
            return kept.isEmpty ? nil : .array(kept)
        }
        return strip(value)
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String { self[...].trimmingCharacters(in: set) }
}

/// A list or search request (RFC 7644 §3.4.2, §3.4.3), from query parameters or a
/// SearchRequest body.
public struct ListQuery: Sendable {
    public enum SortOrder: String, Sendable { case ascending, descending }

    public var filterText: String?
    public var sortBy: String?
    public var sortOrder: SortOrder = .ascending
    /// 1-based (RFC 7644 §3.4.2.4); values below 1 are treated as 1.
    public var startIndex = 1
    /// Page size; nil means the server default.
    public var count: Int?
    public var attributes: String?
    public var excludedAttributes: String?

    public init() {}

    /// From URL query parameters. Names are case-sensitive as in RFC 7644 §3.4.2, but
    /// the common lower-case spellings are accepted too.
    public init(query: [(name: String, value: String)]) throws(SCIMError) {
        func value(_ name: String) -> String? { query.first { $0.name.lowercased() == name.lowercased() }?.value }
        filterText = value("filter")
        sortBy = value("sortBy")
        if let o = value("sortOrder") {
            guard let so = SortOrder(rawValue: o.lowercased()) else {
                throw SCIMError.invalidValue("'sortOrder' must be ascending or descending")
            }
            sortOrder = so
        }
        if let s = value("startIndex") { startIndex = try Self.integer(s, "startIndex") }
        if let c = value("count") { count = try Self.integer(c, "count") }
        attributes = value("attributes")
        excludedAttributes = value("excludedAttributes")
    }

    /// From a SearchRequest body (`POST .search`, RFC 7644 §3.4.3).
    public init(searchRequest body: JSONObject) throws(SCIMError) {
        guard let schemas = body.value(caseInsensitive: "schemas")?.arrayValue,
            schemas.contains(where: {
                $0.stringValue.map { asciiCaseInsensitiveEquals($0, SCIMSchemaURN.searchRequest) } ?? false
            })
        else {
            throw SCIMError.invalidSyntax("'schemas' must include \(SCIMSchemaURN.searchRequest)")
        }
        func list(_ key: String) throws(SCIMError) -> String? {
            guard let v = body.value(caseInsensitive: key), !v.isNull else { return nil }
            if let s = v.stringValue { return s }
            guard let arr = v.arrayValue else {
                throw SCIMError.invalidValue("'\(key)' must be an array of attribute names")
            }
            var names: [String] = []
            for item in arr {
                guard let s = item.stringValue else {
                    throw SCIMError.invalidValue("'\(key)' must be an array of attribute names")
                }
                names.append(s)
            }
            return names.joined(separator: ",")
        }
        for m in body.members {
            switch m.key.lowercased() {
            case "schemas", "attributes", "excludedattributes", "filter", "sortby", "sortorder", "startindex", "count":
                continue
            default: throw SCIMError.invalidValue("'\(m.key.prefix(100))' is not a member of a SearchRequest")
            }
        }
        attributes = try list("attributes")
        excludedAttributes = try list("excludedAttributes")
        if let f = body.value(caseInsensitive: "filter"), !f.isNull {
            guard let s = f.stringValue else { throw SCIMError.invalidFilter("'filter' must be a string") }
            filterText = s
        }
        if let s = body.value(caseInsensitive: "sortBy"), !s.isNull {
            guard let t = s.stringValue else { throw SCIMError.invalidValue("'sortBy' must be a string") }
            sortBy = t
        }
        if let s = body.value(caseInsensitive: "sortOrder"), !s.isNull {
            guard let t = s.stringValue, let so = SortOrder(rawValue: t.lowercased()) else {
                throw SCIMError.invalidValue("'sortOrder' must be ascending or descending")
            }
            sortOrder = so
        }
        if let v = body.value(caseInsensitive: "startIndex"), !v.isNull {
            guard let n = v.numberValue?.int64 else { throw SCIMError.invalidValue("'startIndex' must be an integer") }
            startIndex = Int(clamping: n)
        }
        if let v = body.value(caseInsensitive: "count"), !v.isNull {
            guard let n = v.numberValue?.int64 else { throw SCIMError.invalidValue("'count' must be an integer") }
            count = Int(clamping: n)
        }
    }

    private static func integer(_ s: String, _ name: String) throws(SCIMError) -> Int {
        guard let n = Int(s.trimmingCharacters(in: " ")) else {
            throw SCIMError.invalidValue("'\(name)' must be an integer")
        }
        return n
    }

    /// The effective 1-based start index.
    public var effectiveStartIndex: Int { max(1, startIndex) }

    /// The effective page size given the server default and maximum (negative means 0).
    public func effectiveCount(default d: Int, max m: Int) -> Int { min(m, max(0, count ?? d)) }
}
