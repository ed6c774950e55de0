// SPDX-License-Identifier: Apache-2.0
import Foundation
import JSONCore

/// How people sign in to the web console and how long their sessions last (config `console`).
public struct ConsoleSettings: Sendable {
    /// The console's public origin (`https://hub.clinic.example`). With `https` the session
    /// cookie is `__Host-` and `Secure`; without it the console answers only on loopback
    /// (the demo), with a plain `HttpOnly` cookie.
    public var publicURL: String?
    /// A session ends after this long without a request, and after `sessionHours` whatever.
    public var idleMinutes: Double = 15
    public var sessionHours: Double = 8
    /// The group's identity provider; nil: local emergency sign-in only.
    public var oidc: OIDCSettings?

    public init() {}

    /// Whether sessions use `Secure` `__Host-` cookies.
    var secure: Bool { publicURL?.lowercased().hasPrefix("https://") == true }
}

/// The OpenID Connect relying party's settings.
public struct OIDCSettings: Sendable {
    /// The issuer URL exactly as the provider's discovery document states it.
    public var issuer: String
    public var clientID: String
    /// Sent at the token endpoint (`client_secret_post`); nil for a public client (PKCE only).
    public var clientSecret: String?
    /// The claim matched to a SCIM User's `userName`.
    public var userClaim = "preferred_username"
    /// The claim holding the person's groups or roles, and which values give which console role.
    public var rolesClaim = "groups"
    public var roles: [String: [String]] = [:]
    /// Shown on the sign-in button.
    public var displayName = "the identity provider"

    public init(issuer: String, clientID: String) {
        self.issuer = issuer
        self.clientID = clientID
    }

    /// The console roles a person holds, from the values of their roles claim.
    public func roles(from values: [String]) -> [String] {
        let held = Set(values)
        return ConsoleSettings.roleNames.filter { role in (roles[role] ?? []).contains(where: held.contains) }
    }
}

extension ConsoleSettings {
    /// Every console role. Every signed-in staff member may also request packages.
    public static let roleNames = ["admin", "auditor", "reviewer", "approver", "break-glass", "helpdesk"]

    /// `console`: `{"publicURL"?, "idleMinutes"?, "sessionHours"?, "oidc"?: {"issuer", "clientId",
    /// "clientSecretEnv" | "clientSecretFile"?, "userClaim"?, "rolesClaim"?, "roles": {role: [values]},
    /// "displayName"?}}`.
    static func parse(_ v: JSONValue) throws -> ConsoleSettings {
        guard let o = v.objectValue else { throw ConfigError("console must be an object") }
        var c = ConsoleSettings()
        for m in o.members {
            let at = "console.\(m.key)"
            switch m.key {
            case "publicURL":
                guard let u = m.value.stringValue, u.hasPrefix("https://") || u.hasPrefix("http://"), u.count <= 255
                else { throw ConfigError("\(at) must be an http(s) URL") }
                c.publicURL = u.hasSuffix("/") ? String(u.dropLast()) : u
            case "idleMinutes":
                guard let d = m.value.numberValue?.double, d >= 1, d <= 720 else {
                    throw ConfigError("\(at) must be a number of minutes in 1...720")
                }
                c.idleMinutes = d
            case "sessionHours":
                guard let d = m.value.numberValue?.double, d > 0, d <= 24 else {
                    throw ConfigError("\(at) must be a number of hours in (0, 24]")
                }
                c.sessionHours = d
            case "oidc": c.oidc = try oidc(m.value, at: at)
            default: throw ConfigError("unknown config key \(at)")
            }
        }
        return c
    }

    /// `http://127.0.0.1[:port][/…]`, `http://localhost…` or `http://[::1]…`: the host exactly, not a prefix of it.
    static func isLoopback(_ url: String) -> Bool {
        ["http://127.0.0.1", "http://localhost", "http://[::1]"].contains { base in
            url == base || url.hasPrefix(base + ":") || url.hasPrefix(base + "/")
        }
    }

    private static func oidc(_ v: JSONValue, at: String) throws -> OIDCSettings {
        guard let o = v.objectValue, let issuer = o["issuer"]?.stringValue, let client = o["clientId"]?.stringValue,
            issuer.hasPrefix("https://") || isLoopback(issuer), !client.isEmpty
        else {
            throw ConfigError("\(at) needs an https \"issuer\" (http only on loopback) and a \"clientId\"")
        }
        var s = OIDCSettings(issuer: issuer, clientID: client)
        for m in o.members {
            switch m.key {
            case "issuer", "clientId": break
            case "clientSecretEnv":
                guard let name = m.value.stringValue, let value = ProcessInfo.processInfo.environment[name],
                    !value.isEmpty
                else { throw ConfigError("\(at).clientSecretEnv: the environment variable is not set") }
                s.clientSecret = value
            case "clientSecretFile":
                guard let path = m.value.stringValue,
                    let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty
                else { throw ConfigError("\(at).clientSecretFile cannot be read") }
                s.clientSecret = text.trimmingCharacters(in: .whitespacesAndNewlines)
            case "userClaim", "rolesClaim", "displayName":
                guard let t = m.value.stringValue, !t.isEmpty, t.count <= 100 else {
                    throw ConfigError("\(at).\(m.key) must be a non-empty string")
                }
                if m.key == "userClaim" { s.userClaim = t }
                if m.key == "rolesClaim" { s.rolesClaim = t }
                if m.key == "displayName" { s.displayName = t }
            case "roles":
                guard let r = m.value.objectValue else { throw ConfigError("\(at).roles must be an object") }
                for rm in r.members {
                    guard roleNames.contains(rm.key) else {
                        throw ConfigError(
                            "\(at).roles: unknown role '\(rm.key)' (\(roleNames.joined(separator: ", ")))")
                    }
                    s.roles[rm.key] = (rm.value.arrayValue ?? []).compactMap(\.stringValue)
                }
            default: throw ConfigError("unknown config key \(at).\(m.key)")
            }
        }
        return s
    }
}
