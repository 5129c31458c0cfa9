import Foundation
import SQLKit
import TidingsDomain

/// Topics of one workspace. Every query is scoped by `workspaceId`; nothing here is
/// personal data, so nothing is sealed.
public struct TopicRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    static let columns = "id, slug, name, description, created_at, updated_at"

    /// Inserts a topic. Returns `false`, writing nothing, when the slug is taken.
    public func insert(_ topic: Topic) async throws -> Bool {
        precondition(topic.workspaceId == workspaceId)
        return try await db.raw("""
            INSERT INTO topics (id, workspace_id, slug, name, description, created_at, updated_at)
            VALUES (\(bind: topic.id), \(bind: workspaceId), \(bind: topic.slug), \(bind: topic.name), \(bind: topic.description),
                    \(bind: Timestamp.format(topic.createdAt)), \(bind: Timestamp.format(topic.updatedAt)))
            ON CONFLICT (workspace_id, slug) DO NOTHING
            RETURNING id
            """).first() != nil
    }

    public func update(_ topic: Topic) async throws {
        try await db.raw("""
            UPDATE topics SET name = \(bind: topic.name), description = \(bind: topic.description), updated_at = \(bind: Timestamp.format(topic.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: topic.id)
            """).run()
    }

    /// Deletes the topic; the contacts' unsubscribes from it go with it (foreign key).
    public func delete(id: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM topics WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) RETURNING id
            """).first() != nil
    }

    public func find(slug: String) async throws -> Topic? {
        try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM topics WHERE workspace_id = \(bind: workspaceId) AND slug = \(bind: slug)
            """).first().map(decode)
    }

    public func find(id: String) async throws -> Topic? {
        try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM topics WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first().map(decode)
    }

    /// Topics ordered by slug, after `afterSlug`; at most `limit` (nil: all).
    public func list(afterSlug: String? = nil, limit: Int? = nil) async throws -> [Topic] {
        var query = SQLQueryString("SELECT \(unsafeRaw: Self.columns) FROM topics WHERE workspace_id = \(bind: workspaceId)")
        if let afterSlug { query.appendInterpolation(" AND slug > \(bind: afterSlug)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY slug" as SQLQueryString)
        if let limit { query.appendInterpolation(" LIMIT \(literal: limit)" as SQLQueryString) }
        return try await db.raw(query).all().map(decode)
    }

    public func count() async throws -> Int {
        try await db.raw("SELECT COUNT(*) AS n FROM topics WHERE workspace_id = \(bind: workspaceId)").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    private func decode(_ row: any SQLRow) throws -> Topic {
        Topic(
            id: try row.decode(column: "id", as: String.self), workspaceId: workspaceId,
            slug: try row.decode(column: "slug", as: String.self), name: try row.decode(column: "name", as: String.self),
            description: try row.decode(column: "description", as: String?.self),
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
