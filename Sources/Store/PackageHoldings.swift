// SPDX-License-Identifier: Apache-2.0

/// Since when each person holds each package, as the hub decided it: the tenure access
/// reviewers see. Kept by the engine in the write that changes the person (see
/// `PackageHoldings` in Provisioning); a holding from before migration 18 starts when it
/// was first observed.
public protocol PackageHoldingStore {
    /// The person's packages and since when (seconds since 1970).
    func holdings(personID: String) throws -> [String: Double]

    /// Since when the person holds `package`, if they do.
    func holdingSince(personID: String, package: String) throws -> Double?

    /// Records that the person holds `package` from `since`, unless already recorded (the
    /// earlier start stands).
    func recordHolding(personID: String, package: String, since: Double) throws

    /// The person no longer holds `package`.
    func removeHolding(personID: String, package: String) throws

    /// How many people hold each package ("who has what", in numbers).
    func holdingCounts() throws -> [String: Int]

    /// Who holds `package` and since when, at most `limit`, longest held first.
    func holders(package: String, limit: Int) throws -> [(personID: String, since: Double)]
}
