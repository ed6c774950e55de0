// SPDX-License-Identifier: Apache-2.0

/// A JSON value. Objects keep their members in input order, which SCIM output relies on
/// for stable, readable resources; numbers keep their literal text so that integers
/// beyond `Double` precision are never silently rounded.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The string payload, or nil.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The boolean payload, or nil.
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The object payload, or nil.
    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    /// The array payload, or nil.
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The number payload, or nil.
    public var numberValue: JSONNumber? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// True for `.null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Convenience for integer literals in code.
    public static func int(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
}

/// A JSON number as written: the literal text, validated by the parser.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The literal, e.g. `-12`, `3.5e2`.
    public let text: String

    /// Wraps an already validated literal.
    public init(literal: String) { self.text = literal }

    /// An integer number.
    public init(_ value: Int) { self.text = String(value) }

    /// A floating-point number; non-finite values become 0 because JSON cannot carry them.
    public init(_ value: Double) {
        if !value.isFinite { self.text = "0"; return }
        if abs(value) < 1e15, let i = Int64(exactly: value) { self.text = String(i) } else { self.text = String(value) }
    }

    /// True when the literal has no fraction or exponent.
    public var isIntegerLiteral: Bool { !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) }

    /// The exact 64-bit integer value, or nil when the literal is not an integer or out of range.
    public var int64: Int64? { isIntegerLiteral ? Int64(text) : nil }

    /// The value as a finite double, or nil when it overflows.
    public var double: Double? {
        guard let d = Double(text), d.isFinite else { return nil }
        return d
    }

    public var description: String { text }

    /// Numeric equality (so `1.0` equals `1`), falling back to the literal.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if lhs.text == rhs.text { return true }
        if let a = lhs.int64, let b = rhs.int64 { return a == b }
        if let a = lhs.double, let b = rhs.double { return a == b }
        return false
    }
}

/// A JSON object that keeps member order. Lookups are linear, which is the fastest
/// choice for the small objects SCIM resources are made of.
public struct JSONObject: Sendable, Equatable {
    /// One member.
    public struct Member: Sendable, Equatable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    /// Members in order.
    public var members: [Member]

    /// An empty object.
    public init() { members = [] }

    /// An object from members.
    public init(_ members: [Member]) { self.members = members }

    /// An object from key-value pairs, in order.
    public init(_ pairs: KeyValuePairs<String, JSONValue>) {
        members = pairs.map { Member(key: $0.key, value: $0.value) }
    }

    /// True when there are no members.
    public var isEmpty: Bool { members.isEmpty }

    /// The keys in order.
    public var keys: [String] { members.map(\.key) }

    /// Exact-key access. Setting nil removes the member; setting a new key appends it.
    public subscript(key: String) -> JSONValue? {
        get {
            for m in members where m.key == key { return m.value }
            return nil
        }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let v = newValue { members[i].value = v } else { members.remove(at: i) }
            } else if let v = newValue {
                members.append(Member(key: key, value: v))
            }
        }
    }

    /// Index of the member whose key equals `key` ignoring ASCII case.
    public func index(caseInsensitive key: String) -> Int? {
        members.firstIndex { asciiCaseInsensitiveEquals($0.key, key) }
    }

    /// Value of the member whose key equals `key` ignoring ASCII case.
    public func value(caseInsensitive key: String) -> JSONValue? {
        index(caseInsensitive: key).map { members[$0].value }
    }

    /// Objects are unordered (RFC 8259 §4): equal when they hold the same keys with equal values.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for (i, m) in lhs.members.enumerated() {
            // Fast path: same position; otherwise look the key up.
            if i < rhs.members.count, rhs.members[i].key == m.key {
                if rhs.members[i].value != m.value { return false }
            } else if rhs[m.key] != m.value {
                return false
            }
        }
        return true
    }

    /// Removes every member whose key equals `key` ignoring ASCII case.
    public mutating func remove(caseInsensitive key: String) {
        members.removeAll { asciiCaseInsensitiveEquals($0.key, key) }
    }
}

/// ASCII case-insensitive string equality without allocating. SCIM attribute names and
/// schema URNs are ASCII (RFC 7643 §2.1), so this is exact for them.
public func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    var ia = a.utf8.makeIterator()
    var ib = b.utf8.makeIterator()
    while true {
        let ca = ia.next(), cb = ib.next()
        switch (ca, cb) {
        case (nil, nil): return true
        case (nil, _), (_, nil): return false
        case (let x?, let y?):
            if x == y { continue }
            if asciiLower(x) != asciiLower(y) { return false }
        }
    }
}

/// Lower-cases one ASCII byte.
@inline(__always) public func asciiLower(_ c: UInt8) -> UInt8 {
    (c >= 0x41 && c <= 0x5A) ? c | 0x20 : c
}

/// True when `s` starts with `prefix` ignoring ASCII case.
public func asciiCaseInsensitiveHasPrefix(_ s: String, _ prefix: String) -> Bool {
    var i = s.utf8.makeIterator()
    for p in prefix.utf8 {
        guard let c = i.next(), asciiLower(c) == asciiLower(p) else { return false }
    }
    return true
}
