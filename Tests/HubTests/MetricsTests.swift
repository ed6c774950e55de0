// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import EHRTestServer
import HubHarness
import JSONCore
import Store
import TestSupport

/// `GET /metrics`: Prometheus's text format, checked by Prometheus's own `promtool`, with
/// figures that follow what the hub did.
@Suite struct MetricsTests {
    /// The value of the sample whose line starts with `prefix` (name and labels).
    func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap {
            Double($0.split(separator: " ").last ?? "")
        }
    }

    @Test func metrics_passPromtool_andCountRequestsConvergenceAndTargets() throws {
        let ehr = try EHRTestServer()
        ehr.start()
        let hub = try LiveHub(policy: ehrPolicy(ehr))
        defer { hub.stop(); ehr.stop() }
        let scraper = try hub.makeToken("prometheus", [.metrics])
        for i in 0..<3 {
            #expect(
                try hub.call("POST", "/scim/v2/Users", body: person("m\(i)@x.org", title: "Receptionist")).status == 201
            )
        }
        eventually("provisioned") { (0..<3).allSatisfy { ehr.snapshot()["m\($0)@x.org"]?.roles == ["scheduling"] } }
        #expect(try hub.call("GET", "/scim/v2/Users/nope").status == 404)
        #expect(try hub.call("POST", "/admin/targets/ehr/probe", token: hub.admin).status == 200)
        let r = try hub.call("GET", "/metrics", token: scraper)
        #expect(r.status == 200 && r.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let text = r.text
        // Prometheus's own linter: format, names, HELP and TYPE, histogram series.
        let file = NSTemporaryDirectory() + "scimhub-metrics-\(UUID().uuidString).txt"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let lint = try HubProcess.runWithStatus("/bin/sh", ["-c", "promtool check metrics < '\(file)' 2>&1"])
        #expect(lint.status == 0, "promtool: \(lint.out)")
        #expect(value(text, #"scimhub_http_requests_total{route="/scim/v2/{type}",method="POST",status="201"}"#) == 3)
        #expect(
            value(text, #"scimhub_http_requests_total{route="/scim/v2/{type}/{id}",method="GET",status="404"}"#) == 1)
        #expect(value(text, #"scimhub_convergence_seconds_count{target="ehr"}"#) == 3)
        #expect(value(text, #"scimhub_target_up{target="ehr"}"#) == 1)
        #expect(value(text, #"scimhub_target_queue_depth{target="ehr"}"#) == 0)
        #expect(value(text, #"scimhub_connector_errors_total{target="ehr",class="retryable"}"#) == 0)
        #expect(value(text, "scimhub_audit_chain_length") ?? 0 >= 3)
        #expect(text.contains(#"scimhub_build_info{version=""#))
        // No person's id or user name becomes a label.
        #expect(!text.contains("m0@x.org") && !text.contains("nope"))
        // A failing target: counted by class.
        ehr.setFault(.reject)
        #expect(try hub.call("POST", "/scim/v2/Users", body: person("m9@x.org", title: "Receptionist")).status == 201)
        eventually("a permanent failure counted") {
            let t = try hub.call("GET", "/metrics", token: scraper).text
            return value(t, #"scimhub_connector_errors_total{target="ehr",class="permanent"}"#) == 1
                && value(t, #"scimhub_target_dead_letters{target="ehr"}"#) == 1
        }
        ehr.setFault(.none)
        // The scraper's token reads metrics only; a feed's token cannot read metrics.
        #expect(try hub.call("GET", "/admin/targets", token: scraper).status == 403)
        #expect(try hub.call("GET", "/metrics", token: hub.reader).status == 403)
        #expect(try hub.call("GET", "/metrics", token: hub.admin).status == 200)
    }
}
