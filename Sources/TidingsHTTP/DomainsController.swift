import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/domains`: sending domains and the DNS records to publish for them (scope `admin`).
struct DomainsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/domains", list)
        routes.add(.post, "/v1/domains", create)
        routes.add(.get, "/v1/domains/{domain}", get)
        routes.add(.delete, "/v1/domains/{domain}", delete)
        routes.add(.post, "/v1/domains/{domain}/verify", verify)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let domains = try await services.domains.list(workspaceId: principal.workspaceId)
        return JSONResponse.make(status: .ok, ListDTO(data: domains.map(DomainDTO.init), nextCursor: nil))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let domain = try await services.domains.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, DomainDTO(domain))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let domain = try await services.domains.get(workspaceId: principal.workspaceId, domain: try request.pathParameter("domain", context: context))
        return JSONResponse.make(status: .ok, DomainDTO(domain))
    }

    /// Checks the published DKIM, SPF and DMARC records now; answers with the domain and what was found.
    @Sendable func verify(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let domain = try await services.domains.verify(workspaceId: principal.workspaceId, domain: try request.pathParameter("domain", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, DomainDTO(domain))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        try await services.domains.delete(workspaceId: principal.workspaceId, domain: try request.pathParameter("domain", context: context), by: context.actor)
        return Response(status: .noContent)
    }
}

/// A sending domain: never its private keys. In lists, `verification` has no `checks`.
struct DomainDTO: Encodable {
    var id: String
    var domain: String
    var dnsRecords: [DNSRecord]
    var createdAt: String
    var verification: VerificationDTO?

    init(_ domain: SendingDomain) {
        id = domain.id
        self.domain = domain.domain
        dnsRecords = domain.records
        createdAt = Timestamp.format(domain.createdAt)
        verification = domain.verification.map(VerificationDTO.init)
    }

    enum CodingKeys: String, CodingKey {
        case id, domain, dnsRecords, createdAt, verification
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(domain, forKey: .domain)
        try container.encode(dnsRecords, forKey: .dnsRecords)
        try container.encode(createdAt, forKey: .createdAt)
        // `null` until the first check, so clients need not tell a missing field from "never checked".
        try container.encode(verification, forKey: .verification)
    }
}

struct VerificationDTO: Encodable {
    var status: String
    var checkedAt: String
    var checks: [DomainCheckDTO]?

    init(_ verification: DomainVerification) {
        status = verification.status.rawValue
        checkedAt = Timestamp.format(verification.checkedAt)
        checks = verification.checks?.map(DomainCheckDTO.init)
    }
}

/// One check: `fix` is `null` when nothing needs changing; `selector` only for DKIM,
/// `lookups` and `voidLookups` only for SPF, `policy` only for DMARC (each when known).
struct DomainCheckDTO: Encodable {
    var check: DomainCheck

    enum CodingKeys: String, CodingKey {
        case kind, selector, name, status, records, summary, fix, lookups, voidLookups, policy
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(check.kind.rawValue, forKey: .kind)
        try container.encodeIfPresent(check.selector, forKey: .selector)
        try container.encode(check.name, forKey: .name)
        try container.encode(check.status.rawValue, forKey: .status)
        try container.encode(check.records, forKey: .records)
        try container.encode(check.summary, forKey: .summary)
        try container.encode(check.fix, forKey: .fix)
        try container.encodeIfPresent(check.lookups, forKey: .lookups)
        try container.encodeIfPresent(check.voidLookups, forKey: .voidLookups)
        try container.encodeIfPresent(check.policy, forKey: .policy)
    }
}
