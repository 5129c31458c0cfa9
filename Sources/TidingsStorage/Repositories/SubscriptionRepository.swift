import Foundation
import SQLKit
import TidingsDomain

/// Who receives which marketing mail, in one workspace: the topics each contact left, the
/// history of changes, and the question every marketing send asks — which contacts of this
/// batch must be skipped. "Unsubscribed from all" is the contact's status `unsubscribed`.
public struct SubscriptionRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    /// The most ids one statement binds.
    public static let batchSize = 1000

    /// The contacts among `contactIds` that a marketing message must skip: those unsubscribed
    /// from all, and, for a message under `topicId`, those who left that topic. One query per
    /// `batchSize` ids. (Bounced contacts are suppressed for all mail elsewhere.)
    public func excluded(contactIds: [String], topicId: String?) async throws -> Set<String> {
        var excluded = Set<String>()
        var start = 0
        while start < contactIds.count {
            let batch = Array(contactIds[start..<min(start + Self.batchSize, contactIds.count)])
            start += Self.batchSize
            var query = SQLQueryString("""
                SELECT c.id FROM contacts c
                WHERE c.workspace_id = \(bind: workspaceId) AND c.id IN (\(binds: batch))
                AND (c.status = \(bind: ContactStatus.unsubscribed.rawValue)
                """)
            if let topicId {
                query.appendInterpolation("""
                     OR EXISTS (SELECT 1 FROM topic_unsubscribes t WHERE t.workspace_id = c.workspace_id
                     AND t.contact_id = c.id AND t.topic_id = \(bind: topicId))
                    """ as SQLQueryString)
            }
            query.appendLiteral(")")
            for row in try await db.raw(query).all() { excluded.insert(try row.decode(column: "id", as: String.self)) }
        }
        return excluded
    }

    /// The contact's status, read with its row locked for the rest of the transaction, so
    /// two changes of one contact's subscriptions never interleave. `nil`: no such contact.
    public func lockContact(_ contactId: String) async throws -> ContactStatus? {
        try await db.raw("""
            UPDATE contacts SET updated_at = updated_at WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId) RETURNING status
            """).first().map { ContactStatus(rawValue: try $0.decode(column: "status", as: String.self)) ?? .active }
    }

    /// The ids of the topics the contact left.
    public func unsubscribedTopicIds(contactId: String) async throws -> Set<String> {
        Set(try await db.raw("""
            SELECT topic_id FROM topic_unsubscribes WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            """).all().map { try $0.decode(column: "topic_id", as: String.self) })
    }

    /// How many contacts left the topic.
    public func unsubscribeCount(topicId: String) async throws -> Int {
        try await db.raw("""
            SELECT COUNT(*) AS n FROM topic_unsubscribes WHERE workspace_id = \(bind: workspaceId) AND topic_id = \(bind: topicId)
            """).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    public func unsubscribe(contactId: String, topicIds: [String], at now: Date) async throws {
        guard !topicIds.isEmpty else { return }
        var insert = db.insert(into: "topic_unsubscribes").columns("workspace_id", "contact_id", "topic_id", "created_at")
        for topicId in topicIds { insert = insert.values([workspaceId, contactId, topicId, Timestamp.format(now)]) }
        try await insert.ignoringConflicts(with: ["workspace_id", "contact_id", "topic_id"]).run()
    }

    public func resubscribe(contactId: String, topicIds: [String]) async throws {
        guard !topicIds.isEmpty else { return }
        try await db.raw("""
            DELETE FROM topic_unsubscribes
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND topic_id IN (\(binds: topicIds))
            """).run()
    }

    /// Appends to the contacts' histories.
    public func record(_ changes: [SubscriptionChange]) async throws {
        guard !changes.isEmpty else { return }
        var insert = db.insert(into: "subscription_changes")
            .columns("id", "workspace_id", "contact_id", "change", "topic_id", "via", "message_id", "origin_kind", "origin_id", "at")
        for change in changes {
            insert = insert.values([
                SQLBind(change.id), SQLBind(workspaceId), SQLBind(change.contactId), SQLBind(change.kind.rawValue), SQLBind(change.topicId),
                SQLBind(change.via.rawValue), SQLBind(change.messageId), SQLBind(change.originKind?.rawValue), SQLBind(change.originId),
                SQLBind(Timestamp.format(change.at)),
            ])
        }
        try await insert.run()
    }

    /// The id of the contact's latest change, if any.
    public func lastChangeId(contactId: String) async throws -> String? {
        try await db.raw("""
            SELECT MAX(id) AS last FROM subscription_changes WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            """).first()?.decode(column: "last", as: String?.self)
    }

    /// A contact's changes in id (time) order after `afterId`; at most `limit` (nil: all).
    public func changes(contactId: String, afterId: String?, limit: Int?) async throws -> [SubscriptionChange] {
        var query = SQLQueryString("""
            SELECT id, contact_id, change, topic_id, via, message_id, origin_kind, origin_id, at FROM subscription_changes
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            """)
        if let afterId { query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id" as SQLQueryString)
        if let limit { query.appendInterpolation(" LIMIT \(literal: limit)" as SQLQueryString) }
        return try await db.raw(query).all().map { row in
            guard let kind = SubscriptionChange.Kind(rawValue: try row.decode(column: "change", as: String.self)),
                  let via = SubscriptionChange.Channel(rawValue: try row.decode(column: "via", as: String.self)) else {
                throw StorageError.corruptValue(column: "subscription_changes.change")
            }
            return SubscriptionChange(
                id: try row.decode(column: "id", as: String.self), contactId: try row.decode(column: "contact_id", as: String.self),
                kind: kind, topicId: try row.decode(column: "topic_id", as: String?.self), via: via,
                messageId: try row.decode(column: "message_id", as: String?.self),
                originKind: try row.decode(column: "origin_kind", as: String?.self).flatMap(MessageOrigin.Kind.init(rawValue:)),
                originId: try row.decode(column: "origin_id", as: String?.self), at: try row.decodeTimestamp("at")
            )
        }
    }

    /// Whether the contact's latest all-or-nothing change unsubscribed it: what its status says
    /// while a bounce (status `bounced`) hides it.
    public func unsubscribedFromAllInHistory(contactId: String) async throws -> Bool {
        let row = try await db.raw("""
            SELECT change FROM subscription_changes
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            AND change IN (\(bind: SubscriptionChange.Kind.unsubscribedAll.rawValue), \(bind: SubscriptionChange.Kind.resubscribedAll.rawValue))
            ORDER BY id DESC LIMIT 1
            """).first()
        return try row?.decode(column: "change", as: String.self) == SubscriptionChange.Kind.unsubscribedAll.rawValue
    }

    /// The status a contact returns to when its bounce is cleared.
    public func statusAfterBounce(contactId: String) async throws -> ContactStatus {
        if try await unsubscribedFromAllInHistory(contactId: contactId) { return .unsubscribed }
        return try await unsubscribedTopicIds(contactId: contactId).isEmpty ? .active : .partiallyUnsubscribed
    }

    /// After a topic is deleted: contacts that were partially unsubscribed only from it are
    /// subscribed again (`active`). Returns how many changed.
    @discardableResult
    public func settlePartialStatuses(at now: Date) async throws -> Int {
        try await db.raw("""
            UPDATE contacts SET status = \(bind: ContactStatus.active.rawValue), updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND status = \(bind: ContactStatus.partiallyUnsubscribed.rawValue)
            AND NOT EXISTS (SELECT 1 FROM topic_unsubscribes t WHERE t.workspace_id = contacts.workspace_id AND t.contact_id = contacts.id)
            RETURNING id
            """).all().count
    }

    /// Where a message came from, if it was sent to `contactId` in this workspace.
    public func messageOrigin(messageId: String, contactId: String) async throws -> MessageOrigin? {
        guard let row = try await db.raw("""
            SELECT origin_kind, origin_id, topic_id, marketing FROM messages
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: messageId) AND contact_id = \(bind: contactId)
            """).first() else { return nil }
        return MessageOrigin(
            kind: MessageOrigin.Kind(rawValue: try row.decode(column: "origin_kind", as: String.self)) ?? .api,
            id: try row.decode(column: "origin_id", as: String?.self), topicId: try row.decode(column: "topic_id", as: String?.self),
            marketing: try row.decode(column: "marketing", as: Bool.self)
        )
    }
}
