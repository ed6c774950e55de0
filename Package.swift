// swift-tools-version:6.0
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

/// Settings every Swift target shares: Swift 6 language mode and explicit `any`.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ScimHub",
    products: [
        .executable(name: "scimhub", targets: ["scimhub"]),
        .executable(name: "scimhub-bench", targets: ["scimhub-bench"]),
        .executable(name: "scimhub-ehr", targets: ["scimhub-ehr"]),
    ],
    targets: [
        // MARK: - C libraries from Debian -dev packages
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        /// libssl: TLS on the hub's own listener.
        .systemLibrary(name: "CTLS", pkgConfig: "libssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLDAP", pkgConfig: "ldap", providers: [.apt(["libldap-dev"])]),
        .systemLibrary(name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        /// glibc's epoll, eventfd and socket headers (Glibc's module map leaves epoll out).
        .systemLibrary(name: "CLinux"),

        // MARK: - Foundations
        // libm: Double rounding in JSONNumber needs it when no Foundation is linked.
        .target(name: "JSONCore", swiftSettings: swiftSettings, linkerSettings: [.linkedLibrary("m")]),
        .target(name: "HubLog", swiftSettings: swiftSettings),
        /// Canonical identifiers, RFC 3339 timestamps and the clock: shared by every layer.
        .target(name: "HubBase", swiftSettings: swiftSettings),
        .target(name: "HubCrypto", dependencies: ["CCrypto"], swiftSettings: swiftSettings),
        /// OpenID Connect sign-in, the relying party's checks: JWS, JWK, ID tokens, PKCE (no HTTP).
        .target(name: "OIDC", dependencies: ["HubCrypto", "JSONCore", "CCrypto"], swiftSettings: swiftSettings),
        .target(name: "SQLite", dependencies: ["CSQLite"], swiftSettings: swiftSettings),
        /// PostgreSQL over libpq: connections, bound statements, typed errors (SQLSTATE).
        .target(name: "Postgres", dependencies: ["CPostgres"], swiftSettings: swiftSettings),
        .target(name: "HTTPServer", dependencies: ["CLinux", "CTLS", "HubLog"], swiftSettings: swiftSettings),
        /// Syslog over TCP or TLS (RFC 5424 messages, RFC 6587 framing, RFC 5425): the audit forwarder's client.
        .target(name: "Syslog", dependencies: ["CLinux", "CTLS"], swiftSettings: swiftSettings),

        // MARK: - Provisioning
        /// The connector plugin API and its conformance kit.
        .target(name: "ConnectorKit", dependencies: ["JSONCore"], swiftSettings: swiftSettings),
        /// A small EHR user API on our HTTP module, with fault injection, for tests and the demo.
        .target(name: "EHRTestServer", dependencies: ["HTTPServer", "JSONCore", "HubLog"], swiftSettings: swiftSettings),
        /// Blocking HTTP(S) over libcurl with connection reuse, shared by the REST and SCIM connectors.
        .target(name: "CurlHTTP", dependencies: ["CCurl", "ConnectorKit", "JSONCore"], swiftSettings: swiftSettings),
        /// EHR over REST (libcurl).
        .target(name: "EHRRestConnector", dependencies: ["ConnectorKit", "CurlHTTP", "JSONCore"], path: "connectors/EHRRest", swiftSettings: swiftSettings),
        /// Any SCIM 2.0 service provider (libcurl).
        .target(name: "SCIMOutConnector", dependencies: ["ConnectorKit", "CurlHTTP", "JSONCore"], path: "connectors/SCIMOut", swiftSettings: swiftSettings),

        /// A directory over LDAP (OpenLDAP's libldap).
        .target(name: "LDAPConnector", dependencies: ["CLDAP", "ConnectorKit", "JSONCore"], path: "connectors/LDAP", swiftSettings: swiftSettings),

        /// An application's own tables over SQL: PostgreSQL (libpq) or SQLite.
        .target(name: "SQLConnector", dependencies: ["Postgres", "SQLite", "ConnectorKit", "JSONCore"], path: "connectors/SQL", swiftSettings: swiftSettings),

        /// Policy, desired state, the durable convergence queue and its workers.
        .target(name: "Provisioning", dependencies: ["HubBase", "SCIM", "Store", "ConnectorKit", "CurlHTTP", "JSONCore", "HubLog", "HubCrypto"], swiftSettings: swiftSettings),

        // MARK: - The hub
        .target(name: "SCIM", dependencies: ["HubBase", "JSONCore"], swiftSettings: swiftSettings),
        .target(name: "Store", dependencies: ["HubBase", "SQLite", "Postgres", "JSONCore", "HubCrypto", "HubLog"], swiftSettings: swiftSettings),
        .target(name: "Hub", dependencies: ["HubBase", "HTTPServer", "SCIM", "Store", "JSONCore", "HubCrypto", "HubLog", "Provisioning", "ConnectorKit", "OIDC", "CurlHTTP", "Syslog", "Postgres"],
                swiftSettings: swiftSettings),
        .executableTarget(name: "scimhub", dependencies: ["HubBase", "Hub", "JSONCore", "CLinux", "ConnectorKit", "Provisioning", "Store", "SCIM", "HubLog", "HubCrypto", "Postgres",
                                                        "EHRRestConnector", "SCIMOutConnector", "LDAPConnector", "SQLConnector"], swiftSettings: swiftSettings),
        /// libFuzzer targets (scripts/fuzz): the HTTP decoder, JSON, filters, PATCH, LDAP
        /// escaping and ID tokens. Without -DFUZZING it replays corpora (scripts/test).
        .executableTarget(name: "scimhub-fuzz", dependencies: ["HTTPServer", "JSONCore", "SCIM", "OIDC", "LDAPConnector"],
                          swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]),
        /// The EHR test server as a process (demo, benchmarks).
        .executableTarget(name: "scimhub-ehr", dependencies: ["EHRTestServer", "HubLog"], swiftSettings: swiftSettings),
        /// Child processes, real servers (slapd, PostgreSQL) and a raw HTTP client, shared by the
        /// benchmark and the tests.
        .target(name: "HubHarness", dependencies: ["JSONCore", "CLinux", "ConnectorKit", "EHRTestServer", "LDAPConnector", "SQLConnector"], swiftSettings: swiftSettings),
        /// The benchmark drives a real `scimhub` child process over loopback with HubHarness's raw client.
        .executableTarget(name: "scimhub-bench", dependencies: ["HubBase", "JSONCore", "HubHarness", "EHRTestServer", "ConnectorKit", "LDAPConnector", "SQLConnector", "SQLite", "Provisioning", "Store", "HubLog", "HubCrypto"], swiftSettings: swiftSettings),

        // MARK: - Tests
        /// Helpers shared by test targets: a raw-socket HTTP client, a live hub on port 0, temp folders.
        .target(name: "TestSupport", dependencies: ["HubBase", "HubHarness", "Hub", "Store", "JSONCore", "HTTPServer", "CLinux", "HubLog", "HubCrypto", "ConnectorKit",
                                                   "EHRRestConnector", "SCIMOutConnector", "LDAPConnector", "SQLConnector"], path: "Tests/TestSupport",
                swiftSettings: swiftSettings),
        .testTarget(name: "HubBaseTests", dependencies: ["HubBase"], swiftSettings: swiftSettings),
        .testTarget(name: "JSONCoreTests", dependencies: ["JSONCore"], swiftSettings: swiftSettings),
        /// CCrypto: the tests make their own keys and sign their own tokens with libcrypto.
        .testTarget(name: "OIDCTests", dependencies: ["OIDC", "HubCrypto", "JSONCore", "CCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "HTTPServerTests", dependencies: ["HTTPServer", "CLinux", "TestSupport", "HubLog"], swiftSettings: swiftSettings),
        .testTarget(name: "SCIMTests", dependencies: ["HubBase", "SCIM", "JSONCore", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "StoreTests", dependencies: ["HubBase", "Store", "SCIM", "JSONCore", "HubCrypto", "TestSupport", "HubLog", "SQLite", "Postgres", "HubHarness"], swiftSettings: swiftSettings),
        .testTarget(name: "ConnectorTests", dependencies: ["ConnectorKit", "CurlHTTP", "EHRRestConnector", "SCIMOutConnector", "LDAPConnector", "SQLConnector", "EHRTestServer", "HTTPServer", "HubLog", "JSONCore", "TestSupport"],
                    swiftSettings: swiftSettings),
        .testTarget(name: "HubTests", dependencies: ["HubBase", "Hub", "Store", "SCIM", "JSONCore", "HTTPServer", "CLinux", "TestSupport", "Provisioning", "EHRTestServer", "ConnectorKit", "LDAPConnector", "SQLConnector", "SQLite", "HubCrypto", "EHRRestConnector", "Postgres"], swiftSettings: swiftSettings),
    ]
)
