// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import HTTPServer
import SCIM
import Store

/// Slows down repeated failed authentication from one client address: after `limit`
/// failures in `window` seconds, further attempts get 429 with `Retry-After` until the
/// window ends, before any token is checked.
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
            if b.count > 100_000 { b = b.filter { now - $0.value.windowStart < window } }  // bound memory
            if var bucket = b[address], now - bucket.windowStart < window {
                bucket.failures += 1
                b[address] = bucket
            } else {
                b[address] = Bucket(failures: 1, windowStart: now)
            }
        }
    }
}

extension HubApp {
    /// Authenticates the request: the principal, or a 401/429 error.
    func authenticate(_ request: HTTPRequest) throws -> Principal {
        let now = Date().timeIntervalSince1970
        if let wait = throttle.retryAfter(request.remoteAddress, now: now) {
            throw SCIMError(status: 429, detail: "too many failed authentication attempts; retry later", headers: ["Retry-After": String(wait)])
        }
        guard let header = request.headers["Authorization"] else {
            throw SCIMError(status: 401, detail: "authentication required: send Authorization: Bearer <token>",
                            headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\""])
        }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        let principal: Principal?
        if parts.count == 2, parts[0].lowercased() == "bearer" {
            let token = parts[1].trimmingCharacters(in: .whitespaces)
            principal = try store.read(snapshot: false) { try Tokens.verify($0, token: token) }
        } else {
            principal = nil
        }
        guard let p = principal else {
            throttle.recordFailure(request.remoteAddress, now: now)
            logger.warning("authentication failed", ["client.address": request.remoteAddress])
            throw SCIMError(status: 401, detail: "invalid or revoked bearer token",
                            headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\", error=\"invalid_token\""])
        }
        return p
    }

    /// Throws 403 unless the principal holds `scope`.
    func require(_ scope: Scope, _ principal: Principal) throws {
        guard principal.scopes.contains(scope) else {
            throw SCIMError(status: 403, detail: "this token lacks the '\(scope.rawValue)' scope",
                            headers: ["WWW-Authenticate": "Bearer realm=\"scimhub\", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\""])
        }
    }
}
