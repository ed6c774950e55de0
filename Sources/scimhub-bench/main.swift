// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
import JSONCore
import HubHarness

/// `scimhub-bench`: measures the release `scimhub` binary over loopback, as a feed would
/// use it: N keep-alive connections, a roster from scripts/roster.py, durable commits.
///
///   swift build -c release && .build/release/scimhub-bench [--people 10000] [--scales 1000,10000,100000]
///       [--connections 16] [--seconds 5] [--binary .build/release/scimhub]
///   .build/release/scimhub-bench --provisioning [--people 10000] [--leavers 1000] [--outage-seconds 300]
///   .build/release/scimhub-bench --policy-preview [--people 100000]
///   .build/release/scimhub-bench --console [--people 100000]
///   .build/release/scimhub-bench --cluster [--people 10000] [--connections 16] [--seconds 5] [--onboard 10000]
///       (one SQLite node, then one, two and three nodes on one PostgreSQL; then onboarding
///       `--onboard` people into three targets with one SQLite node, one and three PostgreSQL nodes)
///   .build/release/scimhub-bench --soak [--minutes 10] [--connections 64] [--people 2000]   (scripts/soak)
///   .build/release/scimhub-bench --feed-guard [--people 10000] [--leavers 5000]
///   .build/release/scimhub-bench --notifications [--people 1000]   (after scripts/test made .venv)
///   .build/release/scimhub-bench --reconcile [--people 100000]
///   .build/release/scimhub-bench --break-glass [--people 1000] [--leavers 200]
///   .build/release/scimhub-bench --credentials [--people 100000]
///   .build/release/scimhub-bench --connectors [--convergences 2000] [--threads 8] [--list-accounts 100000]
///       [--only ldap,postgresql,sqlite]

struct Options {
    var binary = repoRoot + "/.build/release/scimhub"
    var roster = repoRoot + "/scripts/roster.py"
    var people = 10_000
    var scales = [1_000, 10_000, 100_000]
    var connections = 16
    var seconds = 5.0
    var provisioning = false
    var policyPreview = false
    var feedGuard = false
    var notifications = false
    var leavers = 1000
    var outageSeconds = 300.0
    var connectors = false
    var reconcile = false
    var breakGlass = false
    var credentials = false
    var console = false
    var soak = false
    var cluster = false
    var minutes = 10.0
    var convergences = 2000
    var threads = 8
    var listAccounts = 100_000
    var onboard = 10_000
    var only: Set<String> = ["ldap", "postgresql", "sqlite"]

    init() {
        var it = CommandLine.arguments.dropFirst().makeIterator()
        while let a = it.next() {
            if a == "--provisioning" { provisioning = true; continue }
            if a == "--policy-preview" { policyPreview = true; continue }
            if a == "--feed-guard" { feedGuard = true; continue }
            if a == "--notifications" { notifications = true; continue }
            if a == "--connectors" { connectors = true; continue }
            if a == "--reconcile" { reconcile = true; continue }
            if a == "--break-glass" { breakGlass = true; continue }
            if a == "--credentials" { credentials = true; continue }
            if a == "--console" { console = true; continue }
            if a == "--soak" { soak = true; continue }
            if a == "--cluster" { cluster = true; continue }
            guard let v = it.next() else { break }
            switch a {
            case "--binary": binary = v
            case "--roster": roster = v
            case "--people": people = Int(v) ?? people
            case "--scales": scales = v.split(separator: ",").compactMap { Int($0) }
            case "--connections": connections = Int(v) ?? connections
            case "--seconds": seconds = Double(v) ?? seconds
            case "--minutes": minutes = Double(v) ?? minutes
            case "--leavers": leavers = Int(v) ?? leavers
            case "--outage-seconds": outageSeconds = Double(v) ?? outageSeconds
            case "--convergences": convergences = Int(v) ?? convergences
            case "--threads": threads = Int(v) ?? threads
            case "--list-accounts": listAccounts = Int(v) ?? listAccounts
            case "--onboard": onboard = Int(v) ?? onboard
            case "--only": only = Set(v.split(separator: ",").map(String.init))
            default: FileHandle.standardError.write(Data("unknown option \(a)\n".utf8)); exit(2)
            }
        }
    }
}

func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }

/// Latency samples in seconds, and the count of non-2xx answers.
struct Result {
    var latencies: [Double] = []
    var errors = 0
    var elapsed = 0.0

    func percentile(_ p: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let s = latencies.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
    }

    /// CPU time the hub process used during the test (the load generator shares the cores,
    /// so this says what a request costs the hub, whatever the client costs).
    var hubCPUSeconds: Double? = nil

