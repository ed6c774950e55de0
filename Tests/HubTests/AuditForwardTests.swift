// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import Hub
import HubHarness
import JSONCore
import Store
import TestSupport

/// The audit chain forwarded to a SIEM over syslog: to a real rsyslogd, in order, with the
/// chain's hashes; through a receiver outage without a gap; over TLS to a real TLS server.
@Suite(.serialized) struct AuditForwardTests {
    /// The `seq` of each message that carries one.
    func seqs(_ lines: [String]) -> [Int] {
        lines.compactMap { $0.firstMatch(of: /seq="(\d+)"/).map { Int($0.1)! } }
    }

    @Test func entriesReachRsyslogInOrder_andAnOutageLeavesNoGap() throws {
        let siem = try RsyslogServer()
        let hub = try LiveHub { $0.auditForward = AuditForwardSettings(url: "tcp://127.0.0.1:\(siem.port)") }
        defer { hub.stop() }
        for i in 0..<20 { _ = try hub.call("POST", "/scim/v2/Users", body: person("f\(i)@x.org", title: "Clerk")) }
        func head() throws -> Int {
            Int(try hub.server.store.read { try $0.auditHead().seq })
        }
        var expected = try head()
        eventually("every entry forwarded", timeout: 15) { Set(seqs(siem.messages)) == Set(1...expected) }
        let first = try #require(siem.messages.first)
        // RFC 5424: PRI 86 (authpriv.info), version 1, app "scimhub", the chain in structured data.
        #expect(first.hasPrefix("<86>1 ") && first.contains(" scimhub - "), "\(first)")
        #expect(first.contains(#"[scimhub@32473 seq="1""#) && first.contains(#"prevHash="0000"#), "\(first)")
        #expect(Array(seqs(siem.messages).prefix(expected)) == Array(1...expected), "in chain order")
        // The receiver goes away; the hub keeps writing; the receiver comes back on its port.
        siem.stop()
        for i in 20..<30 { _ = try hub.call("POST", "/scim/v2/Users", body: person("f\(i)@x.org", title: "Clerk")) }
        expected = try head()
        try siem.start()
        eventually("the outage's entries forwarded after it", timeout: 40) {
            Set(seqs(siem.messages)).isSuperset(of: Set(1...expected))
        }
        let scrape = try hub.call("GET", "/metrics", token: hub.admin).text
        #expect(scrape.contains("scimhub_audit_forward_connected 1"), "\(scrape.suffix(300))")
    }

    @Test func overTLS_theReceiverIsVerified_andUntrustedOnesGetNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func sh(_ argv: [String]) throws -> Int32 {
            try HubProcess.runWithStatus("/bin/sh", ["-c", "\"$0\" \"$@\" >/dev/null 2>&1"] + argv).status
        }
        #expect(
            try sh([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.path + "/key.pem", "-out",
                dir.path + "/cert.pem", "-days", "2", "-subj", "/CN=siem.test", "-addext",
                "subjectAltName=IP:127.0.0.1",
            ]) == 0)
        #expect(
            try sh([
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.path + "/other.key", "-out",
                dir.path + "/other.pem", "-days", "2", "-subj", "/CN=other",
            ]) == 0)
        let port = try freeLoopbackPort()
        // A real TLS server (socat with OpenSSL) that appends what it receives to a file.
        let pem =
            try String(contentsOfFile: dir.path + "/cert.pem", encoding: .utf8)
            + (try String(contentsOfFile: dir.path + "/key.pem", encoding: .utf8))
        try pem.write(toFile: dir.path + "/server.pem", atomically: true, encoding: .utf8)
        let server = try ChildProcess(
            [
                "/usr/bin/socat", "-u",
                "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(dir.path)/server.pem,verify=0",
                "OPEN:\(dir.path)/received,creat,append",
            ], outputPath: dir.path + "/socat.log")
        defer { server.terminateTree() }
        eventually("the TLS server listens") { (try? RawHTTPClient(port: UInt16(port), timeout: 1)) != nil }
        // First a hub that trusts another CA: it refuses the receiver and sends nothing.
        var untrusted = AuditForwardSettings(url: "tls://127.0.0.1:\(port)")!
        untrusted.caFile = dir.path + "/other.pem"
        let wrong = try LiveHub { $0.auditForward = untrusted }
        _ = try wrong.call("POST", "/scim/v2/Users", body: person("t0@x.org", title: "Clerk"))
        eventually("the receiver refused: its certificate is not from the trusted CA") {
            let m = try wrong.call("GET", "/metrics", token: wrong.admin).text
            return m.contains("scimhub_audit_forward_connected 0") && !m.contains("forward_failures_total 0")
        }
        wrong.stop()
        #expect(!((try? String(contentsOfFile: dir.path + "/received", encoding: .utf8)) ?? "").contains("seq="))
        // Then one that trusts the receiver's certificate.
        var trusted = AuditForwardSettings(url: "tls://127.0.0.1:\(port)")!
        trusted.caFile = dir.path + "/cert.pem"
        let hub = try LiveHub { $0.auditForward = trusted }
        defer { hub.stop() }
        _ = try hub.call("POST", "/scim/v2/Users", body: person("t1@x.org", title: "Clerk"))
        eventually("entries arrive over TLS", timeout: 15) {
            let got = (try? String(contentsOfFile: dir.path + "/received", encoding: .utf8)) ?? ""
            return got.contains(#"seq="1" principal="hr" action="create""#)
        }
    }
}
