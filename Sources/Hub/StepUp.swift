// SPDX-License-Identifier: Apache-2.0
import Foundation
import HTTPServer
import HubCrypto
import JSONCore
import SCIM
import Store

/// Step-up enrolment (`POST /mfa/enrol`).
struct MFAEndpoints: FeatureEndpoints {
    let hub: HubContext
}

/// Step-up MFA for privileged actions (break-glass grants, remediation confirmations, token
/// creation over the API): a stolen bearer token alone is not enough. The caller also sends
/// a current TOTP code (RFC 6238: HMAC-SHA-1, 30 s, 6 digits) in `X-ScimHub-TOTP`; one step
/// of clock skew either way is accepted, a code is accepted once, and failures are audited
/// and rate-limited per principal.
extension MFAEndpoints {
    /// `POST /mfa/enrol`: creates the caller's TOTP secret and shows it once as an otpauth:// URI.
    func enrolMFA(_ ctx: RequestContext) throws -> HTTPResponse {
        let principal = ctx.principal.name
        let secret = Crypto.randomBytes(20)
        let requestID = ctx.requestID
        let created = try store.write { w -> Bool in
            guard try w.connection.enrolMFA(principal: principal, secret: secret, now: Date().timeIntervalSince1970)
            else { return false }
            try AuditLog.append(
                w,
                .now(
                    principal: principal, action: "mfa.enrol", resourceType: "Principal", resourceID: principal,
                    requestID: requestID))
            return true
        }
        guard created else {
            throw SCIMError(
                status: 409,
                detail: "a TOTP authenticator is enrolled already; an operator resets it with `scimhub mfa reset`")
        }
        let label = principal.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "principal"
        let uri =
            "otpauth://totp/ScimHub:\(label)?secret=\(TOTP.base32(secret))&issuer=ScimHub"
            + "&algorithm=SHA1&digits=6&period=30"
        return jsonResponse(
            201,
            .object(
                JSONObject(["otpauth": .string(uri), "note": .string("shown once: add it to an authenticator app now")])
            ),
            headers: [("Cache-Control", "no-store")], contentType: "application/json")
    }

}

extension MFAEndpoints {
    /// Step-up enrolment.
    var routes: [Route] {
        [
            Route.make("POST", "/mfa/enrol", .anyOf([.admin, .breakGlass])) { ctx, _ in try self.enrolMFA(ctx) }
        ]
    }
}

/// Step-up checks, shared by every feature whose actions need one.
extension FeatureEndpoints {
    static var stepUpHeader: String { "X-ScimHub-TOTP" }

    /// Throws unless the request carries a current, unused TOTP code of its principal.
    func requireStepUp(_ ctx: RequestContext, action: String) throws {
        try requireTOTP(
            principal: ctx.principal.name, code: ctx.request.headers[Self.stepUpHeader] ?? "", action: action,
            requestID: ctx.requestID, where: "in \(Self.stepUpHeader)")
    }

    /// Throws unless `code` is a current, unused TOTP code of `principal` (one step of skew
    /// either way; each step accepted once and in order). Failures are audited and
    /// throttled per principal: 5 in 5 minutes, then 429.
    func requireTOTP(principal: String, code: String, action: String, requestID: String, where place: String) throws {
        let now = Date().timeIntervalSince1970
        if let wait = try mfaThrottle.retryAfter(principal, now: now) {
            throw SCIMError(
                status: 429, detail: "too many failed step-up codes; retry later",
                headers: ["Retry-After": String(wait)])
        }
        guard let secret = try store.read({ try $0.mfaSecret(principal: principal) }) else {
            throw SCIMError(
                status: 403,
                detail:
                    "\(action) needs step-up: enrol a TOTP authenticator with POST /mfa/enrol, "
                    + "then send a code \(place)"
            )
        }
        let step = TOTP.step(at: now)
        let matched =
            code.utf8.count == TOTP.digits
            ? [step - 1, step, step + 1].first { s in
                Crypto.constantTimeEquals(Array(code.utf8), Array(TOTP.code(secret: secret, step: s).utf8))
            } : nil
        let accepted =
            try matched.map { s in try store.write { try $0.connection.acceptMFAStep(principal: principal, step: s) } }
            ?? false
        guard accepted else {
            // Counted for every node (the codes' replay protection is in the store too:
            // `acceptMFAStep`); a count storage cannot take leaves the refusal standing.
            try? mfaThrottle.recordFailure(principal, now: now)
            _ = try? store.write { w in
                try AuditLog.append(
                    w,
                    .now(
                        principal: principal, action: "mfa.failure", resourceType: "Principal", resourceID: principal,
                        attributes: [action], requestID: requestID, outcome: "refused"))
            }
            throw SCIMError(
                status: 403,
                detail:
                    "\(action) needs a current TOTP code \(place); "
                    + "this one is missing, wrong, too old or already used"
            )
        }
    }
}
