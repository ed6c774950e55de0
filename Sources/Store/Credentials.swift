// SPDX-License-Identifier: Apache-2.0

/// The schedule of deadlines that change access (licence expiry, contract end).
public protocol CredentialScheduleStore {
    /// Records (or, with nil, forgets) when a person's licence expires.
    func setCredentialExpiry(personID: String, expires: Double?) throws

    /// People whose licence expired by `now` (still scheduled).
    func dueCredentialExpiries(now: Double, limit: Int) throws -> [String]

    func nextCredentialExpiry() throws -> Double?

    /// Licences expiring in [from, to], soonest first.
    func expiringCredentials(from: Double, to: Double, limit: Int) throws -> [(personID: String, expires: Double)]

    func credentialScheduleSize() throws -> Int
}

extension CredentialScheduleStore {
    /// People whose licence expired by `now`, at most 1,000.
    public func dueCredentialExpiries(now: Double) throws -> [String] {
        try dueCredentialExpiries(now: now, limit: 1000)
    }
}
