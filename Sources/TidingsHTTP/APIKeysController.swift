import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/api-keys`: managing the workspace's keys (the `admin` scope).
struct APIKeysController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/api-keys", list)
        routes.add(.post, "/v1/api-keys", create)
        routes.add(.get, "/v1/api-keys/{id}", get)
        routes.add(.delete, "/v1/api-keys/{id}", revoke)
        routes.add(.post, "/v1/api-keys/{id}/rotate", rotate)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let keys = try await services.apiKeys.list(workspaceId: principal.workspaceId)
        let now = services.now()
        return JSONResponse.make(status: .ok, ListDTO(data: keys.map { APIKeyDTO($0, now: now) }, nextCursor: nil))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        var body = BodyReader(try await JSONBody.object(request))
        let name = try body.string("name", required: true)!
        let scopes = try body.stringArray("scopes").map { names throws(DomainError) in try Scope.parseList(names) } ?? Scope.defaultForNewKeys
        let expiresAt = try body.timestamp("expiresAt")
        try body.rejectUnknownFields()
        let issued = try await services.apiKeys.create(workspaceId: principal.workspaceId, name: name, scopes: scopes, expiresAt: expiresAt, by: context.actor)
        return JSONResponse.make(status: .created, APIKeyDTO(issued.key, now: services.now(), secret: issued.token.secret))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let key = try await services.apiKeys.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, APIKeyDTO(key, now: services.now()))
    }

    @Sendable func revoke(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let key = try await services.apiKeys.revoke(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, APIKeyDTO(key, now: services.now()))
    }

    @Sendable func rotate(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        // The body is optional: an empty POST rotates with the default overlap.
        var overlap = APIKeyService.defaultRotationOverlap
        if let object = try await JSONBody.optionalObject(request) {
            var body = BodyReader(object)
            if let seconds = try body.number("overlapSeconds") { overlap = seconds }
            try body.rejectUnknownFields()
        }
        let issued = try await services.apiKeys.rotate(
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), overlap: overlap, by: context.actor
        )
        return JSONResponse.make(status: .ok, APIKeyDTO(issued.key, now: services.now(), secret: issued.token.secret))
    }
}
