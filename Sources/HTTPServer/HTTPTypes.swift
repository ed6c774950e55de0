// SPDX-License-Identifier: Apache-2.0

/// Request headers in arrival order, looked up case-insensitively (RFC 9110 §5.1).
public struct HTTPHeaders: Sendable {
    /// Name-value pairs as received (values trimmed of surrounding whitespace).
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)] = []) { self.fields = fields }

    /// The first value of `name`, or nil.
    public subscript(name: String) -> String? {
        for f in fields where Self.namesEqual(f.name, name) { return f.value }
        return nil
    }

    /// Every value of `name`.
    public func values(_ name: String) -> [String] {
        fields.filter { Self.namesEqual($0.name, name) }.map(\.value)
    }

    /// ASCII case-insensitive comparison; field names are tokens (RFC 9110 §5.1).
    static func namesEqual(_ a: String, _ b: String) -> Bool {
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        for (c, d) in zip(x, y) where c != d {
            let lc = (c >= 0x41 && c <= 0x5A) ? c | 0x20 : c
            let ld = (d >= 0x41 && d <= 0x5A) ? d | 0x20 : d
            if lc != ld { return false }
        }
        return true
    }

    /// Appends one field.
    public mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }
}

/// A request method. Methods are an open set and case-sensitive (RFC 9110 §9.1): the
/// token is kept as sent; the standard ones are constants.
public struct HTTPMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }
    public static let get: HTTPMethod = "GET"
    public static let head: HTTPMethod = "HEAD"
    public static let post: HTTPMethod = "POST"
    public static let put: HTTPMethod = "PUT"
    public static let patch: HTTPMethod = "PATCH"
    public static let delete: HTTPMethod = "DELETE"
    public static let options: HTTPMethod = "OPTIONS"
}

/// One decoded HTTP/1.1 request.
public struct HTTPRequest: Sendable {
    /// Method token as sent.
    public var method: HTTPMethod
    /// Request target as sent, e.g. `/scim/v2/Users?filter=...`.
    public var target: String
    /// Percent-decoded path without the query.
    public var path: String
    /// Percent-decoded query parameters in order (`+` is a space).
    public var query: [(name: String, value: String)]
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Peer address, e.g. `127.0.0.1`.
    public var remoteAddress: String
    /// The request came over TLS on the hub's own listener.
    public var isSecure = false

    public init(
        method: HTTPMethod, target: String, path: String, query: [(name: String, value: String)] = [],
        minorVersion: Int = 1, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = [], remoteAddress: String = ""
    ) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.minorVersion = minorVersion
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
    }

    /// The first value of query parameter `name` (exact name match).
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }

    /// Whether the client asked to keep the connection open (RFC 9112 §9.3).
    public var wantsKeepAlive: Bool {
        let tokens = headers.values("Connection").flatMap {
            $0.lowercased().split(separator: ",").map { $0.trimmingSpaces() }
        }
        if tokens.contains("close") { return false }
        return minorVersion >= 1 || tokens.contains("keep-alive")
    }
}

/// One response. The server adds `Content-Length` and, when closing, `Connection: close`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Close the connection after sending this response.
    public var closeConnection: Bool

    public init(
        status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], closeConnection: Bool = false
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.closeConnection = closeConnection
    }

    /// A plain-text response, used for protocol-level errors before any routing.
    public static func plain(_ status: Int, _ text: String, close: Bool = false) -> HTTPResponse {
        HTTPResponse(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8),
            closeConnection: close)
    }

    /// Serialises status line, headers and body (RFC 9112 §4, §6).
    /// Written straight into bytes: this runs for every response, and string
    /// interpolation per header cost more than the handler for small GETs.
    func serialized(keepAlive: Bool, includeBody: Bool = true) -> [UInt8] {
        // 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 §8.6).
        let bodyless = status < 200 || status == 204 || status == 304
        var out: [UInt8] = []
        out.reserveCapacity(
            64 + headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
                + (includeBody && !bodyless ? body.count : 0))
        func append(_ s: String) { out.append(contentsOf: s.utf8) }
        append("HTTP/1.1 ")
        append(String(status))
        out.append(0x20)
        append(HTTPStatus.reason(status))
        out.append(contentsOf: [0x0D, 0x0A])
        for (n, v) in headers {
            append(n)
            out.append(contentsOf: [0x3A, 0x20])
            // Defence in depth: a control byte in a value (CR, LF) would split the header.
            if v.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
                out.append(contentsOf: v.utf8.map { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F ? 0x20 : $0 })
            } else {
                append(v)
            }
            out.append(contentsOf: [0x0D, 0x0A])
        }
        if !bodyless {
            append("Content-Length: ")
            append(String(body.count))
            out.append(contentsOf: [0x0D, 0x0A])
        }
        if !keepAlive { append("Connection: close\r\n") }
        out.append(contentsOf: [0x0D, 0x0A])
        if !bodyless && includeBody { out.append(contentsOf: body) }
        return out
    }
}

/// Reason phrases for the statuses the hub sends.
public enum HTTPStatus {
    public static func reason(_ code: Int) -> String {
        switch code {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Limits on what one client may send and how long it may take. Every value bounds a
/// resource an unauthenticated peer could otherwise exhaust.
public struct HTTPLimits: Sendable {
    /// Longest request line (method, target, version); longer answers 414.
    public var maxRequestLineBytes = 8 * 1024
    /// Largest header section; larger answers 431.
    public var maxHeaderBytes = 64 * 1024
    /// Most header fields; more answer 431.
    public var maxHeaderCount = 100
    /// Largest body after de-chunking; larger answers 413.
    public var maxBodyBytes = 4 * 1024 * 1024
    /// Most open connections; further ones get 503 and are closed.
    public var maxConnections = 1024
    /// Time allowed from the first byte of a request to the end of its headers (slowloris).
    public var headerReadTimeout: Double = 10
    /// Time allowed to receive a whole body once its headers are in.
    public var bodyReadTimeout: Double = 30
    /// Time a keep-alive connection may sit idle between requests.
    public var idleTimeout: Double = 60
    /// Time allowed for a client to take a response it has asked for.
    public var writeTimeout: Double = 30
    /// Time graceful shutdown waits for in-flight requests.
    public var shutdownGrace: Double = 15
    /// Lingering close (RFC 9112 §9.6): after a response that ends the connection, the
    /// server stops sending and reads and discards what the client still sends, at most
    /// this many bytes for at most this long, so a client that writes its whole body before
    /// reading (Python's urllib) reads the 413 instead of a connection reset.
    public var lingerMaxBytes = 64 * 1024 * 1024
    public var lingerTimeout: Double = 5

    public init() {}
}

/// `application/x-www-form-urlencoded` bodies (HTML forms), decoded as query strings are.
public enum HTTPForm {
    /// The fields in order, or nil for a malformed escape, invalid UTF-8 or an encoded NUL.
    public static func parse(_ body: [UInt8]) -> [(name: String, value: String)]? {
        guard let text = String(validating: body, as: UTF8.self) else { return nil }
        var out: [(String, String)] = []
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let k = percentDecode(kv[0], plusIsSpace: true),
                let v = percentDecode(kv.count > 1 ? kv[1] : "", plusIsSpace: true)
            else { return nil }
            out.append((k, v))
        }
        return out
    }

    /// `s` escaped for a query string or form value (RFC 3986 unreserved characters kept).
    public static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }
}
