import Foundation
import Hummingbird
import NIOCore
import TidingsDomain
import TidingsServices
import TidingsStorage

/// `/v1/audit-events`: the workspace's audit log (the `admin` scope), as pages of JSON or
/// as a JSON Lines export of everything that matches.
struct AuditController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/audit-events", list)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let query = QueryParameters(request.uri.query)
        let filter = try Self.filter(query)
        let order = query["order"] ?? "desc"
        guard order == "asc" || order == "desc" else {
            throw DomainError.invalid("invalid_order", "order must be 'asc' or 'desc'.", field: "order")
        }
        let format = query["format"] ?? "json"
        switch format {
        case "json":
            let page = try await services.audit.list(
                workspaceId: principal.workspaceId, filter: filter, cursor: query["cursor"], limit: try query.int("limit"),
                oldestFirst: order == "asc"
            )
            return JSONResponse.make(status: .ok, json: .object([
                "data": .array(page.items.map(Self.json)),
                "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
            ]))
        case "jsonl":
            return try await export(workspaceId: principal.workspaceId, filter: filter, oldestFirst: order == "asc")
        default:
            throw DomainError.invalid("invalid_format", "format must be 'json' or 'jsonl'.", field: "format")
        }
    }

    /// Every matching event, one JSON object per line, read and written a page at a time.
    private func export(workspaceId: String, filter: AuditRepository.Filter, oldestFirst: Bool) async throws -> Response {
        // The first page is read before answering, so a database failure is a clean error response.
        let audit = services.audit
        let first = try await audit.list(workspaceId: workspaceId, filter: filter, cursor: nil, limit: AuditService.maxPageSize, oldestFirst: oldestFirst)
        let body = ResponseBody { writer in
            var page = first
            while true {
                var buffer = ByteBuffer()
                for event in page.items {
                    buffer.writeBytes(Self.json(event).serialized)
                    buffer.writeInteger(UInt8(ascii: "\n"))
                }
                try await writer.write(buffer)
                guard let cursor = page.nextCursor else { break }
                page = try await audit.list(workspaceId: workspaceId, filter: filter, cursor: cursor, limit: AuditService.maxPageSize, oldestFirst: oldestFirst)
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [
                .contentType: "application/x-ndjson; charset=utf-8",
                .contentDisposition: "attachment; filename=\"audit-\(workspaceId).jsonl\"",
            ],
            body: body
        )
    }

    static func filter(_ query: QueryParameters) throws -> AuditRepository.Filter {
        func timestamp(_ name: String) throws -> Date? {
            guard let text = query[name] else { return nil }
            guard let date = Timestamp.parse(text) else {
                throw DomainError.invalid("invalid_timestamp", "'\(name)' must be an ISO-8601 date-time, e.g. 2026-01-31T12:00:00Z.", field: name)
            }
            return date
        }
        func bounded(_ name: String) throws -> String? {
            guard let text = query[name] else { return nil }
            guard !text.isEmpty, text.count <= 200 else {
                throw DomainError.invalid("invalid_filter", "'\(name)' must be 1 to 200 characters.", field: name)
            }
            return text
        }
        return AuditRepository.Filter(
            actorId: try bounded("actor"), action: try bounded("action"), targetId: try bounded("target"),
            since: try timestamp("since"), until: try timestamp("until")
        )
    }

    static func json(_ event: AuditEvent) -> JSONValue {
        var actor: [String: JSONValue] = ["kind": .string(event.actor.kind.rawValue), "id": .string(event.actor.id)]
        actor["network"] = event.actor.network.map(JSONValue.string) ?? .null
        actor["userAgent"] = event.actor.userAgent.map(JSONValue.string) ?? .null
        var target: JSONValue = .null
        if let kind = event.change.targetKind, let id = event.change.targetId {
            target = .object(["kind": .string(kind), "id": .string(id)])
        }
        return .object([
            "id": .string(event.id),
            "sequence": .number(Double(event.sequence)),
            "occurredAt": .string(Timestamp.format(event.occurredAt)),
            "actor": .object(actor),
            "action": .string(event.change.action),
            "target": target,
            "summary": event.hasPayload ? .object(event.change.summary) : .null,
            "hash": .string(event.hash),
        ])
    }
}
