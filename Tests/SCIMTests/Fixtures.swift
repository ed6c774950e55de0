// SPDX-License-Identifier: Apache-2.0
import JSONCore
import SCIM
import TestSupport

/// The shipped schemas, loaded once.
let registry: SchemaRegistry = {
    do { return try SchemaRegistry.load(directory: repoRoot + "/schemas") } catch {
        preconditionFailure("schemas: \(error)")
    }
}()
let userType = registry.resourceType(named: "User")!
let groupType = registry.resourceType(named: "Group")!

func json(_ text: String) -> JSONObject {
    (try? JSONParser().parse(text))?.objectValue ?? JSONObject()
}

/// A nurse in canonical form, as the store would hold her.
let nurse = json(
    """
    {"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",\
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",\
    "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User"],
     "id":"u1","externalId":"E100000","userName":"juliana.silva@clinicas-exemplo.org","name":{"givenName":"Juliana",\
    "familyName":"Silva"},
     "displayName":"Juliana Silva","title":"Registered Nurse","active":true,
     "emails":[{"value":"juliana.silva@clinicas-exemplo.org","type":"work","primary":true},{"value":"jus@home.example",\
    "type":"home"}],
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"E100000","department":"Nursing",\
    "manager":{"value":"m1"}},
     "urn:scimhub:params:scim:schemas:extension:healthcare:1.0:User":{"sites":["CLN-BOT","CLN-BAT"],\
    "licenseBody":"COREN","licenseExpiresAt":"2028-10-19T23:59:59Z","credentialStatus":"active"}}
    """)
