import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/announcements`: mail to everyone or a segment (`messages:read` / `messages:send`; a
/// critical notice, which also reaches unsubscribed contacts, needs `admin`).
struct AnnouncementsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/announcements", list)
        routes.add(.post, "/v1/announcements", create)
        routes.add(.get, "/v1/announcements/{id}", get)
        routes.add(.patch, "/v1/announcements/{id}", update)
        routes.add(.delete, "/v1/announcements/{id}", delete)
        routes.add(.post, "/v1/announcements/{id}/send", send)
        routes.add(.post, "/v1/announcements/{id}/pause", pause)
        routes.add(.post, "/v1/announcements/{id}/resume", resume)
        routes.add(.post, "/v1/announcements/{id}/cancel", cancel)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.announcements.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map { AnnouncementDTO($0, messages: nil) }, nextCursor: page.nextCursor))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        let announcement = try await services.announcements.create(
            workspaceId: principal.workspaceId, body: try await JSONBody.object(request), mayMarkCritical: principal.scopes.permits(.admin), by: context.actor
        )
        return JSONResponse.make(status: .created, AnnouncementDTO(announcement, messages: [:]))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesRead)
        return try await answer(services.announcements.get(workspaceId: principal.workspaceId, id: try id(request, context)))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        let announcement = try await services.announcements.update(
            workspaceId: principal.workspaceId, id: try id(request, context), body: try await JSONBody.object(request),
            mayMarkCritical: principal.scopes.permits(.admin), by: context.actor
        )
        return JSONResponse.make(status: .ok, AnnouncementDTO(announcement, messages: [:]))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        try await services.announcements.delete(workspaceId: principal.workspaceId, id: try id(request, context), by: context.actor)
        return Response(status: .noContent)
    }

    @Sendable func send(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        return try await answer(services.announcements.send(workspaceId: principal.workspaceId, id: try id(request, context), by: context.actor), status: .accepted)
    }

    @Sendable func pause(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        return try await answer(services.announcements.pause(workspaceId: principal.workspaceId, id: try id(request, context), by: context.actor))
    }

    @Sendable func resume(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        return try await answer(services.announcements.resume(workspaceId: principal.workspaceId, id: try id(request, context), by: context.actor))
    }

    @Sendable func cancel(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        return try await answer(services.announcements.cancel(workspaceId: principal.workspaceId, id: try id(request, context), by: context.actor))
    }

    private func id(_ request: Request, _ context: TidingsRequestContext) throws -> String {
        try request.pathParameter("id", context: context)
    }

    private func answer(_ detail: AnnouncementService.Detail, status: HTTPResponse.Status = .ok) -> Response {
        JSONResponse.make(status: status, AnnouncementDTO(detail.announcement, messages: detail.messages))
    }
}

/// An announcement with its progress: how far the fan-out got (`audience`) and where its
/// messages stand (`messages`; not in lists).
struct AnnouncementDTO: Encodable {
    var id: String
    var name: String
    var templateSlug: String
    var segmentId: String?
    var topic: String?
    var critical: Bool
    var tracking: TrackingDTO?
    var status: String
    var sendAt: String?
    var audience: Audience
    var messages: Messages?
    var createdAt: String
    var updatedAt: String
    var startedAt: String?
    var queuedAt: String?
    var finishedAt: String?

    /// `null` for a choice left to the workspace's settings.
    struct TrackingDTO: Encodable {
        var opens: Bool?
        var clicks: Bool?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(opens, forKey: .opens)
            try container.encode(clicks, forKey: .clicks)
        }

        enum CodingKeys: String, CodingKey { case opens, clicks }
    }

    struct Audience: Encodable {
        var considered: Int
        var notInSegment: Int
        var unsubscribed: Int
        var messages: Int
    }

    /// `queued` is every message not sent yet (queued, scheduled, sending, deferred); `failed`
    /// includes bounces.
    struct Messages: Encodable {
        var queued: Int
        var sent: Int
        var failed: Int
        var bounced: Int
        var suppressed: Int
        var cancelled: Int
    }

    init(_ announcement: Announcement, messages counts: [MessageStatus: Int]?) {
        id = announcement.id
        name = announcement.name
        templateSlug = announcement.templateSlug
        segmentId = announcement.segmentId
        topic = announcement.topic
        critical = announcement.critical
        tracking = announcement.tracking.map { TrackingDTO(opens: $0.opens, clicks: $0.clicks) }
        status = announcement.status.rawValue
        sendAt = announcement.sendAt.map(Timestamp.format)
        let progress = announcement.progress
        audience = Audience(considered: progress.considered, notInSegment: progress.notInSegment, unsubscribed: progress.unsubscribed, messages: progress.messages)
        messages = counts.map { counts in
            let count = { (status: MessageStatus) in counts[status] ?? 0 }
            return Messages(
                queued: count(.queued) + count(.scheduled) + count(.sending) + count(.deferred), sent: count(.delivered),
                failed: count(.failed) + count(.bounced), bounced: count(.bounced), suppressed: count(.suppressed), cancelled: count(.cancelled)
            )
        }
        createdAt = Timestamp.format(announcement.createdAt)
        updatedAt = Timestamp.format(announcement.updatedAt)
        startedAt = announcement.startedAt.map(Timestamp.format)
        queuedAt = announcement.queuedAt.map(Timestamp.format)
        finishedAt = announcement.finishedAt.map(Timestamp.format)
    }

    enum CodingKeys: String, CodingKey {
        case id, name, templateSlug, segmentId, topic, critical, tracking, status, sendAt, audience, messages, createdAt, updatedAt, startedAt, queuedAt, finishedAt
    }

    // Optional fields are present as null, so clients need not tell missing from unset.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(templateSlug, forKey: .templateSlug)
        try container.encode(segmentId, forKey: .segmentId)
        try container.encode(topic, forKey: .topic)
        try container.encode(critical, forKey: .critical)
        try container.encode(tracking, forKey: .tracking)
        try container.encode(status, forKey: .status)
        try container.encode(sendAt, forKey: .sendAt)
        try container.encode(audience, forKey: .audience)
        if let messages { try container.encode(messages, forKey: .messages) }
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(queuedAt, forKey: .queuedAt)
        try container.encode(finishedAt, forKey: .finishedAt)
    }
}
