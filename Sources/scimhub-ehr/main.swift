// SPDX-License-Identifier: Apache-2.0
import Foundation
import EHRTestServer
import HubLog

/// `scimhub-ehr`: the EHR test server as a process, for the demo and benchmarks.
///   scimhub-ehr [--port 9100] [--token TOKEN]
/// Faults: `curl -X POST localhost:9100/_control/faults -d '{"mode":"error5xx"}'`
/// (none|error5xx|rateLimit|timeout|reject|garbage).
var port: UInt16 = 9100
var token = ProcessInfo.processInfo.environment["SCIMHUB_EHR_TOKEN"] ?? "ehr-static-token"
var it = CommandLine.arguments.dropFirst().makeIterator()
while let a = it.next() {
    switch a {
    case "--port": port = UInt16(it.next() ?? "") ?? port
    case "--token": token = it.next() ?? token
    default:
        FileHandle.standardError.write(Data("usage: scimhub-ehr [--port N] [--token T]\n".utf8))
        exit(2)
    }
}
signal(SIGPIPE, SIG_IGN)
// Block SIGTERM and SIGINT before any thread exists (threads inherit the mask), then wait
// for them synchronously on the main thread.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
sigaddset(&stopSignals, SIGTERM)
sigaddset(&stopSignals, SIGINT)
pthread_sigmask(SIG_BLOCK, &stopSignals, nil)
do {
    let server = try EHRTestServer(port: port, staticToken: token)
    server.start()
    Logger(label: "scimhub-ehr").notice("listening", ["url": server.baseURL])
    var received: Int32 = 0
    sigwait(&stopSignals, &received)
    server.stop()
} catch {
    FileHandle.standardError.write(Data("scimhub-ehr: \(error)\n".utf8))
    exit(1)
}
