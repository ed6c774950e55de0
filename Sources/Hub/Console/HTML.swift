// SPDX-License-Identifier: Apache-2.0

/// A piece of HTML. Built by string interpolation in which every `String` is escaped and
/// only other `HTML` goes in as it is: escaping happens in one place, by default, so a
/// name, reason or report cell can never become markup or script.
struct HTML: ExpressibleByStringInterpolation, Sendable {
    let text: String

    init(stringLiteral value: String) { text = value }
    init(stringInterpolation i: Interpolation) { text = i.out }
    private init(raw: String) { text = raw }

    struct Interpolation: StringInterpolationProtocol {
        var out = ""
        init(literalCapacity: Int, interpolationCount: Int) { out.reserveCapacity(literalCapacity * 2) }
        mutating func appendLiteral(_ s: String) { out += s }
        mutating func appendInterpolation(_ s: String) { out += HTML.escape(s) }
        mutating func appendInterpolation(_ s: String?) { out += HTML.escape(s ?? "") }
        mutating func appendInterpolation(_ h: HTML) { out += h.text }
        mutating func appendInterpolation(_ list: [HTML]) { for h in list { out += h.text } }
        mutating func appendInterpolation(_ n: Int) { out += String(n) }
    }

    /// `&`, `<`, `>`, `"` and `'` as character references: safe in text and in quoted attributes.
    static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else {
            return s
        }
        var out = ""
        out.reserveCapacity(s.utf8.count + 16)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static let empty: HTML = ""

    /// Joins pieces without a separator.
    static func join(_ parts: [HTML]) -> HTML { HTML(raw: parts.map(\.text).joined()) }
}
