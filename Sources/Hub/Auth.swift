// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import SCIM
import Store

/// Counts failures per key (a client address, a token id, a principal's step-up codes):
/// after `limit` failures in `window` seconds the key is throttled until the window ends.
///
/// The counts live in the store (`auth_failures`), so the limit holds for every node
/// together: a client spreading guesses over three nodes gets `limit` attempts, not three
/// times as many. Only failures write (one non-durable upsert per key); a valid token never
/// reaches this. Each throttle's keys carry its `scope` as a prefix.
final class AuthThrottle: Sendable {
    private let store: any HubStore
    private let scope: String
    let limit: Int
    let window: Double
    /// When this node last pruned its scope's expired windows.
    private let lastPrune = Mutex<Double>(0)
    /// Keys at most (all throttles together) before the unthrottled ones are dropped.
    static let maxKeys = 100_000

    init(store: any HubStore, scope: String, limit: Int, window: Double) {
        self.store = store
        self.scope = scope + ":"
        self.limit = limit
        self.window = window
    }

    /// Seconds to wait when any of `keys` is throttled, else nil. A read, no write.
    func retryAfter(_ keys: [String], now: Double) throws -> Int? {
        let scoped = keys.map { scope + $0 }
        let counts = try store.read(snapshot: false) { try $0.authFailures(keys: scoped, since: now - window) }
        return counts.values.filter { $0.failures >= limit }
            .map { max(1, Int((window - (now - $0.windowStart)).rounded(.up))) }.max()
    }

    func retryAfter(_ key: String, now: Double) throws -> Int? { try retryAfter([key], now: now) }

    /// Records one failure of each of `keys`, in one write that need not reach the disk (a
    /// count lost in a crash only gives a guesser a few more tries). Expired windows of this
    /// throttle are deleted at most once per second per node; past `maxKeys` rows, its
    /// unthrottled keys go too (an attacker with many addresses cannot grow the table
    /// without bound, and the keys already throttled stay throttled).
    func recordFailure(_ keys: [String], now: Double) throws {
        let (scope, window, limit) = (self.scope, self.window, self.limit)
        let scoped = keys.map { scope + $0 }
        let prune = lastPrune.withLock { t in
            guard now - t >= 1 else { return false }
            t = now
            return true
        }
        try store.write(isolated: true, durable: false) { w in
            if prune {
                try w.connection.pruneAuthFailures(
                    prefix: scope, now: now, window: window, cap: Self.maxKeys, limit: limit)
            }
            for k in scoped { try w.connection.recordAuthFailure(key: k, now: now, window: window) }
        }
    }

    func recordFailure(_ key: String, now: Double) throws { try recordFailure([key], now: now) }
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
                _ = try? store.write(isolated: true, durable: false) {
                    try $0.connection.recordTokenUse(id: id, now: now)
                }
            }
            return found.principal
        }
        let client = clientAddresses.clientAddress(request)
        let keys = ["addr:" + client] + (presented.flatMap(Tokens.publicID).map { ["token:" + $0] } ?? [])
        if let wait = try throttle.retryAfter(keys, now: now) {
            throw SCIMError(
                status: 429, detail: "too many failed authentication attempts; retry later",
                headers: ["Retry-After": String(wait)])
        }
        // Counted for every node; the refusal stands even if the count cannot be written.
        do {
            try throttle.recordFailure(keys, now: now)
        } catch {
            logger.error(
                "authentication failure not counted: storage unavailable",
                ["error": String(describing: error).prefix(200).description])
        }
        logger.warning("authentication failed", ["client.address": client])
        throw SCIMError(
            status: 401, detail: "invalid or revoked bearer token",
            headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\", error=\"invalid_token\""])
    }
}
