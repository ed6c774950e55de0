// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import HTTPServer
import JSONCore
import LDAPConnector
import OIDC
import SCIM

/// What the fuzzers feed hostile bytes to: each target must only ever return or throw its
/// own typed error, never crash, hang or read out of bounds (AddressSanitizer watches).
/// Where an output has a property that must hold, it is checked and a violation traps.
enum FuzzTargets {
    static let names = ["http", "json", "filter", "patch", "ldap", "idtoken"]

    static func run(_ target: String, _ data: [UInt8]) {
        switch target {
        case "http": http(data)
        case "json": _ = try? JSONParser().parse(data)
        case "filter": filter(data)
        case "patch": patch(data)
        case "ldap": ldap(data)
        case "idtoken": idToken(data)
        default: fatalError("unknown fuzz target \(target); one of \(names)")
        }
    }

    /// The HTTP/1.1 request decoder, fed in two pieces (a split anywhere must not matter).
    static func http(_ data: [UInt8]) {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 64 * 1024
        var decoder = HTTPRequestDecoder(limits: limits)
        var input = InputBuffer()
        let cut = data.isEmpty ? 0 : Int(data[0]) % (data.count + 1)
        for piece in [Array(data[..<cut]), Array(data[cut...])] {
            input.append(piece)
            for _ in 0..<64 {  // requests pipelined in one input, at most
                guard let event = try? decoder.next(&input) else { return }
                if case .needMore = event { break }
            }
        }
    }

    static let registry: SchemaRegistry? = {
        guard let dir = SchemaRegistry.locateDirectory(explicit: ProcessInfo.processInfo.environment["SCIMHUB_SCHEMAS"])
        else { return nil }
        return try? SchemaRegistry.load(directory: dir)
    }()
    static let userType: SCIMResourceType = {
        guard let t = registry?.resourceType(named: "User") else {
            fatalError("the fuzzer needs schemas/: run it from the repository or set SCIMHUB_SCHEMAS")
        }
        return t
    }()
    static let user: JSONObject = {
        let text = #"""
            {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ana@x.org","title":"Nurse",
             "name":{"givenName":"Ana","familyName":"Lima"},"active":true,
             "emails":[{"value":"ana@x.org","type":"work","primary":true},{"value":"a@home.org","type":"home"}]}
            """#
        return (try? JSONParser().parse(Array(text.utf8)).objectValue) ?? JSONObject()
    }()

    /// The SCIM filter parser, and evaluating what it accepts against a person.
    static func filter(_ data: [UInt8]) {
        guard let f = try? SCIMFilter.parse(String(decoding: data, as: UTF8.self), for: userType) else { return }
        _ = f.matches(user)
    }

    /// The PATCH engine: a body parsed, then applied to a person.
    static func patch(_ data: [UInt8]) {
        guard let body = (try? JSONParser().parse(data))?.objectValue,
            let request = try? PatchRequest(body)
        else { return }
        _ = try? request.apply(to: user, type: userType)
    }

    /// LDAP escaping (RFC 4514 DN values, RFC 4515 filter values): whatever the input, the
    /// escaped value holds no unescaped special character.
    static func ldap(_ data: [UInt8]) {
        let s = String(decoding: data, as: UTF8.self)
        let f = LDAPEscaping.filterValue(s)
        if f.utf8.contains(where: { $0 == 0x28 || $0 == 0x29 || $0 == 0x2A || $0 == 0x00 }) {
            fatalError("filter escaping left a special character")
        }
        var escaped = false
        for b in LDAPEscaping.dnValue(s).utf8 {
            if escaped { escaped = false; continue }
            if b == 0x5C { escaped = true; continue }
            if [0x2C, 0x2B, 0x22, 0x3C, 0x3E, 0x3B, 0x00].contains(b) { fatalError("DN escaping left \(b) unescaped") }
        }
    }

    static let keys: JWKSet? = {
        let path = (ProcessInfo.processInfo.environment["SCIMHUB_FUZZ_JWKS"] ?? "Tests/Fuzz/jwks.json")
        guard let d = FileManager.default.contents(atPath: path), let json = try? JSONParser().parse(Array(d)) else {
            return nil
        }
        return try? JWKSet(json: json)
    }()

    /// ID-token parsing and every check of OpenID Connect Core §3.1.3.7.
    static func idToken(_ data: [UInt8]) {
        guard let keys else { fatalError("the fuzzer needs Tests/Fuzz/jwks.json (or SCIMHUB_FUZZ_JWKS)") }
        let token = String(decoding: data, as: UTF8.self)
        _ = try? JWS.header(of: token)
        _ = try? IDTokenVerifier.verify(
            token, keys: keys, issuer: "https://idp.fuzz.test", clientID: "scimhub", nonce: "n0", now: 1_700_000_100)
    }
}
