// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
import Synchronization
import HubHarness

/// A TCP proxy between the store and a real PostgreSQL that, when armed, cuts a connection
/// right after it forwards a simple-query `COMMIT`: the server gets the COMMIT and then the
/// end of the stream (it commits), the client sees its connection drop without an answer.
/// The one failure where a write's outcome is unknown to the store.
final class CommitCuttingProxy: @unchecked Sendable {
    // @unchecked Sendable: `listener` is set in init; the rest are atomics.
    let port: Int
    private let listener: Int32
    /// Cut the next connection that sends COMMIT (then disarms).
    let armed = Atomic<Bool>(false)
    /// Connections cut so far.
    let cuts = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// The wire bytes of a simple query "COMMIT": 'Q', length 11, the text and its NUL.
    private static let commit: [UInt8] = [0x51, 0, 0, 0, 11] + Array("COMMIT".utf8) + [0]

    init(to targetPort: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard fd >= 0, bound == 0, listen(fd, 64) == 0 else {
            throw TestError("proxy cannot listen (errno \(errno))")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread { [self] in
            while !stopped.load(ordering: .relaxed) {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { break }
                let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var target = Self.loopback(port: targetPort)
                let ok = withUnsafePointer(to: &target) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                guard ok == 0 else {
                    close(client)
                    close(server)
                    continue
                }
                // Both descriptors close once both directions have ended.
                let ended = Atomic<Int>(0)
                @Sendable func finished() {
                    if ended.add(1, ordering: .relaxed).newValue == 2 {
                        close(client)
                        close(server)
                    }
                }
                Thread {
                    self.pump(from: client, to: server, watching: true)
                    finished()
                }.start()
                Thread {
                    self.pump(from: server, to: client, watching: false)
                    finished()
                }.start()
            }
        }.start()
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }

    /// Copies bytes one way until either side closes. Client to server, an armed proxy cuts
    /// after a chunk holding COMMIT: the server's side gets a FIN after the COMMIT (so it
    /// reads and runs it), the client's side is closed at once.
    private func pump(from: Int32, to: Int32, watching: Bool) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(from, &buffer, buffer.count)
            guard n > 0 else { break }
            var sent = 0
            while sent < n {
                let w = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                guard w > 0 else { break }
                sent += w
            }
            guard sent == n else { break }
            if watching, armed.load(ordering: .relaxed), Self.contains(buffer[0..<n], Self.commit),
                armed.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged
            {
                cuts.add(1, ordering: .relaxed)
                shutdown(to, Int32(SHUT_WR))
                shutdown(from, Int32(SHUT_RDWR))
                return
            }
        }
        shutdown(to, Int32(SHUT_WR))
    }

    private static func contains(_ haystack: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        var i = haystack.startIndex
        while i <= haystack.endIndex - needle.count {
            if haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
