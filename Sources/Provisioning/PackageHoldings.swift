// SPDX-License-Identifier: Apache-2.0
import Store

/// Since when each person holds each package: the tenure reviewers see ("how long have they
/// had it"). The source of truth is a small table, `package_holdings(person_id, package,
/// since)`, kept by `ProvisioningEngine.enqueue`, in the write transaction of every change
/// that can change a person's packages: SCIM writes, group membership, review revokes and
/// lifts, break-glass, deadlines and policy rollouts all pass through it. Why there and not
/// elsewhere:
/// - not derived from the audit chain or the resource history: that would mean replaying a
///   person's past with past policies, per request;
/// - not from the applied-state records: those follow each target's convergence (a target
///   down for a day would shift the date) and hold only packages granting on that target,
///   while a review asks about the hub's decision, the same one that made the item.
/// The diff costs one keyed read per enqueue and writes only when a package comes or goes;
/// a reviewer's page reads one row per item. Holdings from before the table existed start
/// when they were first observed: the upgrade (from the packages last applied), the first
/// enqueue after it, or the first campaign that lists them.
enum PackageHoldings {
    /// Brings the person's recorded holdings in line with what the policy grants them now.
    /// A person who is inactive (or deleted) holds nothing: access that comes back later
    /// starts a new tenure.
    static func update(_ conn: any StoreSession, _ snapshot: PersonSnapshot, policy: Policy) throws {
        var held = Set<String>()
        if let doc = snapshot.document, Policy.isActive(doc, now: snapshot.now) {
            held = Set(
                policy.grants(
                    person: doc, groupNames: snapshot.groupNames, overrides: snapshot.overrides, now: snapshot.now
                ).map(\.package))
        }
        let recorded = snapshot.isNew ? [:] : try conn.holdings(personID: snapshot.personID)
        for package in recorded.keys where !held.contains(package) {
            try conn.removeHolding(personID: snapshot.personID, package: package)
        }
        for package in held where recorded[package] == nil {
            try conn.recordHolding(personID: snapshot.personID, package: package, since: snapshot.now)
        }
    }
}
