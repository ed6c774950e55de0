// SPDX-License-Identifier: Apache-2.0
import HubBase
import JSONCore
import SQLite

/// Numbered schema migrations, run in order at start. Never edit one that has shipped:
/// add the next number.
enum Migrations {
    static let all: [(version: Int, sql: String)] = [
        (
            1,
            """
            CREATE TABLE resources (
                seq INTEGER PRIMARY KEY,            -- stable listing order
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,                 -- 'User' | 'Group'
                user_name TEXT,                     -- lower-cased userName (RFC 7643 §4.1.1: unique, case-insensitive)
                external_id TEXT,                   -- caseExact
                display_name TEXT,
                display_name_lower TEXT,            -- lower-cased displayName, Groups only (indexed lookup)
                version INTEGER NOT NULL,
                created REAL NOT NULL,
                modified REAL NOT NULL,
                doc BLOB NOT NULL                   -- canonical JSON without id, meta and computed attributes
            );
            CREATE UNIQUE INDEX resources_user_name ON resources(user_name) WHERE user_name IS NOT NULL;
            CREATE INDEX resources_external_id ON resources(type, external_id) WHERE external_id IS NOT NULL;
            CREATE INDEX resources_display_name ON resources(type, display_name_lower)
            WHERE display_name_lower IS NOT NULL;
            CREATE INDEX resources_type_seq ON resources(type, seq);
            CREATE TABLE resource_emails (
                seq INTEGER NOT NULL,               -- resources.seq
                value TEXT NOT NULL                 -- lower-cased emails.value
            );
            CREATE INDEX resource_emails_value ON resource_emails(value);
            CREATE INDEX resource_emails_seq ON resource_emails(seq);
            CREATE TABLE group_members (
                group_seq INTEGER NOT NULL,
                member_id TEXT NOT NULL,
                member_type TEXT NOT NULL,
                display TEXT,                       -- as the client sent it
                PRIMARY KEY (group_seq, member_id)
            ) WITHOUT ROWID;
            CREATE INDEX group_members_member ON group_members(member_id);
            CREATE TABLE tokens (
                id TEXT PRIMARY KEY,                -- public key id, part of the token text
                principal TEXT NOT NULL,
                scopes TEXT NOT NULL,               -- comma-separated
                hash BLOB NOT NULL,                 -- SHA-256 of the whole token
                created REAL NOT NULL,
                revoked REAL
            );
            CREATE TABLE audit (
                seq INTEGER PRIMARY KEY,
                time TEXT NOT NULL,
                principal TEXT NOT NULL,
                action TEXT NOT NULL,
                resource_type TEXT NOT NULL,
                resource_id TEXT NOT NULL,
                attributes TEXT NOT NULL,           -- changed attribute names, never values
                request_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL
            );
            CREATE INDEX audit_time ON audit(time);
            CREATE INDEX audit_resource ON audit(resource_id);
            """
        ),
        (
            2,
            """
            -- "Converge person P on target T" (one row per pair: coalescing is the primary key).
            CREATE TABLE provisioning_jobs (
                person_id TEXT NOT NULL,
                target TEXT NOT NULL,
                priority INTEGER NOT NULL,          -- 0 takes access away (runs first), 1 otherwise
                state TEXT NOT NULL,                -- 'pending' | 'dead'
                generation INTEGER NOT NULL,        -- bumped by every enqueue; a worker removes
                                                    -- only the generation it ran
                attempts INTEGER NOT NULL,
                not_before REAL NOT NULL,
                enqueued REAL NOT NULL,             -- when the oldest unapplied change arrived
                last_error TEXT,
                PRIMARY KEY (person_id, target)
            ) WITHOUT ROWID;
            CREATE INDEX provisioning_jobs_ready ON provisioning_jobs(target, state, priority, not_before);
            -- What the worker last applied per pair: the account id and the desired state it converged to.
            CREATE TABLE provisioning_applied (
                person_id TEXT NOT NULL,
                target TEXT NOT NULL,
                account_id TEXT,
                state BLOB NOT NULL,                -- JSON of the desired account last applied
                applied REAL NOT NULL,
                person_deleted REAL,                -- set when the person was deleted (retention clock)
                last_result TEXT,
                PRIMARY KEY (person_id, target)
            ) WITHOUT ROWID;
            """
        ),
        (
            3,
            """
            -- Reconciliation: an account read from a target is matched to its person by account id.
            CREATE INDEX provisioning_applied_account ON provisioning_applied(target, account_id);
            CREATE TABLE reconciliation_runs (
                id TEXT PRIMARY KEY,
                state TEXT NOT NULL,                -- queued | running | awaiting-confirmation |
                                                    -- remediating | done | failed
                mode TEXT NOT NULL,                 -- report | remediate
                targets TEXT NOT NULL,              -- JSON array
                categories TEXT NOT NULL,           -- JSON array
                requested_by TEXT NOT NULL,
                created REAL NOT NULL,
                finished REAL,
                summary TEXT NOT NULL               -- JSON: per target state, counts, reason, planned changes
            );
            CREATE INDEX reconciliation_runs_created ON reconciliation_runs(created);
            -- What a run found. Only what the report needs: ids, user name, display name,
            -- category, and the entitlement or attribute name (never values).
            CREATE TABLE reconciliation_findings (
                run_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                target TEXT NOT NULL,
                category TEXT NOT NULL,
                person_id TEXT,
                user_name TEXT NOT NULL,
                display_name TEXT,
                account_id TEXT,
                detail TEXT,
                PRIMARY KEY (run_id, seq)
            ) WITHOUT ROWID;
            -- People whose account a run has seen on a target (to find missing accounts without
            -- holding every id in memory).
            CREATE TABLE reconciliation_seen (
                run_id TEXT NOT NULL,
                target TEXT NOT NULL,
                person_id TEXT NOT NULL,
                PRIMARY KEY (run_id, target, person_id)
            ) WITHOUT ROWID;
            """
        ),
        (
            4,
            """
            -- Access reviews: a campaign over a target or a package, one item per (person, package).
            CREATE TABLE review_campaigns (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                scope_kind TEXT NOT NULL,           -- target | package
                scope_value TEXT NOT NULL,
                reviewers TEXT NOT NULL,            -- JSON array of principal names; [] = each person's manager
                due REAL NOT NULL,
                default_decision TEXT NOT NULL,     -- approve | revoke, applied to undecided items at the due date
                state TEXT NOT NULL,                -- open | closed
                created_by TEXT NOT NULL,
                created REAL NOT NULL,
                closed REAL
            );
            CREATE INDEX review_campaigns_due ON review_campaigns(state, due);
            CREATE TABLE review_items (
                campaign_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                person_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                display_name TEXT,
                package TEXT NOT NULL,
                reviewer TEXT,                      -- the manager's user name;
                                                    -- NULL: the campaign's reviewers, or admins
                decision TEXT,                      -- approve | revoke
                reason TEXT,
                decided_by TEXT,
                decided REAL,
                PRIMARY KEY (campaign_id, seq)
            ) WITHOUT ROWID;
            -- Packages a review took away; the policy no longer grants them to the person.
            CREATE TABLE access_revocations (
                person_id TEXT NOT NULL,
                package TEXT NOT NULL,
                campaign_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                created REAL NOT NULL,
                PRIMARY KEY (person_id, package)
            ) WITHOUT ROWID;
            """
        ),
        (
            5,
            """
            -- Break-glass: a package for a bounded time. Expiry is this row, not a timer, so a
            -- hub that was down at the expiry takes the access back at start-up.
            CREATE TABLE break_glass_grants (
                id TEXT PRIMARY KEY,
                person_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                package TEXT NOT NULL,
                reason TEXT NOT NULL,
                granted_by TEXT NOT NULL,
                created REAL NOT NULL,
                expires REAL NOT NULL,
                ended REAL,                         -- when the access was taken back
                review_decision TEXT,               -- justified | unjustified (post-use review)
                review_reason TEXT,
                reviewed_by TEXT,
                reviewed REAL
            );
            CREATE INDEX break_glass_active ON break_glass_grants(person_id) WHERE ended IS NULL;
            CREATE INDEX break_glass_expiry ON break_glass_grants(expires) WHERE ended IS NULL;
            """
        ),
        (
            6,
            """
            -- Upcoming licence expiries (healthcare extension licenseExpiresAt), kept with every
            -- write of the person: a durable schedule, so nothing scans everyone to find them.
            CREATE TABLE credential_expiries (
                person_id TEXT PRIMARY KEY,
                expires REAL NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX credential_expiries_time ON credential_expiries(expires);
            """
        ),
        (
            7,
            """
            -- Which feed (principal) last set each attribute of a person, and when.
            CREATE TABLE attribute_sources (
                person_id TEXT NOT NULL,
                attribute TEXT NOT NULL,
                principal TEXT NOT NULL,
                time REAL NOT NULL,
                PRIMARY KEY (person_id, attribute)
            ) WITHOUT ROWID;
            """
        ),
        (
            8,
            """
            -- Step-up MFA: a TOTP secret per principal (RFC 6238) and the last time step accepted,
            -- so a code is accepted once.
            CREATE TABLE mfa_secrets (
                principal TEXT PRIMARY KEY,
                secret BLOB NOT NULL,
                created REAL NOT NULL,
                last_step INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            """
        ),
        (
            9,
            """
            -- Identifiers are compared in canonical form (Identifier.canonical: NFKC, case folding), no
            -- longer lower-cased only: the Swift step below recomputes the indexed columns.
            """
        ),
        (
            10,
            """
            -- Separation of duties for tokens: who minted each token (a principal, or 'cli' for the
            -- host command line) and who approved it; break-glass and multi-role tokens wait in
            -- token_requests for a second administrator.
            ALTER TABLE tokens ADD COLUMN minted_by TEXT;
            ALTER TABLE tokens ADD COLUMN minted_by_token TEXT;   -- the token that minted it (NULL: the host CLI)
            ALTER TABLE tokens ADD COLUMN approved_by TEXT;
            -- Tokens from before: their minter from the audit chain (token.create by whom).
            UPDATE tokens SET minted_by = (SELECT a.principal FROM audit a
                                           WHERE a.action = 'token.create' AND a.resource_id = tokens.id
                                           ORDER BY a.seq LIMIT 1);
            CREATE TABLE token_requests (
                id TEXT PRIMARY KEY,
                principal TEXT NOT NULL,
                scopes TEXT NOT NULL,               -- comma-separated scope names (no commas in them)
                requested_by TEXT NOT NULL,
                requested_by_token TEXT NOT NULL,   -- only this token takes the approved token
                created REAL NOT NULL,
                approved_by TEXT,
                approved REAL,
                token_id TEXT,                      -- once issued to the requester
                issued REAL
            ) WITHOUT ROWID;
            -- The token a break-glass grant was made with: its minter may not review the use.
            ALTER TABLE break_glass_grants ADD COLUMN granted_by_token TEXT;
            """
        ),
        (
            11,
            """
            -- The dispatcher sleeps until the next pending job falls due: an index for that minimum.
            CREATE INDEX provisioning_jobs_due ON provisioning_jobs(not_before) WHERE state = 'pending';
            """
        ),
        (
            12,
            """
            -- Jobs are claimed in the database: the node running a job holds its lease until
            -- lease_until; a lease that runs out (the node died) makes the job claimable again.
            ALTER TABLE provisioning_jobs ADD COLUMN lease_owner TEXT;
            ALTER TABLE provisioning_jobs ADD COLUMN lease_until REAL;
            CREATE INDEX provisioning_jobs_leased ON provisioning_jobs(lease_until) WHERE lease_until IS NOT NULL;
            """
        ),
        (
            13,
            """
            -- Every policy the hub ran, so a change can be previewed, held and audited, and a
            -- reconciliation says which policy it judged by.
            CREATE TABLE policy_versions (
                version INTEGER PRIMARY KEY,
                hash TEXT NOT NULL,                 -- hex SHA-256 of text
                text BLOB NOT NULL,                 -- the file (secret references, never secrets)
                author TEXT NOT NULL,               -- 'policy-file' or who applied it
                created REAL NOT NULL,
                state TEXT NOT NULL,                -- 'active' | 'held' (by the change guard)
                held_reason TEXT,
                confirmed_by TEXT,
                rolled_out REAL                     -- everyone it changes was queued
            );
            ALTER TABLE reconciliation_runs ADD COLUMN policy_version INTEGER;
            """
        ),
        (
            14,
            """
            -- The feed guard: people each feed took access from (a sliding window), and the
            -- holds that keep removals past the limit as 'held' jobs until someone decides.
            CREATE TABLE feed_removals (
                feed TEXT NOT NULL,
                person_id TEXT NOT NULL,
                time REAL NOT NULL
            );
            CREATE INDEX feed_removals_window ON feed_removals(feed, time);
            CREATE TABLE holds (
                id TEXT PRIMARY KEY,
                feed TEXT NOT NULL,
                feed_token TEXT,
                created REAL NOT NULL,
                reason TEXT NOT NULL,
                state TEXT NOT NULL,                -- 'open' | 'released' | 'discarded'
                decided_by TEXT,
                decided REAL
            ) WITHOUT ROWID;
            CREATE UNIQUE INDEX holds_open_per_feed ON holds(feed) WHERE state = 'open';
            ALTER TABLE provisioning_jobs ADD COLUMN hold_id TEXT;
            CREATE INDEX provisioning_jobs_held ON provisioning_jobs(hold_id) WHERE hold_id IS NOT NULL;
            """
        ),
        (
            15,
            """
            -- The notification outbox: written with the event it announces, sent with retries.
            CREATE TABLE notifications (
                id TEXT PRIMARY KEY,
                event TEXT NOT NULL,
                channel TEXT NOT NULL,              -- 'email' | 'webhook'
                recipient TEXT NOT NULL,            -- an address, or the webhook URL
                subject TEXT NOT NULL,
                body TEXT NOT NULL,                 -- names and packages only, never other personal data
                created REAL NOT NULL,
                state TEXT NOT NULL,                -- 'pending' | 'sent' | 'dead'
                attempts INTEGER NOT NULL,
                not_before REAL NOT NULL,
                last_error TEXT,
                sent REAL
            ) WITHOUT ROWID;
            CREATE INDEX notifications_due ON notifications(not_before) WHERE state = 'pending';
            CREATE INDEX notifications_created ON notifications(created);
            """
        ),
        (
            16,
            """
            -- When a campaign's reviewers were reminded of its due date (once per campaign).
            ALTER TABLE review_campaigns ADD COLUMN reminded REAL;
            """
        ),
        (
            17,
            """
            -- Access requests: a package asked for, approved stage by stage, held until it expires.
            CREATE TABLE access_requests (
                id TEXT PRIMARY KEY,
                person_id TEXT NOT NULL,            -- the beneficiary
                user_name TEXT NOT NULL,
                package TEXT NOT NULL,
                requested_by TEXT NOT NULL,
                requested_by_token TEXT,
                justification TEXT NOT NULL,
                days REAL NOT NULL,
                created REAL NOT NULL,
                stages TEXT NOT NULL,               -- JSON [{kind, value}], fixed at request time
                sod_rules TEXT NOT NULL,            -- conflicting rules, unit-separated
                extends TEXT,                       -- the request an extension continues
                lapses REAL NOT NULL,
                state TEXT NOT NULL,                -- pending | granted | denied | cancelled | lapsed | expired | ...
                stage INTEGER NOT NULL,
                approvals TEXT NOT NULL,            -- JSON [{stage, by, reason, at}]
                decided_by TEXT,
                decision_reason TEXT,
                decided REAL,
                granted REAL,
                expires REAL,
                notice_at REAL
            ) WITHOUT ROWID;
            CREATE INDEX access_requests_person ON access_requests(person_id, state);
            CREATE INDEX access_requests_open ON access_requests(state, expires) WHERE state IN ('pending', 'granted');
            CREATE INDEX access_requests_created ON access_requests(created);
            -- Time-limited exceptions to a separation-of-duties rule for one person.
            CREATE TABLE sod_exceptions (
                id TEXT PRIMARY KEY,
                rule TEXT NOT NULL,
                person_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                owner TEXT NOT NULL,
                reason TEXT NOT NULL,
                created_by TEXT NOT NULL,
                created REAL NOT NULL,
                expires REAL NOT NULL,
                ended REAL
            ) WITHOUT ROWID;
            CREATE INDEX sod_exceptions_person ON sod_exceptions(person_id) WHERE ended IS NULL;
            CREATE INDEX sod_exceptions_expiry ON sod_exceptions(expires) WHERE ended IS NULL;
            """
        ),
        (
            18,
            """
            -- Reviews people can finish: escalation, delegation and tenure.
            -- review_items.reviewer now holds one or more principal names joined by U+001F (a
            -- fallback group's members); NULL: the campaign's named reviewers, or administrators.
            ALTER TABLE review_items ADD COLUMN assignment TEXT;       -- manager | named | fallback | admins |
                                                                      -- reassigned | delegated | escalated;
                                                                      -- NULL: before 18 (never escalated)
            ALTER TABLE review_items ADD COLUMN original_reviewer TEXT; -- whom an escalation took it from
            ALTER TABLE review_items ADD COLUMN escalated REAL;
            ALTER TABLE review_items ADD COLUMN delegated_by TEXT;
            ALTER TABLE review_items ADD COLUMN delegation_reason TEXT;
            -- The minute's escalation sweep reads only the items it may escalate.
            CREATE INDEX review_items_to_escalate ON review_items(campaign_id, seq)
            WHERE assignment = 'manager' AND decision IS NULL;
            -- Since when each person holds each package (what the hub decided), kept with
            -- every enqueue: the tenure a reviewer sees, read by key, never by a scan.
            CREATE TABLE package_holdings (
                person_id TEXT NOT NULL,
                package TEXT NOT NULL,
                since REAL NOT NULL,
                PRIMARY KEY (person_id, package)
            ) WITHOUT ROWID;
            """ + holdingsBackfill
        ),
        (
            19,
            """
            -- Four eyes compare people: the requester's User id, not only a name a feed may change.
            ALTER TABLE access_requests ADD COLUMN requester_id TEXT;
            -- At most one pending and one granted request per person and package (an extension
            -- waits beside its grant); one exception in force per person and rule. Two requests
            -- racing each other: the second insert fails and is answered 409.
            CREATE UNIQUE INDEX access_requests_one_pending ON access_requests(person_id, package)
                WHERE state = 'pending';
            CREATE UNIQUE INDEX access_requests_one_granted ON access_requests(person_id, package)
                WHERE state = 'granted';
            CREATE UNIQUE INDEX sod_exceptions_one_in_force ON sod_exceptions(person_id, rule) WHERE ended IS NULL;
            """
        ),
        (
            20,
            """
            -- The web console: people's sessions (the cookie's SHA-256, never the cookie), sign-ins
            -- under way at the identity provider (state, nonce, PKCE verifier; used once), and
            -- local accounts for emergency sign-in (PBKDF2 password; TOTP in mfa_secrets).
            CREATE TABLE console_sessions (
                id_hash TEXT PRIMARY KEY,
                user_name TEXT NOT NULL,
                person_id TEXT,
                roles TEXT NOT NULL,                -- space-separated
                method TEXT NOT NULL,               -- 'oidc' | 'local'
                csrf TEXT NOT NULL,
                created REAL NOT NULL,
                last_seen REAL NOT NULL,
                expires REAL NOT NULL,
                ended REAL
            ) WITHOUT ROWID;
            CREATE INDEX console_sessions_user ON console_sessions(user_name) WHERE ended IS NULL;
            CREATE TABLE console_sign_ins (
                state_hash TEXT PRIMARY KEY,
                nonce TEXT NOT NULL,
                verifier TEXT NOT NULL,
                return_to TEXT NOT NULL,
                created REAL NOT NULL
            ) WITHOUT ROWID;
            CREATE TABLE console_local_accounts (
                name TEXT PRIMARY KEY,
                password_hash TEXT NOT NULL,
                created REAL NOT NULL,
                disabled INTEGER NOT NULL
            ) WITHOUT ROWID;
            """
        ),
        (
            21,
            """
            -- Bearer tokens may expire, and record when they were last used (to the minute).
            ALTER TABLE tokens ADD COLUMN expires REAL;
            ALTER TABLE tokens ADD COLUMN last_used REAL;
            ALTER TABLE token_requests ADD COLUMN expires_in_days REAL;
            """
        ),
        (
            22,
            """
            -- A finished run signed off by the compliance officer: evidence, once per run.
            CREATE TABLE reconciliation_sign_offs (
                run_id TEXT PRIMARY KEY,
                signed_by TEXT NOT NULL,
                signed_at REAL NOT NULL,
                comment TEXT NOT NULL
            ) WITHOUT ROWID;
            """
        ),
        (
            23,
            """
            -- "Who has what": the holders of one package, read by package.
            CREATE INDEX package_holdings_package ON package_holdings(package, since);
            """
        ),
        (
            24,
            """
            -- What an orphan account holds (JSON array of entitlement names): the report shows it.
            ALTER TABLE reconciliation_findings ADD COLUMN entitlements TEXT;
            """
        ),
        (
            25,
            """
            -- The words people are found by (PeopleSearch.terms): a prefix range per query word.
            CREATE TABLE person_search_terms (
                term TEXT NOT NULL,
                seq INTEGER NOT NULL,              -- resources.seq of a User
                PRIMARY KEY (term, seq)
            ) WITHOUT ROWID;
            """
        ),
        (
            26,
            """
            -- Limits that hold for every node sharing the store (ClusterLimitStore); one SQLite
            -- node uses them the same way. Leases and counters only: nothing here is history.
            -- A target's concurrency as leased slots 0..<concurrency.
            CREATE TABLE target_slots (
                target TEXT NOT NULL,
                slot INTEGER NOT NULL,
                owner TEXT,                        -- node id, NULL when free
                lease_until REAL NOT NULL DEFAULT 0,
                PRIMARY KEY (target, slot)
            ) WITHOUT ROWID;
            CREATE INDEX target_slots_owner ON target_slots(owner) WHERE owner IS NOT NULL;
            -- Nodes with jobs to run on a target and no slot: the holders keep only a fair share.
            CREATE TABLE target_slot_waiters (
                target TEXT NOT NULL,
                node TEXT NOT NULL,
                wait_until REAL NOT NULL,
                PRIMARY KEY (target, node)
            ) WITHOUT ROWID;
            -- A target's circuit breaker (SharedCircuit).
            CREATE TABLE target_circuits (
                target TEXT PRIMARY KEY,
                state TEXT NOT NULL,               -- closed | open | half-open
                failures INTEGER NOT NULL DEFAULT 0,
                open_until REAL NOT NULL DEFAULT 0,
                probe_owner TEXT,
                probe_until REAL NOT NULL DEFAULT 0,
                down_since REAL,
                announced INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID;
            -- Failed authentications per key (the throttles' counters), one window each.
            CREATE TABLE auth_failures (
                key TEXT PRIMARY KEY,
                window_start REAL NOT NULL,
                failures INTEGER NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX auth_failures_window ON auth_failures(window_start);
            """
        ),
        (
            27,
            """
            -- The last audit entry forwarded to the SIEM (AuditForwarder), in the store so that a
            -- node that becomes leader goes on from where the last one stopped.
            CREATE TABLE audit_forward_cursor (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq INTEGER NOT NULL
            );
            """
        ),
        (
            28,
            """
            -- A target a reconciliation run is comparing or remediating: one run per target at a
            -- time for every process on the store (nodes, the command line). The run renews its
            -- lease while it works; a process that dies lets it lapse.
            CREATE TABLE reconciliation_leases (
                target TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                lease_until REAL NOT NULL
            ) WITHOUT ROWID;
            CREATE INDEX reconciliation_leases_run ON reconciliation_leases(run_id);
            """
        ),
    ]

