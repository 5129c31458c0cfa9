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

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        try await services.domains.delete(workspaceId: principal.workspaceId, domain: try request.pathParameter("domain", context: context), by: context.actor)
        return Response(status: .noContent)
    }
}

/// A sending domain: never its private keys.
struct DomainDTO: Encodable {
    var id: String
    var domain: String
    var dnsRecords: [DNSRecord]
    var createdAt: String

    init(_ domain: SendingDomain) {
        id = domain.id
        self.domain = domain.domain
        dnsRecords = domain.records
        createdAt = Timestamp.format(domain.createdAt)
    }
}
