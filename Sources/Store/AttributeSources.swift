// SPDX-License-Identifier: Apache-2.0

/// Which feed last set each attribute of a person.
public protocol AttributeSourceStore {
    /// Records that `principal` set these attributes of a person now.
    func recordAttributeSources(personID: String, attributes: [String], principal: String, now: Double) throws

    /// Attribute → (principal, time) for a person.
    func attributeSources(personID: String) throws -> [(attribute: String, principal: String, time: Double)]

    func forgetAttributeSources(personID: String) throws
}
