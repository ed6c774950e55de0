// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubBase
import Provisioning
import Store
import Synchronization

/// Requests counted by route template (never the raw path: ids would make every person a
/// time series), method and status, with a latency histogram per route and method.
/// Sharded by thread, like the store's readers, so request threads rarely share a lock.
final class HTTPMetrics: Sendable {
    struct Key: Hashable {
        let route: String
        let method: String
        let status: Int
    }
    /// A latency series: route and method (no string built per request on the hot path).
    struct Series: Hashable {
        let route: String
        let method: String
    }
    struct Shard {
        var counts: [Key: UInt64] = [:]
        var latency: [Series: Histogram] = [:]
    }
    /// A Mutex cannot sit in an array (it is not copyable): each shard is a box.
    final class Box: Sendable { let state = Mutex(Shard()) }
    private let shards: [Box] = (0..<16).map { _ in Box() }

    func record(route: String, method: String, status: Int, seconds: Double) {
        let h = UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))) &* 0x9E37_79B9_7F4A_7C15
        shards[Int(h >> 60) % shards.count].state.withLock { s in
            s.counts[Key(route: route, method: method, status: status), default: 0] += 1
            s.latency[Series(route: route, method: method), default: Histogram(bounds: Histogram.requestBounds)]
                .observe(seconds)
        }
    }

    /// Every shard added up.
    func merged() -> Shard {
        var out = Shard()
        for shard in shards {
            shard.state.withLock { s in
                for (k, v) in s.counts { out.counts[k, default: 0] += v }
                for (k, v) in s.latency { out.latency[k, default: Histogram(bounds: v.bounds)].merge(v) }
            }
        }
        return out
    }
}

/// `GET /metrics` (scope `metrics`, or `admin`): Prometheus text format 0.0.4. Counters
/// and histograms are this node's since it started; gauges are read from the store at each
/// scrape, so every node reports the same queue. Alert rules: `docker/alerts.yml`.
struct MetricsEndpoints: FeatureEndpoints {
    let hub: HubContext
    let forwarder: AuditForwarder?

    var routes: [Route] {
        [Route.make("GET", "/metrics", .anyOf([.metrics, .admin])) { _, _ in try self.scrape() }]
    }

    func scrape() throws -> HTTPResponse {
        var p = PrometheusText()
        p.family("scimhub_build_info", "gauge", "The running build; always 1.")
        p.sample("scimhub_build_info", [("version", BuildInfo.version)], 1)
        p.family("scimhub_process_start_time_seconds", "gauge", "When this node started, seconds since 1970.")
        p.sample("scimhub_process_start_time_seconds", [], Self.started)
        requests(&p)
        try targets(&p)
        try governance(&p)
        process(&p)
        var r = HTTPResponse(status: 200, body: Array(p.text.utf8))
        r.headers.append(("Content-Type", "text/plain; version=0.0.4; charset=utf-8"))
        return r
    }

    static let started = Date().timeIntervalSince1970

    private func requests(_ p: inout PrometheusText) {
        let m = hub.httpMetrics.merged()
        p.family("scimhub_http_requests_total", "counter", "HTTP requests by route template, method and status.")
        for (k, v) in m.counts.sorted(by: {
            ($0.key.route, $0.key.method, $0.key.status) < ($1.key.route, $1.key.method, $1.key.status)
        }) {
            p.sample(
                "scimhub_http_requests_total",
                [("route", k.route), ("method", k.method), ("status", String(k.status))],
                Double(v))
        }
        p.family("scimhub_http_request_duration_seconds", "histogram", "Time to answer, by route template and method.")
        for (k, h) in m.latency.sorted(by: { ($0.key.route, $0.key.method) < ($1.key.route, $1.key.method) }) {
            p.histogram("scimhub_http_request_duration_seconds", [("route", k.route), ("method", k.method)], h)
        }
    }

    private func targets(_ p: inout PrometheusText) throws {
        guard let engine else { return }
        let now = engine.clock.now()
        let enabled = engine.policy.enabledTargets.map(\.name)
        let stats = try store.read { conn in try enabled.map { (t: $0, s: try conn.queueStats(target: $0, now: now)) } }
        let counted = engine.metrics.snapshot()
        p.family("scimhub_target_queue_depth", "gauge", "Changes waiting for the target.")
        p.family("scimhub_target_oldest_pending_seconds", "gauge", "Age of the oldest change waiting (0: none).")
        p.family("scimhub_target_dead_letters", "gauge", "Changes that gave up and wait for a person.")
        p.family("scimhub_target_held_jobs", "gauge", "Removals a feed hold keeps back.")
        p.family("scimhub_target_circuit_open", "gauge", "1 while the target's circuit is open or half-open.")
        p.family("scimhub_target_up", "gauge", "1 when the last probe answered, 0 when it failed (absent before one).")
        p.family("scimhub_target_probe_duration_seconds", "gauge", "How long the last probe took.")
        for (t, s) in stats {
            let l = [("target", t)]
            p.sample("scimhub_target_queue_depth", l, Double(s.pending))
            p.sample("scimhub_target_oldest_pending_seconds", l, s.oldestPending ?? 0)
            p.sample("scimhub_target_dead_letters", l, Double(s.dead))
            p.sample("scimhub_target_held_jobs", l, Double(s.held))
            p.sample("scimhub_target_circuit_open", l, engine.circuit(t) == .closed ? 0 : 1)
            if let probe = engine.probes.last(t) {
                p.sample("scimhub_target_up", l, probe.up ? 1 : 0)
                p.sample("scimhub_target_probe_duration_seconds", l, probe.seconds)
            }
        }
        p.family("scimhub_convergence_seconds", "histogram", "From a person's change to the target holding it.")
        p.family("scimhub_connector_errors_total", "counter", "Connector failures by class (retryable, permanent).")
        for t in enabled {
            let c = counted[t] ?? EngineMetrics.Target()
            p.histogram("scimhub_convergence_seconds", [("target", t)], c.convergence)
            for kind in ["retryable", "permanent"] {
                p.sample(
                    "scimhub_connector_errors_total", [("target", t), ("class", kind)], Double(c.errors[kind] ?? 0))
            }
        }
    }

