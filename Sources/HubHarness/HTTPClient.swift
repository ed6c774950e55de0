// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import CLinux
import JSONCore

/// The repository root, found from this file's location.
public let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A fresh temporary folder, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String
    public init() {
        path = NSTemporaryDirectory() + "scimhub-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// A parsed HTTP response.
public struct RawResponse: Sendable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    public var json: JSONValue? { try? JSONParser().parse(body) }
    public var object: JSONObject { json?.objectValue ?? JSONObject() }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking HTTP/1.1 client on a raw socket, so tests can send any bytes at all.
public final class RawHTTPClient {
    public let fd: Int32
    private var buffer: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 65536)
    private var scanned = 0

    /// Connects to 127.0.0.1:`port`; reads time out after `timeout` seconds.
    public init(port: UInt16, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        sa.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        // No close here: every stored property is set, so a throw runs deinit, which closes
        // the socket. Closing it here as well closed whatever file the number was given to
        // next, on another thread: SQLite's files, seen as "disk I/O error" in other tests.
        guard rc == 0 else { throw TestError("connect failed: errno \(scimhub_errno())") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int(timeout.truncatingRemainder(dividingBy: 1) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends bytes; false when the peer has closed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            off += n
        }
        return true
    }

    @discardableResult
    public func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    private func fill() -> Bool {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    /// True when the server has closed the connection (reads EOF within the timeout).
    public func isClosedByPeer() -> Bool {
        while true {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return scimhub_errno() == ECONNRESET }
        }
    }

    /// Reads one response; nil on EOF or timeout.
    public func readResponse(head: Bool = false) -> RawResponse? {
        while true {
            if let end = findHeaderEnd() {
                // Parsed on bytes: the benchmark's load generator shares the cores with the hub.
                var lines = buffer[0..<end].split(separator: 10, omittingEmptySubsequences: false).map {
                    $0.last == 13 ? $0.dropLast() : $0
                }
                let statusLine = lines.removeFirst().split(separator: 0x20)
                guard statusLine.count >= 2, let status = Int(String(decoding: statusLine[1], as: UTF8.self)) else {
                    return nil
                }
                var length = 0
                let headers = lines.compactMap { l -> (String, String)? in
                    guard let c = l.firstIndex(of: 0x3A) else { return nil }
                    var v = l[(c + 1)...]
                    while v.first == 0x20 || v.first == 0x09 { v = v.dropFirst() }
                    while v.last == 0x20 || v.last == 0x09 { v = v.dropLast() }
                    let name = String(decoding: l[..<c], as: UTF8.self), value = String(decoding: v, as: UTF8.self)
                    if name.utf8.count == 14, name.lowercased() == "content-length" { length = Int(value) ?? 0 }
                    return (name, value)
                }
                if head || status == 204 || status == 304 || status < 200 { length = 0 }
                while buffer.count < end + 4 + length { if !fill() { return nil } }
                let body = Array(buffer[(end + 4)..<(end + 4 + length)])
                buffer.removeFirst(end + 4 + length)
                scanned = 0
                return RawResponse(status: status, headers: headers, body: body)
            }
            if !fill() { return nil }
        }
    }

    private func findHeaderEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in scanned...(buffer.count - 4)
        where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { return i }
        scanned = buffer.count - 3
        return nil
    }

    /// Sends one request and reads its response.
    public func request(_ method: String, _ path: String, headers: [(String, String)] = [], body: [UInt8]? = nil)
        -> RawResponse?
    {
        var head = "\(method) \(path) HTTP/1.1\r\n"
        // A Host header of the caller's replaces the default: servers that build URLs from it
        // (an OpenID provider's issuer, chromedriver's DNS-rebinding check) need the port too.
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: 127.0.0.1\r\n" }
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let b = body { head += "Content-Length: \(b.count)\r\n" }
        head += "\r\n"
        guard send(Array(head.utf8) + (body ?? [])) else { return nil }
        return readResponse(head: method == "HEAD")
    }
}

public struct TestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
