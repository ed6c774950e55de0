// SPDX-License-Identifier: Apache-2.0

/// Checks any connector against the behaviour the engine relies on: create, read, find,
/// update, grant, revoke, disable, enable, list, delete, idempotent repeats and error
/// classes. Returns the failures by name (empty means conformant) so any test framework,
/// or a command-line self-test, can call it against a real target.
public struct ConformanceKit {
    public let connector: any Connector
    /// A user name unique to this run (the kit creates and deletes it).
    public let userName: String
    /// Two entitlements the target accepts.
    public let entitlements: (String, String)
    /// Attributes the target accepts, and a second set to update to.
    public let attributes: [String: String]
    public let updatedAttributes: [String: String]

    public init(
        connector: any Connector, userName: String, entitlements: (String, String), attributes: [String: String],
        updatedAttributes: [String: String]
    ) {
        self.connector = connector
        self.userName = userName
        self.entitlements = entitlements
        self.attributes = attributes
        self.updatedAttributes = updatedAttributes
    }

    /// Runs every check; returns "check: problem" lines.
    public func run() -> [String] {
        var failures: [String] = []
        func check(_ name: String, _ ok: Bool, _ detail: @autoclosure () -> String = "") {
            if !ok { failures.append("\(name): \(detail())") }
        }
        func attempt<T>(_ name: String, _ body: () throws(ConnectorError) -> T) -> T? {
            do { return try body() } catch { failures.append("\(name): \(error)"); return nil }
        }
        let (e1, e2) = entitlements
        // A live target answers its probe, before and whatever the accounts.
        _ = attempt("probe") { () throws(ConnectorError) in try connector.probe() }
        guard
            let created = attempt(
                "create",
                { () throws(ConnectorError) in
                    try connector.create(
                        AccountSpec(userName: userName, attributes: attributes, enabled: true, entitlements: [e1]))
                })
        else { return failures }
        let id = created.id
        check("create returns an id", !id.isEmpty)
        let read = attempt("read") { () throws(ConnectorError) in try connector.read(id: id) }
        check("read finds the account", read??.userName == userName, "got \(String(describing: read??.userName))")
        check("read has the entitlement", read??.entitlements.contains(e1) == true)
        check("read has the attributes", attributes.allSatisfy { read??.attributes[$0.key] == $0.value })
        let found = attempt("find") { () throws(ConnectorError) in try connector.find(userName: userName) }
        check("find by userName", found??.id == id)
        _ = attempt("update") { () throws(ConnectorError) in try connector.update(id: id, attributes: updatedAttributes)
        }
        check(
            "update changes attributes",
            updatedAttributes.allSatisfy { (try? connector.read(id: id))??.attributes[$0.key] == $0.value })
        _ = attempt("grant") { () throws(ConnectorError) in try connector.grant(id: id, entitlement: e2) }
        _ = attempt("grant again is idempotent") { () throws(ConnectorError) in
            try connector.grant(id: id, entitlement: e2)
        }
        check("grant adds", (try? connector.read(id: id))??.entitlements == [e1, e2])
        _ = attempt("revoke") { () throws(ConnectorError) in try connector.revoke(id: id, entitlement: e1) }
        _ = attempt("revoke again is idempotent") { () throws(ConnectorError) in
            try connector.revoke(id: id, entitlement: e1)
        }
        check("revoke removes", (try? connector.read(id: id))??.entitlements == [e2])
        _ = attempt("disable") { () throws(ConnectorError) in try connector.setEnabled(id: id, false) }
        _ = attempt("disable again is idempotent") { () throws(ConnectorError) in
            try connector.setEnabled(id: id, false)
        }
        check("disable", (try? connector.read(id: id))??.enabled == false)
        _ = attempt("enable") { () throws(ConnectorError) in try connector.setEnabled(id: id, true) }
        check("enable", (try? connector.read(id: id))??.enabled == true)
        // Listing pages through everything and includes the account with its entitlements.
        var cursor: String? = nil
        var seen = false
        var pages = 0
        repeat {
            guard
                let page = attempt(
                    "list", { () throws(ConnectorError) in try connector.list(cursor: cursor, pageSize: 2) })
            else { break }
            if let a = page.accounts.first(where: { $0.id == id }) { seen = a.entitlements == [e2] }
            cursor = page.next
            pages += 1
        } while cursor != nil && pages < 10_000
        check("list includes the account with its entitlements", seen)
        // A duplicate create is a permanent error, not a retry storm.
        do {
            _ = try connector.create(AccountSpec(userName: userName, attributes: attributes))
            failures.append("duplicate create: accepted")
        } catch {
            check("duplicate create is permanent", !error.isRetryable, "\(error)")
        }
        _ = attempt("delete") { () throws(ConnectorError) in try connector.delete(id: id) }
        _ = attempt("delete again is idempotent") { () throws(ConnectorError) in try connector.delete(id: id) }
        let gone = attempt("read after delete") { () throws(ConnectorError) in try connector.read(id: id) }
        check("delete removes", gone == .some(nil))
        // Operations on a missing account are permanent errors.
        do {
            try connector.grant(id: id, entitlement: e1)
            failures.append("grant on a deleted account: accepted")
        } catch {
            check("grant on a deleted account is permanent", !error.isRetryable, "\(error)")
        }
        return failures
    }
}
