import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/webhooks`: endpoints that receive signed events, and their delivery log (scope `admin`).
struct WebhooksController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/webhooks", list)
        routes.add(.post, "/v1/webhooks", create)
        routes.add(.get, "/v1/webhooks/{id}", get)
        routes.add(.patch, "/v1/webhooks/{id}", update)
        routes.add(.delete, "/v1/webhooks/{id}", delete)
        routes.add(.post, "/v1/webhooks/{id}/rotate-secret", rotateSecret)
        routes.add(.post, "/v1/webhooks/{id}/enable", enable)
        routes.add(.get, "/v1/webhooks/{id}/deliveries", deliveries)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhooks = try await services.webhooks.list(workspaceId: principal.workspaceId)
        return JSONResponse.make(status: .ok, ListDTO(data: webhooks.map { WebhookDTO($0) }, nextCursor: nil))
    }

    /// 201 with the secret: the one time it is shown.
    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhook = try await services.webhooks.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, WebhookDTO(webhook, showingSecret: true))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhook = try await services.webhooks.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, WebhookDTO(webhook))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhook = try await services.webhooks.update(
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, WebhookDTO(webhook))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        try await services.webhooks.delete(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return Response(status: .noContent)
    }

    /// 200 with the new secret, shown this once; the previous one signs alongside for 24 hours.
    @Sendable func rotateSecret(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhook = try await services.webhooks.rotateSecret(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, WebhookDTO(webhook, showingSecret: true))
    }

    @Sendable func enable(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let webhook = try await services.webhooks.enable(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, WebhookDTO(webhook))
    }

    @Sendable func deliveries(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let query = QueryParameters(request.uri.query)
        let page = try await services.webhooks.deliveries(
            workspaceId: principal.workspaceId, webhookId: try request.pathParameter("id", context: context),
            query: .init(status: query["status"], cursor: query["cursor"], limit: try query.int("limit"))
        )
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(WebhookDeliveryDTO.init), nextCursor: page.nextCursor))
    }
}

/// An endpoint as the API shows it; `secret` only in the answers that made one.
struct WebhookDTO: Encodable {
    var webhook: Webhook
    var showingSecret = false

    init(_ webhook: Webhook, showingSecret: Bool = false) {
        self.webhook = webhook
        self.showingSecret = showingSecret
    }

    enum CodingKeys: String, CodingKey {
        case id, url, host, description, events, status, disabledAt, disabledReason, previousSecretExpiresAt, createdAt, updatedAt, secret
    }

    // Optional fields are always present (as null) so clients see the full shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(webhook.id, forKey: .id)
        try container.encode(webhook.url, forKey: .url)
        try container.encode(webhook.host, forKey: .host)
        try container.encode(webhook.description, forKey: .description)
        try container.encode(webhook.events.map(\.rawValue), forKey: .events)
        try container.encode(webhook.status.rawValue, forKey: .status)
        try container.encode(webhook.disabledAt.map(Timestamp.format), forKey: .disabledAt)
        try container.encode(webhook.disabledReason, forKey: .disabledReason)
        // When the secret before the last rotation stops (or stopped) signing; null before any rotation.
        try container.encode(webhook.previousSecretExpiresAt.map(Timestamp.format), forKey: .previousSecretExpiresAt)
        try container.encode(Timestamp.format(webhook.createdAt), forKey: .createdAt)
        try container.encode(Timestamp.format(webhook.updatedAt), forKey: .updatedAt)
        if showingSecret { try container.encode(webhook.secret, forKey: .secret) }
    }
}

struct WebhookDeliveryDTO: Encodable {
    var delivery: WebhookDelivery

    init(_ delivery: WebhookDelivery) {
        self.delivery = delivery
    }

    enum CodingKeys: String, CodingKey {
        case id, webhookId, eventType, status, attempts, responseStatus, responseBody, error, durationMs, createdAt, lastAttemptAt, nextAttemptAt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(delivery.id, forKey: .id)
        try container.encode(delivery.webhookId, forKey: .webhookId)
        try container.encode(delivery.eventType, forKey: .eventType)
        try container.encode(delivery.status.rawValue, forKey: .status)
        try container.encode(delivery.attempts, forKey: .attempts)
        try container.encode(delivery.responseStatus, forKey: .responseStatus)
        try container.encode(delivery.responseSnippet, forKey: .responseBody)
        try container.encode(delivery.error, forKey: .error)
        try container.encode(delivery.durationMs, forKey: .durationMs)
        try container.encode(Timestamp.format(delivery.createdAt), forKey: .createdAt)
        try container.encode(delivery.lastAttemptAt.map(Timestamp.format), forKey: .lastAttemptAt)
        try container.encode(delivery.nextAttemptAt.map(Timestamp.format), forKey: .nextAttemptAt)
    }
}
