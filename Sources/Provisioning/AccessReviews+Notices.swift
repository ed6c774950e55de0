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
                w, .reviewAssigned, subject: "ScimHub: \(n) access review item(s) in '\(c.name)', due \(due)",
                text: """
                    Access review '\(c.name)', due \(due): \(whose).
                    \(Self.packageLines(packages))
                    Decide them: GET /reviews/\(c.id)/items.
                    """, to: reviewer.isEmpty ? [] : try Self.addresses(w.connection, [reviewer]))
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
                w, .reviewEscalated, subject: "ScimHub: \(n) access review item(s) escalated in '\(c.name)'",
                text: """
                    Access review '\(c.name)', due \(due): \(n) item(s) still undecided with \(g.old) went \
                    \(Self.destination(g.route, fallbackGroup: fallbackGroup)).
                    \(Self.packageLines(g.packages))
                    Decide them: GET /reviews/\(c.id)/items.
                    """, to: try Self.addresses(w.connection, g.route.reviewers + [g.old]))
        }
    }

    /// `review.delegated`: to the delegate.
    func announceDelegated(
        _ w: any StoreWriter, _ c: ReviewCampaignRecord, _ item: ReviewItemRecord, to: String, by: String
    ) throws {
        guard let notifier = engine?.notifier else { return }
        let due = Timestamp.format(c.due)
        try notifier.announce(
            w, .reviewDelegated, subject: "ScimHub: an access review item for you in '\(c.name)', due \(due)",
            text: """
                Access review '\(c.name)', due \(due): \(by) handed 1 item to \(to).
                \(Self.packageLines([item.package: 1]))
                Decide it: GET /reviews/\(c.id)/items (item \(item.seq)).
                """, to: try Self.addresses(w.connection, [to]))
    }

    /// "Packages: billing 1, receptionist 2".
    static func packageLines(_ packages: [String: Int]) -> String {
        "Packages: " + packages.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }
}
