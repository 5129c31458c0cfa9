import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsMail
import TidingsStorage

/// Email templates of a workspace: every field is checked when saved (a syntax error is a
/// 422 naming field, line and column, never a failure at send time), every update is a new
/// version, and content is sealed at rest.
public struct TemplateService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    public static let maxPageSize = 100
    public static let defaultPageSize = 50
    /// What `{{ unsubscribe_link }}` shows in a preview.
    public static let previewUnsubscribeLink = "https://unsubscribe.invalid/preview"

    static let notFound = DomainError.notFound("template_not_found", "No template with this slug exists in this workspace.")

    /// `{slug, name?, subject, from, replyTo?, html, text?}`; the name defaults to the slug.
    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Template {
        var reader = BodyReader(body)
        let slug = try Template.validateSlug(try reader.string("slug", required: true)!)
        let name = try Self.name(try reader.string("name") ?? slug)
        let content = TemplateContent(
            subject: try reader.string("subject", required: true)!, from: try reader.string("from", required: true)!,
            replyTo: try reader.string("replyTo"), html: try reader.string("html", required: true)!, text: try reader.string("text")
        )
        let emailServerId = try reader.string("emailServerId")
        try reader.rejectUnknownFields()
        try Self.check(content)
        let now = env.now()
        let template = Template(
            id: Identifier.make("tpl", at: now), workspaceId: workspaceId, slug: slug, name: name, version: 1,
            content: content, createdAt: now, updatedAt: now, emailServerId: emailServerId
        )
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await Self.checkServer(emailServerId, db: db, vault: vault)
            guard try await TemplateRepository(db, vault: vault).insert(template) else {
                throw DomainError(.conflict, code: "template_exists", message: "A template with this slug already exists.", field: "slug")
            }
            try await audit.record(Self.change("template.created", template), in: workspaceId, by: actor, db: db)
        }
        return template
    }

    /// The current version, or `version`.
    public func get(workspaceId: String, slug: String, version: Int? = nil) async throws -> Template {
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let template = try await env.database.read({ db in
            try await TemplateRepository(db, vault: vault).find(slug: slug, version: version)
        }) else {
            if version != nil, (try? await get(workspaceId: workspaceId, slug: slug)) != nil {
                throw DomainError.notFound("template_version_not_found", "The template has no version \(version!).")
            }
            throw Self.notFound
        }
        return template
    }

    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<Template> {
        let limit = limit ?? Self.defaultPageSize
        guard (1...Self.maxPageSize).contains(limit) else {
            throw DomainError.invalid("invalid_limit", "The limit must be between 1 and \(Self.maxPageSize).", field: "limit")
        }
        let after = try cursor.map { cursor throws(DomainError) in try Cursor.decode(cursor) }
        let vault = try await env.keyring.vault(for: workspaceId)
        let templates = try await env.database.read { db in
            try await TemplateRepository(db, vault: vault).list(afterSlug: after, limit: limit + 1)
        }
        guard templates.count > limit else { return Page(items: templates, nextCursor: nil) }
        let items = Array(templates.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { Cursor.encode($0.slug) })
    }

    /// Changes the fields given (`replyTo` or `text` set to null removes them) as a new version.
    /// The slug cannot change.
    public func update(workspaceId: String, slug: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Template {
        var reader = BodyReader(body)
        if let newSlug = try reader.string("slug"), newSlug != slug {
            throw DomainError.invalid("slug_immutable", "A template's slug cannot change; create a new template instead.", field: "slug")
        }
        let name = try reader.string("name").map { name throws(DomainError) in try Self.name(name) }
        let subject = try reader.string("subject"), from = try reader.string("from"), html = try reader.string("html")
        let replyTo = try Self.optionalString(body, "replyTo", reader: &reader)
        let text = try Self.optionalString(body, "text", reader: &reader)
        let emailServerId = try Self.optionalString(body, "emailServerId", reader: &reader)
        try reader.rejectUnknownFields()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let repository = TemplateRepository(db, vault: vault)
            guard let current = try await repository.find(slug: slug) else { throw Self.notFound }
            var content = current.content
            if let subject { content.subject = subject }
            if let from { content.from = from }
            if let html { content.html = html }
            if let replyTo { content.replyTo = replyTo }
            if let text { content.text = text }
            try Self.check(content)
            let server = emailServerId ?? current.emailServerId
            if emailServerId != nil { try await Self.checkServer(server, db: db, vault: vault) }
            let updated = try await repository.addVersion(to: current, name: name ?? current.name, content: content, emailServerId: server, at: now)
            try await audit.record(Self.change("template.updated", updated), in: workspaceId, by: actor, db: db)
            return updated
        }
    }

    public func delete(workspaceId: String, slug: String, by actor: AuditActor) async throws {
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = TemplateRepository(db, vault: vault)
            guard let current = try await repository.find(slug: slug), try await repository.delete(slug: slug) else { throw Self.notFound }
            try await audit.record(Self.change("template.deleted", current), in: workspaceId, by: actor, db: db)
        }
    }

    /// The template rendered with `variables` (plus the system variable `unsubscribe_link`),
    /// without sending anything.
    public func preview(workspaceId: String, slug: String, variables: [String: JSONValue], version: Int? = nil) async throws -> CompiledTemplate.Rendered {
        let template = try await get(workspaceId: workspaceId, slug: slug, version: version)
        return try Self.compile(template.content).render(Self.context(variables, unsubscribeLink: Self.previewUnsubscribeLink))
    }

    /// What a template renders with: the caller's variables, and `unsubscribe_link`.
    static func context(_ variables: [String: JSONValue], unsubscribeLink: String) -> TemplateValue {
        var fields = variables.mapValues(TemplateValue.init)
        fields["unsubscribe_link"] = .string(unsubscribeLink)
        return .object(fields)
    }

    public static func compile(_ content: TemplateContent) throws(DomainError) -> CompiledTemplate {
        try CompiledTemplate(content)
    }

    /// Limits, then every field parsed.
    static func check(_ content: TemplateContent) throws(DomainError) {
        guard content.subject.utf8.count <= Template.maxSubjectLength else {
            throw .invalid("too_long", "The subject is longer than \(Template.maxSubjectLength) bytes.", field: "subject")
        }
        for (field, value) in [("html", content.html), ("text", content.text ?? "")] where value.utf8.count > Template.maxBodyBytes {
            throw .invalid("too_long", "The field '\(field)' is larger than \(Template.maxBodyBytes / 1024) KiB.", field: field)
        }
        guard !content.html.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .invalid("missing_field", "The field 'html' is empty.", field: "html")
        }
        _ = try CompiledTemplate(content)
    }

    /// A named server must be one of the workspace's.
    static func checkServer(_ id: String?, db: any SQLDatabase, vault: Vault) async throws {
        guard let id else { return }
        guard try await EmailServerRepository(db, vault: vault).find(id: id) != nil else {
            throw DomainError.invalid("email_server_not_found", "No email server with this id exists in this workspace.", field: "emailServerId")
        }
    }

    static func name(_ raw: String) throws(DomainError) -> String {
        try DisplayName.validate(raw, field: "name", maxLength: Template.maxNameLength)
    }

    /// A field that may be set, or removed with null: `.none` when absent, `.some(nil)` for null.
    private static func optionalString(_ body: [String: JSONValue], _ field: String, reader: inout BodyReader) throws(DomainError) -> String?? {
        let value = try reader.string(field)
        return body[field] == nil ? .none : .some(value)
    }

    static func change(_ action: String, _ template: Template) -> AuditChange {
        AuditChange(action, target: ("template", template.id), summary: [
            "slug": .string(template.slug), "version": .number(Double(template.version)),
        ])
    }
}
