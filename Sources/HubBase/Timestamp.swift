// SPDX-License-Identifier: Apache-2.0
import Foundation

/// xsd:dateTime values (RFC 7643 §2.3.5) as seconds since 1970, and timestamps for `meta`.
public enum Timestamp {
    /// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`; no zone means UTC. Nil when invalid.
    public static func parse(_ text: String) -> Double? {
        let u = Array(text.utf8)
        guard u.count >= 19, u.count <= 40 else { return nil }
        func num(_ from: Int, _ len: Int) -> Int? {
            var v = 0
            for i in from..<(from + len) {
                guard i < u.count, u[i] >= 0x30, u[i] <= 0x39 else { return nil }
                v = v * 10 + Int(u[i] - 0x30)
            }
            return v
        }
        guard let year = num(0, 4), u[4] == UInt8(ascii: "-"), let month = num(5, 2), u[7] == UInt8(ascii: "-"),
            let day = num(8, 2),
            u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: "t"), let hour = num(11, 2), u[13] == UInt8(ascii: ":"),
            let minute = num(14, 2), u[16] == UInt8(ascii: ":"), let second = num(17, 2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year), hour <= 23, minute <= 59,
            second <= 60
        else { return nil }
        var i = 19
        var fraction = 0.0
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 {
                fraction += Double(u[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset = 0
        if i < u.count {
            switch u[i] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"):
                i += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                guard let oh = num(i + 1, 2), i + 3 < u.count, u[i + 3] == UInt8(ascii: ":"), let om = num(i + 4, 2),
                    oh <= 14, om <= 59
                else { return nil }
                offset = (oh * 3600 + om * 60) * (u[i] == UInt8(ascii: "-") ? -1 : 1)
                i += 6
            default:
                return nil
            }
        }
        guard i == u.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Double(days * 86400 + hour * 3600 + minute * 60 + second - offset) + fraction
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// `seconds` since 1970 as `YYYY-MM-DDThh:mm:ss.sssZ`.
    public static func format(_ seconds: Double) -> String {
        var t = time_t(seconds.rounded(.down))
        let ms = min(999, max(0, Int((seconds - Double(t)) * 1000)))
        var tmv = tm()
        gmtime_r(&t, &tmv)
        // Hand-formatted: String(format:) showed up in profiles of every GET.
        var out = [UInt8]()
        out.reserveCapacity(24)
        func digits(_ v: Int, _ n: Int) {
            var d = [UInt8](repeating: 0x30, count: n)
            var x = v
            for i in stride(from: n - 1, through: 0, by: -1) { d[i] = UInt8(0x30 + x % 10); x /= 10 }
            out += d
        }
        digits(Int(tmv.tm_year) + 1900, 4); out.append(0x2D); digits(Int(tmv.tm_mon) + 1, 2); out.append(0x2D);
        digits(Int(tmv.tm_mday), 2)
        out.append(0x54); digits(Int(tmv.tm_hour), 2); out.append(0x3A); digits(Int(tmv.tm_min), 2); out.append(0x3A);
        digits(Int(tmv.tm_sec), 2)
        out.append(0x2E); digits(ms, 3); out.append(0x5A)
        return String(decoding: out, as: UTF8.self)
    }

    /// Now, as seconds since 1970.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
