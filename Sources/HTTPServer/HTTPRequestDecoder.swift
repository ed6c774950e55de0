// SPDX-License-Identifier: Apache-2.0

/// Bytes received on a connection and not yet consumed.
struct InputBuffer {
    var bytes: [UInt8] = []
    var readIndex = 0

    var readable: Int { bytes.count - readIndex }
    var isEmpty: Bool { readable == 0 }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        compactIfNeeded()
        bytes.append(contentsOf: chunk.bindMemory(to: UInt8.self))
    }

    mutating func append(_ chunk: [UInt8]) {
        compactIfNeeded()
        bytes.append(contentsOf: chunk)
    }

    mutating func consume(_ n: Int) {
        readIndex += n
        if readIndex == bytes.count { bytes.removeAll(keepingCapacity: true); readIndex = 0 }
    }

    private mutating func compactIfNeeded() {
        if readIndex > 0 && readIndex >= bytes.count / 2 {
            bytes.removeFirst(readIndex)
            readIndex = 0
        }
    }
}

/// A protocol error: the status to answer before closing, and a short reason for the log.
public struct HTTPDecodeError: Error, Sendable, Equatable {
    public let status: Int
    public let reason: String
}

/// Incremental HTTP/1.1 request decoder (RFC 9112). Strict where leniency enables request
/// smuggling: CRLF only, no obs-fold, no Content-Length with Transfer-Encoding, no
/// duplicate Content-Length. Chunked bodies are decoded incrementally, so a client that
/// trickles bytes costs linear, not quadratic, work.
struct HTTPRequestDecoder {
    enum Event {
        /// More bytes are needed.
        case needMore
        /// Headers asked for `Expect: 100-continue` and the body has not arrived: send 100.
        case sendContinue
        /// A complete request.
        case request(HTTPRequest)
    }

    private struct Head {
        var method: String
        var target: String
        var minorVersion: Int
        var headers: HTTPHeaders
    }

    private enum ChunkPhase { case size, data(remaining: Int), dataCRLF, trailers }

    private enum State {
        case head(scanFrom: Int, lineStart: Int, requestLineDone: Bool)
        case fixedBody(Head, length: Int)
        case chunkedBody(Head, phase: ChunkPhase, body: [UInt8], trailerBytes: Int)
    }

    let limits: HTTPLimits
    private var state: State = .head(scanFrom: 0, lineStart: 0, requestLineDone: false)
    private var continueSent = false

    init(limits: HTTPLimits) { self.limits = limits }

    /// True while part of a request (head or body) has been received.
    func isMidRequest(_ input: InputBuffer) -> Bool {
        switch state {
        case .head: return !input.isEmpty
        default: return true
        }
    }

    /// True once a request's headers are complete and its body is being read.
    var isReadingBody: Bool {
        if case .head = state { return false }
        return true
    }

    /// Decodes the next event from `input`, consuming what it uses.
    mutating func next(_ input: inout InputBuffer) throws(HTTPDecodeError) -> Event {
        switch state {
        case .head(let scanFrom, let lineStart, let requestLineDone):
            guard
                let (head, headLength) = try decodeHead(
                    input, scanFrom: scanFrom, lineStart: lineStart, requestLineDone: requestLineDone)
            else {
                return .needMore
            }
            input.consume(headLength)
            continueSent = false
            return try beginBody(head, &input)
        case .fixedBody(let head, let length):
            return try finishFixed(head, length: length, &input)
        case .chunkedBody(let head, let phase, let body, let trailerBytes):
            return try continueChunked(head, phase, body, trailerBytes, &input)
        }
    }

    // MARK: - Head