    var line: String {
        String(
            format: "%9.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d requests, %d errors)",
            Double(latencies.count) / elapsed, percentile(0.5) * 1000, percentile(0.99) * 1000, latencies.count, errors)
            + (hubCPUSeconds.map {
                String(format: "   hub CPU %.1f µs/req", $0 * 1e6 / Double(max(1, latencies.count)))
            } ?? "")
    }
}

/// Runs `request(thread, i)` on `connections` keep-alive connections for `seconds`.
func load(
    port: UInt16, connections: Int, seconds: Double,
    _ request: @escaping @Sendable (Int, Int) -> (method: String, path: String, body: String?)
) -> Result {
    load(ports: [port], connections: connections, seconds: seconds, request)
}

/// The same, with the connections dealt over several nodes' `ports` in turn.
func load(
    ports: [UInt16], connections: Int, seconds: Double,
    _ request: @escaping @Sendable (Int, Int) -> (method: String, path: String, body: String?)
) -> Result {
    let merged = Mutex(Result())
    let group = DispatchGroup()
    let start = Date()
    for t in 0..<connections {
        group.enter()
        Thread {
            defer { group.leave() }
            var local = Result()
            guard let c = try? RawHTTPClient(port: ports[t % ports.count], timeout: 30) else { return }
            var i = 0
            while Date().timeIntervalSince(start) < seconds {
                let (m, p, b) = request(t, i)
                let t0 = DispatchTime.now().uptimeNanoseconds
                var headers = [("Authorization", "Bearer \(token)")]
                if b != nil { headers.append(("Content-Type", "application/scim+json")) }
                guard let r = c.request(m, p, headers: headers, body: b.map { Array($0.utf8) }) else {
                    local.errors += 1; break
                }
                local.latencies.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                if r.status >= 300 { local.errors += 1 }
                i += 1
            }
            merged.withLock {
                $0.latencies += local.latencies; $0.errors += local.errors
            }
        }.start()
    }
    group.wait()
    var r = merged.withLock { $0 }
    r.elapsed = Date().timeIntervalSince(start)
    return r
}

nonisolated(unsafe) var token = ""

/// Generates `count` people with scripts/roster.py (1,000 Bulk operations per request) and
/// loads them; returns the seconds the load took (generation is not timed).
func bulkLoad(_ o: Options, count: Int, client: RawHTTPClient, token: String) throws -> Double {
    let gen = Process()
    gen.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    gen.arguments = ["python3", o.roster, "--count", String(count), "--bulk", "1000"]
    let out = Pipe()
    gen.standardOutput = out
    try gen.run()
    let bodies = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n")
    gen.waitUntilExit()
    let t0 = Date()
    for b in bodies {
        guard
            let r = client.request(
                "POST", "/scim/v2/Bulk",
                headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/scim+json")],
                body: Array(b.utf8)), r.status == 200
        else { throw TestError("bulk load failed") }
    }
    return Date().timeIntervalSince(t0)
}

/// Starts a fresh hub and loads `count` people with Bulk (1,000 operations per request).
func freshHub(_ o: Options, count: Int) throws -> (HubProcess, TemporaryDirectory, Double, [String], [String]) {
    let dir = TemporaryDirectory()
    token = try HubProcess.createToken(o.binary, data: dir.path, principal: "bench", scopes: "scim:read,scim:write")
    let hub = try HubProcess(binary: o.binary, data: dir.path, extraArguments: ["--log-level", "warning"])
    let c = try RawHTTPClient(port: hub.port, timeout: 120)
    let rate = Double(count) / (try bulkLoad(o, count: count, client: c, token: token))
    // Collect ids and userNames for the read tests.
    var ids: [String] = [], names: [String] = []
    var start = 1
    while true {
        guard
            let r = c.request(
                "GET", "/scim/v2/Users?attributes=userName&count=1000&startIndex=\(start)",
                headers: [("Authorization", "Bearer \(token)")])
        else { break }
        let page = r.object["Resources"]?.arrayValue ?? []
        for p in page {
            ids.append(p.objectValue?["id"]?.stringValue ?? "")
            names.append(p.objectValue?["userName"]?.stringValue ?? "")
        }
        if page.count < 1000 { break }
        start += 1000
    }
    return (hub, dir, rate, ids, names)
}

func percentEncode(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~@"))) ?? s
}

