// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization

/// A small structured logger: one JSON object per line on stderr. It is passed in from
/// the composition root, never built inside a module. Callers must not put tokens,
/// passwords or personal attribute values in messages or metadata.
public final class Logger: Sendable {
    /// Severity, lowest first.
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        /// Parses `debug|info|warning|error`.
        public init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warning", "warn": self = .warning
            case "error": self = .error
            default: return nil
            }
        }
        var name: String { ["debug", "info", "warning", "error"][rawValue] }
    }

    /// Messages below this level are dropped.
    public let minimumLevel: Level
    private let label: String
    private let sink: Mutex<FileHandle?>

    /// A logger writing to stderr, or nowhere when `silent`.
    public init(label: String, minimumLevel: Level = .info, silent: Bool = false) {
        self.label = label
        self.minimumLevel = minimumLevel
        self.sink = Mutex(silent ? nil : FileHandle.standardError)
    }

    /// Logs one event. Metadata keys are dot-separated names (`http.status`).
    public func log(_ level: Level, _ message: String, _ metadata: [String: String] = [:]) {
        guard level >= minimumLevel else { return }
        emit(level, message, metadata)
    }

    private func emit(_ level: Level, _ message: String, _ metadata: [String: String]) {
        var line =
            "{\"ts\":\"\(Self.timestamp())\",\"level\":\"\(level.name)\","
            + "\"logger\":\(quote(label)),\"msg\":\(quote(message))"
        for key in metadata.keys.sorted() {
            line += ",\(quote(key)):\(quote(metadata[key] ?? ""))"
        }
        line += "}\n"
        sink.withLock { $0?.write(Data(line.utf8)) }
    }

    /// A lifecycle notice (listening, stopping) written whatever the minimum level:
    /// operators and scripts rely on it.
    public func notice(_ message: String, _ metadata: [String: String] = [:]) {
        emit(.info, message, metadata)
    }

    public func debug(_ m: String, _ md: [String: String] = [:]) { log(.debug, m, md) }
    public func info(_ m: String, _ md: [String: String] = [:]) { log(.info, m, md) }
    public func warning(_ m: String, _ md: [String: String] = [:]) { log(.warning, m, md) }
    public func error(_ m: String, _ md: [String: String] = [:]) { log(.error, m, md) }

    private func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    private static func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var t = ts.tv_sec
        var tmv = tm()
        gmtime_r(&t, &tmv)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
            tmv.tm_hour, tmv.tm_min, tmv.tm_sec, ts.tv_nsec / 1_000_000)
    }
}
