// SPDX-License-Identifier: Apache-2.0
import Foundation
import HubBase
import HubCrypto
import HubLog
import Store
import Synchronization
import Syslog

/// Where the audit chain is forwarded (`auditForward` in the config file).
public struct AuditForwardSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var tls: Bool
    /// CA certificates (PEM) that sign the receiver's certificate; nil: the system's.
    public var caFile: String? = nil
    /// The HOSTNAME field; default: this machine's name.
    public var hostname: String = ProcessInfo.processInfo.hostName
    /// Entries sent again after a reconnect, since TCP syslog has no acknowledgements: the
    /// last ones before a failure may be lost in flight (RFC 6587 §3.4), so they are resent
    /// and the receiver keeps whichever copy it likes (each names its `seq` and `hash`).
    public var resendOnReconnect = 200

    /// `tcp://host:port` or `tls://host:port`.
    public init?(url: String) {
        guard let u = URLComponents(string: url), let scheme = u.scheme, scheme == "tcp" || scheme == "tls",
            let host = u.host, !host.isEmpty, let port = u.port, (1...65535).contains(port)
        else { return nil }
        self.host = host
        self.port = port
        self.tls = scheme == "tls"
    }
}

/// Forwards the audit chain to a SIEM as syslog (RFC 5424 over TCP, TLS optional), in
/// sequence, each entry with its `seq`, `hash` and `prevHash` as structured data so the
/// receiver can check the chain. The last entry sent is kept in the store, so a restart, an
/// outage of the receiver or a new leader resumes where the forwarding stopped (at least
/// once: see `resendOnReconnect`). On several nodes only the leader forwards; a node that
/// becomes leader reads the cursor the last one left.
public final class AuditForwarder: HubService {
    public var serviceName: String { "audit-forwarder" }
    private let store: any HubStore
    private let settings: AuditForwardSettings
    /// The cursor file of hubs before the cursor moved into the store: read once, when the
    /// store has none yet.
    private let legacyCursorPath: String
    private let logger: Logger
    private let isLeader: @Sendable () -> Bool
    private let signal = NSCondition()
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Atomic<Bool>(false)
    /// The last entry handed to a connection, and whether one is open (for `/metrics`).
    public let sent = Atomic<Int64>(0)
    public let connected = Atomic<Bool>(false)
    /// Connections or sends that failed since start.
    public let failures = Atomic<Int>(0)
    static let batch = 500

    public init(
        store: any HubStore, settings: AuditForwardSettings, cursorPath: String, logger: Logger,
        isLeader: @escaping @Sendable () -> Bool = { true }
    ) {
        self.store = store
        self.settings = settings
        legacyCursorPath = cursorPath
        self.logger = logger
        self.isLeader = isLeader
    }

    static func readLegacyCursor(_ path: String) -> Int64 {
        guard let d = FileManager.default.contents(atPath: path) else { return 0 }
        return Int64(String(decoding: d, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Where forwarding stopped, as the store says (or an older hub's cursor file).
    private func storedCursor() throws -> Int64 {
        try store.read(snapshot: false) { try $0.auditForwardCursor() } ?? Self.readLegacyCursor(legacyCursorPath)
    }

    /// Records that entries up to `seq` were handed to the receiver. Not durable: after a
    /// crash the few entries since the last flushed cursor are sent again (at least once).
    private func recordCursor(_ seq: Int64) throws {
        try store.write(isolated: true, durable: false) { try $0.connection.setAuditForwardCursor(seq) }
    }

    /// The syslog message for one audit entry.
    func message(_ e: AuditEntry) -> SyslogMessage {
        var m = SyslogMessage(
            timestamp: e.time, hostname: settings.hostname, msgID: e.action,
            parameters: [
                ("seq", String(e.seq)), ("principal", e.principal), ("action", e.action),
                ("resourceType", e.resourceType), ("resourceId", e.resourceID),
                ("attributes", e.attributes.joined(separator: ",")), ("requestId", e.requestID),
                ("outcome", e.outcome), ("prevHash", hexString(e.prevHash)), ("hash", hexString(e.hash)),
            ], message: "audit \(e.seq) \(e.action) \(e.outcome)")
        if !e.outcome.hasPrefix("success") { m.severity = 5 }  // notice: refused or failed actions
        return m
    }

    public func start() throws {
        started.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            defer { finished.signal() }
            var connection: SyslogConnection? = nil
            var backoff = 1.0, failing = false
            // Whether `sent` holds this node's own progress: false until it reads the stored
            // cursor, and again whenever it stops leading (another node forwards meanwhile).
            var cursorRead = false
            while !stopped.load(ordering: .relaxed) {
                var pause = 1.0
                if !isLeader() {
                    if cursorRead { logger.info("audit forwarding handed to the new leader") }
                    cursorRead = false
                    connection = nil
                    connected.store(false, ordering: .relaxed)
                } else {
                    do {
                        if !cursorRead {
                            sent.store(try storedCursor(), ordering: .relaxed)
                            cursorRead = true
                        }
                        if connection == nil || connection?.isOpen == false {
                            connection = nil
                            connected.store(false, ordering: .relaxed)
                            let c = try SyslogConnection(
                                host: settings.host, port: settings.port, tls: settings.tls, caFile: settings.caFile)
                            // What was sent just before the last failure may not have arrived.
                            if failing || sent.load(ordering: .relaxed) > 0 {
                                let back = max(0, sent.load(ordering: .relaxed) - Int64(settings.resendOnReconnect))
                                sent.store(back, ordering: .relaxed)
                            }
                            connection = c
                            connected.store(true, ordering: .relaxed)
                        }
                        let after = sent.load(ordering: .relaxed)
                        let entries = try store.read {
                            try $0.auditEntries(
                                since: nil, until: nil, principal: nil, resourceID: nil, action: nil, afterSeq: after,
                                limit: Self.batch)
                        }
                        if let last = entries.last, let c = connection {
                            try c.send(entries.flatMap { message($0).framed })
                            sent.store(last.seq, ordering: .relaxed)
                            try recordCursor(last.seq)
                            if entries.count == Self.batch { pause = 0 }
                        }
                        if failing {
                            logger.notice(
                                "audit forwarding resumed",
                                ["event": "audit.forward.up", "receiver": "\(settings.host):\(settings.port)"])
                        }
                        failing = false
                        backoff = 1
                    } catch {
                        connection = nil
                        connected.store(false, ordering: .relaxed)
                        failures.add(1, ordering: .relaxed)
                        if !failing {
                            logger.error(
                                "audit forwarding failed; retrying",
                                [
                                    "event": "audit.forward.down",
                                    "error": String(describing: error).prefix(200).description,
                                ])
                        }
                        failing = true
                        pause = backoff
                        backoff = min(30, backoff * 2)
                    }
                }
                guard pause > 0 else { continue }
                signal.lock()
                if !stopped.load(ordering: .relaxed) { _ = signal.wait(until: Date().addingTimeInterval(pause)) }
                signal.unlock()
            }
        }
        t.name = "audit-forwarder"
        t.start()
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        signal.lock()
        signal.broadcast()
        signal.unlock()
        if started.load(ordering: .relaxed) { finished.wait() }
    }
}
