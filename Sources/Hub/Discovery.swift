// SPDX-License-Identifier: Apache-2.0
import HTTPServer
import JSONCore
import SCIM

/// `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4). They advertise
/// only what the hub actually does, with the limits it actually enforces.
extension SCIMEndpoints {
    func serviceProviderConfig(_ ctx: RequestContext) -> JSONValue {
        func supported(_ b: Bool) -> JSONValue { .object(JSONObject(["supported": .bool(b)])) }
        return .object(
            JSONObject([
                "schemas": .array([.string(SCIMSchemaURN.serviceProviderConfig)]),
                "patch": supported(true),
                "bulk": .object(
                    JSONObject([
                        "supported": .bool(true), "maxOperations": .int(config.bulkMaxOperations),
                        "maxPayloadSize": .int(config.bulkMaxPayloadBytes),
                    ])),
                "filter": .object(JSONObject(["supported": .bool(true), "maxResults": .int(config.listMaxCount)])),
                "changePassword": supported(true),
                "sort": supported(true),
                "etag": supported(true),
                "authenticationSchemes": .array([
                    .object(
                        JSONObject([
                            "type": .string("oauthbearertoken"),
                            "name": .string("Bearer token"),
                            "description": .string(
                                "Authorization: Bearer with a token issued by `scimhub token create`"),
                            "primary": .bool(true),
                        ]))
                ]),
                "meta": .object(
                    JSONObject([
                        "resourceType": .string("ServiceProviderConfig"),
                        "location": .string("\(ctx.baseURL)/ServiceProviderConfig"),
                    ])),
            ]))
    }

    func discoveryList(_ kind: String, _ ctx: RequestContext) throws -> HTTPResponse {
        // RFC 7644 §4: filtering these endpoints is not supported; the RFC suggests 403.
        if ctx.request.queryValue("filter") != nil {
            throw SCIMError(status: 403, detail: "filtering is not supported on /\(kind)")
        }
        let items =
            kind == "Schemas"
            ? usedSchemas.map { $0.json(baseURL: ctx.baseURL) }
            : registry.resourceTypes.map { $0.json(baseURL: ctx.baseURL) }
        return jsonResponse(
            200,
            .object(
                JSONObject([
                    "schemas": .array([.string(SCIMSchemaURN.listResponse)]),
                    "totalResults": .int(items.count),
                    "startIndex": .int(1),
                    "itemsPerPage": .int(items.count),
                    "Resources": .array(items),
                ])))
    }

    func discoveryItem(_ kind: String, _ id: String, _ ctx: RequestContext) throws -> HTTPResponse {
        if kind == "Schemas" {
            guard let s = usedSchemas.first(where: { asciiCaseInsensitiveEquals($0.id, id) }) else {
                throw SCIMError.notFound("no schema with this id")
            }
            return jsonResponse(200, s.json(baseURL: ctx.baseURL))
        }
        guard let t = registry.resourceTypes.first(where: { $0.name == id }) else {
            throw SCIMError.notFound("no resource type with this id")
        }
        return jsonResponse(200, t.json(baseURL: ctx.baseURL))
    }

    /// Schemas some resource type uses.
    private var usedSchemas: [SCIMSchema] {
        var out: [SCIMSchema] = []
        for t in registry.resourceTypes {
            for s in [t.schema] + t.extensions.map(\.schema) where !out.contains(where: { $0.id == s.id }) {
                out.append(s)
            }
        }
        return out
    }
}
