// SPDX-License-Identifier: Apache-2.0

/// A latency histogram with fixed buckets (seconds), as Prometheus counts them: each bucket
/// counts observations at or below its bound, `+Inf` all of them.
public struct Histogram: Sendable {
    /// Upper bounds in seconds; the last implicit bucket is `+Inf`.
    public let bounds: [Double]
    /// Observations per bucket (not cumulative; `render` accumulates), `+Inf` last.
    public private(set) var counts: [UInt64]
    public private(set) var sum: Double = 0
    public private(set) var count: UInt64 = 0

    /// HTTP requests: 1 ms to 10 s.
    public static let requestBounds: [Double] = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// From a change to the target holding it: 50 ms to an hour (an outage's backlog).
    public static let convergenceBounds: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600]

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        var i = 0
        while i < bounds.count && value > bounds[i] { i += 1 }
        counts[i] += 1
        sum += value
        count += 1
    }

    /// Adds another histogram with the same bounds (shards merged for a scrape).
    public mutating func merge(_ other: Histogram) {
        for i in counts.indices { counts[i] += other.counts[i] }
        sum += other.sum
        count += other.count
    }
}

/// Writes the Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE`
/// once per family, then its samples; label values escaped (`\`, `"`, newline).
public struct PrometheusText {
    public private(set) var text = ""
    private var declared = Set<String>()

    public init() {}

    /// Declares a family (once; later calls for the same name are ignored).
    public mutating func family(_ name: String, _ type: String, _ help: String) {
        guard declared.insert(name).inserted else { return }
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    /// A histogram's `_bucket`, `_sum` and `_count` samples.
    public mutating func histogram(_ name: String, _ labels: [(String, String)], _ h: Histogram) {
        var cumulative: UInt64 = 0
        for (i, bound) in h.bounds.enumerated() {
            cumulative += h.counts[i]
            sample(name + "_bucket", labels + [("le", Self.format(bound))], Double(cumulative))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(h.count))
        sample(name + "_sum", labels, h.sum)
        sample(name + "_count", labels, Double(h.count))
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// Integers without a fraction; others in Swift's shortest round-trip form.
    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}

/// What this build is, for `/metrics` (`scimhub_build_info`).
public enum BuildInfo {
    public static let version = "0.9.0"
}
