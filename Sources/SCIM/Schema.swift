// SPDX-License-Identifier: Apache-2.0
import Foundation
import JSONCore

/// An attribute's data type (RFC 7643 §2.3).
public enum SCIMAttributeType: String, Sendable {
    case string, boolean, decimal, integer, dateTime, reference, complex, binary
}

/// When an attribute may be written (RFC 7643 §7).
public enum SCIMMutability: String, Sendable {
    case readOnly, readWrite, immutable, writeOnly
}

/// When an attribute is returned (RFC 7643 §7).
public enum SCIMReturned: String, Sendable {
    case always, never, `default`, request
}

/// One attribute definition from a schema file. Immutable, shared by reference.
public final class SCIMAttribute: Sendable {
    public let name: String
    public let type: SCIMAttributeType
    public let multiValued: Bool
    public let required: Bool
    public let caseExact: Bool
    public let mutability: SCIMMutability
    public let returned: SCIMReturned
    public let uniqueness: String
    public let canonicalValues: [String]
    public let referenceTypes: [String]
    public let subAttributes: [SCIMAttribute]
    public let description: String
    /// An identifier that reaches downstream systems: validated and compared in canonical
    /// form (`SCIMIdentifier`).
    public let isIdentifier: Bool
    /// Longest accepted string value, in Unicode scalars (strings, references, binary).
    public let maxLength: Int

    public init(
        name: String, type: SCIMAttributeType, multiValued: Bool = false, required: Bool = false,
        caseExact: Bool = false,
        mutability: SCIMMutability = .readWrite, returned: SCIMReturned = .default, uniqueness: String = "none",
        canonicalValues: [String] = [], referenceTypes: [String] = [], subAttributes: [SCIMAttribute] = [],
        description: String = "",
        isIdentifier: Bool = false, maxLength: Int? = nil
    ) {
        self.name = name
        self.type = type
        self.multiValued = multiValued
        self.required = required
        self.caseExact = caseExact
        self.mutability = mutability
        self.returned = returned
        self.uniqueness = uniqueness
        self.canonicalValues = canonicalValues
        self.referenceTypes = referenceTypes
        self.subAttributes = subAttributes
        self.description = description
        self.isIdentifier = isIdentifier
        self.maxLength = maxLength ?? AttributeLimits().defaultLength(type: type, identifier: isIdentifier)
    }