    /// Findings of the last finished run, holds, break-glass, the outbox and the audit chain.
    private func governance(_ p: inout PrometheusText) throws {
        try store.read { conn in
            p.family(
                "scimhub_reconciliation_findings", "gauge", "Findings of the last finished run, by target and category."
            )
            p.family("scimhub_reconciliation_last_finished_seconds", "gauge", "When the last run finished.")
            if let run = try conn.reconciliationRuns(limit: 50).first(where: { $0.state == .done }) {
                let summary = ReconciliationRuns.describe(run)["summary"]?.objectValue
                for t in summary?["targets"]?.objectValue?.members ?? [] {
                    for c in t.value.objectValue?["counts"]?.objectValue?.members ?? [] {
                        p.sample(
                            "scimhub_reconciliation_findings", [("target", t.key), ("category", c.key)],
                            c.value.numberValue?.double ?? 0)
                    }
                }
                p.sample("scimhub_reconciliation_last_finished_seconds", [], run.finished ?? 0)
            }
            p.family("scimhub_feed_holds_open", "gauge", "Feed holds waiting for a decision.")
            p.sample(
                "scimhub_feed_holds_open", [], Double(try conn.holds(limit: 1000).filter { $0.state == .open }.count))
            p.family("scimhub_break_glass_active", "gauge", "Break-glass grants in force.")
            p.sample(
                "scimhub_break_glass_active", [],
                Double(try conn.breakGlassGrants(state: "active", limit: 10_000).count))
            p.family("scimhub_notifications", "gauge", "The newest 10,000 messages of the outbox, by state.")
            var states: [String: Int] = [:]
            for n in try conn.notifications(limit: 10_000) { states[n.state, default: 0] += 1 }
            for (s, n) in states.sorted(by: { $0.key < $1.key }) {
                p.sample("scimhub_notifications", [("state", s)], Double(n))
            }
            p.family("scimhub_audit_chain_length", "gauge", "Entries in the audit chain (its head's sequence number).")
            let head = try conn.auditHead().seq
            p.sample("scimhub_audit_chain_length", [], Double(head))
            if let forwarder {
                // The shared cursor: every node reports the cluster's lag, not its own stale view.
                p.family("scimhub_audit_forward_lag_entries", "gauge", "Audit entries not yet sent to the SIEM.")
                p.sample(
                    "scimhub_audit_forward_lag_entries", [], Double(max(0, head - (try conn.auditForwardCursor() ?? 0)))
                )
                p.family(
                    "scimhub_audit_forward_connected", "gauge",
                    "1 while this node is connected to the syslog receiver (only the leader forwards).")
                p.sample("scimhub_audit_forward_connected", [], forwarder.connected.load(ordering: .relaxed) ? 1 : 0)
                p.family("scimhub_audit_forward_failures_total", "counter", "Failed connections or sends to the SIEM.")
                p.sample(
                    "scimhub_audit_forward_failures_total", [], Double(forwarder.failures.load(ordering: .relaxed)))
            }
        }
        p.family("scimhub_audit_verify_failures_total", "counter", "Audit chain verifications that found a break.")
        p.sample(
            "scimhub_audit_verify_failures_total", [], Double(AuditLog.brokenVerifications.load(ordering: .relaxed)))
    }

    private func process(_ p: inout PrometheusText) {
        p.family("scimhub_store_size_bytes", "gauge", "Size of the store's files on disk (SQLite: database and WAL).")
        let dir = config.dataDirectory
        let size = ["/scimhub.sqlite", "/scimhub.sqlite-wal"].reduce(0.0) { total, f in
            total + ((try? FileManager.default.attributesOfItem(atPath: dir + f)[.size] as? NSNumber)?.doubleValue ?? 0)
        }
        p.sample("scimhub_store_size_bytes", [], size)
        p.family("scimhub_process_resident_memory_bytes", "gauge", "Resident memory of this node (VmRSS).")
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        {
            p.sample("scimhub_process_resident_memory_bytes", [], kb * 1024)
        }
        p.family("scimhub_process_open_fds", "gauge", "Open file descriptors of this node.")
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
        p.sample("scimhub_process_open_fds", [], Double(fds))
    }
}
