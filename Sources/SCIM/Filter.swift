// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore

/// Comparison operators (RFC 7644 §3.4.2.2, Table 3).
public enum FilterOperator: String, Sendable {
    case eq, ne, co, sw, ew, gt, ge, lt, le
}

/// A path inside a filter: absolute (from the resource) or, inside `attr[...]`, relative
/// to one element of a multi-valued complex attribute.
public struct FilterPath: Sendable, CustomStringConvertible {
    /// For absolute paths: the resolved resource path.
    public let absolute: AttributePath?
    /// For relative paths: the sub-attribute of the element.
    public let relative: SCIMAttribute?

    /// The attribute compared: the path's leaf.
    public var leaf: SCIMAttribute { absolute?.leaf ?? relative! }

    public var description: String { absolute?.description ?? relative!.name }
}

/// A parsed, schema-resolved SCIM filter.
public indirect enum SCIMFilter: Sendable {
    case compare(FilterPath, FilterOperator, JSONValue)
    case present(FilterPath)
    case and(SCIMFilter, SCIMFilter)
    case or(SCIMFilter, SCIMFilter)
    case not(SCIMFilter)
    /// `attr[filter]`: some element of multi-valued complex `attr` matches `filter`.
    case valuePath(AttributePath, SCIMFilter)

    /// Limits that keep parsing and evaluation cheap for any client.
    public static let maxLength = 4096
    public static let maxDepth = 32

    /// Parses `text` for resources of `type`. Unknown attributes, wrong value types and
    /// operators that do not apply to a type are `invalidFilter` errors naming the attribute.
    public static func parse(_ text: String, for type: SCIMResourceType) throws(SCIMError) -> SCIMFilter {
        guard text.utf8.count <= maxLength else {
            throw SCIMError.invalidFilter("filter is longer than \(maxLength) characters")
        }
        var p = FilterParser(tokens: try FilterLexer.tokens(text), type: type)
        let f = try p.parseOr(depth: 0, context: nil)
        guard p.atEnd else { throw SCIMError.invalidFilter("unexpected '\(p.peekText)' in filter") }
        return f
    }

    /// Whether `resource` (a stored resource in canonical form) matches.
    public func matches(_ resource: JSONObject) -> Bool {
        FilterEvaluator.matches(self, resource, element: nil)
    }

    /// True when the filter mentions the attribute named `name` at the top level.
    public func references(_ name: String) -> Bool {
        switch self {
        case .compare(let p, _, _), .present(let p): return p.absolute?.attribute.name == name
        case .and(let a, let b), .or(let a, let b): return a.references(name) || b.references(name)
        case .not(let a): return a.references(name)
        case .valuePath(let p, _): return p.attribute.name == name
        }
    }
}

// MARK: - Lexer

enum FilterToken: Equatable {
    case word(String)
    case string(String)
    case number(JSONNumber)
    case lparen, rparen, lbracket, rbracket
}

enum FilterLexer {
    static func tokens(_ text: String) throws(SCIMError) -> [FilterToken] {
        let u = Array(text.utf8)
        var out: [FilterToken] = []
        var i = 0
        while i < u.count {
            let c = u[i]
            switch c {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            case UInt8(ascii: "("): out.append(.lparen); i += 1
            case UInt8(ascii: ")"): out.append(.rparen); i += 1
            case UInt8(ascii: "["): out.append(.lbracket); i += 1
            case UInt8(ascii: "]"): out.append(.rbracket); i += 1
            case UInt8(ascii: "\""):
                // A JSON string literal (RFC 7644 §3.4.2.2: compValue is JSON).
                var j = i + 1
                while j < u.count, u[j] != UInt8(ascii: "\"") { j += u[j] == UInt8(ascii: "\\") ? 2 : 1 }
                guard j < u.count else { throw SCIMError.invalidFilter("unterminated string in filter") }
                guard case .string(let s)? = try? JSONParser().parse(Array(u[i...j])) else {
                    throw SCIMError.invalidFilter("invalid string literal in filter")
                }
                out.append(.string(s))
                i = j + 1
            default:
                var j = i
                while j < u.count,
                    ![
                        0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["),
                        UInt8(ascii: "]"), UInt8(ascii: "\""),
                    ].contains(u[j])
                { j += 1 }
                let word = String(decoding: u[i..<j], as: UTF8.self)
                if let f = word.utf8.first, f == UInt8(ascii: "-") || (f >= 0x30 && f <= 0x39) {
                    guard case .number(let n)? = try? JSONParser().parse(word) else {
                        throw SCIMError.invalidFilter("invalid number in filter")
                    }
                    out.append(.number(n))
                } else {
                    out.append(.word(word))
                }
                i = j
            }
        }
        return out
    }
}

// MARK: - Parser (precedence: not > and > or)

struct FilterParser {
    let tokens: [FilterToken]
    let type: SCIMResourceType
    var pos = 0

