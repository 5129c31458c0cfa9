import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/contacts/{email}/subscriptions`: whether a contact receives marketing mail, topic by
/// topic, and the history of every change (`contacts:read` / `contacts:write`).
struct SubscriptionsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/contacts/{email}/subscriptions", get)
        routes.add(.patch, "/v1/contacts/{email}/subscriptions", update)
        routes.add(.get, "/v1/contacts/{email}/subscriptions/changes", changes)
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let subscriptions = try await services.subscriptions.get(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context)
        )
        return JSONResponse.make(status: .ok, SubscriptionsDTO(subscriptions))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let subscriptions = try await services.subscriptions.update(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context),
            body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, SubscriptionsDTO(subscriptions))
    }

    @Sendable func changes(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.subscriptions.history(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context),
            cursor: query["cursor"], limit: try query.int("limit")
        )
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(SubscriptionChangeDTO.init), nextCursor: page.nextCursor))
    }
}

struct SubscriptionsDTO: Encodable {
    var status: String
    var topics: [TopicSubscriptionDTO]

    struct TopicSubscriptionDTO: Encodable {
        var id: String
        var slug: String
        var name: String
        var subscribed: Bool
    }

    init(_ subscriptions: SubscriptionService.Subscriptions) {
        status = subscriptions.status.rawValue
        topics = subscriptions.topics.map { TopicSubscriptionDTO(id: $0.topic.id, slug: $0.topic.slug, name: $0.topic.name, subscribed: $0.subscribed) }
    }
}

/// One change in a contact's subscription history; optional fields are `null` when unknown.
struct SubscriptionChangeDTO: Encodable {
    var entry: SubscriptionService.HistoryEntry

    init(_ entry: SubscriptionService.HistoryEntry) {
        self.entry = entry
    }

    enum CodingKeys: String, CodingKey {
        case id, change, topicId, topic, via, messageId, originKind, originId, at
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        let change = entry.change
        try container.encode(change.id, forKey: .id)
        try container.encode(change.kind.rawValue, forKey: .change)
        try container.encode(change.topicId, forKey: .topicId)
        try container.encode(entry.topicSlug, forKey: .topic)
        try container.encode(change.via.rawValue, forKey: .via)
        try container.encode(change.messageId, forKey: .messageId)
        try container.encode(change.originKind?.rawValue, forKey: .originKind)
        try container.encode(change.originId, forKey: .originId)
        try container.encode(Timestamp.format(change.at), forKey: .at)
    }
}
