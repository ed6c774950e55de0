// SPDX-License-Identifier: Apache-2.0

/// Serialises `JSONValue` to compact UTF-8 JSON (RFC 8259), or indented for people.
public struct JSONWriter {
    /// Indent nested values by two spaces per level.
    public var pretty: Bool

    public init(pretty: Bool = false) { self.pretty = pretty }

    /// The document's bytes.
    public func write(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        write(value, into: &out, level: 0)
        return out
    }

    /// The document as a string.
    public func string(_ value: JSONValue) -> String {
        String(decoding: write(value), as: UTF8.self)
    }

    /// Appends the document to `out`.
    public func write(_ value: JSONValue, into out: inout [UInt8], level: Int = 0) {
        switch value {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(let b): out.append(contentsOf: b ? Array("true".utf8) : Array("false".utf8))
        case .number(let n): out.append(contentsOf: n.text.utf8)
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, level + 1)
                write(item, into: &out, level: level + 1)
            }
            if !items.isEmpty { newline(&out, level) }
            out.append(UInt8(ascii: "]"))
        case .object(let obj):
            out.append(UInt8(ascii: "{"))
            for (i, m) in obj.members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                newline(&out, level + 1)
                Self.writeString(m.key, into: &out)
                out.append(UInt8(ascii: ":"))
                if pretty { out.append(0x20) }
                write(m.value, into: &out, level: level + 1)
            }
            if !obj.isEmpty { newline(&out, level) }
            out.append(UInt8(ascii: "}"))
        }
    }

    private func newline(_ out: inout [UInt8], _ level: Int) {
        guard pretty else { return }
        out.append(0x0A)
        out.append(contentsOf: repeatElement(0x20, count: level * 2))
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// Writes a quoted, escaped string. Non-ASCII is written as UTF-8.
    public static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        // Fast path: copy runs that need no escaping in one go.
        var copied = false
        var str = s
        str.withUTF8 { buf in
            if !buf.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
                out.append(contentsOf: buf)
                copied = true
            }
        }
        if copied { out.append(0x22); return }
        for c in s.utf8 {
            switch c {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0..<0x20:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
            default: out.append(c)
            }
        }
        out.append(0x22)
    }
}

extension JSONValue {
    /// Compact JSON text.
    public var jsonString: String { JSONWriter().string(self) }
}