    /// The sub-attribute named `name`, ignoring case.
    public func subAttribute(_ name: String) -> SCIMAttribute? {
        subAttributes.first { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// Parses an attribute definition (RFC 7643 §7 representation). `context` is the
    /// schema URN, then `.parent` for a sub-attribute. ScimHub reads one key beyond RFC 7643:
    /// `maxLength`, the longest value accepted (overridden by the config's limits).
    init(json: JSONObject, context: String, schemaID: String, parent: String? = nil, limits: AttributeLimits) throws {
        guard let name = json["name"]?.stringValue, !name.isEmpty else {
            throw SchemaLoadError("attribute without a name in \(context)")
        }
        guard let t = json["type"]?.stringValue, let type = SCIMAttributeType(rawValue: t) else {
            throw SchemaLoadError("attribute \(name) in \(context) has an unknown type")
        }
        self.name = name
        self.type = type
        multiValued = json["multiValued"]?.boolValue ?? false
        required = json["required"]?.boolValue ?? false
        caseExact = json["caseExact"]?.boolValue ?? false
        mutability = SCIMMutability(rawValue: json["mutability"]?.stringValue ?? "readWrite") ?? .readWrite
        returned = SCIMReturned(rawValue: json["returned"]?.stringValue ?? "default") ?? .default
        uniqueness = json["uniqueness"]?.stringValue ?? "none"
        canonicalValues = json["canonicalValues"]?.arrayValue?.compactMap(\.stringValue) ?? []
        referenceTypes = json["referenceTypes"]?.arrayValue?.compactMap(\.stringValue) ?? []
        description = json["description"]?.stringValue ?? ""
        let path = parent.map { "\($0).\(name)" } ?? name
        isIdentifier = AttributeLimits.identifiers.contains("\(schemaID):\(path)")
        var schemaMax: Int? = nil
        if let m = json["maxLength"] {
            guard let n = m.numberValue?.int64, n >= 1, n <= 1 << 24 else {
                throw SchemaLoadError("attribute \(name) in \(context): maxLength must be an integer in 1...16777216")
            }
            schemaMax = Int(n)
        }
        maxLength =
            limits.override(schemaID: schemaID, path: path) ?? schemaMax
            ?? limits.defaultLength(type: type, identifier: isIdentifier)
        subAttributes = try (json["subAttributes"]?.arrayValue ?? []).map { v in
            guard let o = v.objectValue else {
                throw SchemaLoadError("sub-attribute of \(name) in \(context) is not an object")
            }
            return try SCIMAttribute(
                json: o, context: "\(context).\(name)", schemaID: schemaID, parent: path, limits: limits)
        }
        if type == .complex && subAttributes.isEmpty {
            throw SchemaLoadError("complex attribute \(name) in \(context) has no sub-attributes")
        }
    }

    /// The definition in RFC 7643 §7 form, for `/Schemas`.
    public var json: JSONValue {
        var o = JSONObject()
        o["name"] = .string(name)
        o["type"] = .string(type.rawValue)
        o["multiValued"] = .bool(multiValued)
        o["description"] = .string(description)
        o["required"] = .bool(required)
        if type == .string || type == .reference || type == .binary { o["caseExact"] = .bool(caseExact) }
        if !canonicalValues.isEmpty { o["canonicalValues"] = .array(canonicalValues.map { .string($0) }) }
        if !referenceTypes.isEmpty { o["referenceTypes"] = .array(referenceTypes.map { .string($0) }) }
        if !subAttributes.isEmpty { o["subAttributes"] = .array(subAttributes.map(\.json)) }
        o["mutability"] = .string(mutability.rawValue)
        o["returned"] = .string(returned.rawValue)
        o["uniqueness"] = .string(uniqueness)
        return .object(o)
    }
}

/// A schema: core or extension (RFC 7643 §7).
public struct SCIMSchema: Sendable {
    public let id: String
    public let name: String
    public let description: String
    public let attributes: [SCIMAttribute]
    /// Attributes by exact name: stored resources use canonical names, so this hits first.
    private let byName: [String: SCIMAttribute]

    public init(id: String, name: String, description: String, attributes: [SCIMAttribute]) {
        self.id = id
        self.name = name
        self.description = description
        self.attributes = attributes
        byName = Dictionary(attributes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Whether `path` (`userName`, `emails.value`, or `URN:path` for this schema) names one of its attributes.
    func hasAttribute(path: String) -> Bool {
        var rel = Substring(path)
        if path.hasPrefix(id + ":") {
            rel = path.dropFirst(id.count + 1)
        } else if !id.hasPrefix("urn:ietf:params:scim:schemas:core:2.0:") || path.hasPrefix("urn:") {
            return false
        }
        let parts = rel.split(separator: ".", maxSplits: 1)
        guard let top = parts.first, let a = attribute(String(top)) else { return false }
        return parts.count == 1 || a.subAttribute(String(parts[1])) != nil
    }

    /// The top-level attribute named `name`, ignoring case.
    public func attribute(_ name: String) -> SCIMAttribute? {
        byName[name] ?? attributes.first { asciiCaseInsensitiveEquals($0.name, name) }
    }

    /// The schema resource for `/Schemas` (RFC 7643 §7).
    public func json(baseURL: String) -> JSONValue {
        .object(
            JSONObject([
                "schemas": .array([.string(SCIMSchemaURN.schema)]),
                "id": .string(id),
                "name": .string(name),
                "description": .string(description),
                "attributes": .array(attributes.map(\.json)),
                "meta": .object(
                    JSONObject(["resourceType": .string("Schema"), "location": .string("\(baseURL)/Schemas/\(id)")])),
            ]))
    }
}

/// A resource type (RFC 7643 §6): its endpoint, core schema and extensions.
public struct SCIMResourceType: Sendable {
    public let name: String
    public let endpoint: String
    public let description: String
    public let schema: SCIMSchema
    /// Extensions with whether each is required.
    public let extensions: [(schema: SCIMSchema, required: Bool)]

    /// The extension whose URN equals `urn`, ignoring case.
    public func extensionSchema(_ urn: String) -> SCIMSchema? {
        // Only keys that start with "urn:" can name an extension; skip the rest cheaply.
        guard urn.utf8.count > 4, urn.utf8.first == UInt8(ascii: "u") || urn.utf8.first == UInt8(ascii: "U") else {
            return nil
        }
        return extensions.first { $0.schema.id == urn }?.schema
            ?? extensions.first { asciiCaseInsensitiveEquals($0.schema.id, urn) }?.schema
    }

    /// Core schema or an extension, by URN.
    public func schema(for urn: String) -> SCIMSchema? {
        asciiCaseInsensitiveEquals(schema.id, urn) ? schema : extensionSchema(urn)
    }

    /// Every schema URN this type knows, core first.
    public var allSchemaIDs: [String] { [schema.id] + extensions.map(\.schema.id) }

    /// The resource type resource for `/ResourceTypes` (RFC 7643 §6).
    public func json(baseURL: String) -> JSONValue {
        .object(
            JSONObject([
                "schemas": .array([.string(SCIMSchemaURN.resourceType)]),
                "id": .string(name),
                "name": .string(name),
                "endpoint": .string(endpoint),
                "description": .string(description),
                "schema": .string(schema.id),
                "schemaExtensions": .array(
                    extensions.map {
                        .object(JSONObject(["schema": .string($0.schema.id), "required": .bool($0.required)]))
                    }),
                "meta": .object(
                    JSONObject([
                        "resourceType": .string("ResourceType"),
                        "location": .string("\(baseURL)/ResourceTypes/\(name)"),
                    ])),
            ]))
    }
}

/// A schema file that cannot be used; the hub refuses to start and names the problem.
public struct SchemaLoadError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Longest accepted string values. Every string attribute has a maximum so that a feed
/// cannot store values no target accepts (an LDAP DN, a URL) or that bloat reports:
/// identifiers 256, other strings and references 1,024, binary 65,536 Unicode scalars,
/// unless the schema file sets `maxLength` or the config overrides one attribute.
public struct AttributeLimits: Sendable {
    public var identifier = 256
    public var string = 1024
    public var binary = 65_536
    /// Per attribute, over the schema: `userName`, `emails.value` (core schemas) or
    /// `urn:…:User:department` (any schema) → maximum.
    public var overrides: [String: Int] = [:]

    public init() {}

    /// Identifier attributes (`SCIMIdentifier`), as `schemaURN:path`; `externalId` is common.
    public static let identifiers: Set<String> = [
        "urn:ietf:params:scim:schemas:core:2.0:User:userName",
        "urn:ietf:params:scim:schemas:core:2.0:User:emails.value",
        "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
    ]

    func defaultLength(type: SCIMAttributeType, identifier: Bool) -> Int {
        identifier ? self.identifier : type == .binary ? binary : string
    }

    /// Attribute names are case-insensitive (RFC 7643 §2.1), in limits as everywhere.
    func override(schemaID: String, path: String) -> Int? {
        func find(_ key: String) -> Int? { overrides.first { asciiCaseInsensitiveEquals($0.key, key) }?.value }
        if let n = find("\(schemaID):\(path)") { return n }
        return schemaID.hasPrefix("urn:ietf:params:scim:schemas:core:2.0:") ? find(path) : nil
    }
}

/// Attributes every resource has (RFC 7643 §3.1), not listed in schema files.
public enum CommonAttributes {
    public static let id = SCIMAttribute(
        name: "id", type: .string, caseExact: true, mutability: .readOnly, returned: .always, uniqueness: "server")
    public static let externalId = SCIMAttribute(name: "externalId", type: .string, caseExact: true, isIdentifier: true)
    public static let meta = SCIMAttribute(
        name: "meta", type: .complex, mutability: .readOnly,
        subAttributes: [
            SCIMAttribute(name: "resourceType", type: .string, caseExact: true, mutability: .readOnly),
            SCIMAttribute(name: "created", type: .dateTime, mutability: .readOnly),
            SCIMAttribute(name: "lastModified", type: .dateTime, mutability: .readOnly),
            SCIMAttribute(name: "location", type: .reference, caseExact: true, mutability: .readOnly),
            SCIMAttribute(name: "version", type: .string, caseExact: true, mutability: .readOnly),
        ])
    public static let all = [id, externalId, meta]

    /// The common attribute named `name`, ignoring case.
    public static func named(_ name: String) -> SCIMAttribute? {
        all.first { asciiCaseInsensitiveEquals($0.name, name) }
    }
}

/// All schemas and resource types, loaded from the `schemas/` folder at start.
public struct SchemaRegistry: Sendable {
    public let schemas: [SCIMSchema]
    public let resourceTypes: [SCIMResourceType]

    /// The resource type named `name` (`User`, `Group`).
    public func resourceType(named name: String) -> SCIMResourceType? {
        resourceTypes.first { $0.name == name }
    }

    /// The resource type served at `endpoint` (`/Users`).
    public func resourceType(endpoint: String) -> SCIMResourceType? {
        resourceTypes.first { $0.endpoint == endpoint }
    }

    /// The schema with URN `id`, ignoring case.
    public func schema(_ id: String) -> SCIMSchema? {
        schemas.first { asciiCaseInsensitiveEquals($0.id, id) }
    }

    /// Loads every `*.json` schema and `ResourceTypes.json` from `directory`.
    public static func load(directory: String, limits: AttributeLimits = AttributeLimits()) throws -> SchemaRegistry {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else {
            throw SchemaLoadError("schema folder \(directory) cannot be read")
        }
        var schemas: [SCIMSchema] = []
        var typesJSON: [JSONValue] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let path = directory + "/" + name
            guard let data = fm.contents(atPath: path) else { throw SchemaLoadError("\(path) cannot be read") }
            let value: JSONValue
            do { value = try JSONParser().parse(Array(data)) } catch {
                throw SchemaLoadError("\(path) is not valid JSON: \(error)")
            }
            if name == "ResourceTypes.json" {
                guard let arr = value.arrayValue else {
                    throw SchemaLoadError("\(path) must hold an array of resource types")
                }
                typesJSON = arr
                continue
            }
            guard let o = value.objectValue, let id = o["id"]?.stringValue else {
                throw SchemaLoadError("\(path) has no schema id")
            }
            let attrs = try (o["attributes"]?.arrayValue ?? []).map { v in
                guard let a = v.objectValue else { throw SchemaLoadError("\(path): attribute is not an object") }
                return try SCIMAttribute(json: a, context: id, schemaID: id, limits: limits)
            }
            if schemas.contains(where: { asciiCaseInsensitiveEquals($0.id, id) }) {
                throw SchemaLoadError("schema \(id) is defined twice")
            }
            schemas.append(
                SCIMSchema(
                    id: id, name: o["name"]?.stringValue ?? id, description: o["description"]?.stringValue ?? "",
                    attributes: attrs))
        }
        guard !typesJSON.isEmpty else { throw SchemaLoadError("\(directory)/ResourceTypes.json is missing or empty") }
        // A limit for an attribute that does not exist is a typo that would silently not apply.
        for key in limits.overrides.keys.sorted() where !schemas.contains(where: { $0.hasAttribute(path: key) }) {
            throw SchemaLoadError("attribute limit for '\(key)': no schema has this attribute")
        }
        var types: [SCIMResourceType] = []
        for t in typesJSON {
            guard let o = t.objectValue, let name = o["name"]?.stringValue, let endpoint = o["endpoint"]?.stringValue,
                let schemaID = o["schema"]?.stringValue
            else { throw SchemaLoadError("a resource type lacks name, endpoint or schema") }
            guard let core = schemas.first(where: { $0.id == schemaID }) else {
                throw SchemaLoadError("resource type \(name) names unknown schema \(schemaID)")
            }
            var exts: [(SCIMSchema, Bool)] = []
            for e in o["schemaExtensions"]?.arrayValue ?? [] {
                guard let eo = e.objectValue, let eid = eo["schema"]?.stringValue,
                    let es = schemas.first(where: { $0.id == eid })
                else {
                    throw SchemaLoadError("resource type \(name) names an unknown extension")
                }
                exts.append((es, eo["required"]?.boolValue ?? false))
            }
            types.append(
                SCIMResourceType(
                    name: name, endpoint: endpoint, description: o["description"]?.stringValue ?? name, schema: core,
                    extensions: exts))
        }
        return SchemaRegistry(schemas: schemas, resourceTypes: types)
    }

    /// Finds the `schemas/` folder: an explicit path, `$SCIMHUB_SCHEMAS`, `./schemas`, or next to
    /// the executable's package.
    public static func locateDirectory(explicit: String?) -> String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let e = explicit { return e }
        if let env = ProcessInfo.processInfo.environment["SCIMHUB_SCHEMAS"] { candidates.append(env) }
        candidates.append(fm.currentDirectoryPath + "/schemas")
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
            .deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("schemas").path)
            dir = dir.deletingLastPathComponent()
        }
        return candidates.first { fm.fileExists(atPath: $0 + "/ResourceTypes.json") }
    }
}
