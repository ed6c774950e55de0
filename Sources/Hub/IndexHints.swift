// SPDX-License-Identifier: Apache-2.0
import HubBase
import SCIM
import Store

/// Which index narrows a SCIM filter: the filter language is the SCIM layer's, the indexes are the store's.
extension IndexHint {
    /// The hint for a filter, if some conjunct is an `eq` on an indexed attribute.
    static func from(_ filter: SCIMFilter, type: String) -> IndexHint? {
        switch filter {
        case .and(let a, let b):
            return from(a, type: type) ?? from(b, type: type)
        case .compare(let p, .eq, .string(let v)):
            guard let abs = p.absolute, abs.extensionURN == nil else { return nil }
            switch (abs.attribute.name, abs.subAttribute?.name) {
            case ("id", nil): return .id(v)
            case ("externalId", nil): return .externalId(v)
            case ("userName", nil) where type == "User": return .userName(Identifier.canonical(v))
            case ("displayName", nil) where type == "Group": return .displayName(Identifier.canonical(v))
            case ("emails", "value") where type == "User": return .email(Identifier.canonical(v))
            case ("emails", nil) where type == "User": return .email(Identifier.canonical(v))
            default: return nil
            }
        case .valuePath(let p, let inner) where p.attribute.name == "emails" && p.extensionURN == nil && type == "User":
            return emailHint(inner)
        default:
            return nil
        }
    }

    private static func emailHint(_ f: SCIMFilter) -> IndexHint? {
        switch f {
        case .and(let a, let b): return emailHint(a) ?? emailHint(b)
        case .compare(let p, .eq, .string(let v)) where p.relative?.name == "value":
            return .email(Identifier.canonical(v))
        default: return nil
        }
    }
}

extension SCIMResourceType {
    /// The store's name for resources of this type.
    var kind: ResourceKind { ResourceKind(name) }
}