    private mutating func decodeHead(
        _ input: InputBuffer, scanFrom: Int, lineStart resumeLineStart: Int,
        requestLineDone: Bool
    ) throws(HTTPDecodeError) -> (Head, Int)? {
        var resume = (scanFrom, resumeLineStart, requestLineDone)
        let result: (Head, Int)?? = try input.bytes.withUnsafeBufferPointer {
            (all) throws(HTTPDecodeError) -> (Head, Int)?? in
            let buf = UnsafeBufferPointer(rebasing: all[input.readIndex...])
            // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
            var start = 0
            while start + 1 < buf.count, buf[start] == 0x0D, buf[start + 1] == 0x0A, start < 4 { start += 2 }
            var i = max(start, scanFrom)
            var lineStart = max(start, resumeLineStart)
            var firstLineEnd: Int? = requestLineDone ? 0 : nil
            while i < buf.count {
                let c = buf[i]
                if c == 0x0A {
                    guard i > 0, buf[i - 1] == 0x0D else {
                        throw HTTPDecodeError(status: 400, reason: "bare LF in request head")
                    }
                    if firstLineEnd == nil {
                        firstLineEnd = i - 1
                        if i - 1 - start > limits.maxRequestLineBytes {
                            throw HTTPDecodeError(status: 414, reason: "request line too long")
                        }
                    }
                    if i - 1 == lineStart && lineStart > start {
                        // Empty line: end of the header section.
                        let head = try parseHead(UnsafeBufferPointer(rebasing: buf[start..<(i - 1)]))
                        return .some((head, i + 1))
                    }
                    lineStart = i + 1
                } else if c == 0x0D, i + 1 < buf.count, buf[i + 1] != 0x0A {
                    throw HTTPDecodeError(status: 400, reason: "bare CR in request head")
                }
                i += 1
            }
            // Not complete yet: enforce size limits on what has arrived.
            if firstLineEnd == nil && buf.count - start > limits.maxRequestLineBytes {
                throw HTTPDecodeError(status: 414, reason: "request line too long")
            }
            if buf.count - start > limits.maxRequestLineBytes + limits.maxHeaderBytes {
                throw HTTPDecodeError(status: 431, reason: "header section too large")
            }
            resume = (buf.count, lineStart, firstLineEnd != nil)
            return .some(nil)
        }
        if let r = result, let found = r { return found }
        // Resume where this scan stopped; a CR at the very end is re-checked with its LF.
        state = .head(scanFrom: resume.0, lineStart: resume.1, requestLineDone: resume.2)
        return nil
    }