    init(tokens: [FilterToken], type: SCIMResourceType) {
        self.tokens = tokens
        self.type = type
    }

    var atEnd: Bool { pos >= tokens.count }
    var peekText: String {
        guard pos < tokens.count else { return "end" }
        switch tokens[pos] {
        case .word(let w): return String(w.prefix(40))
        case .string: return "string"
        case .number: return "number"
        case .lparen: return "("
        case .rparen: return ")"
        case .lbracket: return "["
        case .rbracket: return "]"
        }
    }

    func isKeyword(_ k: String) -> Bool {
        guard pos < tokens.count, case .word(let w) = tokens[pos] else { return false }
        return asciiCaseInsensitiveEquals(w, k)
    }

    /// `context` is the multi-valued complex attribute inside `[...]`, if any.
    mutating func parseOr(depth: Int, context: SCIMAttribute?) throws(SCIMError) -> SCIMFilter {
        var left = try parseAnd(depth: depth, context: context)
        while isKeyword("or") {
            pos += 1
            left = .or(left, try parseAnd(depth: depth, context: context))
        }
        return left
    }

    mutating func parseAnd(depth: Int, context: SCIMAttribute?) throws(SCIMError) -> SCIMFilter {
        var left = try parseUnary(depth: depth, context: context)
        while isKeyword("and") {
            pos += 1
            left = .and(left, try parseUnary(depth: depth, context: context))
        }
        return left
    }

    mutating func parseUnary(depth: Int, context: SCIMAttribute?) throws(SCIMError) -> SCIMFilter {
        guard depth < SCIMFilter.maxDepth else {
            throw SCIMError.invalidFilter("filter nested deeper than \(SCIMFilter.maxDepth) levels")
        }
        guard pos < tokens.count else { throw SCIMError.invalidFilter("filter ends where an expression was expected") }
        if isKeyword("not") {
            pos += 1
            guard pos < tokens.count, tokens[pos] == .lparen else {
                throw SCIMError.invalidFilter("'not' must be followed by '('")
            }
            return .not(try parseGroup(depth: depth + 1, context: context))
        }
        if tokens[pos] == .lparen { return try parseGroup(depth: depth + 1, context: context) }
        return try parseAttributeExpression(depth: depth, context: context)
    }

    mutating func parseGroup(depth: Int, context: SCIMAttribute?) throws(SCIMError) -> SCIMFilter {
        pos += 1  // (
        let inner = try parseOr(depth: depth, context: context)
        guard pos < tokens.count, tokens[pos] == .rparen else { throw SCIMError.invalidFilter("missing ')' in filter") }
        pos += 1
        return inner
    }

    mutating func parseAttributeExpression(depth: Int, context: SCIMAttribute?) throws(SCIMError) -> SCIMFilter {
        guard case .word(let pathText) = tokens[pos] else {
            throw SCIMError.invalidFilter("expected an attribute name, found '\(peekText)'")
        }
        pos += 1
        // valuePath: attr[ valFilter ] (RFC 7644 §3.4.2.2), optionally followed by `.sub op value`.
        if pos < tokens.count, tokens[pos] == .lbracket {
            guard context == nil else { throw SCIMError.invalidFilter("value filters cannot be nested") }
            let path = try resolve(pathText, context: nil)
            guard let abs = path.absolute, abs.subAttribute == nil, abs.attribute.type == .complex else {
                throw SCIMError.invalidFilter(
                    "'\(pathText.prefix(100))' is not a complex attribute and cannot take a value filter")
            }
            pos += 1
            let inner = try parseOr(depth: depth + 1, context: abs.attribute)
            guard pos < tokens.count, tokens[pos] == .rbracket else {
                throw SCIMError.invalidFilter("missing ']' in filter")
            }
            pos += 1
            // Clients send `emails[type eq "work"].value eq "x"`: a further condition on the same element.
            if pos < tokens.count, case .word(let w) = tokens[pos], w.hasPrefix(".") {
                pos += 1
                let sub = try resolve(String(w.dropFirst()), context: abs.attribute)
                let cond = try parseComparison(sub)
                return .valuePath(abs, .and(inner, cond))
            }
            return .valuePath(abs, inner)
        }
        let path = try resolve(pathText, context: context)
        return try parseComparison(path)
    }

