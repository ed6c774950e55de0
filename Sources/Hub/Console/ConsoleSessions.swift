// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import HubCrypto
import Store

/// Server-side console sessions. The browser holds a random 32-byte id in an `HttpOnly`,
/// `SameSite=Lax` cookie (`__Host-` and `Secure` behind https); the store holds only its
/// SHA-256, the person, their roles and a CSRF token. A session ends after `idleMinutes`
/// without a request, after `sessionHours` whatever, at sign-out, or at "sign out
/// everywhere".
struct ConsoleSessions: Sendable {
    let store: any HubStore
    let settings: ConsoleSettings
    let clock: any WallClock

    /// The session cookie's name: `__Host-` needs `Secure`, which needs https.
    var cookieName: String { settings.secure ? "__Host-scimhub-session" : "scimhub-session" }

    /// A signed-in person: the session and the principal its roles make.
    struct Current {
        let record: ConsoleSessionRecord
        let principal: Principal

        func has(_ role: String) -> Bool { record.roles.contains(role) }
    }

    /// Starts a session; returns its `Set-Cookie` header value.
    func start(userName: String, personID: String?, roles: [String], method: String) throws -> (
        cookie: String, record: ConsoleSessionRecord
    ) {
        let now = clock.now()
        let id = base64URLString(Crypto.randomBytes(32))
        let record = ConsoleSessionRecord(
            idHash: hexString(Crypto.sha256(id)), userName: userName, personID: personID, roles: roles,
            method: method, csrf: base64URLString(Crypto.randomBytes(24)), created: now, lastSeen: now,
            expires: now + settings.sessionHours * 3600)
        try store.write { try $0.connection.insertConsoleSession(record) }
        return (cookie(id, maxAge: Int(settings.sessionHours * 3600)), record)
    }

    /// The `Set-Cookie` value that ends the cookie in the browser.
    var clearingCookie: String { cookie("", maxAge: 0) }

    private func cookie(_ value: String, maxAge: Int) -> String {
        "\(cookieName)=\(value); Path=/; Max-Age=\(maxAge); HttpOnly; SameSite=Lax"
            + (settings.secure ? "; Secure" : "")
    }

    /// The request's session, if it is still in force; activity is recorded (at most once a
    /// minute, so reading pages does not become a write each).
    func current(_ request: HTTPRequest) throws -> Current? {
        guard let id = Self.cookie(named: cookieName, in: request), id.utf8.count == 43 else { return nil }
        let hash = hexString(Crypto.sha256(id))
        guard let s = try store.read({ try $0.consoleSession(idHash: hash) }), s.ended == nil else { return nil }
        let now = clock.now()
        if now >= s.expires || now - s.lastSeen >= settings.idleMinutes * 60 {
            _ = try store.write { try $0.connection.endConsoleSession(idHash: hash, now: now) }
            return nil
        }
        if now - s.lastSeen >= 60 {
            _ = try store.write { try $0.connection.touchConsoleSession(idHash: hash, now: now) }
        }
        return Current(record: s, principal: Self.principal(s))
    }

    /// The principal a session acts as: the person's user name with the scopes of their roles.
    /// Every signed-in person may request packages and decide the review items given to them.
    static func principal(_ s: ConsoleSessionRecord) -> Principal {
        var scopes: Set<Scope> = [.request, .review]
        for role in s.roles {
            switch role {
            case "admin": scopes.insert(.admin)
            case "auditor": scopes.insert(.auditor)
            case "break-glass": scopes.insert(.breakGlass)
            case "helpdesk": scopes.insert(.helpdesk)
            default: break
            }
        }
        return Principal(name: s.userName, scopes: scopes, tokenID: "session-" + s.idHash.prefix(16))
    }

    /// A cookie's value from the `Cookie` header(s) (RFC 6265 §5.4).
    static func cookie(named name: String, in request: HTTPRequest) -> String? {
        for header in request.headers.values("Cookie") {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                    return kv[1].trimmingCharacters(in: .whitespaces)
                }
            }
        }
        return nil
    }
}
