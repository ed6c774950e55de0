// SPDX-License-Identifier: Apache-2.0

/// TOTP secrets for step-up and the last step each principal used (replay protection).
public protocol MFAStore {
    /// Stores a principal's TOTP secret; false when one is enrolled already.
    func enrolMFA(principal: String, secret: [UInt8], now: Double) throws -> Bool

    /// The principal's TOTP secret, if enrolled.
    func mfaSecret(principal: String) throws -> [UInt8]?

    /// Accepts a code's time step once: false when this step (or a later one) was used already.
    func acceptMFAStep(principal: String, step: Int64) throws -> Bool

    func resetMFA(principal: String) throws -> Bool
}
