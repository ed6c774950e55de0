// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import HTTPServer
import HubLog
import TestSupport

/// The server on a real loopback socket: keep-alive, pipelining, timeouts, limits, shutdown.
@Suite struct LiveServerTests {
    final class Running: @unchecked Sendable {
        // @unchecked Sendable: holds only the (Sendable) server, set in init.
        let server: HTTPServer
        init(limits: HTTPLimits = HTTPLimits(), handler: @escaping HTTPHandler) throws {
            server = try HTTPServer(
                address: ListenAddress("127.0.0.1:0")!, limits: limits, readThreads: 2, writeThreads: 2,
                logger: Logger(label: "t", minimumLevel: .error, silent: true), handler: handler)
            let s = server
            Thread { s.run() }.start()
        }
        func stop() { server.shutdown(); server.waitUntilStopped() }
    }

    static let echo: HTTPHandler = { req in
        if req.path == "/slow" { Thread.sleep(forTimeInterval: 0.5) }
        return HTTPResponse(
            status: 200, headers: [("Content-Type", "text/plain")],
            body: Array("\(req.method) \(req.path) \(req.body.count)".utf8))
    }

    @Test func keepAlive_servesManyRequestsOnOneConnection() throws {
        let s = try Running(handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        for i in 0..<20 {
            let r = try #require(c.request("GET", "/n\(i)"))
            #expect(r.status == 200)
            #expect(r.text == "GET /n\(i) 0")
        }
    }

    @Test func pipelining_answersInRequestOrder() throws {
        let s = try Running(handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        c.send(
            "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
                + "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
                + "GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        #expect(c.readResponse()?.text == "GET /slow 0")
        #expect(c.readResponse()?.text == "POST /b 2")
        #expect(c.readResponse()?.text == "GET /c 0")
    }

    @Test func expectContinue_getsInterimResponse() throws {
        let s = try Running(handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        c.send("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(c.readResponse()?.status == 100)
        c.send("data")
        #expect(c.readResponse()?.text == "PUT /x 4")
    }

    @Test func badFraming_answers400AndCloses() throws {
        let s = try Running(handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(r.header("Connection") == "close")
        #expect(c.isClosedByPeer())
    }

    @Test func oversizedBody_413BeforeReadingIt() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1000
        let s = try Running(limits: limits, handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        #expect(c.readResponse()?.status == 413)
    }

    @Test func slowloris_oneByteASecond_isCutOffWhileOthersAreServed() throws {
        var limits = HTTPLimits()
        limits.headerReadTimeout = 1.5
        let s = try Running(limits: limits, handler: Self.echo)
        defer { s.stop() }
        let slow = try RawHTTPClient(port: s.server.port)
        let start = Date()
        var cutOff = false
        for byte in "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaa".utf8 {
            // Meanwhile a normal client is served promptly.
            let fast = try RawHTTPClient(port: s.server.port)
            #expect(fast.request("GET", "/fast")?.status == 200)
            if !slow.send([byte]) { cutOff = true; break }
            if let r = slow.readResponseNonBlocking() { #expect(r.status == 408); cutOff = true; break }
            Thread.sleep(forTimeInterval: 0.25)
            if Date().timeIntervalSince(start) > 6 { break }
        }
        #expect(cutOff || slow.isClosedByPeer())
        #expect(Date().timeIntervalSince(start) < 6)
    }

    @Test func idleConnection_isClosedAfterIdleTimeout() throws {
        var limits = HTTPLimits()
        limits.idleTimeout = 1
        let s = try Running(limits: limits, handler: Self.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        #expect(c.request("GET", "/")?.status == 200)
        let start = Date()
        #expect(c.isClosedByPeer())
        #expect(Date().timeIntervalSince(start) < 4)
    }

    @Test func connectionLimit_refusesExtraConnectionsWith503() throws {
        var limits = HTTPLimits()
        limits.maxConnections = 3
        let s = try Running(limits: limits, handler: Self.echo)
        defer { s.stop() }
        let held = try (0..<3).map { _ in try RawHTTPClient(port: s.server.port) }
        for c in held { #expect(c.request("GET", "/")?.status == 200) }
        let extra = try RawHTTPClient(port: s.server.port)
        #expect(extra.readResponse()?.status == 503)
        _ = held
    }

    @Test func gracefulShutdown_finishesInFlightRequest() throws {
        let s = try Running(handler: Self.echo)
        let c = try RawHTTPClient(port: s.server.port)
        c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        Thread.sleep(forTimeInterval: 0.1)
        let stopper = Thread { s.stop() }
        stopper.start()
        let r = c.readResponse()
        #expect(r?.status == 200)
        #expect(r?.header("Connection") == "close")
        s.server.waitUntilStopped()
        #expect(throws: (any Error).self) { _ = try RawHTTPClient(port: s.server.port) }
    }
}

extension RawHTTPClient {
    /// A response if one is already waiting, else nil (used while trickling bytes).
    func readResponseNonBlocking() -> RawResponse? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return nil }
        return readResponse()
    }
}

/// Lingering close (RFC 9112 §9.6): a client that writes its whole body before reading (as
/// Python's urllib does) reads the 413, not a connection reset.
@Suite struct LingeringCloseTests {
    @Test func oversizedBody_sentWhole_stillReads413() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 64 * 1024
        let s = try LiveServerTests.Running(limits: limits, handler: LiveServerTests.echo)
        defer { s.stop() }
        for _ in 0..<3 {
            let c = try RawHTTPClient(port: s.server.port)
            let body = [UInt8](repeating: 0x61, count: 4 * 1024 * 1024)
            #expect(
                c.send(
                    "POST /big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        + "Content-Length: \(body.count)\r\n\r\n"
                ))
            let sentAll = c.send(body)
            #expect(sentAll, "the server reset the connection while the body was being sent")
            let r = c.readResponse()
            #expect(r?.status == 413, "no 413 read: \(String(describing: r?.status))")
            #expect(c.isClosedByPeer())
        }
    }

    @Test func lingering_isBoundedInBytes() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 1024
        limits.lingerMaxBytes = 256 * 1024
        let s = try LiveServerTests.Running(limits: limits, handler: LiveServerTests.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        #expect(c.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"))
        // The server gives up discarding after its byte budget: sending eventually fails.
        var sent = 0
        let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
        while sent < 100_000_000, c.send(chunk) { sent += chunk.count }
        #expect(sent < 100_000_000)
    }
}

/// An error answered after a HEAD request on the same connection still carries its body.
@Suite struct HeadThenErrorTests {
    @Test func badFramingAfterHEAD_answersWithABody() throws {
        let s = try LiveServerTests.Running(handler: LiveServerTests.echo)
        defer { s.stop() }
        let c = try RawHTTPClient(port: s.server.port)
        let head = try #require(c.request("HEAD", "/x"))
        #expect(head.status == 200 && head.body.isEmpty)
        c.send("GET /y HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        let r = try #require(c.readResponse())
        #expect(r.status == 400)
        #expect(!r.body.isEmpty)
    }
}
