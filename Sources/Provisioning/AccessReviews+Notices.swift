// SPDX-License-Identifier: Apache-2.0
import HubBase
import Store

/// The messages reviewers get, in the write that gives them the items. Bodies hold the
/// reviewers' names, packages, counts, the campaign's name and due date and the endpoint to
/// act on: never who is reviewed, nor a reason (both may be personal data).
extension AccessReviews {
    /// `review.assigned`: one message per reviewer with how many items they have, to their
    /// address (see `addresses`) and the event's configured recipients; items left to
    /// administrators are one message to those recipients, saying why.
    func announceAssigned(_ w: any StoreWriter, _ c: ReviewCampaignRecord, _ items: [ReviewItemRecord]) throws {
        guard let notifier = engine?.notifier else { return }
        var perReviewer: [String: [String: Int]] = [:]
        for i in items {
            let names = Self.deciders(c, i)?.filter { Identifier.canonical($0) != Identifier.canonical(i.userName) }
            for r in names ?? [""] { perReviewer[r, default: [:]][i.package, default: 0] += 1 }
        }
        let due = Timestamp.format(c.due)
        for (reviewer, packages) in perReviewer.sorted(by: { $0.key < $1.key }) {
            let n = packages.values.reduce(0, +)
            let whose =
                reviewer.isEmpty
                ? "\(n) item(s) have no reviewer (no manager who is an active User, no fallback reviewer): "
                    + "administrators decide them"
                : "\(reviewer), you have \(n) item(s) to review"
            try notifier.announce(
                w, .reviewAssigned,
                [
                    "count": String(n), "campaign": c.name, "campaignId": c.id, "due": due, "whose": whose,
                    "packages": Self.packageLines(packages),
                ], to: try People.addresses(w.connection, of: [reviewer], now: clock.now()))
        }
    }

    /// `review.escalated`: one message per (old reviewer, new reviewers), to all of them.
    func announceEscalated(_ w: any StoreWriter, _ c: ReviewCampaignRecord, _ done: [(ReviewItemRecord, Route)])
        throws
    {
        guard let notifier = engine?.notifier, !done.isEmpty else { return }
        var groups: [String: (old: String, route: Route, packages: [String: Int])] = [:]
        for (i, route) in done {
            let old = i.reviewers.first ?? ""
            let key = ([old] + route.reviewers).joined(separator: "\u{1F}")
            groups[key, default: (old, route, [:])].packages[i.package, default: 0] += 1
        }
        let due = Timestamp.format(c.due)
        for (_, g) in groups.sorted(by: { $0.key < $1.key }) {
            let n = g.packages.values.reduce(0, +)
            try notifier.announce(
                w, .reviewEscalated,
                [
                    "count": String(n), "campaign": c.name, "campaignId": c.id, "due": due, "from": g.old,
                    "to": Self.destination(g.route, fallbackGroup: fallbackGroup),
                    "packages": Self.packageLines(g.packages),
                ], to: try People.addresses(w.connection, of: g.route.reviewers + [g.old], now: clock.now()))
        }
    }

    /// `review.delegated`: to the delegate.
    func announceDelegated(
        _ w: any StoreWriter, _ c: ReviewCampaignRecord, _ item: ReviewItemRecord, to: String, by: String
    ) throws {
        guard let notifier = engine?.notifier else { return }
        let due = Timestamp.format(c.due)
        try notifier.announce(
            w, .reviewDelegated,
            [
                "campaign": c.name, "campaignId": c.id, "due": due, "by": by, "delegate": to,
                "packages": Self.packageLines([item.package: 1]), "item": String(item.seq),
            ], to: try People.addresses(w.connection, of: [to], now: clock.now()))
    }

    /// "Packages: billing 1, receptionist 2".
    static func packageLines(_ packages: [String: Int]) -> String {
        "Packages: " + packages.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
