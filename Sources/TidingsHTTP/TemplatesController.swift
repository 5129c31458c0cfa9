import Foundation
import Hummingbird
import TidingsDomain
import TidingsMail
import TidingsServices

/// `/v1/templates`: email templates, identified by slug (`templates:read` / `templates:write`).
struct TemplatesController {
    let services: APIServices

    func register(on routes: APIRoutes) {
        routes.add(.get, "/v1/templates", list)
        routes.add(.post, "/v1/templates", create)
        routes.add(.get, "/v1/templates/{slug}", get)
        routes.add(.patch, "/v1/templates/{slug}", update)
        routes.add(.delete, "/v1/templates/{slug}", delete)
        routes.add(.post, "/v1/templates/{slug}/preview", preview)
    }

    @Sendable func list(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesRead)
        let query = QueryParameters(request.uri.query)
        let page = try await services.templates.list(workspaceId: principal.workspaceId, cursor: query["cursor"], limit: try query.int("limit"))
        return JSONResponse.make(status: .ok, ListDTO(data: try page.items.map(TemplateDTO.init), nextCursor: page.nextCursor))
    }

    @Sendable func create(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesWrite)
        let template = try await services.templates.create(workspaceId: principal.workspaceId, body: try await JSONBody.object(request), by: context.actor)
        return JSONResponse.make(status: .created, try TemplateDTO(template))
    }

    @Sendable func get(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesRead)
        let version = try Self.version(QueryParameters(request.uri.query))
        let template = try await services.templates.get(workspaceId: principal.workspaceId, slug: try slug(request, context), version: version)
        return JSONResponse.make(status: .ok, try TemplateDTO(template))
    }

    @Sendable func update(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesWrite)
        let template = try await services.templates.update(
            workspaceId: principal.workspaceId, slug: try slug(request, context), body: try await JSONBody.object(request), by: context.actor
        )
        return JSONResponse.make(status: .ok, try TemplateDTO(template))
    }

    @Sendable func delete(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesWrite)
        try await services.templates.delete(workspaceId: principal.workspaceId, slug: try slug(request, context), by: context.actor)
        return Response(status: .noContent)
    }

    /// `{variables?, version?}` → the rendered subject, sender, reply-to, HTML and text.
    @Sendable func preview(_ request: Request, context: TidingsRequestContext) async throws -> Response {
        let principal = try context.require(.templatesRead)
        var variables: [String: JSONValue] = [:]
        var version: Int?
        if let object = try await JSONBody.optionalObject(request) {
            var body = BodyReader(object)
            variables = try body.object("variables") ?? [:]
            if let number = try body.number("version") {
                guard number == number.rounded(), number >= 1, number <= Double(Int32.max) else {
                    throw DomainError.invalid("invalid_version", "version must be a whole number from 1.", field: "version")
                }
                version = Int(number)
            }
            try body.rejectUnknownFields()
        }
        let rendered = try await services.templates.preview(
            workspaceId: principal.workspaceId, slug: try slug(request, context), variables: variables, version: version
        )
        return JSONResponse.make(status: .ok, RenderedDTO(rendered))
    }

    private func slug(_ request: Request, _ context: TidingsRequestContext) throws -> String {
        let raw = try request.pathParameter("slug", context: context)
        // An invalid slug cannot name a template: 404, as for any unknown one.
        guard (try? Template.validateSlug(raw)) != nil else {
            throw DomainError.notFound("template_not_found", "No template with this slug exists in this workspace.")
        }
        return raw
    }

    static func version(_ query: QueryParameters) throws -> Int? {
        guard let text = query["version"] else { return nil }
        guard let version = Int(text), version >= 1 else {
            throw DomainError.invalid("invalid_version", "version must be a whole number from 1.", field: "version")
        }
        return version
    }
}

/// A template as the API shows it, with the variables its fields use.
struct TemplateDTO: Encodable {
    var id: String
    var slug: String
    var name: String
    var version: Int
    var subject: String
    var from: String
    var replyTo: String?
    var html: String
    var text: String?
    var variables: [String]
    var emailServerId: String?
    var createdAt: String
    var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case id, slug, name, version, subject, from, replyTo, html, text, variables, emailServerId, createdAt, updatedAt
    }

    init(_ template: Template) throws {
        id = template.id
        slug = template.slug
        name = template.name
        version = template.version
        subject = template.content.subject
        from = template.content.from
        replyTo = template.content.replyTo
        html = template.content.html
        text = template.content.text
        variables = try TemplateService.compile(template.content).variables
        emailServerId = template.emailServerId
        createdAt = Timestamp.format(template.createdAt)
        updatedAt = Timestamp.format(template.updatedAt)
    }

    // Optional fields are always present (as null) so clients see the full shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(slug, forKey: .slug)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(subject, forKey: .subject)
        try container.encode(from, forKey: .from)
        try container.encode(replyTo, forKey: .replyTo)
        try container.encode(html, forKey: .html)
        try container.encode(text, forKey: .text)
        try container.encode(variables, forKey: .variables)
        try container.encode(emailServerId, forKey: .emailServerId)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
    }
}

/// A rendered template: what a message built from it would carry.
struct RenderedDTO: Encodable {
    var subject: String
    var from: String
    var replyTo: String?
    var html: String
    var text: String

    enum CodingKeys: String, CodingKey { case subject, from, replyTo, html, text }

    init(_ rendered: CompiledTemplate.Rendered) {
        subject = rendered.subject
        from = Self.mailbox(rendered.fromName, rendered.fromAddress.value)
        replyTo = rendered.replyToAddress.map { Self.mailbox(rendered.replyToName ?? "", $0.value) }
        html = rendered.html
        text = rendered.text
    }

    static func mailbox(_ name: String, _ address: String) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? address : "\(trimmed) <\(address)>"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(subject, forKey: .subject)
        try container.encode(from, forKey: .from)
        try container.encode(replyTo, forKey: .replyTo)
        try container.encode(html, forKey: .html)
        try container.encode(text, forKey: .text)
    }
}
