// SPDX-License-Identifier: Apache-2.0
import Foundation
import JSONCore
import Postgres

/// Numbered schema migrations for PostgreSQL, run in order at start. Never edit one that has
/// shipped: add the next number. Version 1 is the schema SQLite reached at its version 23,
/// translated (BIGINT, DOUBLE PRECISION, BYTEA, BIGSERIAL; text compared byte-wise with
/// `COLLATE "C"`, as SQLite's BINARY collation does, so ranges and orderings agree whatever
/// the database's locale). Later SQLite migrations get a PostgreSQL version here too; their
/// numbers need not match; each says which SQLite version it follows.
enum PostgresMigrations {
    /// Key of the advisory lock that serialises migrations across nodes ("scimhub" in ASCII).
    static let lockKey: Int64 = 0x73_63_69_6D_68_75_62
    /// Key of the advisory lock under which a policy version takes its number.
    static let policyVersionLockKey: Int64 = 0x73_63_69_6D_68_75_62_01
    /// Key of the advisory lock nodes hold while they compare the policy file with the stored versions.
    static let startupLockKey: Int64 = 0x73_63_69_6D_68_75_62_02

    static let all: [(version: Int, sql: String)] = [
        (
            1,
            """
            -- from SQLite migration 1
            CREATE TABLE resources (
                seq BIGSERIAL PRIMARY KEY,          -- stable listing order
                id TEXT COLLATE "C" NOT NULL UNIQUE,
                type TEXT COLLATE "C" NOT NULL,                 -- 'User' | 'Group'
                -- lower-cased userName (RFC 7643 §4.1.1: unique, case-insensitive)
                user_name TEXT COLLATE "C",
                external_id TEXT COLLATE "C",                   -- caseExact
                display_name TEXT COLLATE "C",
                -- lower-cased displayName, Groups only (indexed lookup)
                display_name_lower TEXT COLLATE "C",
                version BIGINT NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                modified DOUBLE PRECISION NOT NULL,
                doc BYTEA NOT NULL -- canonical JSON without id, meta and computed attributes
            );
            CREATE UNIQUE INDEX resources_user_name ON resources(user_name) WHERE user_name IS NOT NULL;
            CREATE INDEX resources_external_id ON resources(type, external_id) WHERE external_id IS NOT NULL;
            CREATE INDEX resources_display_name ON resources(type, display_name_lower)
            WHERE display_name_lower IS NOT NULL;
            CREATE INDEX resources_type_seq ON resources(type, seq);
            CREATE TABLE resource_emails (
                seq BIGINT NOT NULL,               -- resources.seq
                value TEXT COLLATE "C" NOT NULL                 -- lower-cased emails.value
            );
            CREATE INDEX resource_emails_value ON resource_emails(value);
            CREATE INDEX resource_emails_seq ON resource_emails(seq);
            CREATE TABLE group_members (
                group_seq BIGINT NOT NULL,
                member_id TEXT COLLATE "C" NOT NULL,
                member_type TEXT COLLATE "C" NOT NULL,
                display TEXT COLLATE "C",                       -- as the client sent it
                PRIMARY KEY (group_seq, member_id)
            );
            CREATE INDEX group_members_member ON group_members(member_id);
            CREATE TABLE tokens (
                id TEXT COLLATE "C" PRIMARY KEY,                -- public key id, part of the token text
                principal TEXT COLLATE "C" NOT NULL,
                scopes TEXT COLLATE "C" NOT NULL,               -- comma-separated
                hash BYTEA NOT NULL,                 -- SHA-256 of the whole token
                created DOUBLE PRECISION NOT NULL,
                revoked DOUBLE PRECISION
            );
            CREATE TABLE audit (
                seq BIGINT PRIMARY KEY,
                time TEXT COLLATE "C" NOT NULL,
                principal TEXT COLLATE "C" NOT NULL,
                action TEXT COLLATE "C" NOT NULL,
                resource_type TEXT COLLATE "C" NOT NULL,
                resource_id TEXT COLLATE "C" NOT NULL,
                attributes TEXT COLLATE "C" NOT NULL,           -- changed attribute names, never values
                request_id TEXT COLLATE "C" NOT NULL,
                outcome TEXT COLLATE "C" NOT NULL,
                prev_hash BYTEA NOT NULL,
                hash BYTEA NOT NULL
            );
            CREATE INDEX audit_time ON audit(time);
            CREATE INDEX audit_resource ON audit(resource_id);

            -- from SQLite migration 2
            -- "Converge person P on target T" (one row per pair: coalescing is the primary key).
            CREATE TABLE provisioning_jobs (
                person_id TEXT COLLATE "C" NOT NULL,
                target TEXT COLLATE "C" NOT NULL,
                priority BIGINT NOT NULL,          -- 0 takes access away (runs first), 1 otherwise
                state TEXT COLLATE "C" NOT NULL,                -- 'pending' | 'dead'
                generation BIGINT NOT NULL,        -- bumped by every enqueue; a worker removes
                                                    -- only the generation it ran
                attempts BIGINT NOT NULL,
                not_before DOUBLE PRECISION NOT NULL,
                enqueued DOUBLE PRECISION NOT NULL,             -- when the oldest unapplied change arrived
                last_error TEXT COLLATE "C",
                PRIMARY KEY (person_id, target)
            );
            CREATE INDEX provisioning_jobs_ready ON provisioning_jobs(target, state, priority, not_before);
            -- What the worker last applied per pair: the account id and the desired state it converged to.
            CREATE TABLE provisioning_applied (
                person_id TEXT COLLATE "C" NOT NULL,
                target TEXT COLLATE "C" NOT NULL,
                account_id TEXT COLLATE "C",
                state BYTEA NOT NULL,                -- JSON of the desired account last applied
                applied DOUBLE PRECISION NOT NULL,
                person_deleted DOUBLE PRECISION, -- set when the person was deleted (retention clock)
                last_result TEXT COLLATE "C",
                PRIMARY KEY (person_id, target)
            );

            -- from SQLite migration 3
            -- Reconciliation: an account read from a target is matched to its person by account id.
            CREATE INDEX provisioning_applied_account ON provisioning_applied(target, account_id);
            CREATE TABLE reconciliation_runs (
                id TEXT COLLATE "C" PRIMARY KEY,
                state TEXT COLLATE "C" NOT NULL, -- queued | running | awaiting-confirmation |
                                                    -- remediating | done | failed
                mode TEXT COLLATE "C" NOT NULL,                 -- report | remediate
                targets TEXT COLLATE "C" NOT NULL,              -- JSON array
                categories TEXT COLLATE "C" NOT NULL,           -- JSON array
                requested_by TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                finished DOUBLE PRECISION,
                summary TEXT COLLATE "C" NOT NULL -- JSON: per target state, counts, reason, planned changes
            );
            CREATE INDEX reconciliation_runs_created ON reconciliation_runs(created);
            -- What a run found. Only what the report needs: ids, user name, display name,
            -- category, and the entitlement or attribute name (never values).
            CREATE TABLE reconciliation_findings (
                run_id TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                target TEXT COLLATE "C" NOT NULL,
                category TEXT COLLATE "C" NOT NULL,
                person_id TEXT COLLATE "C",
                user_name TEXT COLLATE "C" NOT NULL,
                display_name TEXT COLLATE "C",
                account_id TEXT COLLATE "C",
                detail TEXT COLLATE "C",
                PRIMARY KEY (run_id, seq)
            );
            -- People whose account a run has seen on a target (to find missing accounts without
            -- holding every id in memory).
            CREATE TABLE reconciliation_seen (
                run_id TEXT COLLATE "C" NOT NULL,
                target TEXT COLLATE "C" NOT NULL,
                person_id TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (run_id, target, person_id)
            );

            -- from SQLite migration 4
            -- Access reviews: a campaign over a target or a package, one item per (person, package).
            CREATE TABLE review_campaigns (
                id TEXT COLLATE "C" PRIMARY KEY,
                name TEXT COLLATE "C" NOT NULL,
                scope_kind TEXT COLLATE "C" NOT NULL,           -- target | package
                scope_value TEXT COLLATE "C" NOT NULL,
                -- JSON array of principal names; [] = each person's manager
                reviewers TEXT COLLATE "C" NOT NULL,
                due DOUBLE PRECISION NOT NULL,
                -- approve | revoke, applied to undecided items at the due date
                default_decision TEXT COLLATE "C" NOT NULL,
                state TEXT COLLATE "C" NOT NULL,                -- open | closed
                created_by TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                closed DOUBLE PRECISION
            );
            CREATE INDEX review_campaigns_due ON review_campaigns(state, due);
            CREATE TABLE review_items (
                campaign_id TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,
                person_id TEXT COLLATE "C" NOT NULL,
                user_name TEXT COLLATE "C" NOT NULL,
                display_name TEXT COLLATE "C",
                package TEXT COLLATE "C" NOT NULL,
                reviewer TEXT COLLATE "C",                      -- the manager's user name;
                                                    -- NULL: the campaign's reviewers, or admins
                decision TEXT COLLATE "C",                      -- approve | revoke
                reason TEXT COLLATE "C",
                decided_by TEXT COLLATE "C",
                decided DOUBLE PRECISION,
                PRIMARY KEY (campaign_id, seq)
            );
            -- Packages a review took away; the policy no longer grants them to the person.
            CREATE TABLE access_revocations (
                person_id TEXT COLLATE "C" NOT NULL,
                package TEXT COLLATE "C" NOT NULL,
                campaign_id TEXT COLLATE "C" NOT NULL,
                reason TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (person_id, package)
            );

            -- from SQLite migration 5
            -- Break-glass: a package for a bounded time. Expiry is this row, not a timer, so a
            -- hub that was down at the expiry takes the access back at start-up.
            CREATE TABLE break_glass_grants (
                id TEXT COLLATE "C" PRIMARY KEY,
                person_id TEXT COLLATE "C" NOT NULL,
                user_name TEXT COLLATE "C" NOT NULL,
                package TEXT COLLATE "C" NOT NULL,
                reason TEXT COLLATE "C" NOT NULL,
                granted_by TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                ended DOUBLE PRECISION,                         -- when the access was taken back
                review_decision TEXT COLLATE "C",               -- justified | unjustified (post-use review)
                review_reason TEXT COLLATE "C",
                reviewed_by TEXT COLLATE "C",
                reviewed DOUBLE PRECISION
            );
            CREATE INDEX break_glass_active ON break_glass_grants(person_id) WHERE ended IS NULL;
            CREATE INDEX break_glass_expiry ON break_glass_grants(expires) WHERE ended IS NULL;

            -- from SQLite migration 6
            -- Upcoming licence expiries (healthcare extension licenseExpiresAt), kept with every
            -- write of the person: a durable schedule, so nothing scans everyone to find them.
            CREATE TABLE credential_expiries (
                person_id TEXT COLLATE "C" PRIMARY KEY,
                expires DOUBLE PRECISION NOT NULL
            );
            CREATE INDEX credential_expiries_time ON credential_expiries(expires);

            -- from SQLite migration 7
            -- Which feed (principal) last set each attribute of a person, and when.
            CREATE TABLE attribute_sources (
                person_id TEXT COLLATE "C" NOT NULL,
                attribute TEXT COLLATE "C" NOT NULL,
                principal TEXT COLLATE "C" NOT NULL,
                time DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (person_id, attribute)
            );

            -- from SQLite migration 8
            -- Step-up MFA: a TOTP secret per principal (RFC 6238) and the last time step accepted,
            -- so a code is accepted once.
            CREATE TABLE mfa_secrets (
                principal TEXT COLLATE "C" PRIMARY KEY,
                secret BYTEA NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                last_step BIGINT NOT NULL DEFAULT 0
            );

            -- from SQLite migration 9
            -- Identifiers are compared in canonical form (Identifier.canonical: NFKC, case folding), no
            -- longer lower-cased only: the Swift step below recomputes the indexed columns.

            -- from SQLite migration 10
            -- Separation of duties for tokens: who minted each token (a principal, or 'cli' for the
            -- host command line) and who approved it; break-glass and multi-role tokens wait in
            -- token_requests for a second administrator.
            ALTER TABLE tokens ADD COLUMN minted_by TEXT COLLATE "C";
            -- the token that minted it (NULL: the host CLI)
            ALTER TABLE tokens ADD COLUMN minted_by_token TEXT COLLATE "C";
            ALTER TABLE tokens ADD COLUMN approved_by TEXT COLLATE "C";
                        CREATE TABLE token_requests (
                id TEXT COLLATE "C" PRIMARY KEY,
                principal TEXT COLLATE "C" NOT NULL,
                scopes TEXT COLLATE "C" NOT NULL, -- comma-separated scope names (no commas in them)
                requested_by TEXT COLLATE "C" NOT NULL,
                requested_by_token TEXT COLLATE "C" NOT NULL,   -- only this token takes the approved token
                created DOUBLE PRECISION NOT NULL,
                approved_by TEXT COLLATE "C",
                approved DOUBLE PRECISION,
                token_id TEXT COLLATE "C",                      -- once issued to the requester
                issued DOUBLE PRECISION
            );
            -- The token a break-glass grant was made with: its minter may not review the use.
            ALTER TABLE break_glass_grants ADD COLUMN granted_by_token TEXT COLLATE "C";

            -- from SQLite migration 11
            -- The dispatcher sleeps until the next pending job falls due: an index for that minimum.
            CREATE INDEX provisioning_jobs_due ON provisioning_jobs(not_before) WHERE state = 'pending';

            -- from SQLite migration 12
            -- Jobs are claimed in the database: the node running a job holds its lease until
            -- lease_until; a lease that runs out (the node died) makes the job claimable again.
            ALTER TABLE provisioning_jobs ADD COLUMN lease_owner TEXT COLLATE "C";
            ALTER TABLE provisioning_jobs ADD COLUMN lease_until DOUBLE PRECISION;
            CREATE INDEX provisioning_jobs_leased ON provisioning_jobs(lease_until) WHERE lease_until IS NOT NULL;

            -- from SQLite migration 13
            -- Every policy the hub ran, so a change can be previewed, held and audited, and a
            -- reconciliation says which policy it judged by.
            CREATE TABLE policy_versions (
                version BIGINT PRIMARY KEY,
                hash TEXT COLLATE "C" NOT NULL,                 -- hex SHA-256 of text
                text BYTEA NOT NULL,                 -- the file (secret references, never secrets)
                author TEXT COLLATE "C" NOT NULL,               -- 'policy-file' or who applied it
                created DOUBLE PRECISION NOT NULL,
                state TEXT COLLATE "C" NOT NULL,                -- 'active' | 'held' (by the change guard)
                held_reason TEXT COLLATE "C",
                confirmed_by TEXT COLLATE "C",
                rolled_out DOUBLE PRECISION                     -- everyone it changes was queued
            );
            ALTER TABLE reconciliation_runs ADD COLUMN policy_version BIGINT;

            -- from SQLite migration 14
            -- The feed guard: people each feed took access from (a sliding window), and the
            -- holds that keep removals past the limit as 'held' jobs until someone decides.
            CREATE TABLE feed_removals (
                feed TEXT COLLATE "C" NOT NULL,
                person_id TEXT COLLATE "C" NOT NULL,
                time DOUBLE PRECISION NOT NULL
            );
            CREATE INDEX feed_removals_window ON feed_removals(feed, time);
            CREATE TABLE holds (
                id TEXT COLLATE "C" PRIMARY KEY,
                feed TEXT COLLATE "C" NOT NULL,
                feed_token TEXT COLLATE "C",
                created DOUBLE PRECISION NOT NULL,
                reason TEXT COLLATE "C" NOT NULL,
                state TEXT COLLATE "C" NOT NULL,                -- 'open' | 'released' | 'discarded'
                decided_by TEXT COLLATE "C",
                decided DOUBLE PRECISION
            );
            CREATE UNIQUE INDEX holds_open_per_feed ON holds(feed) WHERE state = 'open';
            ALTER TABLE provisioning_jobs ADD COLUMN hold_id TEXT COLLATE "C";
            CREATE INDEX provisioning_jobs_held ON provisioning_jobs(hold_id) WHERE hold_id IS NOT NULL;

            -- from SQLite migration 15
            -- The notification outbox: written with the event it announces, sent with retries.
            CREATE TABLE notifications (
                id TEXT COLLATE "C" PRIMARY KEY,
                event TEXT COLLATE "C" NOT NULL,
                channel TEXT COLLATE "C" NOT NULL,              -- 'email' | 'webhook'
                recipient TEXT COLLATE "C" NOT NULL,            -- an address, or the webhook URL
                subject TEXT COLLATE "C" NOT NULL,
                body TEXT COLLATE "C" NOT NULL, -- names and packages only, never other personal data
                created DOUBLE PRECISION NOT NULL,
                state TEXT COLLATE "C" NOT NULL,                -- 'pending' | 'sent' | 'dead'
                attempts BIGINT NOT NULL,
                not_before DOUBLE PRECISION NOT NULL,
                last_error TEXT COLLATE "C",
                sent DOUBLE PRECISION
            );
            CREATE INDEX notifications_due ON notifications(not_before) WHERE state = 'pending';
            CREATE INDEX notifications_created ON notifications(created);

            -- from SQLite migration 16
            -- When a campaign's reviewers were reminded of its due date (once per campaign).
            ALTER TABLE review_campaigns ADD COLUMN reminded DOUBLE PRECISION;

            -- from SQLite migration 17
            -- Access requests: a package asked for, approved stage by stage, held until it expires.
            CREATE TABLE access_requests (
                id TEXT COLLATE "C" PRIMARY KEY,
                person_id TEXT COLLATE "C" NOT NULL,            -- the beneficiary
                user_name TEXT COLLATE "C" NOT NULL,
                package TEXT COLLATE "C" NOT NULL,
                requested_by TEXT COLLATE "C" NOT NULL,
                requested_by_token TEXT COLLATE "C",
                justification TEXT COLLATE "C" NOT NULL,
                days DOUBLE PRECISION NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                stages TEXT COLLATE "C" NOT NULL, -- JSON [{kind, value}], fixed at request time
                sod_rules TEXT COLLATE "C" NOT NULL,            -- conflicting rules, unit-separated
                extends TEXT COLLATE "C",                       -- the request an extension continues
                lapses DOUBLE PRECISION NOT NULL,
                -- pending | granted | denied | cancelled | lapsed | expired | ...
                state TEXT COLLATE "C" NOT NULL,
                stage BIGINT NOT NULL,
                approvals TEXT COLLATE "C" NOT NULL,            -- JSON [{stage, by, reason, at}]
                decided_by TEXT COLLATE "C",
                decision_reason TEXT COLLATE "C",
                decided DOUBLE PRECISION,
                granted DOUBLE PRECISION,
                expires DOUBLE PRECISION,
                notice_at DOUBLE PRECISION
            );
            CREATE INDEX access_requests_person ON access_requests(person_id, state);
            CREATE INDEX access_requests_open ON access_requests(state, expires) WHERE state IN ('pending', 'granted');
            CREATE INDEX access_requests_created ON access_requests(created);
            -- Time-limited exceptions to a separation-of-duties rule for one person.
            CREATE TABLE sod_exceptions (
                id TEXT COLLATE "C" PRIMARY KEY,
                rule TEXT COLLATE "C" NOT NULL,
                person_id TEXT COLLATE "C" NOT NULL,
                user_name TEXT COLLATE "C" NOT NULL,
                owner TEXT COLLATE "C" NOT NULL,
                reason TEXT COLLATE "C" NOT NULL,
                created_by TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                ended DOUBLE PRECISION
            );
            CREATE INDEX sod_exceptions_person ON sod_exceptions(person_id) WHERE ended IS NULL;
            CREATE INDEX sod_exceptions_expiry ON sod_exceptions(expires) WHERE ended IS NULL;

            -- from SQLite migration 18
            -- Reviews people can finish: escalation, delegation and tenure.
            -- review_items.reviewer now holds one or more principal names joined by U+001F (a
            -- fallback group's members); NULL: the campaign's named reviewers, or administrators.
            -- manager | named | fallback | admins |
            ALTER TABLE review_items ADD COLUMN assignment TEXT COLLATE "C";
                                                                      -- reassigned | delegated | escalated;
                                                                      -- NULL: before 18 (never escalated)
            -- whom an escalation took it from
            ALTER TABLE review_items ADD COLUMN original_reviewer TEXT COLLATE "C";
            ALTER TABLE review_items ADD COLUMN escalated DOUBLE PRECISION;
            ALTER TABLE review_items ADD COLUMN delegated_by TEXT COLLATE "C";
            ALTER TABLE review_items ADD COLUMN delegation_reason TEXT COLLATE "C";
            -- The minute's escalation sweep reads only the items it may escalate.
            CREATE INDEX review_items_to_escalate ON review_items(campaign_id, seq)
            WHERE assignment = 'manager' AND decision IS NULL;
            -- Since when each person holds each package (what the hub decided), kept with
            -- every enqueue: the tenure a reviewer sees, read by key, never by a scan.
            CREATE TABLE package_holdings (
                person_id TEXT COLLATE "C" NOT NULL,
                package TEXT COLLATE "C" NOT NULL,
                since DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (person_id, package)
            );

            -- from SQLite migration 19
            -- Four eyes compare people: the requester's User id, not only a name a feed may change.
            ALTER TABLE access_requests ADD COLUMN requester_id TEXT COLLATE "C";
            -- At most one pending and one granted request per person and package (an extension
            -- waits beside its grant); one exception in force per person and rule. Two requests
            -- racing each other: the second insert fails and is answered 409.
            CREATE UNIQUE INDEX access_requests_one_pending ON access_requests(person_id, package)
                WHERE state = 'pending';
            CREATE UNIQUE INDEX access_requests_one_granted ON access_requests(person_id, package)
                WHERE state = 'granted';
            CREATE UNIQUE INDEX sod_exceptions_one_in_force ON sod_exceptions(person_id, rule) WHERE ended IS NULL;

            -- from SQLite migration 20
            -- The web console: people's sessions (the cookie's SHA-256, never the cookie), sign-ins
            -- under way at the identity provider (state, nonce, PKCE verifier; used once), and
            -- local accounts for emergency sign-in (PBKDF2 password; TOTP in mfa_secrets).
            CREATE TABLE console_sessions (
                id_hash TEXT COLLATE "C" PRIMARY KEY,
                user_name TEXT COLLATE "C" NOT NULL,
                person_id TEXT COLLATE "C",
                roles TEXT COLLATE "C" NOT NULL,                -- space-separated
                method TEXT COLLATE "C" NOT NULL,               -- 'oidc' | 'local'
                csrf TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL,
                expires DOUBLE PRECISION NOT NULL,
                ended DOUBLE PRECISION
            );
            CREATE INDEX console_sessions_user ON console_sessions(user_name) WHERE ended IS NULL;
            CREATE TABLE console_sign_ins (
                state_hash TEXT COLLATE "C" PRIMARY KEY,
                nonce TEXT COLLATE "C" NOT NULL,
                verifier TEXT COLLATE "C" NOT NULL,
                return_to TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL
            );
            CREATE TABLE console_local_accounts (
                name TEXT COLLATE "C" PRIMARY KEY,
                password_hash TEXT COLLATE "C" NOT NULL,
                created DOUBLE PRECISION NOT NULL,
                disabled BIGINT NOT NULL
            );

            -- from SQLite migration 21
            -- Bearer tokens may expire, and record when they were last used (to the minute).
            ALTER TABLE tokens ADD COLUMN expires DOUBLE PRECISION;
            ALTER TABLE tokens ADD COLUMN last_used DOUBLE PRECISION;
            ALTER TABLE token_requests ADD COLUMN expires_in_days DOUBLE PRECISION;

            -- from SQLite migration 22
            -- A finished run signed off by the compliance officer: evidence, once per run.
            CREATE TABLE reconciliation_sign_offs (
                run_id TEXT COLLATE "C" PRIMARY KEY,
                signed_by TEXT COLLATE "C" NOT NULL,
                signed_at DOUBLE PRECISION NOT NULL,
                comment TEXT COLLATE "C" NOT NULL
            );

            -- from SQLite migration 23
            -- "Who has what": the holders of one package, read by package.
            CREATE INDEX package_holdings_package ON package_holdings(package, since);


            -- The audit chain's head: one row, locked (SELECT ... FOR UPDATE) by the transaction
            -- that appends, so entries from every node form one chain.
            CREATE TABLE audit_chain_head (
                id BIGINT PRIMARY KEY CHECK (id = 1),
                seq BIGINT NOT NULL,
                hash BYTEA NOT NULL
            );
            """
        ),
        (
            2,
            """
            -- SQLite 24: what an orphan account holds (JSON array of entitlement names).
            ALTER TABLE reconciliation_findings ADD COLUMN entitlements TEXT COLLATE "C";
            """
        ),
        (
            3,
            """
            -- SQLite 25: the words people are found by (PeopleSearch.terms): a prefix range per word.
            CREATE TABLE person_search_terms (
                term TEXT COLLATE "C" NOT NULL,
                seq BIGINT NOT NULL,                -- resources.seq of a User
                PRIMARY KEY (term, seq)
            );
            """
        ),
        (
            4,
            """
            -- Several nodes (no SQLite counterpart: one SQLite node needs neither). Times are the
            -- database's clock in seconds since 1970, so nodes whose clocks differ still agree.
            -- Every node's identity and its last heartbeat (GET /admin/nodes).
            CREATE TABLE nodes (
                node_id TEXT COLLATE "C" PRIMARY KEY,
                version TEXT COLLATE "C" NOT NULL,
                started DOUBLE PRECISION NOT NULL,
                heartbeat DOUBLE PRECISION NOT NULL
            );
            -- The lease on scheduled work: the holder leads until lease_until unless it renews.
            CREATE TABLE leader_lease (
                name TEXT COLLATE "C" PRIMARY KEY,
                holder TEXT COLLATE "C" NOT NULL,
                since DOUBLE PRECISION NOT NULL,
                lease_until DOUBLE PRECISION NOT NULL
            );
            """
        ),
        (
            5,
            """
            -- SQLite 26: limits that hold for the cluster, not per node (ClusterLimitStore).
            -- Leases and counters only; their writes commit with synchronous_commit = off.
            -- A target's concurrency as leased slots 0..<concurrency.
            CREATE TABLE target_slots (
                target TEXT COLLATE "C" NOT NULL,
                slot BIGINT NOT NULL,
                owner TEXT COLLATE "C",                         -- node id, NULL when free
                lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
                PRIMARY KEY (target, slot)
            );
            CREATE INDEX target_slots_owner ON target_slots(owner) WHERE owner IS NOT NULL;
            -- Nodes with jobs to run on a target and no slot: the holders keep only a fair share.
            CREATE TABLE target_slot_waiters (
                target TEXT COLLATE "C" NOT NULL,
                node TEXT COLLATE "C" NOT NULL,
                wait_until DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (target, node)
            );
            -- A target's circuit breaker (SharedCircuit).
            CREATE TABLE target_circuits (
                target TEXT COLLATE "C" PRIMARY KEY,
                state TEXT COLLATE "C" NOT NULL,                -- closed | open | half-open
                failures BIGINT NOT NULL DEFAULT 0,
                open_until DOUBLE PRECISION NOT NULL DEFAULT 0,
                probe_owner TEXT COLLATE "C",
                probe_until DOUBLE PRECISION NOT NULL DEFAULT 0,
                down_since DOUBLE PRECISION,
                announced BIGINT NOT NULL DEFAULT 0               -- 1 once announced
            );
            -- Failed authentications per key (the throttles' counters), one window each.
            CREATE TABLE auth_failures (
                key TEXT COLLATE "C" PRIMARY KEY,
                window_start DOUBLE PRECISION NOT NULL,
                failures BIGINT NOT NULL
            );
            CREATE INDEX auth_failures_window ON auth_failures(window_start);
            """
        ),
        (
            6,
            """
            -- SQLite 27: the last audit entry forwarded to the SIEM, shared by the nodes.
            CREATE TABLE audit_forward_cursor (
                id BIGINT PRIMARY KEY CHECK (id = 1),
                seq BIGINT NOT NULL
            );
            """
        ),
        (
            7,
            """
            -- A target a reconciliation run is comparing or remediating: one run per target at a
            -- time for every process on the store (nodes, the command line). The run renews its
            -- lease while it works; a process that dies lets it lapse.
            CREATE TABLE reconciliation_leases (
                target TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                lease_until DOUBLE PRECISION NOT NULL
            );
            CREATE INDEX reconciliation_leases_run ON reconciliation_leases(run_id);
            """
        ),
        (
            8,
            """
            -- The policy version in force, on the row every audited write locks at its end: a
            -- write that decided under an older version sees the newer one there and runs again
            -- (no node commits a decision under a version older than the one in force).
            ALTER TABLE audit_chain_head ADD COLUMN policy_version BIGINT NOT NULL DEFAULT 0;
            UPDATE audit_chain_head SET policy_version =
                COALESCE((SELECT max(version) FROM policy_versions WHERE state = 'active'), 0);
            """
        ),
    ]

