import Foundation
import Hummingbird
import TidingsDomain
import TidingsServices

/// `/v1/email-servers`: the workspace's SMTP servers (scope `admin`).
struct EmailServersController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/email-servers", list)
        routes.add(.post, "/v1/email-servers", create)
        routes.add(.get, "/v1/email-servers/{id}", get)
        routes.add(.patch, "/v1/email-servers/{id}", update)
        routes.add(.delete, "/v1/email-servers/{id}", delete)
        routes.add(.post, "/v1/email-servers/{id}/test", test)
    }

    /// Connects, says EHLO, starts TLS (checking the certificate and any pins), authenticates
    /// and quits; answers 200 with each step either way (`ok` says whether every step passed).
    @Sendable func test(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let result = try await services.emailServers.test(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return JSONResponse.make(status: .ok, json: .object([
            "ok": .bool(result.ok),
            "steps": .array(result.steps.map { .object(["step": .string($0.step), "ok": .bool($0.ok), "detail": .string($0.detail)]) }),
            "tls": result.tls.map { tls in
                .object([
                    "version": .string(tls.version), "cipher": .string(tls.cipher), "verified": .bool(tls.verified),
                    "serverKey": tls.serverKey.map(JSONValue.string) ?? .null,
                ])
            } ?? .null,
            "pin": .string(result.pin.rawValue),
        ]))
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let servers = try await services.emailServers.list(workspaceId: principal.workspaceId)
        return JSONResponse.make(status: .ok, ListDTO(data: servers.map(EmailServerDTO.init), nextCursor: nil))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let server = try await services.emailServers.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, EmailServerDTO(server))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let server = try await services.emailServers.get(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context))
        return JSONResponse.make(status: .ok, EmailServerDTO(server))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        let server = try await services.emailServers.update(
            workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, EmailServerDTO(server))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.admin)
        try await services.emailServers.delete(workspaceId: principal.workspaceId, id: try request.pathParameter("id", context: context), by: context.actor)
        return Response(status: .noContent)
    }
}

/// An email server as the API shows it: never its password, only whether one is set.
struct EmailServerDTO: Encodable {
    var id: String
    var name: String
    var host: String
    var port: Int
    var security: String
    var username: String?
    var hasPassword: Bool
    var maxConnections: Int
    var rateLimit: Double?
    var preset: String?
    var isDefault: Bool
    var tlsPins: [String]
    var createdAt: String
    var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id, name, host, port, security, username, hasPassword, maxConnections, rateLimit, preset, isDefault, tlsPins, createdAt, updatedAt
    }

    init(_ server: EmailServer) {
        id = server.id
        name = server.name
        host = server.host
        port = server.port
        security = server.security.rawValue
        username = server.username
        hasPassword = server.password != nil
        maxConnections = server.maxConnections
        rateLimit = server.rateLimit
        preset = server.preset
        isDefault = server.isDefault
        tlsPins = server.tlsPins
        createdAt = Timestamp.format(server.createdAt)
        updatedAt = Timestamp.format(server.updatedAt)
    }

    // Optional fields are always present (as null) so clients see the full shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(host, forKey: .host)
        try container.encode(port, forKey: .port)
        try container.encode(security, forKey: .security)
        try container.encode(username, forKey: .username)
        try container.encode(hasPassword, forKey: .hasPassword)
        try container.encode(maxConnections, forKey: .maxConnections)
        try container.encode(rateLimit, forKey: .rateLimit)
        try container.encode(preset, forKey: .preset)
        try container.encode(isDefault, forKey: .isDefault)
        try container.encode(tlsPins, forKey: .tlsPins)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}
