// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
@_exported import HubHarness
import Hub
import HubCrypto
import HubLog
import JSONCore
import Store

/// A hub served in-process on a free loopback port with its own temporary data folder,
/// and tokens for the usual principals.
public final class LiveHub: @unchecked Sendable {
    // @unchecked Sendable: every stored property is set in init and never changed (the server is Sendable).
    public let server: HubServer
    public let directory: TemporaryDirectory
    /// scim:read + scim:write, principal `hr`.
    public let writer: String
    /// scim:read only.
    public let reader: String
    /// admin only.
    public let admin: String
    public var port: UInt16 { server.port }

    /// `policy`: policy JSON written to the data folder and loaded, for provisioning tests.
    public init(policy: String? = nil, configure: (inout HubConfig) -> Void = { _ in }) throws {
        directory = TemporaryDirectory()
        var config = HubConfig()
        config.listen = "127.0.0.1:0"
        config.dataDirectory = directory.path
        config.schemasDirectory = repoRoot + "/schemas"
        config.durability = .normal
        config.readThreads = 2
        config.writeThreads = 4
        if let p = policy {
            let file = directory.path + "/policy.json"
            _ = FileManager.default.createFile(atPath: file, contents: Data(p.utf8))
            config.policyFile = file
            // Fast retries so fault tests finish quickly.
            config.engine.backoffBase = 0.05
            config.engine.backoffCap = 0.5
            config.engine.breakerOpenSeconds = 0.5
            // No scheduled probes: a probe would use up a fault a test injects for one job
            // (`remaining: 1`). Probe tests turn them on, or probe on demand.
            config.engine.probeInterval = 0
        }
        configure(&config)
        let server: HubServer
        do {
            server = try HubServer(
                config: config, connectors: testConnectors,
                logger: Logger(
                    label: "test", minimumLevel: .error,
                    silent: ProcessInfo.processInfo.environment["SCIMHUB_TEST_LOG"] == nil))
        } catch {
            directory.remove()
            throw error
        }
        self.server = server
        func token(_ p: String, _ s: [Scope]) throws -> String {
            try server.store.write { w in try Tokens.create(w, principal: p, scopes: s, now: 0, mintedBy: "cli").token }
        }
        writer = try token("hr", [.scimRead, .scimWrite])
        reader = try token("viewer", [.scimRead])
        admin = try token("auditor", [.admin])
        server.start()
    }

    public func stop() {
        server.shutdown()
        directory.remove()
    }

    /// Enrols the token's principal for step-up (POST /mfa/enrol) and returns the TOTP secret.
    public func enrolTOTP(_ token: String) throws -> [UInt8] {
        let r = try call("POST", "/mfa/enrol", token: token)
        guard r.status == 201, let uri = r.object["otpauth"]?.stringValue, let range = uri.range(of: "secret="),
            let secret = TOTP.base32Decode(String(uri[range.upperBound...].prefix { $0 != "&" }))
        else {
            throw TestError("enrol: \(r.status) \(r.text)")
        }
        return secret
    }

    /// The TOTP code for `secret` now, `stepOffset` steps away (RFC 6238).
    public static func totp(_ secret: [UInt8], stepOffset: Int64 = 0) -> String {
        TOTP.code(secret: secret, step: TOTP.step(at: Date().timeIntervalSince1970) + stepOffset)
    }

    /// A further token, for a principal with these scopes (reviewers, break-glass).
    public func makeToken(_ principal: String, _ scopes: [Scope]) throws -> String {
        try server.store.write { w in
            try Tokens.create(w, principal: principal, scopes: scopes, now: 0, mintedBy: "cli").token
        }
    }

    /// One request on a new connection with a bearer token; JSON bodies as text.
    public func call(
        _ method: String, _ path: String, token: String? = nil, body: String? = nil,
        headers: [(String, String)] = [], contentType: String? = "application/scim+json"
    ) throws -> RawResponse {
        let client = try RawHTTPClient(port: port)
        var h = headers
        if let t = token ?? Optional(writer) { h.append(("Authorization", "Bearer \(t)")) }
        if body != nil, let ct = contentType { h.append(("Content-Type", ct)) }
        guard let r = client.request(method, path, headers: h, body: body.map { Array($0.utf8) }) else {
            throw TestError("no response")
        }
        return r
    }

    /// Creates a user from JSON text and returns its id.
    @discardableResult
    public func createUser(_ userName: String, extra: String = "") throws -> String {
        let body =
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"\#(userName)""#
            + (extra.isEmpty ? "" : "," + extra) + "}"
        let r = try call("POST", "/scim/v2/Users", body: body)
        guard r.status == 201, let id = r.object["id"]?.stringValue else {
            throw TestError("create failed: \(r.status) \(r.text)")
        }
        return id
    }

    /// A fingerprint of every stored resource (for "bad input leaves data unchanged").
    public func snapshot() throws -> String {
        try server.store.read { conn in
            var s = ""
            for t in [ResourceKind.user, .group] {
                try conn.scan(type: t) { r in
                    s += "\(r.id)|\(r.version)|\(JSONValue.object(r.doc).jsonString)\n"; return true
                }
            }
            return s
        }
    }
}
