// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import JSONCore
import LDAPConnector
import HubHarness

/// `scimhub-bench --reconcile [--people 100000]`: a hub holding `--people` people and three
/// targets each holding an account per person (plus 100 orphans, minus 100 missing): the
/// EHR test server, slapd and PostgreSQL. Each target is reconciled by the release
/// `scimhub reconcile` in its own process; wall time and the process's peak resident memory.
func runReconcileBenchmark(_ o: Options) throws {
    let n = o.people
    say(
        "scimhub-bench --reconcile: \(n) people, three targets of ~\(n) accounts, "
            + "release scimhub reconcile as a child process, \(ProcessInfo.processInfo.activeProcessorCount) cores"
    )
    let (hub, dir, rate, _, _) = try freshHub(o, count: n)
    say(String(format: "  hub loaded with Bulk at %.0f records/s", rate))
    let people = try fetchPeople(port: hub.port, count: n)
    _ = hub.stop()
    defer { dir.remove() }
    let governed = Array(people.dropLast(100))  // the last 100 get no account anywhere: "missing"
    let orphans = (0..<100).map { "orphan\($0)@elsewhere.example" }

    // EHR test server, in this process.
    let ehr = try EHRTestServer()
    ehr.start()
    defer { ehr.stop() }
    ehr.seed(
        governed.map { ($0.userName, ["displayName": $0.displayName], ["scheduling"]) }
            + orphans.map { ($0, [:], ["billing"]) })

    // slapd, loaded offline.
    var ldif = ""
    ldif.reserveCapacity(n * 260)
    func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    var members: [String] = []
    for p in governed.map({ ($0.userName, $0.displayName) }) + orphans.map({ ($0, $0) }) {
        let dn = "uid=\(LDAPEscaping.dnValue(p.0)),ou=people,dc=scimhub,dc=test"
        ldif += "dn:: \(b64(dn))\nobjectClass: inetOrgPerson\nuid:: \(b64(p.0))\ncn:: \(b64(p.1))\nsn:: \(b64(p.1))\n\n"
        members.append(dn)
    }
    ldif +=
        "dn: cn=imaging-viewer,ou=groups,dc=scimhub,dc=test\nobjectClass: groupOfNames\ncn: imaging-viewer\n"
        + members.map { "member:: \(b64($0))\n" }.joined() + "\n"
    let slapd = try SlapdServer(ldif: ldif)

    // PostgreSQL, loaded with \copy.
    let pg = try PostgresServer(durable: true)
    for ddl in AdminSchema.postgresSchema { try pg.psql(ddl) }
    let csvPath = dir.path + "/accounts.csv"
    var csv = ""
    for p in governed {
        csv += [p.userName, p.displayName, p.userName, p.department].map(csvField).joined(separator: ",") + ",true\n"
    }
    for u in orphans { csv += "\(u),,\(u),,true\n" }
    try csv.write(toFile: csvPath, atomically: true, encoding: .utf8)
    try pg.psql("\\copy accounts (user_name, display_name, email, department, enabled) FROM '\(csvPath)' CSV")
    try pg.psql("INSERT INTO account_roles (account_id, role) SELECT id, 'front-desk' FROM accounts; ANALYZE")

    // The policy: everyone holds one package granting one entitlement on each target.
    let secrets = dir.path + "/secrets"
    try FileManager.default.createDirectory(atPath: secrets, withIntermediateDirectories: true)
    try ehr.staticToken.write(toFile: secrets + "/ehr", atomically: true, encoding: .utf8)
    try slapd.rootPassword.write(toFile: secrets + "/ldap", atomically: true, encoding: .utf8)
    try pg.password.write(toFile: secrets + "/pg", atomically: true, encoding: .utf8)
    var statements = JSONObject()
    for (k, v) in AdminSchema.statements.sorted(by: { $0.key < $1.key }) { statements[k] = .string(v) }
    let admin = JSONWriter().string(
        .object(
            JSONObject([
                "dialect": .string("postgresql"),
                "connection": .string("host=127.0.0.1 port=\(pg.port) dbname=postgres user=\(pg.user)"),
                "passwordFile": .string(secrets + "/pg"), "statements": .object(statements),
            ])))
    let policy = """
        {"targets": [
          {"name": "ehr", "type": "ehr-rest", "settings": {"baseURL": "\(ehr.baseURL)", \
        "auth": {"type": "bearer", "tokenFile": "\(secrets)/ehr"}},
           "mapping": {"displayName": "displayName"}},
          {"name": "imaging", "type": "ldap", "settings": {"url": "\(slapd.url)", "bindDN": "\(slapd.rootDN)", \
        "bindPasswordFile": "\(secrets)/ldap",
             "usersBase": "\(slapd.usersBase)", "groupsBase": "\(slapd.groupsBase)", "timeoutSeconds": 60}, \
        "mapping": {"cn": "displayName"}},
          {"name": "admin", "type": "sql", "settings": \(admin),
           "mapping": {"displayName": "displayName", "email": "emails.value", \
        "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"}}
         ],
         "packages": [{"name": "staff", "rule": "userName pr", \
        "grants": {"ehr": ["scheduling"], "imaging": ["imaging-viewer"], "admin": ["front-desk"]}}]}
        """
    try policy.write(toFile: dir.path + "/policy.json", atomically: true, encoding: .utf8)

    for target in ["ehr", "imaging", "admin"] {
        let report = dir.path + "/report-\(target).json"
        let t0 = Date()
        let child = try ChildProcess(
            [
                o.binary, "reconcile", "--data", dir.path, "--policy", dir.path + "/policy.json", "--target", target,
                "--schemas", repoRoot + "/schemas", "--format", "json",
            ], outputPath: report, errorPath: report + ".log")
        let (status, rss) = child.waitWithPeakMemory()
        let elapsed = Date().timeIntervalSince(t0)
        let summary = (try? JSONParser().parse(Array((try? Data(contentsOf: URL(fileURLWithPath: report))) ?? Data())))?
            .objectValue?["summary"]?
            .objectValue?["targets"]?.objectValue?[target]?.objectValue
        let counts = (summary?["counts"]?.objectValue?.members ?? []).filter { ($0.value.numberValue?.int64 ?? 0) > 0 }
            .map { "\($0.key) \($0.value.numberValue?.int64 ?? 0)" }.joined(separator: ", ")
        say(
            String(
                format: "  %-8@ %7d accounts in %6.2f s, peak RSS %6.1f MB, exit %d; findings: %@", target as NSString,
                Int(summary?["accounts"]?.numberValue?.int64 ?? -1), elapsed, Double(rss) / 1024, status,
                counts as NSString))
    }
    slapd.stop()
    pg.stop()
}

private struct Person { var userName: String; var displayName: String; var department: String }

private func fetchPeople(port: UInt16, count: Int) throws -> [Person] {
    let c = try RawHTTPClient(port: port, timeout: 120)
    var out: [Person] = []
    var start = 1
    let attrs = "userName,displayName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
    while out.count < count {
        guard
            let r = c.request(
                "GET", "/scim/v2/Users?attributes=\(attrs)&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(token)")]),
            let resources = r.object["Resources"]?.arrayValue, !resources.isEmpty
        else { break }
        for v in resources {
            guard let o = v.objectValue, let u = o["userName"]?.stringValue else { continue }
            let dept =
                o["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]?.objectValue?["department"]?.stringValue
                ?? ""
            out.append(Person(userName: u, displayName: o["displayName"]?.stringValue ?? u, department: dept))
        }
        start += resources.count
    }
    return out
}

private func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
        ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}
