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
        let issued = try await services.apiKeys.create(workspaceId: principal.workspaceId, name: name, scopes: scopes, expiresAt: expiresAt)
        return JSONResponse.make(status: .created, APIKeyDTO(issued.key, now: services.now(), secret: issued.token.secret))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let key = try await services.apiKeys.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, APIKeyDTO(key, now: services.now()))
    }

    @Sendable func revoke(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let key = try await services.apiKeys.revoke(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
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
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), overlap: overlap
        )
        return JSONResponse.make(status: .ok, APIKeyDTO(issued.key, now: services.now(), secret: issued.token.secret))
    }
}

/// Typed access to the fields of a JSON object, with errors naming the field.
struct BodyReader {
    private let object: [String: JSONValue]
    private var read: Set<String> = []

    init(_ object: [String: JSONValue]) {
        self.object = object
    }

    mutating func string(_ field: String, required: Bool = false) throws(DomainError) -> String? {
        read.insert(field)
        switch object[field] {
        case .string(let value)?: return value
        case nil, .null?:
            if required { throw .invalid("missing_field", "The field '\(field)' is required.", field: field) }
            return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a string, not \(other.typeName).", field: field)
        }
    }

    mutating func number(_ field: String) throws(DomainError) -> Double? {
        read.insert(field)
        switch object[field] {
        case .number(let value)?: return value
        case nil, .null?: return nil
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a number, not \(other.typeName).", field: field)
        }
    }

    mutating func stringArray(_ field: String) throws(DomainError) -> [String]? {
        read.insert(field)
        switch object[field] {
        case nil, .null?: return nil
        case .array(let items)?:
            var strings: [String] = []
            for item in items {
                guard case .string(let value) = item else {
                    throw .invalid("invalid_type", "The field '\(field)' must be an array of strings.", field: field)
                }
                strings.append(value)
            }
            return strings
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be an array of strings, not \(other.typeName).", field: field)
        }
    }

    mutating func timestamp(_ field: String) throws(DomainError) -> Date? {
        guard let text = try string(field) else { return nil }
        guard let date = Timestamp.parse(text) else {
            throw .invalid("invalid_timestamp", "The field '\(field)' must be an RFC 3339 date-time.", field: field)
        }
        return date
    }

    func rejectUnknownFields() throws(DomainError) {
        if let unknown = object.keys.sorted().first(where: { !read.contains($0) }) {
            throw .invalid("unknown_field", "Unknown field '\(unknown.prefix(64))'.", field: String(unknown.prefix(64)))
        }
    }
}