let o = Options()
if o.notifications {
    do { try runNotificationBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.connectors {
    do { try runConnectorBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
guard FileManager.default.isExecutableFile(atPath: o.binary) else {
    FileHandle.standardError.write(Data("build the release binary first: swift build -c release\n".utf8))
    exit(2)
}
if o.reconcile {
    do { try runReconcileBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.credentials {
    do { try runCredentialBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.breakGlass {
    do { try runBreakGlassBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.feedGuard {
    do { try runFeedGuardBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.cluster {
    do { try runClusterBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.soak {
    do { try runSoak(o) } catch { say("soak failed: \(error)"); exit(1) }
    exit(0)
}
if o.console {
    do { try runConsoleBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.policyPreview {
    do { try runPolicyPreviewBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
if o.provisioning {
    do { try runProvisioningBenchmark(o) } catch { say("benchmark failed: \(error)"); exit(1) }
    exit(0)
}
say(
    "scimhub-bench: \(o.connections) keep-alive connections, \(o.seconds) s per test, durability=full, "
        + "\(ProcessInfo.processInfo.activeProcessorCount) cores"
)

// MARK: - Throughput at `people`
do {
    let (hub, dir, rate, ids, names) = try freshHub(o, count: o.people)
    say("\n== \(o.people) people (bulk load \(String(format: "%.0f", rate)) records/s)")
    let idList = ids, nameList = names
    let n = idList.count
    func measuredLoad(
        port: UInt16, connections: Int, seconds: Double,
        _ request: @escaping @Sendable (Int, Int) -> (method: String, path: String, body: String?)
    ) -> Result {
        let cpu = hub.cpuSeconds()
        var r = load(port: port, connections: connections, seconds: seconds, request)
        r.hubCPUSeconds = hub.cpuSeconds() - cpu
        return r
    }
    let get = measuredLoad(port: hub.port, connections: o.connections, seconds: o.seconds) { t, i in
        ("GET", "/scim/v2/Users/\(idList[(t * 7919 + i * 104_729) % n])", nil)
    }
    say("GET /Users/{id}            " + get.line)
    let filter = measuredLoad(port: hub.port, connections: o.connections, seconds: o.seconds) { t, i in
        (
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22\(percentEncode(nameList[(t * 7919 + i * 104_729) % n]))%22", nil
        )
    }
    say("GET filter=userName eq     " + filter.line)
    let create = measuredLoad(port: hub.port, connections: o.connections, seconds: o.seconds) { t, i in
        (
            "POST", "/scim/v2/Users",
            #"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","#
                + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"],"#
                + #""userName":"bench-\#(t)-\#(i)@clinicas-exemplo.org","externalId":"B\#(t)-\#(i)","#
                + #""name":{"givenName":"Bench","familyName":"User"},"title":"Registered Nurse","active":true,"#
                + #""emails":[{"value":"bench-\#(t)-\#(i)@clinicas-exemplo.org","type":"work","primary":true}],"#
                + #""urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":{"sites":["CLN-CEN"],"#
                + #""credentialStatus":"active"}}"#
        )
    }
    say("POST /Users (durable)      " + create.line)
    let patch = measuredLoad(port: hub.port, connections: o.connections, seconds: o.seconds) { t, i in
        (
            "PATCH", "/scim/v2/Users/\(idList[(t * 7919 + i * 104_729) % n])",
            #"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":"#
                + #"[{"op":"replace","path":"title","value":"Title \#(t)-\#(i)"}]}"#
        )
    }
    say("PATCH /Users/{id} (durable)" + patch.line)
    hub.stop()
    dir.remove()
} catch {
    say("benchmark failed: \(error)")
    exit(1)
}

// MARK: - Filter latency and memory at each scale
for scale in o.scales {
    do {
        let (hub, dir, rate, _, names) = try freshHub(o, count: scale)
        let nameList = names
        let n = nameList.count
        let filter = load(port: hub.port, connections: o.connections, seconds: min(o.seconds, 3)) { t, i in
            (
                "GET",
                "/scim/v2/Users?filter=userName%20eq%20%22\(percentEncode(nameList[(t * 7919 + i * 104_729) % n]))%22",
                nil
            )
        }
        let mem = hub.memoryKiB()
        say(
            String(
                format:
                    "\n== %d people: bulk load %.0f records/s; "
                    + "userName eq p50 %.2f ms p99 %.2f ms; RSS %.1f MB (peak %.1f MB)",
                scale, rate, filter.percentile(0.5) * 1000, filter.percentile(0.99) * 1000, Double(mem.rss) / 1024,
                Double(mem.peak) / 1024))
        hub.stop()
        dir.remove()
    } catch {
        say("benchmark at \(scale) failed: \(error)")
        exit(1)
    }
}
