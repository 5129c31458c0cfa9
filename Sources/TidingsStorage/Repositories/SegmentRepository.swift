import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Segments of one workspace; filters sealed (their values may be personal data).
public struct SegmentRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    public func insert(_ segment: Segment) async throws {
        precondition(segment.workspaceId == workspaceId)
        try await db.raw("""
            INSERT INTO segments (id, workspace_id, name, filter_sealed, created_at, updated_at)
            VALUES (\(bind: segment.id), \(bind: workspaceId), \(bind: segment.name), \(bind: try sealFilter(segment)),
                    \(bind: Timestamp.format(segment.createdAt)), \(bind: Timestamp.format(segment.updatedAt)))
            """).run()
    }

    public func update(_ segment: Segment) async throws {
        precondition(segment.workspaceId == workspaceId)
        try await db.raw("""
            UPDATE segments SET name = \(bind: segment.name), filter_sealed = \(bind: try sealFilter(segment)),
                updated_at = \(bind: Timestamp.format(segment.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: segment.id)
            """).run()
    }

    public func find(id: String) async throws -> Segment? {
        guard let row = try await db.raw("""
            SELECT id, name, filter_sealed, created_at, updated_at FROM segments WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// Segments in id (creation) order after `afterId`, at most `limit`.
    public func list(afterId: String?, limit: Int) async throws -> [Segment] {
        var query = SQLQueryString("SELECT id, name, filter_sealed, created_at, updated_at FROM segments WHERE workspace_id = \(bind: workspaceId)")
        if let afterId { query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        var segments: [Segment] = []
        for row in try await db.raw(query).all() { segments.append(try await decode(row)) }
        return segments
    }

    /// Removes the segment; `false` when there was none.
    public func delete(id: String) async throws -> Bool {
        try await db.raw("DELETE FROM segments WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) RETURNING id").first() != nil
    }

    private func sealFilter(_ segment: Segment) throws -> String {
        try vault.seal(segment.filter.jsonValue.serializedString, table: "segments", column: "filter", row: segment.id)
    }

    private func decode(_ row: any SQLRow) async throws -> Segment {
        let id = try row.decode(column: "id", as: String.self)
        let text = try await vault.open(try row.decode(column: "filter_sealed", as: String.self), table: "segments", column: "filter", row: id)
        guard let json = try? JSONValue.parse(Array(text.utf8)), let filter = try? SegmentFilter(json: json) else {
            throw StorageError.corruptValue(column: "segments.filter_sealed")
        }
        return Segment(
            id: id, workspaceId: workspaceId, name: try row.decode(column: "name", as: String.self), filter: filter,
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
