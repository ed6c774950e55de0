// SPDX-License-Identifier: Apache-2.0

/// Why a JSON document was refused. Messages name the problem and the byte offset,
/// never the content, because documents carry personal data.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem it is.
    public struct Kind: Sendable, Equatable, RawRepresentable {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// Not valid JSON (RFC 8259).
        public static let syntax = Kind(rawValue: "syntax")
        /// Bytes that are not UTF-8, or an unpaired surrogate escape.
        public static let invalidUTF8 = Kind(rawValue: "invalidUTF8")
        /// Arrays and objects nested deeper than the limit.
        public static let tooDeep = Kind(rawValue: "tooDeep")
        /// A string holding U+0000, which no SCIM attribute may contain.
        public static let nulCharacter = Kind(rawValue: "nulCharacter")
        /// A number literal longer than the limit.
        public static let numberTooLong = Kind(rawValue: "numberTooLong")
    }

    public let kind: Kind
    public let offset: Int
    public let message: String

    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 parser with the limits a server needs: nesting depth, number
/// length, UTF-8 validation and refusal of NUL characters.
public struct JSONParser {
    /// Maximum nesting of arrays and objects. SCIM resources nest three levels at most.
    public var maxDepth: Int = 64
    /// Maximum length of one number literal.
    public var maxNumberLength: Int = 64

    public init() {}

    /// Parses one JSON document; only whitespace may follow it.
    public func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buf) throws(JSONParseError) -> JSONValue in
            var reader = Reader(buf: buf, maxDepth: maxDepth, maxNumberLength: maxNumberLength)
            return try reader.parseDocument()
        }
    }

    /// Parses a document held in a string.
    public func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

private struct Reader {
    let buf: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    let maxNumberLength: Int
    var pos = 0
    var depth = 0
    var scratch: [UInt8] = []

    init(buf: UnsafeBufferPointer<UInt8>, maxDepth: Int, maxNumberLength: Int) {
        self.buf = buf
        self.maxDepth = maxDepth
        self.maxNumberLength = maxNumberLength
    }

    func fail(_ kind: JSONParseError.Kind, _ message: String) -> JSONParseError {
        JSONParseError(kind: kind, offset: pos, message: message)
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // A UTF-8 byte order mark is tolerated (RFC 8259 §8.1 allows ignoring it).
        if buf.count >= 3, buf[0] == 0xEF, buf[1] == 0xBB, buf[2] == 0xBF { pos = 3 }
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        guard pos == buf.count else { throw fail(.syntax, "unexpected data after the JSON value") }
        return value
    }