    /// Migration 18: holdings from before are first observed at the upgrade, from the
    /// packages last applied to each living person's enabled accounts (the engine corrects
    /// them at the person's next change).
    static let holdingsBackfill = """
        INSERT OR IGNORE INTO package_holdings(person_id, package, since)
        SELECT a.person_id, p.value, CAST(strftime('%s', 'now') AS REAL)
        FROM provisioning_applied a, json_each(CAST(a.state AS TEXT), '$.packages') p
        WHERE a.person_deleted IS NULL AND json_extract(CAST(a.state AS TEXT), '$.enabled') = 1;
        """

    /// Steps that need Swift after a migration's SQL, in the same transaction.
    static let steps: [Int: @Sendable (SQLiteConnection) throws -> Void] = [
        9: recomputeCanonicalIdentifiers, 25: indexPeopleSearch,
    ]

    /// Migration 25: the search words of every User there is, in pages.
    static func indexPeopleSearch(_ db: SQLiteConnection) throws {
        var after: Int64 = 0
        while true {
            var rows: [(seq: Int64, doc: [UInt8])] = []
            try db.query(
                "SELECT seq, doc FROM resources WHERE type = 'User' AND seq > ? ORDER BY seq LIMIT 1000",
                [.integer(after)]
            ) { rows.append(($0.int64(0), $0.blob(1))) }
            guard let last = rows.last else { return }
            after = last.seq
            for r in rows {
                guard case .object(let doc) = try JSONParser().parse(r.doc) else { continue }
                for t in PeopleSearch.terms(of: doc) {
                    try db.run(
                        "INSERT OR IGNORE INTO person_search_terms(term, seq) VALUES (?, ?)",
                        [.text(t), .integer(r.seq)])
                }
            }
        }
    }

