// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
private import CCurl
import ConnectorKit

/// A response from the target.
public struct CurlResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    /// Seconds from a `Retry-After` header, if any.
    public var retryAfter: Double?
}

/// Blocking HTTP(S) over libcurl with connection reuse: a pool of easy handles, each used
/// by one thread at a time (libcurl keeps live connections in a handle across
/// `curl_easy_reset`). Always NOSIGNAL, HTTP(S) only, connect and total timeouts, TLS
/// verification on unless configured off.
public final class CurlClient: Sendable {
    /// Transport settings every HTTP target has. TLS verification is on unless turned off
    /// for a lab; a private CA file may be given.
    public struct Options: Sendable {
        public var connectTimeout: Double
        public var totalTimeout: Double
        public var verifyTLS: Bool
        public var caFile: String?

        public init(
            connectTimeout: Double = 5, totalTimeout: Double = 30, verifyTLS: Bool = true, caFile: String? = nil
        ) {
            self.connectTimeout = connectTimeout
            self.totalTimeout = totalTimeout
            self.verifyTLS = verifyTLS
            self.caFile = caFile
        }
    }

    private static let globalInit: Bool = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK }()

    private let options: Options
    private let idle = Mutex<[Handle]>([])

    /// One easy handle; freed in deinit. Used by one thread at a time (pool check-out).
    private final class Handle: @unchecked Sendable {
        // @unchecked Sendable: the handle moves between threads only through the pool; one thread uses it at a time.
        let raw: UnsafeMutableRawPointer
        init?() {
            guard let h = curl_easy_init() else { return nil }
            raw = h
        }
        deinit { curl_easy_cleanup(raw) }
    }

    /// Accumulates the body and the Retry-After header; reached from C through Unmanaged.
    private final class Sink {
        var body: [UInt8] = []
        var retryAfter: Double?
        let limit: Int
        init(limit: Int) { self.limit = limit }
    }

    public init(options: Options) {
        _ = Self.globalInit
        self.options = options
    }

    /// Performs one request; transport failures become retryable or permanent errors.
    public func perform(
        method: String, url: String, headers: [String], body: [UInt8]?, maxResponseBytes: Int = 16 << 20
    ) throws(ConnectorError) -> CurlResponse {
        guard let handle = idle.withLock({ $0.popLast() }) ?? Handle() else {
            throw ConnectorError.retryable("cannot create a curl handle")
        }
        defer { idle.withLock { if $0.count < 32 { $0.append(handle) } } }
        let h = handle.raw
        curl_easy_reset(h)
        let sink = Sink(limit: maxResponseBytes)
        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        _ = scimhub_curl_set_string(h, CURLOPT_URL, url)
        _ = scimhub_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        _ = scimhub_curl_set_string(h, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = scimhub_curl_set_long(h, CURLOPT_FOLLOWLOCATION, 0)
        _ = scimhub_curl_set_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000))
        _ = scimhub_curl_set_long(h, CURLOPT_TIMEOUT_MS, Int(options.totalTimeout * 1000))
        _ = scimhub_curl_set_long(h, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        _ = scimhub_curl_set_long(h, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        if let ca = options.caFile { _ = scimhub_curl_set_string(h, CURLOPT_CAINFO, ca) }
        _ = scimhub_curl_set_slist(h, CURLOPT_HTTPHEADER, list)
        _ = scimhub_curl_set_write_function(
            h, CURLOPT_WRITEFUNCTION,
            { ptr, size, n, ud in
                guard let ud, let ptr else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(ud).takeUnretainedValue()
                let count = size * n
                if sink.body.count + count > sink.limit { return 0 }  // aborts the transfer
                ptr.withMemoryRebound(to: UInt8.self, capacity: count) {
                    sink.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
                }
                return count
            })
        _ = scimhub_curl_set_pointer(h, CURLOPT_WRITEDATA, ctx)
        _ = scimhub_curl_set_write_function(
            h, CURLOPT_HEADERFUNCTION,
            { ptr, size, n, ud in
                guard let ud, let ptr else { return 0 }
                let sink = Unmanaged<Sink>.fromOpaque(ud).takeUnretainedValue()
                let count = size * n
                let line = ptr.withMemoryRebound(to: UInt8.self, capacity: count) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
                }
                if line.lowercased().hasPrefix("retry-after:") {
                    sink.retryAfter = Double(
                        line.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespacesAndNewlines))
                }
                return count
            })
        _ = scimhub_curl_set_pointer(h, CURLOPT_HEADERDATA, ctx)
        _ = scimhub_curl_set_string(h, CURLOPT_CUSTOMREQUEST, method)
        let payload = body ?? []
        let rc: CURLcode = payload.withUnsafeBytes { raw in
            if body != nil {
                _ = scimhub_curl_set_long(h, CURLOPT_POSTFIELDSIZE, payload.count)
                if let base = raw.baseAddress {
                    _ = scimhub_curl_set_pointer(h, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: base))
                } else {
                    _ = scimhub_curl_set_string(h, CURLOPT_POSTFIELDS, "")
                }
            }
            return curl_easy_perform(h)
        }
        guard rc == CURLE_OK else { throw Self.classify(rc) }
        var status = 0
        _ = scimhub_curl_get_long(h, CURLINFO_RESPONSE_CODE, &status)
        return CurlResponse(status: status, body: sink.body, retryAfter: sink.retryAfter)
    }

    /// How an SMTP session must be protected: STARTTLS required, tried, or not at all (a
    /// relay on loopback).
    public enum MailTLS: String, Sendable { case required, optional, none }

    /// Sends one message over SMTP (RFC 5321): `url` is `smtp://host:port` or
    /// `smtps://host:port`; `message` is the whole RFC 5322 text with CRLF line ends.
    public func sendMail(
        url: String, from: String, to recipients: [String], message: [UInt8], tls: MailTLS, username: String?,
        password: String?
    ) throws(ConnectorError) {
        guard let handle = idle.withLock({ $0.popLast() }) ?? Handle() else {
            throw ConnectorError.retryable("cannot create a curl handle")
        }
        defer { idle.withLock { if $0.count < 32 { $0.append(handle) } } }
        let h = handle.raw
        curl_easy_reset(h)
        var rcpt: UnsafeMutablePointer<curl_slist>? = nil
        for r in recipients { rcpt = curl_slist_append(rcpt, "<\(r)>") }
        defer { curl_slist_free_all(rcpt) }
        let source = MailSource(message)
        _ = scimhub_curl_set_string(h, CURLOPT_URL, url)
        _ = scimhub_curl_set_long(h, CURLOPT_NOSIGNAL, 1)
        _ = scimhub_curl_set_string(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        _ = scimhub_curl_set_long(h, CURLOPT_CONNECTTIMEOUT_MS, Int(options.connectTimeout * 1000))
        _ = scimhub_curl_set_long(h, CURLOPT_TIMEOUT_MS, Int(options.totalTimeout * 1000))
        _ = scimhub_curl_set_long(h, CURLOPT_SSL_VERIFYPEER, options.verifyTLS ? 1 : 0)
        _ = scimhub_curl_set_long(h, CURLOPT_SSL_VERIFYHOST, options.verifyTLS ? 2 : 0)
        if let ca = options.caFile { _ = scimhub_curl_set_string(h, CURLOPT_CAINFO, ca) }
        let ssl: Int =
            switch tls {
            case .required: Int(CURLUSESSL_ALL.rawValue)
            case .optional: Int(CURLUSESSL_TRY.rawValue)
            case .none: Int(CURLUSESSL_NONE.rawValue)
            }
        _ = scimhub_curl_set_long(h, CURLOPT_USE_SSL, ssl)
        if let u = username { _ = scimhub_curl_set_string(h, CURLOPT_USERNAME, u) }
        if let p = password { _ = scimhub_curl_set_string(h, CURLOPT_PASSWORD, p) }
        _ = scimhub_curl_set_string(h, CURLOPT_MAIL_FROM, "<\(from)>")
        _ = scimhub_curl_set_slist(h, CURLOPT_MAIL_RCPT, rcpt)
        _ = scimhub_curl_set_long(h, CURLOPT_UPLOAD, 1)
        _ = scimhub_curl_set_off(h, CURLOPT_INFILESIZE_LARGE, curl_off_t(message.count))
        _ = scimhub_curl_set_write_function(
            h, CURLOPT_READFUNCTION,
            { ptr, size, n, ud in
                guard let ud, let ptr else { return 0 }
                let source = Unmanaged<MailSource>.fromOpaque(ud).takeUnretainedValue()
                let count = min(size * n, source.bytes.count - source.offset)
                guard count > 0 else { return 0 }
                ptr.withMemoryRebound(to: UInt8.self, capacity: count) { dst in
                    source.bytes.withUnsafeBufferPointer { src in
                        dst.update(from: src.baseAddress! + source.offset, count: count)
                    }
                }
                source.offset += count
                return count
            })
        _ = scimhub_curl_set_pointer(h, CURLOPT_READDATA, Unmanaged.passUnretained(source).toOpaque())
        let rc = curl_easy_perform(h)
        guard rc == CURLE_OK else {
            var code = 0
            _ = scimhub_curl_get_long(h, CURLINFO_RESPONSE_CODE, &code)
            // 5xx replies (a refused recipient, a refused login) will not change by retrying.
            if (500..<600).contains(code) || rc == CURLE_LOGIN_DENIED {
                throw ConnectorError.permanent("smtp: \(String(cString: curl_easy_strerror(rc))) (reply \(code))")
            }
            throw ConnectorError.retryable("smtp: \(String(cString: curl_easy_strerror(rc)))")
        }
    }

    /// The message being uploaded; reached from C through Unmanaged.
    private final class MailSource {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    /// Transport errors: network trouble is worth retrying; configuration problems are not.
    private static func classify(_ rc: CURLcode) -> ConnectorError {
        let message = String(cString: curl_easy_strerror(rc))
        switch rc {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE,
            CURLE_SSL_CERTPROBLEM, CURLE_WRITE_ERROR:
            return .permanent("transport: \(message)")
        default:
            return .retryable("transport: \(message)")
        }
    }
}

extension CurlResponse {
    /// HTTP status → outcome, the same for every HTTP connector: 2xx passes; 429, 408 and
    /// 5xx are retryable (honouring `Retry-After`); 401/403 are refused credentials; other
    /// 4xx are permanent. `detail` may add the target's short error code (never values).
    public func requireSuccess(_ what: String, detail: (CurlResponse) -> String = { _ in "" }) throws(ConnectorError) {
        switch status {
        case 200..<300: return
        case 429: throw ConnectorError.retryable("\(what): HTTP 429 rate limited", retryAfter: retryAfter)
        case 408, 500..<600: throw ConnectorError.retryable("\(what): HTTP \(status)", retryAfter: retryAfter)
        case 401, 403: throw ConnectorError.permanent("\(what): HTTP \(status) — credentials refused")
        default: throw ConnectorError.permanent("\(what): HTTP \(status)\(detail(self))")
        }
    }
}
