import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/segments`: saved filters over contacts (`contacts:read` / `contacts:write`).
struct SegmentsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/segments", list)
        routes.add(.post, "/v1/segments", create)
        routes.add(.get, "/v1/segments/{id}", get)
        routes.add(.patch, "/v1/segments/{id}", update)
        routes.add(.delete, "/v1/segments/{id}", delete)
        routes.add(.get, "/v1/segments/{id}/count", count)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.segments.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(SegmentDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let segment = try await services.segments.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, SegmentDTO(segment))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let segment = try await services.segments.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, SegmentDTO(segment))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let segment = try await services.segments.update(
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, SegmentDTO(segment))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        try await services.segments.delete(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return Response(status: .noContent)
    }

    /// How many contacts match now (and how many of them can receive marketing mail).
    @Sendable func count(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let count = try await services.segments.count(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, SegmentCountDTO(contacts: count.contacts, matching: count.matching, reachable: count.reachable))
    }
}

struct SegmentDTO: Encodable {
    var id: String
    var name: String
    var filter: JSONValue
    var createdAt: String
    var updatedAt: String

    init(_ segment: Segment) {
        id = segment.id
        name = segment.name
        filter = segment.filter.jsonValue
        createdAt = Timestamp.format(segment.createdAt)
        updatedAt = Timestamp.format(segment.updatedAt)
    }
}

struct SegmentCountDTO: Encodable {
    var contacts: Int
    var matching: Int
    var reachable: Int
}
