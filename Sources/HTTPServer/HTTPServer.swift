// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
internal import CLinux
import Synchronization
import HubLog

/// Handles one request on a worker thread. It may block (database, fsync).
public typealias HTTPHandler = @Sendable (HTTPRequest) -> HTTPResponse

/// Renders a protocol-level error (bad framing 400, 408, 413, 414, 431, 503) before any
/// handler runs, so the application can answer in its own error format.
public typealias HTTPErrorRenderer = @Sendable (_ status: Int, _ reason: String) -> HTTPResponse

/// An HTTP/1.1 server on non-blocking sockets and epoll. One I/O thread accepts, reads,
/// decodes and writes; handlers run on worker pools and hand their responses back
/// through an eventfd. GET and HEAD run on a small pool sized for the CPU; other methods
/// run on a larger pool, because a durable write mostly waits for its group commit and
/// a commit can only group as many writes as there are threads waiting. Keep-alive and
/// pipelining are supported: requests on one connection are handled one at a time, in order.
///
/// `@unchecked Sendable`: the connection table and decoder state are touched only on the
/// I/O thread; `completions` and `shutdownRequested` are the only state shared with other
/// threads, and they sit behind a `Mutex`/atomic.
public final class HTTPServer: @unchecked Sendable {
    /// The limits in force.
    public let limits: HTTPLimits
    private let handler: HTTPHandler
    private let renderError: HTTPErrorRenderer
    private let logger: Logger
    private let readWorkers: WorkerPool
    private let writeWorkers: WorkerPool
    /// TLS on this listener (`--tls-cert`, `--tls-key`), or nil for plain HTTP.
    public let tls: TLSContext?

    private let epfd: Int32
    private let wakeFD: Int32
    private var listenFD: Int32
    /// The bound port (useful with port 0).
    public let port: UInt16
    /// The address the server listens on.
    public let address: ListenAddress

