// SPDX-License-Identifier: Apache-2.0
import Foundation
import ConnectorKit
import EHRTestServer
import JSONCore
import LDAPConnector
import SQLConnector

/// The reference policy's three targets on real servers, for onboarding many people through
/// one or several hub nodes: the EHR test server (in this process), a real `slapd` (the imaging
/// directory) and the admin system's SQLite database, which every node on this machine opens.
/// After an onboarding, `reconcile` asks the hub to compare every target with the policy.
public final class ThreeTargets: @unchecked Sendable {
    // @unchecked Sendable: every property is set in init; the servers are thread-safe.
    public let ehr: EHRTestServer
    public let slapd: SlapdServer
    public let directory = TemporaryDirectory()
    public let adminPath: String
    /// The reference policy (`scripts/reference-policy.json`) pointed at these servers.
    public let policyFile: String

    /// Titles whose packages give each person accounts in one to three of the targets.
    public static let titles = [
        "Physician", "Registered Nurse", "Receptionist", "Radiographer", "IT Support Analyst", "Billing Specialist",
    ]

    public init() throws {
        // The reference policy reads both secrets from the environment, which hub processes inherit.
        let token = "three-targets-\(UUID().uuidString)"
        ehr = try EHRTestServer(staticToken: token)
        ehr.start()
        do {
            slapd = try SlapdServer()
        } catch {
            ehr.stop()
            directory.remove()
            throw error
        }
        setenv("SCIMHUB_EHR_TOKEN", token, 1)
        setenv("SCIMHUB_LDAP_PASSWORD", slapd.rootPassword, 1)
        adminPath = directory.path + "/admin.db"
        policyFile = directory.path + "/policy.json"
        do {
            let text = try String(contentsOfFile: repoRoot + "/scripts/reference-policy.json", encoding: .utf8)
                .replacingOccurrences(of: "http://127.0.0.1:9100", with: ehr.baseURL)
                .replacingOccurrences(of: "ldap://127.0.0.1:9389", with: slapd.url)
                .replacingOccurrences(of: "dc=clinic,dc=example", with: slapd.suffix)
                .replacingOccurrences(of: "demo-data/admin.db", with: adminPath)
            try text.write(toFile: policyFile, atomically: true, encoding: .utf8)
        } catch {
            stop()
            throw error
        }
    }

    public func stop() {
        ehr.stop()
        slapd.stop()
        directory.remove()
    }

    /// A SCIM User whose title is `titles[i % count]`, active, credentialed, at one site.
    public static func person(_ i: Int, prefix: String = "p") -> String {
        let userName = "\(prefix)\(i)@clinicas-exemplo.org"
        return
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","#
            + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"],"#
            + #""userName":"\#(userName)","displayName":"Person \#(i)","#
            + #""name":{"givenName":"Person","familyName":"N\#(i)"},"#
            + #""title":"\#(titles[i % titles.count])","active":true,"#
            + #""emails":[{"value":"\#(userName)","type":"work","primary":true}],"#
            + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":{"sites":["CLN-CEN"],"#
            + #""credentialStatus":"active"}}"#
    }

    /// Bulk bodies of `size` creates each for people `range`.
    public static func bulkBodies(_ range: Range<Int>, size: Int = 1000, prefix: String = "p") -> [String] {
        stride(from: range.lowerBound, to: range.upperBound, by: size).map { start in
            let ops = (start..<min(start + size, range.upperBound)).map {
                #"{"method":"POST","path":"/Users","bulkId":"b\#($0)","data":\#(person($0, prefix: prefix))}"#
            }
            return #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":["#
                + ops.joined(separator: ",") + "]}"
        }
    }

    /// Accounts in each target (`ehr`, `imaging`, `admin`) and how many distinct user names
    /// they have (fewer than accounts: someone got two).
    public func accounts() throws -> [String: (count: Int, distinctUserNames: Int)] {
        var ldapConfig = LDAPConfig(
            url: slapd.url, bindDN: slapd.rootDN, bindPassword: slapd.rootPassword, usersBase: slapd.usersBase,
            groupsBase: slapd.groupsBase)
        ldapConfig.attributes = ["cn"]
        var sqlConfig = SQLConfig(database: .sqlite(path: adminPath), statements: AdminSchema.statements)
        sqlConfig.attributes = AdminSchema.attributes
        let ehrNames = ehr.snapshot().keys.map { $0.lowercased() }
        return [
            "ehr": (ehrNames.count, Set(ehrNames).count),
            "imaging": try Self.userNames(LDAPConnector(config: ldapConfig)),
            "admin": try Self.userNames(SQLConnector(config: sqlConfig)),
        ]
    }

    private static func userNames(_ c: any Connector) throws -> (count: Int, distinctUserNames: Int) {
        var names: [String] = []
        var cursor: String? = nil
        repeat {
            let page = try c.list(cursor: cursor, pageSize: 1000)
            names += page.accounts.map { $0.userName.lowercased() }
            cursor = page.next
        } while cursor != nil
        return (names.count, Set(names).count)
    }

    /// True when no target has jobs waiting or dead (`GET /admin/targets` through `port`).
    public static func drained(port: UInt16, adminToken: String) -> Bool {
        guard let c = try? RawHTTPClient(port: port, timeout: 30),
            let r = c.request("GET", "/admin/targets", headers: [("Authorization", "Bearer \(adminToken)")]),
            r.status == 200, let targets = r.object["targets"]?.arrayValue, !targets.isEmpty
        else { return false }
        return targets.allSatisfy {
            let t = $0.objectValue
            return t?["enabled"] == .bool(false)
                || (t?["queueDepth"] == .int(0) && t?["deadLetters"] == .int(0) && t?["heldJobs"] == .int(0))
        }
    }

    /// Runs a report-only reconciliation of every target through `port` and returns, per
    /// target, the accounts it listed and its findings (all zero when every account is what
    /// the policy says: none missing, none extra, no drift).
    public static func reconcile(port: UInt16, adminToken: String, timeout: Double = 300) throws -> [String: (
        accounts: Int, findings: Int
    )] {
        let c = try RawHTTPClient(port: port, timeout: 60)
        let auth = [("Authorization", "Bearer \(adminToken)"), ("Content-Type", "application/json")]
        guard
            let started = c.request(
                "POST", "/admin/reconciliations", headers: auth, body: Array(#"{"mode":"report"}"#.utf8)),
            started.status == 202, let id = started.object["id"]?.stringValue
        else { throw TestError("reconciliation did not start") }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let poll = try RawHTTPClient(port: port, timeout: 60)
            guard let r = poll.request("GET", "/admin/reconciliations/\(id)", headers: auth), r.status == 200 else {
                throw TestError("reconciliation \(id) cannot be read")
            }
            switch r.object["state"]?.stringValue {
            case "done":
                var out: [String: (Int, Int)] = [:]
                for t in r.object["summary"]?.objectValue?["targets"]?.objectValue?.members ?? [] {
                    let entry = t.value.objectValue
                    let counts = entry?["counts"]?.objectValue?.members ?? []
                    out[t.key] = (
                        Int(entry?["accounts"]?.numberValue?.int64 ?? -1),
                        counts.reduce(0) { $0 + Int($1.value.numberValue?.int64 ?? 1) }
                    )
                }
                return out
            case "queued", "running", nil: Thread.sleep(forTimeInterval: 0.5)
            case let other: throw TestError("reconciliation \(id) ended \(other ?? "?"): \(r.text.prefix(500))")
            }
        }
        throw TestError("reconciliation \(id) did not finish in \(Int(timeout)) s")
    }
}
