import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices
import TidingsStorage

/// `/v1/contacts`: SendStreak's upsert and delete, plus reads, export and CSV import.
struct ContactsController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.post, "/v1/contacts", upsert)
        routes.add(.get, "/v1/contacts", list)
        routes.add(.post, "/v1/contacts/import", importCSV)
        routes.add(.get, "/v1/contacts/{email}", get)
        routes.add(.delete, "/v1/contacts/{email}", delete)
        routes.add(.get, "/v1/contacts/{email}/events", events)
        routes.add(.get, "/v1/contacts/{email}/export", export)
    }

    @Sendable func upsert(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let body = try await JSONBody.object(request)
        let result = try await services.contacts.upsert(workspaceId: principal.workspaceId, body: body, by: context.actor)
        return JSONResponse.make(status: result.created ? .created : .ok, json: ContactDTO(result.contact).json)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        var status: ContactStatus?
        if let text = query["status"] {
            guard let value = ContactStatus(rawValue: text) else {
                throw DomainError.invalid(
                    "invalid_status",
                    "status must be one of \(ContactStatus.allCases.map(\.rawValue).joined(separator: ", ")).",
                    field: "status"
                )
            }
            status = value
        }
        let page = try await services.contacts.list(
            workspaceId: principal.workspaceId,
            filter: .init(status: status, attributes: query.deepObject("attributes")),
            cursor: query["cursor"], limit: try query.int("limit")
        )
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(ContactDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let contact = try await services.contacts.get(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context)
        )
        return JSONResponse.make(status: .ok, ContactDTO(contact))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        let existed = try await services.contacts.delete(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context), by: context.actor
        )
        struct Deleted: Encodable { var deleted: Bool }
        return JSONResponse.make(status: .ok, Deleted(deleted: existed))
    }

    @Sendable func events(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.contacts.events(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context),
            cursor: query["cursor"], limit: try query.int("limit")
        )
        return JSONResponse.make(status: .ok, ListDTO(data: page.items.map(EventDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func export(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsRead)
        let export = try await services.contacts.export(
            workspaceId: principal.workspaceId, email: try request.pathParameter("email", context: context), by: context.actor
        )
        var response = JSONResponse.make(status: .ok, ExportDTO(export))
        response.headers[.contentDisposition] = "attachment; filename=\"contact-export.json\""
        return response
    }

    @Sendable func importCSV(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.contactsWrite)
        try JSONBody.requireContentType(request, accepting: ["text/csv"])
        guard request.headers[.contentType] != nil else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", message: "Send the file with Content-Type: text/csv.")
        }
        var importer = try services.makeImport(principal.workspaceId, QueryParameters(request.uri.query)["types"], context.actor)
        var received = 0
        for try await chunk in request.body {
            let allowed = services.importMaxBytes - received
            guard chunk.readableBytes <= allowed else {
                // Read up to the limit, keep the complete rows, refuse the rest.
                try await importer.feed(chunk.readableBytesView.prefix(allowed))
                let partial = try await importer.abandon()
                throw APIError(
                    .contentTooLarge, code: "body_too_large",
                    message: "The CSV file exceeds the limit of \(services.importMaxBytes) bytes. The complete rows before the limit were "
                        + "imported (created \(partial.created), updated \(partial.updated), rejected \(partial.rejected)); "
                        + "send the rest as another file."
                )
            }
            received += chunk.readableBytes
            try await importer.feed(chunk.readableBytesView)
        }
        let result = try await importer.finish()
        return JSONResponse.make(status: .ok, ImportResultDTO(
            created: result.created, updated: result.updated, rejected: result.rejected,
            errors: result.errors.map { .init(line: $0.line, code: $0.code, message: $0.message, field: $0.field) },
            errorsTruncated: result.errorsTruncated
        ))
    }
}