    private var connections: [Int32: Connection] = [:]
    private var nextSerial: UInt64 = 1
    private let completions = Mutex<[(fd: Int32, serial: UInt64, response: HTTPResponse)]>([])
    private let shutdownRequested = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)

    /// Binds `address` and prepares the loop; call `run()` to serve.
    public init(
        address: ListenAddress, limits: HTTPLimits = HTTPLimits(), readThreads: Int = 4, writeThreads: Int = 16,
        tls: TLSContext? = nil, logger: Logger,
        renderError: @escaping HTTPErrorRenderer = { HTTPResponse.plain($0, "\($1)\n") },
        handler: @escaping HTTPHandler
    ) throws(SocketError) {
        self.limits = limits
        self.tls = tls
        self.handler = handler
        self.renderError = renderError
        self.logger = logger
        let (fd, port) = try Sock.listen(address)
        self.listenFD = fd
        self.port = port
        self.address = ListenAddress("\(address.host.contains(":") ? "[\(address.host)]" : address.host):\(port)")!
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard epfd >= 0, wakeFD >= 0 else {
            let e = scimhub_errno()
            close(fd)
            throw SocketError(call: "epoll_create1/eventfd", errno: e)
        }
        readWorkers = WorkerPool(threads: readThreads, name: "http-read")
        writeWorkers = WorkerPool(threads: writeThreads, name: "http-write")
        register(listenFD, events: EPOLLIN.rawValue)
        register(wakeFD, events: EPOLLIN.rawValue)
    }

    deinit {
        close(epfd)
        close(wakeFD)
        if listenFD >= 0 { close(listenFD) }
    }

    /// Asks the server to stop: no new connections, in-flight requests finish, then `run` returns.
    public func shutdown() {
        shutdownRequested.store(true, ordering: .releasing)
        wake()
    }

    /// Blocks until `run` has returned after a shutdown.
    public func waitUntilStopped() { stopped.wait(); stopped.signal() }

    /// Runs the I/O loop on the calling thread until `shutdown()` and draining complete.
    public func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var lastSweep = Sock.now()
        var drainDeadline: Double? = nil
        while true {
            let n = epoll_wait(epfd, &events, Int32(events.count), 250)
            if n < 0 && scimhub_errno() != EINTR {
                logger.error("epoll_wait failed", ["errno": String(scimhub_errno())])
                break
            }
            for i in 0..<max(0, Int(n)) {
                let fd = events[i].data.fd
                let ev = events[i].events
                if fd == listenFD { acceptAll(); continue }
                if fd == wakeFD { drainWake(); continue }
                guard let conn = connections[fd] else { continue }
                if ev & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 && ev & EPOLLIN.rawValue == 0 {
                    closeConnection(conn)
                    continue
                }
                if ev & EPOLLOUT.rawValue != 0 {
                    // A TLS read that had to send first (the handshake's reply) goes on now.
                    if conn.tlsReadWantsWrite {
                        conn.tlsReadWantsWrite = false
                        readFrom(conn)
                    }
                    if connections[fd] === conn { flush(conn) }
                }
                if ev & EPOLLIN.rawValue != 0, connections[fd] === conn { readFrom(conn) }
            }
            if shutdownRequested.load(ordering: .acquiring) {
                if drainDeadline == nil {
                    drainDeadline = Sock.now() + limits.shutdownGrace
                    beginDrain()
                }
                if connections.isEmpty || Sock.now() > drainDeadline! { break }
            }
            let now = Sock.now()
            if now - lastSweep >= 0.25 {
                lastSweep = now
                sweepTimeouts(now)
            }
        }
        for conn in Array(connections.values) { closeConnection(conn) }
        readWorkers.shutdown()
        writeWorkers.shutdown()
        logger.info("http server stopped")
        stopped.signal()
    }

    // MARK: - epoll plumbing

    private func register(_ fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.fd = fd
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
    }

    private func modify(_ conn: Connection) {
        var want: UInt32 = 0
        if conn.wantsRead { want |= EPOLLIN.rawValue | EPOLLRDHUP.rawValue }
        if conn.outputPending || conn.tlsReadWantsWrite { want |= EPOLLOUT.rawValue }
        guard want != conn.registered else { return }
        var ev = epoll_event()
        ev.events = want
        ev.data.fd = conn.fd
        epoll_ctl(epfd, EPOLL_CTL_MOD, conn.fd, &ev)
        conn.registered = want
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func drainWake() {
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
        let done = completions.withLock { list -> [(fd: Int32, serial: UInt64, response: HTTPResponse)] in
            let l = list
            list.removeAll(keepingCapacity: true)
            return l
        }
        for item in done {
            guard let conn = connections[item.fd], conn.serial == item.serial else { continue }
            respond(conn, item.response)
        }
    }

    // MARK: - Accept

    private func acceptAll() {
        while let (fd, peer) = Sock.accept(listenFD) {
            if connections.count >= limits.maxConnections {
                // Over the limit: a short 503 on a best-effort write (plain HTTP only: a TLS
                // client cannot read it before its handshake), then close.
                if tls == nil {
                    let bytes = renderError(503, "too many connections").serialized(keepAlive: false)
                    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                close(fd)
                logger.warning(
                    "connection refused: limit reached", ["http.max_connections": String(limits.maxConnections)])
                continue
            }
            let conn = Connection(fd: fd, serial: nextSerial, peer: peer, limits: limits, now: Sock.now())
            if let tls {
                guard let session = tls.session(fd: fd) else {
                    close(fd)
                    logger.error("tls session could not be created; connection closed")
                    continue
                }
                conn.tls = session
            }
            nextSerial += 1
            connections[fd] = conn
            var ev = epoll_event()
            ev.events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue
            ev.data.fd = fd
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev)
            conn.registered = ev.events
        }
    }

    // MARK: - Read and decode

    private static let readChunk = 64 * 1024
    private var readBuffer = [UInt8](repeating: 0, count: HTTPServer.readChunk)

    private enum Received { case data(Int), wouldBlock, closed, failed }

    /// One read: `recv`, or one TLS record decrypted (which may first need the handshake).
    private func receive(_ conn: Connection) -> Received {
        if let tls = conn.tls {
            switch readBuffer.withUnsafeMutableBytes({ tls.read($0) }) {
            case .success(let n): return .data(n)
            case .failure(let e):
                switch e.wait {
                case .readable: return .wouldBlock
                case .writable:
                    conn.tlsReadWantsWrite = true
                    modify(conn)
                    return .wouldBlock
                case .closed: return .closed
                }
            }
        }
        let n = readBuffer.withUnsafeMutableBytes { recv(conn.fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { return .data(n) }
        if n == 0 { return .closed }
        let e = scimhub_errno()
        return e == EAGAIN || e == EWOULDBLOCK || e == EINTR ? .wouldBlock : .failed
    }

    private func readFrom(_ conn: Connection) {
        // Plain sockets: one read per readiness event (epoll is level-triggered). TLS: until
        // OpenSSL needs the socket again, since a record it already holds raises no event.
        repeat {
            let r = receive(conn)
            if conn.lingering {
                // Discard: the response is sent; we only wait for the client to stop sending.
                switch r {
                case .closed, .failed: closeConnection(conn); return
                case .wouldBlock: return
                case .data(let n):
                    conn.lingerBytes += n
                    if conn.lingerBytes > limits.lingerMaxBytes { closeConnection(conn); return }
                    continue
                }
            }
            switch r {
            case .closed:
                // Peer closed its side. Finish an in-flight request's write attempt, then close.
                conn.peerClosed = true
                if conn.inFlight { modify(conn) } else { closeConnection(conn) }
                return
            case .failed:
                closeConnection(conn)
                return
            case .wouldBlock:
                // A TLS write that waited for the peer's data can go on now.
                if conn.tls != nil && conn.outputPending { flush(conn) }
                return
            case .data(let n):
                let now = Sock.now()
                if conn.input.isEmpty && !conn.decoder.isReadingBody { conn.requestStart = now }
                readBuffer.withUnsafeBytes { conn.input.append(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                conn.lastActivity = now
                processInput(conn)
            }
        } while conn.tls != nil && connections[conn.fd] === conn && conn.wantsRead
    }

    /// Decodes and dispatches as long as the connection is free and input holds requests.
    private func processInput(_ conn: Connection) {
        while !conn.inFlight && !conn.closing {
            let event: HTTPRequestDecoder.Event
            do {
                event = try conn.decoder.next(&conn.input)
            } catch {
                // Bad framing: answer and close (RFC 9112 §2.2, §6.3).
                logger.debug("bad request framing", ["http.reason": error.reason, "http.status": String(error.status)])
                conn.closing = true
                conn.currentIsHead = false  // this answer is to no HEAD request: it has a body
                queue(conn, renderError(error.status, error.reason), keepAlive: false)
                return
            }
            switch event {
            case .needMore:
                if conn.decoder.isReadingBody && conn.bodyStart == nil { conn.bodyStart = Sock.now() }
                modify(conn)
                return
            case .sendContinue:
                conn.bodyStart = Sock.now()
                queueRaw(conn, Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
            case .request(let decoded):
                var request = decoded
                request.remoteAddress = conn.peer
                request.isSecure = conn.tls != nil
                conn.inFlight = true
                conn.bodyStart = nil
                conn.currentKeepAlive = request.wantsKeepAlive
                conn.currentIsHead = request.method == .head
                let fd = conn.fd, serial = conn.serial
                let handler = self.handler
                let req = request
                let pool = (req.method == .get || req.method == .head) ? readWorkers : writeWorkers
                pool.submit { [self] in
                    let response = handler(req)
                    completions.withLock { $0.append((fd, serial, response)) }
                    wake()
                }
                modify(conn)
                if !conn.input.isEmpty { conn.requestStart = Sock.now() }
                return
            }
        }
    }

    // MARK: - Write

    private func respond(_ conn: Connection, _ response: HTTPResponse) {
        conn.inFlight = false
        let keepAlive =
            conn.currentKeepAlive && !response.closeConnection && !shutdownRequested.load(ordering: .relaxed)
            && !conn.peerClosed
        if !keepAlive { conn.closing = true }
        queue(conn, response, keepAlive: keepAlive)
        if !conn.closing && !conn.outputPending {
            conn.lastActivity = Sock.now()
            processInput(conn)
            // Records OpenSSL decrypted ahead raise no epoll event: read them now.
            if conn.tls != nil && !conn.inFlight && connections[conn.fd] === conn { readFrom(conn) }
        }
    }

    private func queue(_ conn: Connection, _ response: HTTPResponse, keepAlive: Bool) {
        queueRaw(conn, response.serialized(keepAlive: keepAlive, includeBody: !conn.currentIsHead))
    }

    private func queueRaw(_ conn: Connection, _ bytes: [UInt8]) {
        if conn.output.isEmpty { conn.output = bytes; conn.outputOffset = 0 } else { conn.output += bytes }
        conn.writeStart = Sock.now()
        flush(conn)
    }

    private func flush(_ conn: Connection) {
        while conn.outputOffset < conn.output.count {
            if let tls = conn.tls {
                let r = conn.output.withUnsafeBytes { p in
                    tls.write(UnsafeRawBufferPointer(rebasing: p[conn.outputOffset...]))
                }
                switch r {
                case .success(let n):
                    conn.outputOffset += n
                    continue
                case .failure(let e):
                    switch e.wait {
                    case .writable: modify(conn)
                    case .readable: break  // EPOLLIN stays registered; readFrom flushes again
                    case .closed: closeConnection(conn)
                    }
                    return
                }
            }
            let n = conn.output.withUnsafeBytes { p in
                send(conn.fd, p.baseAddress! + conn.outputOffset, p.count - conn.outputOffset, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                let e = scimhub_errno()
                if e == EINTR { continue }
                if e == EAGAIN || e == EWOULDBLOCK { modify(conn); return }
                closeConnection(conn)
                return
            }
            conn.outputOffset += n
        }
        conn.output.removeAll(keepingCapacity: true)
        conn.outputOffset = 0
        if conn.closing && !conn.inFlight {
            lingerThenClose(conn)
            return
        }
        modify(conn)
        if !conn.inFlight && !conn.input.isEmpty { processInput(conn) }
    }

    /// Ends a connection whose last response is sent: half-close, then read and discard
    /// until the client closes or the linger bounds are reached (RFC 9112 §9.6). Closing
    /// with unread input would make the kernel send a reset that can destroy the response
    /// before the client reads it.
    private func lingerThenClose(_ conn: Connection) {
        guard !conn.peerClosed, !shutdownRequested.load(ordering: .relaxed) else { closeConnection(conn); return }
        conn.lingering = true
        conn.lingerStart = Sock.now()
        conn.input = InputBuffer()
        conn.tls?.shutdown()  // close_notify (RFC 8446 §6.1) before the TCP half-close
        _ = Glibc.shutdown(conn.fd, Int32(SHUT_WR))
        modify(conn)
    }

    private func closeConnection(_ conn: Connection) {
        guard connections[conn.fd] === conn else { return }
        epoll_ctl(epfd, EPOLL_CTL_DEL, conn.fd, nil)
        close(conn.fd)
        connections[conn.fd] = nil
    }

    // MARK: - Timeouts and shutdown

    private func sweepTimeouts(_ now: Double) {
        for conn in Array(connections.values) {
            if conn.inFlight { continue }
            // A TLS handshake that never finishes is a slow header: no answer is possible yet.
            if let t = conn.tls, !t.handshakeDone {
                if now - conn.requestStart > limits.headerReadTimeout { closeConnection(conn) }
                continue
            }
            if conn.lingering {
                if now - conn.lingerStart > limits.lingerTimeout { closeConnection(conn) }
                continue
            }
            if conn.outputPending {
                if now - conn.writeStart > limits.writeTimeout { closeConnection(conn) }
                continue
            }
            if conn.decoder.isReadingBody {
                if now - (conn.bodyStart ?? conn.requestStart) > limits.bodyReadTimeout { timeOut(conn) }
            } else if conn.decoder.isMidRequest(conn.input) {
                // Slowloris: the whole head must arrive within the timeout, however steadily it trickles.
                if now - conn.requestStart > limits.headerReadTimeout { timeOut(conn) }
            } else if now - conn.lastActivity > limits.idleTimeout {
                closeConnection(conn)
            }
        }
    }

    private func timeOut(_ conn: Connection) {
        conn.closing = true
        conn.currentIsHead = false
        conn.input = InputBuffer()
        queue(conn, renderError(408, "the request was not received in time"), keepAlive: false)
    }

    private func beginDrain() {
        epoll_ctl(epfd, EPOLL_CTL_DEL, listenFD, nil)
        close(listenFD)
        listenFD = -1
        for conn in Array(connections.values) where !conn.inFlight && !conn.outputPending {
            closeConnection(conn)
        }
        logger.info("http server draining", ["http.in_flight": String(connections.count)])
    }
}

/// Per-connection state, owned by the I/O thread.
private final class Connection {
    let fd: Int32
    let serial: UInt64
    let peer: String
    var input = InputBuffer()
    var decoder: HTTPRequestDecoder
    var output: [UInt8] = []
    var outputOffset = 0
    var inFlight = false
    var closing = false
    var peerClosed = false
    var currentKeepAlive = true
    var currentIsHead = false
    var registered: UInt32 = 0
    var lastActivity: Double
    var requestStart: Double
    var bodyStart: Double? = nil
    var writeStart: Double = 0
    /// Response sent, write side shut: reading only to discard (lingering close).
    var lingering = false
    var lingerStart: Double = 0
    var lingerBytes = 0
    /// The connection's TLS session, on a TLS listener.
    var tls: TLSSession? = nil
    /// A TLS read could not go on until the socket was writable (the handshake's reply).
    var tlsReadWantsWrite = false

    init(fd: Int32, serial: UInt64, peer: String, limits: HTTPLimits, now: Double) {
        self.fd = fd
        self.serial = serial
        self.peer = peer
        self.decoder = HTTPRequestDecoder(limits: limits)
        self.lastActivity = now
        self.requestStart = now
    }

    var outputPending: Bool { outputOffset < output.count }

    /// Stop reading while a request is in flight and enough pipelined input is buffered,
    /// and after the peer has closed or we are closing.
    var wantsRead: Bool {
        if lingering { return true }
        if peerClosed || closing { return false }
        if inFlight && input.readable > 256 * 1024 { return false }
        return true
    }
}