    mutating func parseComparison(_ path: FilterPath) throws(SCIMError) -> SCIMFilter {
        guard pos < tokens.count, case .word(let opText) = tokens[pos] else {
            throw SCIMError.invalidFilter("expected an operator after '\(path)'")
        }
        pos += 1
        if asciiCaseInsensitiveEquals(opText, "pr") { return .present(path) }
        guard let op = FilterOperator(rawValue: opText.lowercased()) else {
            throw SCIMError.invalidFilter("unknown operator '\(opText.prefix(20))'")
        }
        guard pos < tokens.count else { throw SCIMError.invalidFilter("missing value after '\(path) \(op.rawValue)'") }
        let value: JSONValue
        switch tokens[pos] {
        case .string(let s): value = .string(s)
        case .number(let n): value = .number(n)
        case .word(let w) where asciiCaseInsensitiveEquals(w, "true"): value = .bool(true)
        case .word(let w) where asciiCaseInsensitiveEquals(w, "false"): value = .bool(false)
        case .word(let w) where asciiCaseInsensitiveEquals(w, "null"): value = .null
        default: throw SCIMError.invalidFilter("invalid comparison value after '\(path) \(op.rawValue)'")
        }
        pos += 1
        try FilterEvaluator.check(path, op, value)
        return .compare(path, op, value)
    }

    func resolve(_ text: String, context: SCIMAttribute?) throws(SCIMError) -> FilterPath {
        if let parent = context {
            guard let sub = parent.subAttribute(text) else {
                throw SCIMError.invalidFilter("'\(text.prefix(100))' is not a sub-attribute of \(parent.name)")
            }
            return FilterPath(absolute: nil, relative: sub)
        }
        let path: AttributePath
        do { path = try AttributePath.resolve(text, in: type) } catch { throw SCIMError.invalidFilter(error.detail) }
        // Filtering on a never-returned attribute (password) would reveal it bit by bit.
        if path.leaf.returned == .never || path.attribute.returned == .never {
            throw SCIMError.invalidFilter("'\(path)' cannot be used in a filter")
        }
        return FilterPath(absolute: path, relative: nil)
    }
}

// MARK: - Evaluation

enum FilterEvaluator {
    /// Rejects comparisons that cannot be meaningful for the attribute's type.
    static func check(_ path: FilterPath, _ op: FilterOperator, _ value: JSONValue) throws(SCIMError) {
        var leaf = path.leaf
        if leaf.type == .complex, let v = leaf.subAttribute("value") { leaf = v }  // `emails co "x"` compares `value`
        if leaf.type == .complex {
            throw SCIMError.invalidFilter("'\(path)' is complex; compare one of its sub-attributes")
        }
        if value.isNull {
            guard op == .eq || op == .ne else {
                throw SCIMError.invalidFilter("null can only be compared with eq or ne")
            }
            return
        }
        switch leaf.type {
        case .string, .reference, .binary:
            guard value.stringValue != nil else {
                throw SCIMError.invalidFilter("'\(path)' is a string; compare it with a string")
            }
            if leaf.type == .binary, ![.eq, .ne].contains(op) {
                throw SCIMError.invalidFilter("'\(path)' is binary; only eq and ne apply")
            }
        case .boolean:
            guard value.boolValue != nil else {
                throw SCIMError.invalidFilter("'\(path)' is a boolean; compare it with true or false")
            }
            guard op == .eq || op == .ne else {
                throw SCIMError.invalidFilter("'\(path)' is a boolean; only eq and ne apply")
            }
        case .integer, .decimal:
            guard let n = value.numberValue, n.double != nil else {
                throw SCIMError.invalidFilter("'\(path)' is a number; compare it with a number")
            }
            if leaf.type == .integer, n.int64 == nil {
                throw SCIMError.invalidFilter("'\(path)' is an integer; compare it with an integer")
            }
            if [.co, .sw, .ew].contains(op) {
                throw SCIMError.invalidFilter("'\(path)' is a number; co, sw and ew do not apply")
            }
        case .dateTime:
            guard let s = value.stringValue, Timestamp.parse(s) != nil else {
                throw SCIMError.invalidFilter("'\(path)' is a dateTime; compare it with an xsd:dateTime string")
            }
            if [.co, .sw, .ew].contains(op) {
                throw SCIMError.invalidFilter("'\(path)' is a dateTime; co, sw and ew do not apply")
            }
        case .complex:
            break
        }
    }