    private func parseHead(_ buf: UnsafeBufferPointer<UInt8>) throws(HTTPDecodeError) -> Head {
        var lines: [UnsafeBufferPointer<UInt8>] = []
        var s = 0
        var i = 0
        while i < buf.count {
            if buf[i] == 0x0D && i + 1 < buf.count && buf[i + 1] == 0x0A {
                lines.append(UnsafeBufferPointer(rebasing: buf[s..<i]))
                i += 2
                s = i
            } else {
                i += 1
            }
        }
        if s < buf.count { lines.append(UnsafeBufferPointer(rebasing: buf[s..<buf.count])) }
        guard let requestLine = lines.first else { throw HTTPDecodeError(status: 400, reason: "empty request") }
        if requestLine.count > limits.maxRequestLineBytes {
            throw HTTPDecodeError(status: 414, reason: "request line too long")
        }
        if buf.count - requestLine.count > limits.maxHeaderBytes {
            throw HTTPDecodeError(status: 431, reason: "header section too large")
        }
        if lines.count - 1 > limits.maxHeaderCount {
            throw HTTPDecodeError(status: 431, reason: "too many header fields")
        }

        // request-line = method SP request-target SP HTTP-version
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw HTTPDecodeError(status: 400, reason: "malformed request line")
        }
        guard parts[0].allSatisfy(isTokenChar) else { throw HTTPDecodeError(status: 400, reason: "malformed method") }
        let version = String(decoding: parts[2], as: UTF8.self)
        let minor: Int
        switch version {
        case "HTTP/1.1": minor = 1
        case "HTTP/1.0": minor = 0
        default:
            if version.hasPrefix("HTTP/") { throw HTTPDecodeError(status: 505, reason: "unsupported HTTP version") }
            throw HTTPDecodeError(status: 400, reason: "malformed request line")
        }
        guard parts[1].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPDecodeError(status: 400, reason: "malformed request target")
        }

        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            // RFC 9112 §5.2: obs-fold is rejected.
            if let f = line.first, f == 0x20 || f == 0x09 {
                throw HTTPDecodeError(status: 400, reason: "obsolete line folding")
            }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
                throw HTTPDecodeError(status: 400, reason: "malformed header field")
            }
            let name = UnsafeBufferPointer(rebasing: line[0..<colon])
            // No whitespace between field name and colon (RFC 9112 §5.1).
            guard name.allSatisfy(isTokenChar) else {
                throw HTTPDecodeError(status: 400, reason: "malformed header field name")
            }
            var vs = colon + 1, ve = line.count
            while vs < ve, line[vs] == 0x20 || line[vs] == 0x09 { vs += 1 }
            while ve > vs, line[ve - 1] == 0x20 || line[ve - 1] == 0x09 { ve -= 1 }
            let value = UnsafeBufferPointer(rebasing: line[vs..<ve])
            guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else {
                throw HTTPDecodeError(status: 400, reason: "control character in header value")
            }
            headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return Head(
            method: String(decoding: parts[0], as: UTF8.self), target: String(decoding: parts[1], as: UTF8.self),
            minorVersion: minor, headers: HTTPHeaders(headers))
    }

    // MARK: - Body framing (RFC 9112 §6)

    private mutating func beginBody(_ head: Head, _ input: inout InputBuffer) throws(HTTPDecodeError) -> Event {
        let h = head.headers
        let lengths = h.values("Content-Length")
        let encodings = h.values("Transfer-Encoding")
        if head.minorVersion == 1 {
            let hosts = h.values("Host")
            guard hosts.count == 1 else {
                throw HTTPDecodeError(
                    status: 400, reason: hosts.isEmpty ? "missing Host header" : "duplicate Host header")
            }
        }
        if !encodings.isEmpty {
            guard lengths.isEmpty else {
                throw HTTPDecodeError(status: 400, reason: "Content-Length with Transfer-Encoding")
            }
            guard head.minorVersion == 1 else {
                throw HTTPDecodeError(status: 400, reason: "Transfer-Encoding in HTTP/1.0")
            }
            guard encodings.count == 1, encodings[0].lowercased() == "chunked" else {
                throw HTTPDecodeError(status: 501, reason: "unsupported transfer coding")
            }
            if try expectsContinue(head) && input.isEmpty && !continueSent {
                continueSent = true
                state = .chunkedBody(head, phase: .size, body: [], trailerBytes: 0)
                return .sendContinue
            }
            return try continueChunked(head, .size, [], 0, &input)
        }
        var length = 0
        if !lengths.isEmpty {
            guard lengths.count == 1 else { throw HTTPDecodeError(status: 400, reason: "duplicate Content-Length") }
            let text = lengths[0]
            guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                let n = Int(text)
            else {
                throw HTTPDecodeError(status: 400, reason: "invalid Content-Length")
            }
            length = n
        }
        if length > limits.maxBodyBytes {
            throw HTTPDecodeError(status: 413, reason: "body larger than \(limits.maxBodyBytes) bytes")
        }
        if length > 0, try expectsContinue(head), input.readable < length, !continueSent {
            continueSent = true
            state = .fixedBody(head, length: length)
            return .sendContinue
        }
        return try finishFixed(head, length: length, &input)
    }

    private func expectsContinue(_ head: Head) throws(HTTPDecodeError) -> Bool {
        guard let e = head.headers["Expect"] else { return false }
        guard e.lowercased() == "100-continue" else {
            throw HTTPDecodeError(status: 417, reason: "unsupported expectation")
        }
        return head.minorVersion == 1
    }

    private mutating func finishFixed(_ head: Head, length: Int, _ input: inout InputBuffer) throws(HTTPDecodeError)
        -> Event
    {
        guard input.readable >= length else {
            state = .fixedBody(head, length: length)
            return .needMore
        }
        let body = Array(input.bytes[input.readIndex..<(input.readIndex + length)])
        input.consume(length)
        return .request(try makeRequest(head, body))
    }

    private mutating func continueChunked(
        _ head: Head, _ startPhase: ChunkPhase, _ startBody: [UInt8], _ startTrailers: Int,
        _ input: inout InputBuffer
    ) throws(HTTPDecodeError) -> Event {
        var phase = startPhase
        var body = startBody
        var trailerBytes = startTrailers
        // avoid holding a second copy of `body` while we work
        state = .head(scanFrom: 0, lineStart: 0, requestLineDone: false)
        while true {
            switch phase {
            case .size:
                guard let lineEnd = findCRLF(input) else {
                    if input.readable > 1024 { throw HTTPDecodeError(status: 400, reason: "chunk size line too long") }
                    state = .chunkedBody(head, phase: phase, body: body, trailerBytes: trailerBytes)
                    return .needMore
                }
                let line = input.bytes[input.readIndex..<lineEnd]
                // chunk-size [ chunk-ext ]: extensions are ignored (RFC 9112 §7.1.1).
                let sizeBytes = line.prefix { $0 != UInt8(ascii: ";") && $0 != 0x20 && $0 != 0x09 }
                // chunk-size = 1*HEXDIG: digits only. Int(_:radix:) also takes a sign, and a
                // negative size made the data phase slice backwards (found by the http fuzzer).
                guard !sizeBytes.isEmpty, sizeBytes.count <= 8, sizeBytes.allSatisfy(Self.isHexDigit),
                    let size = Int(String(decoding: sizeBytes, as: UTF8.self), radix: 16)
                else {
                    throw HTTPDecodeError(status: 400, reason: "invalid chunk size")
                }
                input.consume(lineEnd + 2 - input.readIndex)
                if size == 0 {
                    phase = .trailers
                } else {
                    guard body.count + size <= limits.maxBodyBytes else {
                        throw HTTPDecodeError(status: 413, reason: "body larger than \(limits.maxBodyBytes) bytes")
                    }
                    phase = .data(remaining: size)
                }
            case .data(let remaining):
                let n = min(remaining, input.readable)
                body.append(contentsOf: input.bytes[input.readIndex..<(input.readIndex + n)])
                input.consume(n)
                if n < remaining {
                    state = .chunkedBody(
                        head, phase: .data(remaining: remaining - n), body: body, trailerBytes: trailerBytes)
                    return .needMore
                }
                phase = .dataCRLF
            case .dataCRLF:
                guard input.readable >= 2 else {
                    state = .chunkedBody(head, phase: phase, body: body, trailerBytes: trailerBytes)
                    return .needMore
                }
                guard input.bytes[input.readIndex] == 0x0D, input.bytes[input.readIndex + 1] == 0x0A else {
                    throw HTTPDecodeError(status: 400, reason: "chunk data not followed by CRLF")
                }
                input.consume(2)
                phase = .size
            case .trailers:
                guard let lineEnd = findCRLF(input) else {
                    if trailerBytes + input.readable > limits.maxHeaderBytes {
                        throw HTTPDecodeError(status: 431, reason: "trailer section too large")
                    }
                    state = .chunkedBody(head, phase: phase, body: body, trailerBytes: trailerBytes)
                    return .needMore
                }
                let lineLength = lineEnd - input.readIndex
                input.consume(lineLength + 2)
                if lineLength == 0 {
                    state = .head(scanFrom: 0, lineStart: 0, requestLineDone: false)
                    return .request(try makeRequest(head, body))
                }
                // Trailer fields are read and discarded, within the header limit.
                trailerBytes += lineLength + 2
                if trailerBytes > limits.maxHeaderBytes {
                    throw HTTPDecodeError(status: 431, reason: "trailer section too large")
                }
            }
        }
    }

    private static func isHexDigit(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x46).contains(b) || (0x61...0x66).contains(b)
    }

    private func findCRLF(_ input: InputBuffer) -> Int? {
        var i = input.readIndex
        while i + 1 < input.bytes.count {
            if input.bytes[i] == 0x0D && input.bytes[i + 1] == 0x0A { return i }
            i += 1
        }
        return nil
    }

    // MARK: - Request

    private mutating func makeRequest(_ head: Head, _ body: [UInt8]) throws(HTTPDecodeError) -> HTTPRequest {
        state = .head(scanFrom: 0, lineStart: 0, requestLineDone: false)
        guard head.target.hasPrefix("/") else {
            throw HTTPDecodeError(status: 400, reason: "request target must be a path")
        }
        let rawPath: Substring
        let rawQuery: Substring?
        if let q = head.target.firstIndex(of: "?") {
            rawPath = head.target[..<q]
            rawQuery = head.target[head.target.index(after: q)...]
        } else {
            rawPath = head.target[...]
            rawQuery = nil
        }
        guard let path = percentDecode(rawPath, plusIsSpace: false) else {
            throw HTTPDecodeError(status: 400, reason: "invalid percent-encoding in path")
        }
        var query: [(name: String, value: String)] = []
        if let rq = rawQuery {
            for pair in rq.split(separator: "&", omittingEmptySubsequences: true) {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let k = percentDecode(kv[0], plusIsSpace: true),
                    let v = percentDecode(kv.count > 1 ? kv[1] : "", plusIsSpace: true)
                else {
                    throw HTTPDecodeError(status: 400, reason: "invalid percent-encoding in query")
                }
                query.append((k, v))
            }
        }
        return HTTPRequest(
            method: HTTPMethod(rawValue: head.method), target: head.target, path: path, query: query,
            minorVersion: head.minorVersion,
            headers: head.headers, body: body)
    }
}

private func isTokenChar(_ c: UInt8) -> Bool {
    // tchar (RFC 9110 §5.6.2)
    switch c {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
        UInt8(ascii: "'"),
        UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"),
        UInt8(ascii: "_"),
        UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default: return false
    }
}

/// Decodes %XX escapes; nil for a malformed escape, invalid UTF-8 or an encoded NUL.
func percentDecode(_ s: Substring, plusIsSpace: Bool) -> String? {
    let u = Array(s.utf8)
    if !u.contains(UInt8(ascii: "%")) && !(plusIsSpace && u.contains(UInt8(ascii: "+"))) { return String(s) }
    var out: [UInt8] = []
    out.reserveCapacity(u.count)
    var i = 0
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    while i < u.count {
        let c = u[i]
        if c == UInt8(ascii: "%") {
            guard i + 2 < u.count, let h = hex(u[i + 1]), let l = hex(u[i + 2]) else { return nil }
            let b = h << 4 | l
            if b == 0 { return nil }
            out.append(b)
            i += 3
        } else if plusIsSpace && c == UInt8(ascii: "+") {
            out.append(0x20); i += 1
        } else {
            out.append(c); i += 1
        }
    }
    return String(validating: out, as: UTF8.self)
}
