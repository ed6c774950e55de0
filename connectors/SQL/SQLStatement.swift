// SPDX-License-Identifier: Apache-2.0

/// A configured SQL statement with named parameters (`:userName`), rewritten once into the
/// dialect's positional form (`$1` for PostgreSQL, `?1` for SQLite). Values are always bound,
/// never spliced into the text, so no user data can change what a statement does.
public struct SQLStatement: Sendable, Equatable {
    /// The statement's key in the configuration (`find`, `grant`, ...).
    public let name: String
    /// Text with positional placeholders for the chosen dialect.
    public let text: String
    /// Parameter names by position (a name used twice binds once).
    public let parameters: [String]

    public enum Dialect: String, Sendable { case postgresql, sqlite }

    /// Parses `source`. `:name` outside string literals, quoted identifiers and comments is a
    /// parameter; `::` (a PostgreSQL cast) is not.
    public init(name: String, source: String, dialect: Dialect) throws(SQLConfigError) {
        self.name = name
        let b = Array(source.utf8)
        var out: [UInt8] = []
        var params: [String] = []
        var i = 0
        func isNameByte(_ c: UInt8) -> Bool {
            c == 0x5F || (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A)
        }
        while i < b.count {
            let c = b[i]
            switch c {
            case 0x27, 0x22:  // '...' literal or "..." identifier: copy through the closing quote ('' and "" escape)
                guard let end = Self.closing(b, from: i, quote: c) else {
                    throw SQLConfigError("statement '\(name)': unterminated quote")
                }
                out.append(contentsOf: b[i...end])
                i = end + 1
            case 0x2D where i + 1 < b.count && b[i + 1] == 0x2D:  // -- comment to end of line
                let end = b[i...].firstIndex(of: 0x0A) ?? b.count
                out.append(contentsOf: b[i..<end])
                i = end
            case 0x2F where i + 1 < b.count && b[i + 1] == 0x2A:  // /* comment */
                guard let close = Self.find(b, [0x2A, 0x2F], from: i + 2) else {
                    throw SQLConfigError("statement '\(name)': unterminated comment")
                }
                out.append(contentsOf: b[i..<close + 2])
                i = close + 2
            case 0x3A where i + 1 < b.count && b[i + 1] == 0x3A:  // :: cast
                out.append(contentsOf: [0x3A, 0x3A])
                i += 2
            case 0x3A where i + 1 < b.count && isNameByte(b[i + 1]) && !(b[i + 1] >= 0x30 && b[i + 1] <= 0x39):
                var j = i + 1
                while j < b.count && isNameByte(b[j]) { j += 1 }
                let param = String(decoding: b[(i + 1)..<j], as: UTF8.self)
                let index: Int
                if let k = params.firstIndex(of: param) {
                    index = k + 1
                } else {
                    params.append(param); index = params.count
                }
                out.append(contentsOf: Array((dialect == .postgresql ? "$\(index)" : "?\(index)").utf8))
                i = j
            default:
                out.append(c)
                i += 1
            }
        }
        text = String(decoding: out, as: UTF8.self)
        parameters = params
    }

    private static func closing(_ b: [UInt8], from start: Int, quote: UInt8) -> Int? {
        var i = start + 1
        while i < b.count {
            if b[i] == quote {
                if i + 1 < b.count && b[i + 1] == quote { i += 2; continue }
                return i
            }
            i += 1
        }
        return nil
    }

    private static func find(_ b: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        var i = from
        while i + needle.count <= b.count {
            if Array(b[i..<i + needle.count]) == needle { return i }
            i += 1
        }
        return nil
    }

    /// Values in positional order; a parameter with no value binds NULL.
    func bind(_ values: [String: String?]) -> [String?] {
        parameters.map { values[$0] ?? nil }
    }
}

/// A configuration problem in a SQL target (names the statement and parameter).
public struct SQLConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