    static func matches(_ f: SCIMFilter, _ resource: JSONObject, element: JSONObject?) -> Bool {
        switch f {
        case .and(let a, let b): return matches(a, resource, element: element) && matches(b, resource, element: element)
        case .or(let a, let b): return matches(a, resource, element: element) || matches(b, resource, element: element)
        case .not(let a): return !matches(a, resource, element: element)
        case .present(let p):
            return values(p, resource, element).contains { v in
                switch v {
                case .null: return false
                case .string(let s): return !s.isEmpty
                case .array(let a): return !a.isEmpty
                case .object(let o): return !o.isEmpty
                default: return true
                }
            }
        case .compare(let p, let op, let literal):
            let vs = values(p, resource, element)
            if literal.isNull {
                let present = vs.contains { !$0.isNull }
                return op == .eq ? !present : present
            }
            if op == .ne { return !vs.contains { compare($0, .eq, literal, p.leaf) } }
            return vs.contains { compare($0, op, literal, p.leaf) }
        case .valuePath(let p, let inner):
            guard let top = resource.topValue(p) else { return false }
            let elements: [JSONValue] = top.arrayValue ?? [top]
            return elements.contains { e in
                guard let o = e.objectValue else { return false }
                return matches(inner, resource, element: o)
            }
        }
    }

    /// The values a path reaches, flattened across multi-valued attributes.
    static func values(_ p: FilterPath, _ resource: JSONObject, _ element: JSONObject?) -> [JSONValue] {
        if let rel = p.relative {
            guard let e = element, let v = e[rel.name] else { return [] }
            return [v]
        }
        guard let abs = p.absolute, let top = resource.topValue(abs) else { return [] }
        var sub = abs.subAttribute
        if sub == nil, abs.attribute.type == .complex { sub = abs.attribute.subAttribute("value") }
        let items: [JSONValue] = top.arrayValue ?? [top]
        guard let s = sub else { return items }
        return items.compactMap { $0.objectValue?[s.name] }
    }

    static func compare(_ v: JSONValue, _ op: FilterOperator, _ literal: JSONValue, _ attrIn: SCIMAttribute) -> Bool {
        var attr = attrIn
        if attr.type == .complex, let s = attr.subAttribute("value") { attr = s }
        switch attr.type {
        case .string, .reference, .binary:
            guard let a = v.stringValue, let b = literal.stringValue else { return false }
            if attr.caseExact { return compareStrings(a, b, op) }
            // Identifiers match as they are unique: in canonical form (Identifier.canonical).
            if attr.isIdentifier { return compareStrings(Identifier.canonical(a), Identifier.canonical(b), op) }
            return compareStrings(a.lowercased(), b.lowercased(), op)
        case .boolean:
            guard let a = v.boolValue, let b = literal.boolValue else { return false }
            return op == .eq ? a == b : false
        case .integer, .decimal:
            guard let a = v.numberValue?.double, let b = literal.numberValue?.double else { return false }
            return compareOrdered(a, b, op)
        case .dateTime:
            guard let a = v.stringValue.flatMap(Timestamp.parse), let b = literal.stringValue.flatMap(Timestamp.parse)
            else { return false }
            return compareOrdered(a, b, op)
        case .complex:
            return false
        }
    }

    static func compareStrings(_ a: String, _ b: String, _ op: FilterOperator) -> Bool {
        switch op {
        case .eq: return a == b
        case .ne: return a != b
        case .co: return a.contains(b)
        case .sw: return a.hasPrefix(b)
        case .ew: return a.hasSuffix(b)
        case .gt: return a > b
        case .ge: return a >= b
        case .lt: return a < b
        case .le: return a <= b
        }
    }

    static func compareOrdered<T: Comparable>(_ a: T, _ b: T, _ op: FilterOperator) -> Bool {
        switch op {
        case .eq: return a == b
        case .ne: return a != b
        case .gt: return a > b
        case .ge: return a >= b
        case .lt: return a < b
        case .le: return a <= b
        case .co, .sw, .ew: return false
        }
    }
}
