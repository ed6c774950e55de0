// SPDX-License-Identifier: Apache-2.0
import JSONCore
import Synchronization

/// The provider's current key set, refetched from its `jwks_uri` when a token names a `kid`
/// the set lacks: providers rotate keys by publishing the new one and signing with it
/// (OpenID Connect Core §10.1.1). Refetches are at most one per `minimumRefetchInterval`, so
/// a flood of tokens with made-up `kid`s cannot turn this relying party against the
/// provider. Fetching is injected, which keeps this module free of HTTP.
public final class JWKSCache: Sendable {
    private struct State: Sendable {
        var keys: JWKSet?
        var lastAttempt: Double?
    }

    /// Shortest time between two fetches, in seconds, failed fetches included.
    public let minimumRefetchInterval: Double
    private let fetch: @Sendable () throws -> JSONValue
    private let state = Mutex(State())

    /// - Parameters:
    ///   - minimumRefetchInterval: seconds between fetches, at least; 60 by default.
    ///   - fetch: fetches the provider's JWK Set document (RFC 7517 §5), blocking. It runs
    ///     while the cache is locked, so it must not call back into this cache.
    public init(minimumRefetchInterval: Double = 60, fetch: @escaping @Sendable () throws -> JSONValue) {
        self.minimumRefetchInterval = minimumRefetchInterval
        self.fetch = fetch
    }

    /// The key set as last fetched, or nil before the first successful fetch.
    public var current: JWKSet? { state.withLock { $0.keys } }

    /// The key set to verify a token whose header names `keyID`: the cached one, refetched
    /// first when there is none yet or it lacks `keyID` and the interval has passed. A failed
    /// or malformed fetch keeps the previous set. Concurrent callers wait for one fetch
    /// rather than each fetching.
    public func keySet(for keyID: String?, now: Double) throws(OIDCError) -> JWKSet {
        try state.withLock { (state) throws(OIDCError) -> JWKSet in
            if !Self.isKnown(keyID, in: state.keys), mayFetch(lastAttempt: state.lastAttempt, now: now) {
                state.lastAttempt = now
                if let fresh = try? JWKSet(json: fetch()) { state.keys = fresh }
            }
            guard let keys = state.keys else { throw .keySetUnavailable }
            return keys
        }
    }

    /// The key for a signature made with `algorithm` under `keyID` (see `keySet(for:now:)`).
    public func key(for keyID: String?, algorithm: JWSAlgorithm, now: Double) throws(OIDCError) -> JWK {
        try keySet(for: keyID, now: now).key(for: keyID, algorithm: algorithm)
    }

    /// True when `keys` is there and either holds `keyID` or the token names no key.
    private static func isKnown(_ keyID: String?, in keys: JWKSet?) -> Bool {
        guard let keys else { return false }
        guard let keyID else { return true }
        return keys.contains(keyID: keyID)
    }

    /// Measured both ways: callers read their clocks before queueing for the lock, so `now`
    /// may be slightly behind the last attempt; a clock set back by more than the interval
    /// allows a fetch rather than blocking fetches until it catches up.
    private func mayFetch(lastAttempt: Double?, now: Double) -> Bool {
        guard let lastAttempt else { return true }
        return abs(now - lastAttempt) >= minimumRefetchInterval
    }
}
