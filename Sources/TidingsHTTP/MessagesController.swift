import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TidingsDomain
import TidingsServices
import TidingsStorage

/// `/v1/messages`: sending (scope `messages:send`), reading and cancelling (`messages:read`
/// to read; cancelling is a send-side action), and `/v1/suppressions`.
struct MessagesController {
    let services: APIServices

    /// A message's body may carry up to 10 MiB of attachments (base64 makes that ~13.4 MiB).
    static let maxMessageBytes = 15 * 1024 * 1024
    static let maxBatchBytes = 25 * 1024 * 1024

    func register(on routes: APIRoutes) {
        routes.add(.post, "/v1/messages", send)
        routes.add(.post, "/v1/messages/batch", sendBatch)
        routes.add(.get, "/v1/messages", list)
        routes.add(.get, "/v1/messages/{id}", get)
        routes.add(.delete, "/v1/messages/{id}", cancel)
        routes.add(.get, "/v1/suppressions", listSuppressions)
        routes.add(.delete, "/v1/suppressions/{email}", deleteSuppression)
    }

    @Sendable func send(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        let body = try await JSONBody.object(request, maxBytes: Self.maxMessageBytes)
        let answer = try await services.messages.send(
            workspaceId: principal.workspaceId, body: body, idempotencyKey: request.headers[.idempotencyKey], by: context.actor
        ) { accepted in
            JSONValue.object(["id": .string(accepted.id), "status": .string(accepted.status.rawValue)]).serializedString
        }
        return Self.respond(answer)
    }

    @Sendable func sendBatch(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        let body = try await JSONBody.object(request, maxBytes: Self.maxBatchBytes)
        let answer = try await services.messages.sendBatch(
            workspaceId: principal.workspaceId, body: body, idempotencyKey: request.headers[.idempotencyKey], by: context.actor
        ) { items in
            let results: [JSONValue] = items.map { item in
                switch item {
                case .accepted(let accepted):
                    .object(["id": .string(accepted.id), "status": .string(accepted.status.rawValue)])
                case .rejected(let error):
                    .object(["error": .object([
                        "code": .string(error.code), "message": .string(error.message), "field": error.field.map(JSONValue.string) ?? .null,
                        "status": .number(Double(APIError(error).status.code)),
                    ])])
                }
            }
            let accepted = items.filter { if case .accepted = $0 { true } else { false } }.count
            return JSONValue.object([
                "results": .array(results), "accepted": .number(Double(accepted)), "rejected": .number(Double(items.count - accepted)),
            ]).serializedString
        }
        return Self.respond(answer)
    }

    static func respond(_ answer: MessageService.Replay) -> Response {
        Response(
            status: HTTPResponse.Status(code: answer.status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: answer.body))
        )
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.messages.list(workspaceId: principal.workspaceId, query: .init(
            status: query["status"], contact: query["contact"], template: query["template"], from: query["from"], to: query["to"],
            cursor: query["cursor"], limit: try query.int("limit")
        ))
        return JSONResponse.make(status: .ok, json: .object([
            "data": .array(page.items.map { Self.summary($0) }), "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
        ]))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesRead)
        let detail = try await services.messages.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        let engagement = try await services.tracking.engagement(workspaceId: principal.workspaceId, messageId: detail.message.id)
        var json = Self.summary(detail.message)
        if case .object(var fields) = json {
            if let engagement { fields["tracking"] = Self.tracking(engagement) }
            fields["cc"] = .array(detail.message.request.cc.map(JSONValue.string))
            fields["bcc"] = .array(detail.message.request.bcc.map(JSONValue.string))
            fields["metadata"] = .object(detail.message.request.metadata)
            fields["attachments"] = .array(detail.message.request.attachments.map { attachment in
                .object([
                    "filename": .string(attachment.filename), "contentType": .string(attachment.contentType),
                    "size": .number(Double(Data(base64Encoded: attachment.content)?.count ?? 0)),
                ])
            })
            fields["timeline"] = .array(detail.events.map { event in
                var entry = event.detail
                entry["status"] = .string(event.kind.rawValue)
                entry["at"] = .string(Timestamp.format(event.at))
                return .object(entry)
            })
            json = .object(fields)
        }
        return JSONResponse.make(status: .ok, json: json)
    }

    @Sendable func cancel(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.messagesSend)
        let message = try await services.messages.cancel(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, json: Self.summary(message))
    }

    /// Opens and clicks by people, their first times, and the requests taken for machines'.
    static func tracking(_ engagement: MessageEngagement) -> JSONValue {
        .object([
            "opens": .number(Double(engagement.opens)), "clicks": .number(Double(engagement.clicks)),
            "botEvents": .number(Double(engagement.botEvents)),
            "firstOpenedAt": engagement.firstOpenedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "firstClickedAt": engagement.firstClickedAt.map { .string(Timestamp.format($0)) } ?? .null,
        ])
    }

    static func summary(_ message: Message) -> JSONValue {
        .object([
            "id": .string(message.id), "status": .string(message.status.rawValue), "rcpt": .string(message.request.rcpt),
            "templateSlug": .string(message.templateSlug), "templateVersion": .number(Double(message.templateVersion)),
            "emailServerId": message.emailServerId.map(JSONValue.string) ?? .null, "messageId": .string(message.messageIdHeader),
            "sendAt": .string(Timestamp.format(message.sendAt)), "attempts": .number(Double(message.attempts)),
            "nextAttemptAt": message.nextAttemptAt.map { .string(Timestamp.format($0)) } ?? .null,
            "tlsVersion": message.tlsVersion.map(JSONValue.string) ?? .null, "tlsCipher": message.tlsCipher.map(JSONValue.string) ?? .null,
            "tlsVerified": message.tlsVerified.map(JSONValue.bool) ?? .null,
            "createdAt": .string(Timestamp.format(message.createdAt)), "updatedAt": .string(Timestamp.format(message.updatedAt)),
        ])
    }

    @Sendable func listSuppressions(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.suppressions.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, json: .object([
            "data": .array(page.items.map { entry in
                .object([
                    "email": .string(entry.email), "reason": .string(entry.reason), "reply": entry.reply.map(JSONValue.string) ?? .null,
                    "messageId": entry.messageId.map(JSONValue.string) ?? .null, "createdAt": .string(Timestamp.format(entry.createdAt)),
                ])
            }),
            "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
        ]))
    }

    @Sendable func deleteSuppression(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        try await services.suppressions.delete(workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context), by: context.actor)
        return Response(status: .noContent)
    }
}

extension HTTPField.Name {
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
}
