// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
internal import CTLS
internal import CLinux

/// A syslog message (RFC 5424 §6): header, one structured-data element, and a message.
public struct SyslogMessage: Sendable {
    public var facility = 10  // authpriv: security and authorisation messages (RFC 5424 §6.2.1)
    public var severity = 6  // informational
    public var timestamp: String  // RFC 3339, as RFC 5424 §6.2.3 asks
    public var hostname: String
    public var appName = "scimhub"
    public var msgID: String
    /// The SD-ID (`name@private-enterprise-number`) and its parameters, in order.
    public var structuredID = "scimhub@32473"
    public var parameters: [(String, String)]
    public var message: String

    public init(timestamp: String, hostname: String, msgID: String, parameters: [(String, String)], message: String) {
        self.timestamp = timestamp
        self.hostname = hostname
        self.msgID = msgID
        self.parameters = parameters
        self.message = message
    }

    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [SD] MSG`, header fields as PRINTUSASCII.
    public var text: String {
        let sd =
            "[\(structuredID)"
            + parameters.map { " \(Self.header($0.0, 32))=\"\(Self.paramValue($0.1))\"" }.joined() + "]"
        return "<\(facility * 8 + severity)>1 \(Self.header(timestamp, 48)) \(Self.header(hostname, 255)) "
            + "\(Self.header(appName, 48)) - \(Self.header(msgID, 32)) \(sd) \(message)"
    }

    /// RFC 6587 §3.4.1 octet counting: `LENGTH SP MESSAGE`, so a message may hold any byte.
    public var framed: [UInt8] {
        let body = Array(text.utf8)
        return Array("\(body.count) ".utf8) + body
    }

    /// A header field: printable US-ASCII without spaces, at most `max` characters; "-" if empty.
    static func header(_ s: String, _ max: Int) -> String {
        let kept = String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value > 32 && $0.value < 127 }))
        return kept.isEmpty ? "-" : String(kept.prefix(max))
    }

    /// RFC 5424 §6.3.3: `"`, `\` and `]` escaped with a backslash.
    static func paramValue(_ s: String) -> String {
        var out = ""
        for c in s {
            if c == "\"" || c == "\\" || c == "]" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// Why a syslog connection failed; names the address, never message content.
public struct SyslogError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

/// A blocking connection to a syslog receiver over TCP (RFC 6587) or TLS (RFC 5425: TLS 1.2
/// or later, the receiver's certificate verified against `caFile` or the system's CAs and
/// its name checked against `host`). Used by one thread at a time.
public final class SyslogConnection {
    private let fd: Int32
    private var ssl: OpaquePointer?
    private var ctx: OpaquePointer?

    /// Connects within `timeout` seconds; with `tls`, completes the handshake too.
    public init(host: String, port: Int, tls: Bool, caFile: String?, timeout: Double = 5) throws(SyslogError) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw SyslogError("syslog receiver \(host):\(port): the name does not resolve")
        }
        defer { freeaddrinfo(res) }
        let s = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw SyslogError("syslog: cannot create a socket (errno \(scimhub_errno()))") }
        // A connect with a timeout: non-blocking, then wait for writability.
        let flags = fcntl(s, F_GETFL)
        _ = fcntl(s, F_SETFL, flags | O_NONBLOCK)
        var rc = connect(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen)
        if rc != 0 && scimhub_errno() == EINPROGRESS {
            var p = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
            rc = poll(&p, 1, Int32(timeout * 1000)) == 1 ? 0 : -1
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            if rc == 0 { getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len); if err != 0 { rc = -1 } }
        }
        _ = fcntl(s, F_SETFL, flags)
        guard rc == 0 else {
            close(s)
            throw SyslogError("syslog receiver \(host):\(port) does not accept connections")
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        fd = s
        guard tls else { return }
        do { try handshake(host: host, port: port, caFile: caFile) } catch {
            close(s)
            if let ssl { SSL_free(ssl) }
            if let ctx { SSL_CTX_free(ctx) }
            ssl = nil
            ctx = nil
            throw error
        }
    }

    private func handshake(host: String, port: Int, caFile: String?) throws(SyslogError) {
        guard let c = SSL_CTX_new(TLS_client_method()) else { throw SyslogError("syslog: no TLS context") }
        ctx = c
        _ = scimhub_ssl_ctx_set_min_tls12(c)
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nil)
        let loaded = caFile.map { SSL_CTX_load_verify_locations(c, $0, nil) } ?? SSL_CTX_set_default_verify_paths(c)
        guard loaded == 1 else { throw SyslogError("syslog: CA file \(caFile ?? "(system)") cannot be loaded") }
        guard let s = SSL_new(c) else { throw SyslogError("syslog: no TLS session") }
        ssl = s
        SSL_set_fd(s, fd)
        // An address is checked against the certificate's IP entries, a name against its DNS
        // names (and sent as SNI, which RFC 6066 §3 does not allow for addresses).
        var probe = in6_addr()
        let isAddress = inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1
        let named =
            isAddress
            ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) == 1
            : scimhub_ssl_set_server_name(s, host) == 1 && SSL_set1_host(s, host) == 1
        guard named else { throw SyslogError("syslog: cannot check the name \(host)") }
        guard SSL_connect(s) == 1 else {
            let why =
                SSL_get_verify_result(s) == X509_V_OK ? "the TLS handshake failed" : "its certificate is not trusted"
            ERR_clear_error()
            throw SyslogError("syslog receiver \(host):\(port): \(why)")
        }
    }

    deinit {
        if let ssl {
            _ = SSL_shutdown(ssl)
            SSL_free(ssl)
        }
        if let ctx { SSL_CTX_free(ctx) }
        close(fd)
    }

    /// False once the receiver has closed its side (checked before sending a batch: TCP
    /// would otherwise accept bytes into a buffer nobody reads).
    public var isOpen: Bool {
        let rdhup: Int16 = 0x2000  // POLLRDHUP (a GNU extension Glibc's module does not export)
        var p = pollfd(fd: fd, events: Int16(POLLIN) | rdhup, revents: 0)
        guard poll(&p, 1, 0) == 1 else { return true }
        if p.revents & (rdhup | Int16(POLLHUP) | Int16(POLLERR)) != 0 { return false }
        var b: UInt8 = 0
        return recv(fd, &b, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) != 0
    }

    /// Sends every byte or throws.
    public func send(_ bytes: [UInt8]) throws(SyslogError) {
        var off = 0
        while off < bytes.count {
            let n: Int = bytes.withUnsafeBytes { p in
                let rest = UnsafeRawBufferPointer(rebasing: p[off...])
                if let ssl { return Int(SSL_write(ssl, rest.baseAddress, Int32(min(rest.count, 1 << 20)))) }
                return Glibc.send(fd, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 {
                if ssl == nil && n < 0 && scimhub_errno() == EINTR { continue }
                ERR_clear_error()
                throw SyslogError("syslog: the receiver stopped taking messages")
            }
            off += n
        }
    }
}
