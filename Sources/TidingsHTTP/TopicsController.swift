import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/topics`: the kinds of marketing mail contacts can leave one by one, identified by
/// slug like templates (`contacts:read` / `contacts:write`).
struct TopicsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/topics", list)
        routes.add(.post, "/v1/topics", create)
        routes.add(.get, "/v1/topics/{slug}", get)
        routes.add(.patch, "/v1/topics/{slug}", update)
        routes.add(.delete, "/v1/topics/{slug}", delete)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.topics.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(TopicDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let topic = try await services.topics.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, TopicDTO(topic))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let topic = try await services.topics.get(workspaceId: principal.workspaceId, slug: try request.pathParameter("slug", context: context))
        return JSONResponse.make(status: .ok, TopicDTO(topic))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let topic = try await services.topics.update(
            workspaceId: principal.workspaceId, slug: try request.pathParameter("slug", context: context),
            body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, TopicDTO(topic))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        try await services.topics.delete(workspaceId: principal.workspaceId, slug: try request.pathParameter("slug", context: context), by: context.actor)
        return Response(status: .noContent)
    }
}

struct TopicDTO: Encodable {
    var topic: Topic

    init(_ topic: Topic) {
        self.topic = topic
    }

    enum CodingKeys: String, CodingKey {
        case id, slug, name, description, createdAt, updatedAt
    }

    // `description` is always present, `null` when there is none.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(topic.id, forKey: .id)
        try container.encode(topic.slug, forKey: .slug)
        try container.encode(topic.name, forKey: .name)
        try container.encode(topic.description, forKey: .description)
        try container.encode(Timestamp.format(topic.createdAt), forKey: .createdAt)
        try container.encode(Timestamp.format(topic.updatedAt), forKey: .updatedAt)
    }
}
