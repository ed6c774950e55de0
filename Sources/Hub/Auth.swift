// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import SCIM
import Store

/// Counts failures per key (a client address, a token id, a principal's step-up codes):
/// after `limit` failures in `window` seconds the key is throttled until the window ends.
final class AuthThrottle: Sendable {
    private struct Bucket { var failures: Int; var windowStart: Double }
    private let buckets = Mutex<[String: Bucket]>([:])
    let limit: Int
    let window: Double

    init(limit: Int, window: Double) {
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait when `address` is throttled, else nil.
    func retryAfter(_ address: String, now: Double) -> Int? {
        buckets.withLock { b in
            guard let bucket = b[address] else { return nil }
            let elapsed = now - bucket.windowStart
            if elapsed >= window { b[address] = nil; return nil }
            return bucket.failures >= limit ? max(1, Int((window - elapsed).rounded(.up))) : nil
        }
    }

    /// Records one failure from `address`.
    func recordFailure(_ address: String, now: Double) {
        buckets.withLock { b in
            // Bound memory: drop expired windows; if an attacker still holds too many keys
            // (addresses, token ids), keep only the ones already throttled.
            if b.count > 100_000 { b = b.filter { now - $0.value.windowStart < window } }
            if b.count > 100_000 { b = b.filter { $0.value.failures >= limit } }
            if var bucket = b[address], now - bucket.windowStart < window {
                bucket.failures += 1
                b[address] = bucket
            } else {
                b[address] = Bucket(failures: 1, windowStart: now)
            }
        }
    }
}

/// Client addresses behind a reverse proxy: with `trustedProxies` configured, a request
/// from one of them is attributed to the right-most `X-Forwarded-For` entry that is not
/// itself a trusted proxy (entries further left are the client's to forge).
struct ClientAddressResolver: Sendable {
    /// Exact addresses, or IPv4 networks as `a.b.c.d/n`.
    let trusted: [String]

    func isTrusted(_ address: String) -> Bool {
        trusted.contains { t in
            guard let slash = t.firstIndex(of: "/") else { return t == address }
            guard let bits = Int(t[t.index(after: slash)...]), (0...32).contains(bits),
                let net = Self.ipv4(String(t[..<slash])), let a = Self.ipv4(address)
            else { return false }
            let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
            return net & mask == a & mask
        }
    }

    func clientAddress(_ request: HTTPRequest) -> String {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let peer =
            request.remoteAddress.hasPrefix("::ffff:")
            ? String(request.remoteAddress.dropFirst(7)) : request.remoteAddress
        guard !trusted.isEmpty, isTrusted(peer) else { return peer }
        let hops = request.headers.values("X-Forwarded-For").flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        // Anything that is not an address means the header cannot be trusted at all.
        guard !hops.isEmpty, hops.count <= 32, hops.allSatisfy(Self.looksLikeAddress) else { return peer }
        return hops.last { !isTrusted($0) } ?? hops.first ?? peer
    }

    static func looksLikeAddress(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 45
            && s.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x3A) || $0 == 0x2E || (($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x66)
            }
    }

    static func ipv4(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard let n = UInt8(p) else { return nil }
            v = v << 8 | UInt32(n)
        }
        return v
    }
}

extension HubApp {
    /// Authenticates the request: the principal, or a 401/429 error.
    ///
    /// A valid token is never throttled: throttling other clients' failures must not lock
    /// out a feed or an administrator (behind a proxy every client shares one address).
    /// Failures are counted per client address and per presented token id; past the limit,
    /// further *failed* attempts from that address or for that id get 429 until the window
    /// ends. Token checks are one indexed lookup and a hash, so checking before refusing
    /// costs little.
    func authenticate(_ request: HTTPRequest) throws -> Principal {
        let now = Date().timeIntervalSince1970
        guard let header = request.headers["Authorization"] else {
            throw SCIMError(
                status: 401, detail: "authentication required: send Authorization: Bearer <token>",
                headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\""])
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        var presented: String? = nil
        if parts.count == 2, parts[0].lowercased() == "bearer" {
            presented = parts[1].trimmingCharacters(in: .whitespaces)
        }
        if let token = presented,
            let found = try store.read(snapshot: false, { try Tokens.check($0, token: token, now: now) })
        {
            // When it was last used, to the minute; a lost update costs nothing (no fsync).
            if found.recordUse {
                let id = found.principal.tokenID
                _ = try? store.write(isolated: false, durable: false) {
                    try $0.connection.recordTokenUse(id: id, now: now)
                }
            }
            return found.principal
        }
        let client = clientAddresses.clientAddress(request)
        let keys = ["addr:" + client] + (presented.flatMap(Tokens.publicID).map { ["token:" + $0] } ?? [])
        if let wait = keys.compactMap({ throttle.retryAfter($0, now: now) }).max() {
            throw SCIMError(
                status: 429, detail: "too many failed authentication attempts; retry later",
                headers: ["Retry-After": String(wait)])
        }
        for k in keys { throttle.recordFailure(k, now: now) }
        logger.warning("authentication failed", ["client.address": client])
        throw SCIMError(
            status: 401, detail: "invalid or revoked bearer token",
            headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\", error=\"invalid_token\""])
    }
}