    @inline(__always) mutating func skipWhitespace() {
        while pos < buf.count {
            let c = buf[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard pos < buf.count else { throw fail(.syntax, "unexpected end of JSON") }
        switch buf[pos] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail(.syntax, "unexpected character")
        }
    }

    mutating func expectLiteral(_ word: StaticString) throws(JSONParseError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= buf.count else { throw fail(.syntax, "unexpected end of JSON") }
        let p = word.utf8Start
        for i in 0..<n where buf[pos + i] != p[i] { throw fail(.syntax, "invalid literal") }
        pos += n
    }

    mutating func enter() throws(JSONParseError) {
        depth += 1
        if depth > maxDepth { throw fail(.tooDeep, "JSON nested deeper than \(maxDepth) levels") }
    }

    mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enter()
        pos += 1
        var members: [JSONObject.Member] = []
        skipWhitespace()
        if pos < buf.count, buf[pos] == UInt8(ascii: "}") {
            pos += 1; depth -= 1
            return .object(JSONObject(members))
        }
        while true {
            skipWhitespace()
            guard pos < buf.count, buf[pos] == UInt8(ascii: "\"") else { throw fail(.syntax, "expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard pos < buf.count, buf[pos] == UInt8(ascii: ":") else { throw fail(.syntax, "expected ':'") }
            pos += 1
            skipWhitespace()
            let value = try parseValue()
            members.append(JSONObject.Member(key: key, value: value))
            skipWhitespace()
            guard pos < buf.count else { throw fail(.syntax, "unexpected end of JSON") }
            if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if buf[pos] == UInt8(ascii: "}") { pos += 1; break }
            throw fail(.syntax, "expected ',' or '}'")
        }
        depth -= 1
        return .object(JSONObject(members))
    }

    mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enter()
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < buf.count, buf[pos] == UInt8(ascii: "]") {
            pos += 1; depth -= 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try parseValue())
            skipWhitespace()
            guard pos < buf.count else { throw fail(.syntax, "unexpected end of JSON") }
            if buf[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if buf[pos] == UInt8(ascii: "]") { pos += 1; break }
            throw fail(.syntax, "expected ',' or ']'")
        }
        depth -= 1
        return .array(items)
    }

    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = pos
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < buf.count else { throw fail(.syntax, "invalid number") }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
        } else if isDigit(buf[pos]) {
            while pos < buf.count, isDigit(buf[pos]) { pos += 1 }
        } else {
            throw fail(.syntax, "invalid number")
        }
        if pos < buf.count, buf[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < buf.count, isDigit(buf[pos]) else { throw fail(.syntax, "invalid number") }
            while pos < buf.count, isDigit(buf[pos]) { pos += 1 }
        }
        if pos < buf.count, buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < buf.count, buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < buf.count, isDigit(buf[pos]) else { throw fail(.syntax, "invalid number") }
            while pos < buf.count, isDigit(buf[pos]) { pos += 1 }
        }
        guard pos - start <= maxNumberLength else {
            throw JSONParseError(
                kind: .numberTooLong, offset: start, message: "number literal longer than \(maxNumberLength) characters"
            )
        }
        return JSONNumber(literal: String(decoding: UnsafeBufferPointer(rebasing: buf[start..<pos]), as: UTF8.self))
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    mutating func parseString() throws(JSONParseError) -> String {
        pos += 1  // opening quote
        let start = pos
        // Fast path: no escapes. Scan to the closing quote, then validate UTF-8 once.
        while pos < buf.count {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: buf[start..<pos])
                pos += 1
                return try makeString(slice, offset: start)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 {
                throw fail(
                    c == 0 ? .nulCharacter : .syntax,
                    c == 0 ? "string contains a NUL character" : "unescaped control character in string")
            }
            pos += 1
        }
        guard pos < buf.count else { throw fail(.syntax, "unterminated string") }
        // Slow path: decode escapes into scratch.
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: buf[start..<pos]))
        while pos < buf.count {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                let bytes = scratch
                return try bytes.withUnsafeBufferPointer { (b) throws(JSONParseError) -> String in
                    try makeString(b, offset: start)
                }
            }
            if c < 0x20 {
                throw fail(
                    c == 0 ? .nulCharacter : .syntax,
                    c == 0 ? "string contains a NUL character" : "unescaped control character in string")
            }
            if c != UInt8(ascii: "\\") { scratch.append(c); pos += 1; continue }
            pos += 1
            guard pos < buf.count else { throw fail(.syntax, "unterminated escape") }
            let e = buf[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): scratch.append(0x22)
            case UInt8(ascii: "\\"): scratch.append(0x5C)
            case UInt8(ascii: "/"): scratch.append(0x2F)
            case UInt8(ascii: "b"): scratch.append(0x08)
            case UInt8(ascii: "f"): scratch.append(0x0C)
            case UInt8(ascii: "n"): scratch.append(0x0A)
            case UInt8(ascii: "r"): scratch.append(0x0D)
            case UInt8(ascii: "t"): scratch.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try readHex4()
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard pos + 1 < buf.count, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u") else {
                        throw fail(.invalidUTF8, "unpaired surrogate escape")
                    }
                    pos += 2
                    let low = try readHex4()
                    guard low >= 0xDC00 && low <= 0xDFFF else { throw fail(.invalidUTF8, "unpaired surrogate escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                    throw fail(.invalidUTF8, "unpaired surrogate escape")
                }
                if scalar == 0 { throw fail(.nulCharacter, "string contains a NUL character") }
                appendUTF8(scalar)
            default:
                throw fail(.syntax, "invalid escape")
            }
        }
        throw fail(.syntax, "unterminated string")
    }

    /// Encodes one Unicode scalar (already checked: not a surrogate, at most U+10FFFF) as UTF-8.
    mutating func appendUTF8(_ v: UInt32) {
        switch v {
        case 0..<0x80: scratch.append(UInt8(v))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | (v >> 6))); scratch.append(UInt8(0x80 | (v & 0x3F)))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | (v >> 12))); scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (v & 0x3F)))
        default:
            scratch.append(UInt8(0xF0 | (v >> 18))); scratch.append(UInt8(0x80 | ((v >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((v >> 6) & 0x3F))); scratch.append(UInt8(0x80 | (v & 0x3F)))
        }
    }

    mutating func readHex4() throws(JSONParseError) -> UInt32 {
        guard pos + 4 <= buf.count else { throw fail(.syntax, "invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail(.syntax, "invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    func makeString(_ bytes: UnsafeBufferPointer<UInt8>, offset: Int) throws(JSONParseError) -> String {
        // ASCII needs no validation beyond what the scanner did.
        var ascii = true
        for b in bytes where b >= 0x80 { ascii = false; break }
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw JSONParseError(kind: .invalidUTF8, offset: offset, message: "string is not valid UTF-8")
        }
        return s
    }
}
