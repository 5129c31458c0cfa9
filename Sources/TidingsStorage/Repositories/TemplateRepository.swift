import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Templates of one workspace, with their versions. Every query is scoped by the workspace;
/// version content is sealed with the workspace's keys.
public struct TemplateRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    /// Inserts a new template at version 1. Returns `false`, writing nothing, when the slug is taken.
    public func insert(_ template: Template) async throws -> Bool {
        precondition(template.workspaceId == workspaceId && template.version == 1)
        let inserted = try await db.raw("""
            INSERT INTO templates (id, workspace_id, slug, name, version, created_at, updated_at, email_server_id)
            VALUES (\(bind: template.id), \(bind: workspaceId), \(bind: template.slug), \(bind: template.name), 1,
                    \(bind: Timestamp.format(template.createdAt)), \(bind: Timestamp.format(template.updatedAt)), \(bind: template.emailServerId))
            ON CONFLICT (workspace_id, slug) DO NOTHING
            RETURNING id
            """).first()
        guard inserted != nil else { return false }
        try await insertVersion(templateId: template.id, version: 1, content: template.content, at: template.createdAt)
        return true
    }

    /// Adds the next version and makes it current.
    public func addVersion(to current: Template, name: String, content: TemplateContent, emailServerId: String?, at now: Date) async throws -> Template {
        let version = current.version + 1
        try await db.raw("""
            UPDATE templates SET version = \(bind: version), name = \(bind: name), updated_at = \(bind: Timestamp.format(now)),
                email_server_id = \(bind: emailServerId)
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: current.id)
            """).run()
        try await insertVersion(templateId: current.id, version: version, content: content, at: now)
        var updated = current
        updated.version = version
        updated.name = name
        updated.content = content
        updated.emailServerId = emailServerId
        updated.updatedAt = now
        return updated
    }

    /// The template by slug, at its current version or at `version`.
    public func find(slug: String, version: Int? = nil) async throws -> Template? {
        guard let row = try await db.raw("""
            SELECT id, slug, name, version, created_at, updated_at, email_server_id FROM templates
            WHERE workspace_id = \(bind: workspaceId) AND slug = \(bind: slug)
            """).first() else { return nil }
        let id = try row.decode(column: "id", as: String.self)
        let wanted = try version ?? row.decode(column: "version", as: Int.self)
        guard let stored = try await db.raw("""
            SELECT id, version, content_sealed, created_at FROM template_versions
            WHERE workspace_id = \(bind: workspaceId) AND template_id = \(bind: id) AND version = \(bind: wanted)
            """).first() else { return nil }
        var template = try await decode(row, content: stored)
        template.version = wanted
        return template
    }

    /// Templates ordered by slug, after `afterSlug`, at their current versions.
    public func list(afterSlug: String?, limit: Int) async throws -> [Template] {
        var query = SQLQueryString("""
            SELECT t.id, t.slug, t.name, t.version, t.created_at, t.updated_at, t.email_server_id, v.id AS version_id, v.content_sealed
            FROM templates t JOIN template_versions v ON v.template_id = t.id AND v.version = t.version
            WHERE t.workspace_id = \(bind: workspaceId)
            """)
        if let afterSlug { query.appendInterpolation(" AND t.slug > \(bind: afterSlug)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY t.slug LIMIT \(bind: limit)" as SQLQueryString)
        var templates: [Template] = []
        for row in try await db.raw(query).all() {
            templates.append(try await decode(row, content: row, versionIdColumn: "version_id"))
        }
        return templates
    }

    /// What a message to this template is sent with: its id, current version, and the email
    /// server it leaves through (its own, else the workspace's default), in one small read.
    public struct SendTarget: Sendable, Equatable {
        public var templateId: String
        public var slug: String
        public var version: Int
        public var emailServerId: String?
    }

    public func sendTarget(slug: String) async throws -> SendTarget? {
        guard let row = try await db.raw("""
            SELECT t.id, t.version, COALESCE(
                (SELECT s.id FROM email_servers s WHERE s.workspace_id = t.workspace_id AND s.id = t.email_server_id),
                (SELECT s.id FROM email_servers s WHERE s.workspace_id = t.workspace_id ORDER BY s.is_default DESC, s.id LIMIT 1)
            ) AS server_id
            FROM templates t WHERE t.workspace_id = \(bind: workspaceId) AND t.slug = \(bind: slug)
            """).first() else { return nil }
        return SendTarget(
            templateId: try row.decode(column: "id", as: String.self), slug: slug, version: try row.decode(column: "version", as: Int.self),
            emailServerId: try row.decode(column: "server_id", as: String?.self)
        )
    }

    /// Deletes the template and all its versions. Returns whether it existed.
    public func delete(slug: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM templates WHERE workspace_id = \(bind: workspaceId) AND slug = \(bind: slug) RETURNING id
            """).first() != nil
    }

    private func insertVersion(templateId: String, version: Int, content: TemplateContent, at now: Date) async throws {
        let id = Identifier.make("tv", at: now)
        let json = String(decoding: try JSONEncoder().encode(content), as: UTF8.self)
        try await db.raw("""
            INSERT INTO template_versions (id, template_id, workspace_id, version, content_sealed, created_at)
            VALUES (\(bind: id), \(bind: templateId), \(bind: workspaceId), \(bind: version),
                    \(bind: try vault.seal(json, table: "template_versions", column: "content", row: id)), \(bind: Timestamp.format(now)))
            """).run()
    }

    private func decode(_ row: any SQLRow, content stored: any SQLRow, versionIdColumn: String = "id") async throws -> Template {
        let versionId = try stored.decode(column: versionIdColumn, as: String.self)
        let json = try await vault.open(
            try stored.decode(column: "content_sealed", as: String.self), table: "template_versions", column: "content", row: versionId
        )
        guard let content = try? JSONDecoder().decode(TemplateContent.self, from: Data(json.utf8)) else {
            throw StorageError.corruptValue(column: "template_versions.content_sealed")
        }
        return Template(
            id: try row.decode(column: "id", as: String.self), workspaceId: workspaceId,
            slug: try row.decode(column: "slug", as: String.self), name: try row.decode(column: "name", as: String.self),
            version: try row.decode(column: "version", as: Int.self), content: content,
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at"),
            emailServerId: try row.decode(column: "email_server_id", as: String?.self)
        )
    }
}
