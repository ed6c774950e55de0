// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import HubHarness
import JSONCore
import TestSupport

/// TLS on the hub's own listener, checked by sslyze (a real TLS scanner), curl and a Python
/// TLS client: versions, suites, renegotiation, the certificate served, a reload on SIGHUP
/// that drops no connection, a handshake that never finishes, and bad certificate files.
@Suite(.serialized) struct TLSTests {
    static var binary: String { repoRoot + "/.build/debug/scimhub" }
    static var sslyze: String { repoRoot + "/.venv-sslyze/bin/sslyze" }

    /// Runs `argv` and returns its exit status and combined output.
    func sh(_ argv: [String]) throws -> (status: Int32, out: String) {
        try HubProcess.runWithStatus("/bin/sh", ["-c", "\"$0\" \"$@\" 2>&1"] + argv)
    }

    /// A test CA and a leaf for 127.0.0.1 named `cn`, by the openssl command.
    func certificates(_ dir: String, cn: String, leaf: String = "leaf") throws {
        if !FileManager.default.fileExists(atPath: dir + "/ca.pem") {
            let ca = try sh([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/ca.key", "-out",
                dir + "/ca.pem", "-days", "2", "-subj", "/CN=ScimHub Test CA", "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ])
            #expect(ca.status == 0, "\(ca.out)")
        }
        let ext = dir + "/\(leaf).ext"
        // What a path validator requires of a server certificate (RFC 5280, CA/Browser Forum).
        let extensions = [
            "subjectAltName=IP:127.0.0.1,DNS:localhost", "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment", "extendedKeyUsage=serverAuth",
            "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid,issuer",
        ]
        try (extensions.joined(separator: "\n") + "\n").write(toFile: ext, atomically: true, encoding: .utf8)
        let req = try sh([
            "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/\(leaf).key", "-out",
            dir + "/\(leaf).csr", "-subj", "/CN=\(cn)",
        ])
        let sign = try sh([
            "openssl", "x509", "-req", "-in", dir + "/\(leaf).csr", "-CA", dir + "/ca.pem", "-CAkey", dir + "/ca.key",
            "-CAcreateserial", "-out", dir + "/\(leaf).pem", "-days", "2", "-extfile", ext,
        ])
        #expect(req.status == 0 && sign.status == 0, "\(req.out) \(sign.out)")
    }

    @Test func sslyze_findsOnlyTLS12And13_AEADSuites_noRenegotiation_andTheConfiguredCertificate() throws {
        let dir = TemporaryDirectory(), data = TemporaryDirectory()
        defer { dir.remove(); data.remove() }
        try certificates(dir.path, cn: "hub.clinic.test")
        let token = try HubProcess.createToken(
            Self.binary, data: data.path, principal: "hr", scopes: "scim:read,scim:write")
        let hub = try HubProcess(
            binary: Self.binary, data: data.path,
            extraArguments: ["--tls-cert", dir.path + "/leaf.pem", "--tls-key", dir.path + "/leaf.key"])
        defer { _ = hub.stop() }
        let json = dir.path + "/sslyze.json"
        let scan = try sh([
            Self.sslyze, "127.0.0.1:\(hub.port)", "--certinfo_ca_file=\(dir.path)/ca.pem", "--json_out=\(json)",
            "--quiet",
        ])
        // sslyze's report holds RSA moduli as 600-digit JSON numbers, past what the hub's own
        // parser accepts (64 digits, by design): Python drops the certificates' key material.
        let trimmed = try sh([
            "/usr/bin/python3", "-c",
            """
            import json, sys
            def scrub(v):
                if isinstance(v, dict): return {k: scrub(x) for k, x in v.items() if k != "public_key"}
                return [scrub(x) for x in v] if isinstance(v, list) else v
            print(json.dumps(scrub(json.load(open(sys.argv[1]))["server_scan_results"][0]["scan_result"])))
            """, json,
        ])
        let result = try #require(
            try JSONParser().parse(Array(trimmed.out.utf8)).objectValue,
            "sslyze: \(scan.out) \(trimmed.out.prefix(300))")
        func accepted(_ key: String) -> [String] {
            (result[key]?.objectValue?["result"]?.objectValue?["accepted_cipher_suites"]?.arrayValue ?? []).compactMap {
                $0.objectValue?["cipher_suite"]?.objectValue?["name"]?.stringValue
            }
        }
        for old in ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites"]
        {
            #expect(result[old]?.objectValue?["status"]?.stringValue == "COMPLETED" && accepted(old).isEmpty, "\(old)")
        }
        let tls12 = accepted("tls_1_2_cipher_suites"), tls13 = accepted("tls_1_3_cipher_suites")
        #expect(!tls12.isEmpty && !tls13.isEmpty)
        // Forward secrecy and AEAD only: ECDHE with GCM or ChaCha20-Poly1305.
        #expect(
            tls12.allSatisfy { $0.hasPrefix("TLS_ECDHE_") && ($0.contains("_GCM_") || $0.contains("CHACHA20")) },
            "\(tls12)")
        let reneg = result["session_renegotiation"]?.objectValue?["result"]?.objectValue
        #expect(reneg?["is_vulnerable_to_client_renegotiation_dos"] == .bool(false))
        #expect(reneg?["supports_secure_renegotiation"] == .bool(true))
        #expect(
            result["tls_compression"]?.objectValue?["result"]?.objectValue?["supports_compression"] == .bool(false))
        #expect(
            result["heartbleed"]?.objectValue?["result"]?.objectValue?["is_vulnerable_to_heartbleed"] == .bool(false))
        let deployment = result["certificate_info"]?.objectValue?["result"]?.objectValue?["certificate_deployments"]?
            .arrayValue?.first?.objectValue
        let subject = deployment?["received_certificate_chain"]?.arrayValue?.first?.objectValue?["subject"]?
            .objectValue?["rfc4514_string"]?.stringValue
        #expect(subject == "CN=hub.clinic.test")
        // The chain validates against the CA it was issued by (the trust store sslyze was given).
        let validation = deployment?["path_validation_results"]?.arrayValue?.compactMap(\.objectValue) ?? []
        #expect(validation.contains { $0["was_validation_successful"] == .bool(true) }, "\(validation)")
        // SCIM over TLS, with keep-alive: two requests on one connection.
        let post = try sh([
            "curl", "-sS", "--cacert", dir.path + "/ca.pem", "-H", "Authorization: Bearer \(token)", "-H",
            "Content-Type: application/scim+json", "-d",
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"tls@x.org"}"#,
            "-w", "\\n%{http_code} %{num_connects}\\n", "https://127.0.0.1:\(hub.port)/scim/v2/Users",
            "--next", "--cacert", dir.path + "/ca.pem", "-H", "Authorization: Bearer \(token)", "-w",
            "\\n%{http_code} %{num_connects}\\n", "https://127.0.0.1:\(hub.port)/scim/v2/Users?count=0",
        ])
        #expect(post.out.contains("\n201 1\n") && post.out.contains("\n200 0\n"), "\(post.out.suffix(300))")
        #expect(post.out.contains("https://127.0.0.1:\(hub.port)/scim/v2/Users/"))  // Location and meta over https
        // Plain HTTP on the TLS port gets nothing usable, and nothing crashes.
        let c = try RawHTTPClient(port: hub.port, timeout: 3)
        #expect(c.request("GET", "/healthz")?.status != 200)
    }

    @Test func sighup_reloadsTheCertificate_withoutDroppingAnOpenConnection() throws {
        let dir = TemporaryDirectory(), data = TemporaryDirectory()
        defer { dir.remove(); data.remove() }
        try certificates(dir.path, cn: "first.clinic.test")
        let hub = try HubProcess(
            binary: Self.binary, data: data.path,
            extraArguments: ["--tls-cert", dir.path + "/leaf.pem", "--tls-key", dir.path + "/leaf.key"])
        defer { _ = hub.stop() }
        // A client that holds one connection across the reload, asking before and after.
        let go = dir.path + "/go", said = dir.path + "/client.out"
        let script = """
            import os, socket, ssl, sys, time
            ctx = ssl.create_default_context(cafile=sys.argv[2])
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="127.0.0.1")
            def get():
                s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
                data = b""
                while b"\\r\\n\\r\\n" not in data or not data.endswith(b"}"):
                    data += s.recv(4096)
                return data.split(b"\\r\\n")[0].decode()
            print("first:", get(), dict(x[0] for x in s.getpeercert()["subject"])["commonName"], flush=True)
            while not os.path.exists(sys.argv[3]): time.sleep(0.02)
            print("second:", get(), flush=True)
            """
        try script.write(toFile: dir.path + "/client.py", atomically: true, encoding: .utf8)
        let client = try ChildProcess(
            ["/usr/bin/python3", dir.path + "/client.py", String(hub.port), dir.path + "/ca.pem", go],
            outputPath: said, errorPath: said + ".err")
        eventually("the client asked once") {
            ((try? String(contentsOfFile: said, encoding: .utf8)) ?? "").contains("first:")
        }
        try certificates(dir.path, cn: "second.clinic.test", leaf: "next")
        try FileManager.default.removeItem(atPath: dir.path + "/leaf.pem")
        try FileManager.default.removeItem(atPath: dir.path + "/leaf.key")
        try FileManager.default.copyItem(atPath: dir.path + "/next.pem", toPath: dir.path + "/leaf.pem")
        try FileManager.default.copyItem(atPath: dir.path + "/next.key", toPath: dir.path + "/leaf.key")
        kill(hub.pid, SIGHUP)
        eventually("reloaded") { hub.log.contains("tls certificate reloaded") }
        FileManager.default.createFile(atPath: go, contents: Data())
        #expect(client.waitWithPeakMemory().status == 0)
        let text = (try? String(contentsOfFile: said, encoding: .utf8)) ?? ""
        #expect(
            text.contains("first: HTTP/1.1 200 OK first.clinic.test\nsecond: HTTP/1.1 200 OK"),
            "\(text) \((try? String(contentsOfFile: said + ".err", encoding: .utf8)) ?? "")")
        // A new connection gets the new certificate.
        let fresh = try sh([
            "openssl", "s_client", "-connect", "127.0.0.1:\(hub.port)", "-CAfile", dir.path + "/ca.pem", "-brief",
        ])
        #expect(fresh.out.contains("second.clinic.test"), "\(fresh.out)")
        // A reload from a broken file keeps the certificate in force and says why.
        try "not a certificate".write(toFile: dir.path + "/leaf.pem", atomically: true, encoding: .utf8)
        kill(hub.pid, SIGHUP)
        eventually("the failed reload is logged") { hub.log.contains("tls certificate reload failed") }
        let still = try sh(["curl", "-sS", "--cacert", dir.path + "/ca.pem", "https://127.0.0.1:\(hub.port)/healthz"])
        #expect(still.out.contains("\"ok\""), "\(still.out)")
    }

    @Test func aHandshakeThatNeverFinishes_isTimedOutLikeASlowHeader() throws {
        let dir = TemporaryDirectory(), data = TemporaryDirectory()
        defer { dir.remove(); data.remove() }
        try certificates(dir.path, cn: "hub.clinic.test")
        let config = dir.path + "/config.json"
        try #"{"http": {"headerReadTimeoutSeconds": 1}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let hub = try HubProcess(
            binary: Self.binary, data: data.path,
            extraArguments: [
                "--tls-cert", dir.path + "/leaf.pem", "--tls-key", dir.path + "/leaf.key", "--config", config,
            ])
        defer { _ = hub.stop() }
        // Half a ClientHello, then silence: the server closes (recv returns 0) after ~1 s.
        let c = try RawHTTPClient(port: hub.port, timeout: 10)
        #expect(c.send([0x16, 0x03, 0x01, 0x00, 0xC8, 0x01]))
        let start = Date()
        #expect(c.isClosedByPeer())
        let waited = Date().timeIntervalSince(start)
        #expect(waited >= 0.5 && waited < 5, "\(waited)")
    }

    @Test(arguments: ["certificate", "key", "missing"])
    func aBadCertificateOrKey_refusesToStart_namingTheFile(_ what: String) throws {
        let dir = TemporaryDirectory(), data = TemporaryDirectory()
        defer { dir.remove(); data.remove() }
        try certificates(dir.path, cn: "hub.clinic.test")
        var cert = dir.path + "/leaf.pem", key = dir.path + "/leaf.key"
        switch what {
        case "certificate":
            cert = dir.path + "/bad.pem"
            try "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n".write(
                toFile: cert, atomically: true, encoding: .utf8)
        case "key": key = dir.path + "/ca.pem"  // a certificate where the key should be
        default: key = dir.path + "/nowhere.key"
        }
        let r = try sh([
            Self.binary, "serve", "--listen", "127.0.0.1:0", "--data", data.path, "--schemas", repoRoot + "/schemas",
            "--tls-cert", cert, "--tls-key", key,
        ])
        #expect(r.status == 2, "\(r.out)")
        #expect(r.out.contains(what == "certificate" ? cert : key), "\(r.out)")
        let half = try sh([Self.binary, "serve", "--data", data.path, "--tls-cert", cert])
        #expect(half.status == 2 && half.out.contains("go together"), "\(half.out)")
    }
}
