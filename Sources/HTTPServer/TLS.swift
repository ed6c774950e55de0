// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
internal import CTLS

/// A certificate or key that cannot be used: the message names the file and OpenSSL's reason.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

/// The server side of TLS for the hub's own listener (OpenSSL libssl): TLS 1.2 and 1.3
/// only, the forward-secret AEAD suites of Mozilla's "intermediate" profile for 1.2 (1.3's
/// own suites are all AEAD), no renegotiation, no compression, ALPN http/1.1.
///
/// The certificate chain and key are read from PEM files at start and again on `reload()`
/// (SIGHUP): new connections get the new context, connections already open keep the one
/// they started with (OpenSSL counts its references), so nothing is dropped. A reload that
/// fails keeps the old certificate and says why.
public final class TLSContext: Sendable {
    public let certificateFile: String
    public let keyFile: String
    /// `SSL_CTX *`, replaced whole on reload.
    private let current: Mutex<UnsafeSendable>

    struct UnsafeSendable: @unchecked Sendable { let ctx: OpaquePointer }

    /// RFC 9325 §4.2 and Mozilla's intermediate profile: ECDHE with AES-GCM or ChaCha20-Poly1305.
    static let tls12Ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Loads `certificateFile` (PEM, the leaf first, then intermediates) and `keyFile` (PEM);
    /// throws naming the file that cannot be used.
    public init(certificateFile: String, keyFile: String) throws(TLSError) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        current = Mutex(UnsafeSendable(ctx: try Self.make(certificateFile: certificateFile, keyFile: keyFile)))
    }

    deinit { current.withLock { SSL_CTX_free($0.ctx) } }

    /// Reads the files again; the new certificate serves new connections.
    public func reload() throws(TLSError) {
        let fresh = try Self.make(certificateFile: certificateFile, keyFile: keyFile)
        let old = current.withLock { c in
            defer { c = UnsafeSendable(ctx: fresh) }
            return c.ctx
        }
        SSL_CTX_free(old)  // connections using it hold their own reference
    }

    /// A server-side TLS session on a connected non-blocking socket, or nil when OpenSSL
    /// cannot make one (out of memory).
    func session(fd: Int32) -> TLSSession? {
        let ssl: OpaquePointer? = current.withLock { SSL_new($0.ctx) }
        guard let ssl else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            return nil
        }
        SSL_set_accept_state(ssl)
        return TLSSession(ssl)
    }

    private static func make(certificateFile: String, keyFile: String) throws(TLSError) -> OpaquePointer {
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSError("cannot create a TLS context") }
        scimhub_ssl_ctx_set_options(ctx)
        scimhub_ssl_ctx_set_modes(ctx)
        scimhub_ssl_ctx_set_alpn_http11(ctx)
        // Key exchange groups: X25519, P-256, P-384 (Mozilla intermediate), no others.
        guard scimhub_ssl_ctx_set_min_tls12(ctx) == 1, scimhub_ssl_ctx_set_max_tls13(ctx) == 1,
            SSL_CTX_set_cipher_list(ctx, tls12Ciphers) == 1, scimhub_ssl_ctx_set_groups(ctx) == 1
        else {
            SSL_CTX_free(ctx)
            throw TLSError("cannot restrict TLS to versions 1.2 and 1.3 and AEAD suites: \(lastError())")
        }
        for (file, what) in [(certificateFile, "certificate"), (keyFile, "key")] {
            guard FileManager.default.isReadableFile(atPath: file) else {
                SSL_CTX_free(ctx)
                throw TLSError("TLS \(what) file \(file) cannot be read")
            }
        }
        guard SSL_CTX_use_certificate_chain_file(ctx, certificateFile) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError("TLS certificate file \(certificateFile) is not a PEM certificate chain: \(lastError())")
        }
        guard SSL_CTX_use_PrivateKey_file(ctx, keyFile, SSL_FILETYPE_PEM) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError("TLS key file \(keyFile) is not a PEM private key: \(lastError())")
        }
        guard SSL_CTX_check_private_key(ctx) == 1 else {
            SSL_CTX_free(ctx)
            throw TLSError("TLS key file \(keyFile) does not match the certificate in \(certificateFile)")
        }
        return ctx
    }

    static func lastError() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        scimhub_ssl_last_error(&buf, buf.count)
        let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? "unknown error" : s
    }
}

/// One connection's TLS state, used on the server's I/O thread only.
final class TLSSession {
    private let ssl: OpaquePointer

    /// What a read or write that made no progress waits for.
    enum Wait { case readable, writable, closed }

    init(_ ssl: OpaquePointer) { self.ssl = ssl }

    deinit { SSL_free(ssl) }

    var handshakeDone: Bool { SSL_is_init_finished(ssl) == 1 }

    /// Decrypts into `buffer`: bytes read (> 0), or what it waits for.
    func read(_ buffer: UnsafeMutableRawBufferPointer) -> Result<Int, WaitError> {
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if n > 0 { return .success(Int(n)) }
        return .failure(WaitError(wait(n)))
    }

    /// Encrypts and sends from `bytes`: bytes taken (> 0), or what it waits for.
    func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, WaitError> {
        guard bytes.count > 0 else { return .success(0) }
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if n > 0 { return .success(Int(n)) }
        return .failure(WaitError(wait(n)))
    }

    /// Sends close_notify (best effort, non-blocking).
    func shutdown() { _ = SSL_shutdown(ssl) }

    struct WaitError: Error {
        let wait: Wait
        init(_ w: Wait) { wait = w }
    }

    private func wait(_ rc: Int32) -> Wait {
        let e = SSL_get_error(ssl, rc)
        ERR_clear_error()
        switch e {
        case SSL_ERROR_WANT_READ: return .readable
        case SSL_ERROR_WANT_WRITE: return .writable
        default: return .closed  // the peer closed, a protocol error, a failed handshake
        }
    }
}
