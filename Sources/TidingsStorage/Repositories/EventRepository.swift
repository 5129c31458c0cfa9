import Foundation
import SQLKit
import TidingsDomain

/// Events of one workspace. Every query is scoped by `workspaceId`.
public struct EventRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    /// Inserts events in one statement.
    public func insert(_ events: [StorableEvent]) async throws {
        guard !events.isEmpty else { return }
        var insert = db.insert(into: "events")
            .columns("id", "workspace_id", "contact_id", "slug", "properties", "occurred_at", "created_at")
        for storable in events {
            let event = storable.event
            precondition(event.workspaceId == workspaceId)
            insert = insert.values([
                event.id, workspaceId, event.contactId, event.slug, storable.storedProperties,
                Timestamp.format(event.occurredAt), Timestamp.format(event.createdAt),
            ])
        }
        try await insert.run()
    }

    /// A contact's events in id order after `afterId`, at most `limit` (nil: all of them).
    /// Properties come back as stored (sealed); the caller opens them.
    public func list(contactId: String, afterId: String?, limit: Int?) async throws -> [StoredEvent] {
        var query = SQLQueryString("""
            SELECT id, contact_id, slug, properties, occurred_at, created_at FROM events
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            """)
        if let afterId {
            query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString)
        }
        query.appendInterpolation(" ORDER BY id" as SQLQueryString)
        if let limit {
            query.appendInterpolation(" LIMIT \(literal: limit)" as SQLQueryString)
        }
        return try await db.raw(query).all().map(decode)
    }

    /// For each slug, the times of the contact's newest `limit` events with it, newest first:
    /// what a segment filter's event conditions need (see `SegmentFilter.eventRequirements`).
    public func latestOccurrences(contactId: String, limits: [String: Int]) async throws -> [String: [Date]] {
        var result: [String: [Date]] = [:]
        for (slug, limit) in limits.sorted(by: { $0.key < $1.key }) {
            result[slug] = try await db.raw("""
                SELECT occurred_at FROM events
                WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND slug = \(bind: slug)
                ORDER BY occurred_at DESC LIMIT \(literal: max(1, limit))
                """).all().map { try $0.decodeTimestamp("occurred_at") }
        }
        return result
    }

    // Properties keep their types: {"name": ["kind", "canonical text"]}.
    public static func encodeProperties(_ properties: [String: AttributeValue]) -> String? {
        guard !properties.isEmpty else { return nil }
        return JSONValue.object(properties.mapValues { .array([.string($0.kind.rawValue), .string($0.storageText)]) }).serializedString
    }

    public static func decodeProperties(_ text: String?) throws -> [String: AttributeValue] {
        guard let text else { return [:] }
        let typed = try JSONDecoder().decode([String: [String]].self, from: Data(text.utf8))
        return typed.compactMapValues { pair in
            guard pair.count == 2 else { return nil }
            return AttributeValue(kind: AttributeValue.Kind(rawValue: pair[0]) ?? .string, storageText: pair[1])
        }
    }

    private func decode(_ row: any SQLRow) throws -> StoredEvent {
        StoredEvent(
            event: ContactEvent(
                id: try row.decode(column: "id", as: String.self),
                workspaceId: workspaceId,
                contactId: try row.decode(column: "contact_id", as: String.self),
                slug: try row.decode(column: "slug", as: String.self),
                properties: [:],
                occurredAt: try row.decodeTimestamp("occurred_at"),
                createdAt: try row.decodeTimestamp("created_at")
            ),
            storedProperties: try row.decode(column: "properties", as: String?.self)
        )
    }
}

/// An event ready to store, its properties already encoded and sealed: that work is done
/// by the request before the single writer is taken, not while it is held.
public struct StorableEvent: Sendable {
    public var event: ContactEvent
    let storedProperties: String?

    public init(_ event: ContactEvent, storedProperties: String?) {
        self.event = event
        self.storedProperties = storedProperties
    }
}

/// An event as read back: its properties still as stored, for the caller to open.
public struct StoredEvent: Sendable {
    public var event: ContactEvent
    public var storedProperties: String?
}