    /// Steps that need Swift after a migration's SQL, in the same transaction.
    static let steps: [Int: @Sendable (PostgresConnection) throws -> Void] = [
        1: seedAuditHead, 3: indexPeopleSearch,
    ]

    /// Migration 3 (SQLite 25): the search words of every User there is, in pages.
    static func indexPeopleSearch(_ db: PostgresConnection) throws {
        var after: Int64 = 0
        while true {
            var rows: [(seq: Int64, doc: [UInt8])] = []
            try db.query(
                "SELECT seq, doc FROM resources WHERE type = 'User' AND seq > $1 ORDER BY seq LIMIT 1000",
                [.integer(after)], context: "people search index"
            ) { rows.append(($0.int64(0), $0.bytes(1))) }
            guard let last = rows.last else { return }
            after = last.seq
            for r in rows {
                guard case .object(let doc) = try JSONParser().parse(r.doc) else { continue }
                for t in PeopleSearch.terms(of: doc) {
                    try db.run(
                        "INSERT INTO person_search_terms(term, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        [.text(t), .integer(r.seq)], context: "people search index")
                }
            }
        }
    }

    /// The chain starts at the genesis value (what SQLite's empty audit table implies).
    static func seedAuditHead(_ db: PostgresConnection) throws {
        try db.run(
            "INSERT INTO audit_chain_head(id, seq, hash) VALUES (1, 0, $1)", [.bytes(AuditLog.genesis)],
            context: "audit head")
    }

    /// Applies every migration the database has not recorded, in order, each in its own
    /// transaction under a transaction-scoped advisory lock: nodes starting together wait
    /// for each other, and the second finds the version recorded and skips it.
    static func run(_ db: PostgresConnection, migrations: [(version: Int, sql: String)] = all) throws {
        for m in migrations.sorted(by: { $0.version < $1.version }) {
            try db.execute("BEGIN", context: "migration")
            do {
                // Another node may be running a long migration (re-indexing every person): wait
                // for it however long it takes, not the pool's lock timeout.
                try db.execute("SET LOCAL lock_timeout = 0", context: "migration lock")
                try db.run("SELECT pg_advisory_xact_lock($1)", [.integer(lockKey)], context: "migration lock")
                // Created under the lock: two nodes creating it at once would collide in the catalog.
                try db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                        + "(version BIGINT PRIMARY KEY, applied DOUBLE PRECISION NOT NULL)", context: "migration table")
                var done = false
                try db.query(
                    "SELECT 1 FROM schema_migrations WHERE version = $1", [.integer(Int64(m.version))],
                    context: "migration check"
                ) { _ in done = true }
                if !done {
                    try db.execute(m.sql, context: "migration \(m.version)")
                    try steps[m.version]?(db)
                    try db.run(
                        "INSERT INTO schema_migrations(version, applied) VALUES ($1, $2)",
                        [.integer(Int64(m.version)), .real(Date().timeIntervalSince1970)], context: "migration record")
                }
                try db.execute("COMMIT", context: "migration")
            } catch {
                try? db.execute("ROLLBACK", context: "migration")
                throw error
            }
        }
    }
}