    /// Migration 9: user names, group names and e-mail addresses indexed in canonical form.
    /// Two people whose user names only a target told apart used to coexist; they cannot be
    /// migrated silently, so the hub refuses to start and names their ids.
    static func recomputeCanonicalIdentifiers(_ db: SQLiteConnection) throws {
        var seen: [String: String] = [:]
        try db.run("UPDATE resources SET user_name = NULL")
        try db.run("DELETE FROM resource_emails")
        // In pages, so a large store is not held in memory at once.
        var after: Int64 = 0
        while true {
            var rows: [(seq: Int64, id: String, type: String, doc: [UInt8])] = []
            try db.query(
                "SELECT seq, id, type, doc FROM resources WHERE seq > ? ORDER BY seq LIMIT 1000", [.integer(after)]
            ) {
                rows.append(($0.int64(0), $0.text(1) ?? "", $0.text(2) ?? "", $0.blob(3)))
            }
            guard let last = rows.last else { return }
            after = last.seq
            for r in rows { try reindex(db, r, &seen) }
        }
    }

    private static func reindex(
        _ db: SQLiteConnection, _ r: (seq: Int64, id: String, type: String, doc: [UInt8]),
        _ seen: inout [String: String]
    ) throws {
        guard case .object(let doc) = try JSONParser().parse(r.doc) else { return }
        if r.type == "User", let u = doc["userName"]?.stringValue {
            let canonical = Identifier.canonical(u)
            if let other = seen[canonical] {
                throw StoreError(
                    "migration 9: Users \(other) and \(r.id) have user names that differ only in case, width or "
                        + "Unicode form; rename one (with the previous version) and start again")
            }
            seen[canonical] = r.id
            try db.run("UPDATE resources SET user_name = ? WHERE seq = ?", [.text(canonical), .integer(r.seq)])
        }
        if r.type != "User", let d = doc["displayName"]?.stringValue {
            try db.run(
                "UPDATE resources SET display_name_lower = ? WHERE seq = ?",
                [.text(Identifier.canonical(d)), .integer(r.seq)])
        }
        let emails = Set(
            (doc["emails"]?.arrayValue ?? []).compactMap {
                $0.objectValue?["value"]?.stringValue.map(Identifier.canonical)
            })
        for e in emails {
            try db.run("INSERT INTO resource_emails(seq, value) VALUES (?, ?)", [.integer(r.seq), .text(e)])
        }
    }

    /// Applies every migration the database has not recorded, in order, each in its own
    /// transaction. Recorded versions, not the highest one: a number left free for a branch
    /// still runs when it lands after a higher one did.
    static func run(_ db: SQLiteConnection, migrations: [(version: Int, sql: String)] = all) throws {
        try db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)")
        var applied = Set<Int>()
        try db.query("SELECT version FROM schema_migrations") { applied.insert(Int($0.int64(0))) }
        for m in migrations.sorted(by: { $0.version < $1.version }) where !applied.contains(m.version) {
            try db.execute("BEGIN IMMEDIATE")
            do {
                try db.execute(m.sql)
                try steps[m.version]?(db)
                try db.run(
                    "INSERT INTO schema_migrations(version, applied) VALUES (?, datetime('now'))",
                    [.integer(Int64(m.version))])
                try db.execute("COMMIT")
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }
}
