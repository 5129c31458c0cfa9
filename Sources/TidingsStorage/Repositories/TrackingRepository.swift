import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// A workspace's tracking: its settings, the links of tracked messages (sealed), the
/// requests for pixels and links, and each message's engagement.
public struct TrackingRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    // MARK: Settings

    /// The workspace's settings; everything off when it never set them.
    public func settings() async throws -> TrackingSettings {
        guard let row = try await db.raw("""
            SELECT opens, clicks, transactional, updated_at FROM tracking_settings WHERE workspace_id = \(bind: workspaceId)
            """).first() else { return .off }
        return TrackingSettings(
            opens: try row.decode(column: "opens", as: Bool.self), clicks: try row.decode(column: "clicks", as: Bool.self),
            transactional: try row.decode(column: "transactional", as: Bool.self), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }

    public func save(_ settings: TrackingSettings, at now: Date) async throws {
        try await db.raw("""
            INSERT INTO tracking_settings (workspace_id, opens, clicks, transactional, updated_at)
            VALUES (\(bind: workspaceId), \(bind: settings.opens), \(bind: settings.clicks), \(bind: settings.transactional), \(bind: Timestamp.format(now)))
            ON CONFLICT (workspace_id) DO UPDATE SET opens = excluded.opens, clicks = excluded.clicks,
                transactional = excluded.transactional, updated_at = excluded.updated_at
            """).run()
    }

    // MARK: Links

    /// The stored link lists of these messages (those that have one).
    public func links(messageIds: [String]) async throws -> [String: [String]] {
        guard !messageIds.isEmpty else { return [:] }
        var found: [String: [String]] = [:]
        for row in try await db.raw("""
            SELECT message_id, urls_sealed FROM message_links WHERE workspace_id = \(bind: workspaceId) AND message_id IN (\(binds: messageIds))
            """).all() {
            let id = try row.decode(column: "message_id", as: String.self)
            found[id] = try await openLinks(try row.decode(column: "urls_sealed", as: String.self), messageId: id)
        }
        return found
    }

    /// Writes the link lists of messages (replacing a list from an earlier attempt, which
    /// the new one extends).
    public func saveLinks(_ lists: [(messageId: String, urls: [String])], at now: Date) async throws {
        guard !lists.isEmpty else { return }
        var rows: [SQLQueryString] = []
        for (messageId, urls) in lists {
            let json = JSONValue.array(urls.map(JSONValue.string)).serializedString
            let sealed = try vault.seal(json, table: "message_links", column: "urls", row: messageId)
            rows.append("(\(bind: messageId), \(bind: workspaceId), \(bind: sealed), \(bind: Timestamp.format(now)))")
        }
        try await db.raw("""
            INSERT INTO message_links (message_id, workspace_id, urls_sealed, updated_at) VALUES \(rows.joined(separator: ", "))
            ON CONFLICT (message_id) DO UPDATE SET urls_sealed = excluded.urls_sealed, updated_at = excluded.updated_at
            """).run()
    }

    private func openLinks(_ sealed: String, messageId: String) async throws -> [String] {
        let json = try await vault.open(sealed, table: "message_links", column: "urls", row: messageId)
        guard case .array(let items)? = try? JSONValue.parse(Array(json.utf8)) else {
            throw StorageError.corruptValue(column: "message_links.urls_sealed")
        }
        return try items.map { item in
            guard case .string(let url) = item else { throw StorageError.corruptValue(column: "message_links.urls_sealed") }
            return url
        }
    }

    // MARK: Events

    /// One request for a pixel or a tracked link, as stored.
    public struct Event: Sendable, Equatable {
        public var id: String
        public var messageId: String
        public var contactPseudonym: String
        public var kind: TrackingEventKind
        public var linkPosition: Int?
        /// The client's address, truncated.
        public var network: String?
        /// At most `maxUserAgent` characters.
        public var userAgent: String?
        /// Why the request was taken for a machine's; `nil` for a person.
        public var botReason: String?
        public var at: Date

        public init(
            id: String, messageId: String, contactPseudonym: String, kind: TrackingEventKind, linkPosition: Int?, network: String?,
            userAgent: String?, botReason: String?, at: Date
        ) {
            self.id = id
            self.messageId = messageId
            self.contactPseudonym = contactPseudonym
            self.kind = kind
            self.linkPosition = linkPosition
            self.network = network
            self.userAgent = userAgent
            self.botReason = botReason
            self.at = at
        }
    }

    public static let maxUserAgent = 200

    /// Stores the events and adds them to their messages' engagement. An event of a message
    /// deleted meanwhile is dropped.
    public func record(_ events: [Event]) async throws {
        guard !events.isEmpty else { return }
        var rows: [SQLQueryString] = []
        for event in events {
            let agent = try event.userAgent.map { text in
                try vault.seal(String(text.prefix(Self.maxUserAgent)), table: "tracking_events", column: "user_agent", row: event.id)
            }
            rows.append("""
                (\(bind: event.id), \(bind: workspaceId), \(bind: event.messageId), \(bind: event.contactPseudonym), \(bind: event.kind.rawValue),
                 \(bind: event.linkPosition), \(bind: event.network), \(bind: agent), \(bind: event.botReason != nil), \(bind: event.botReason),
                 \(bind: Timestamp.format(event.at)))
                """)
        }
        // Only for messages that still exist: a contact deleted a moment ago took its messages along.
        let inserted = Set(try await db.raw("""
            INSERT INTO tracking_events (id, workspace_id, message_id, contact_pseudonym, kind, link_position, ip_truncated,
                user_agent_sealed, is_bot, bot_reason, at)
            SELECT v.column1, v.column2, v.column3, v.column4, v.column5, CAST(v.column6 AS INTEGER), v.column7, v.column8,
                CAST(v.column9 AS BOOLEAN), v.column10, v.column11
            FROM (VALUES \(rows.joined(separator: ", "))) AS v
            WHERE EXISTS (SELECT 1 FROM messages m WHERE m.workspace_id = v.column2 AND m.id = v.column3)
            RETURNING id
            """).all().map { try $0.decode(column: "id", as: String.self) })
        var totals: [String: (opens: Int, clicks: Int, bots: Int, opened: Date?, clicked: Date?)] = [:]
        for event in events where inserted.contains(event.id) {
            var total = totals[event.messageId] ?? (0, 0, 0, nil, nil)
            if event.botReason != nil {
                total.bots += 1
            } else if event.kind == .open {
                total.opens += 1
                total.opened = min(total.opened ?? event.at, event.at)
            } else {
                total.clicks += 1
                total.clicked = min(total.clicked ?? event.at, event.at)
                // A click shows the message was read, also when its images were blocked.
                total.opened = min(total.opened ?? event.at, event.at)
            }
            totals[event.messageId] = total
        }
        guard !totals.isEmpty else { return }
        let engagement: [SQLQueryString] = totals.keys.sorted().map { messageId in
            let total = totals[messageId]!
            return """
                (\(bind: messageId), \(bind: workspaceId), \(bind: total.opens), \(bind: total.clicks), \(bind: total.bots),
                 \(bind: total.opened.map(Timestamp.format)), \(bind: total.clicked.map(Timestamp.format)))
                """
        }
        // Time only moves forward, so the first time stored stays the first.
        try await db.raw("""
            INSERT INTO message_engagement (message_id, workspace_id, opens, clicks, bot_events, first_opened_at, first_clicked_at)
            VALUES \(engagement.joined(separator: ", "))
            ON CONFLICT (message_id) DO UPDATE SET opens = message_engagement.opens + excluded.opens,
                clicks = message_engagement.clicks + excluded.clicks, bot_events = message_engagement.bot_events + excluded.bot_events,
                first_opened_at = COALESCE(message_engagement.first_opened_at, excluded.first_opened_at),
                first_clicked_at = COALESCE(message_engagement.first_clicked_at, excluded.first_clicked_at)
            """).run()
    }

    /// A message's engagement; `nil` before its first tracked request.
    public func engagement(messageId: String) async throws -> MessageEngagement? {
        guard let row = try await db.raw("""
            SELECT opens, clicks, bot_events, first_opened_at, first_clicked_at FROM message_engagement
            WHERE workspace_id = \(bind: workspaceId) AND message_id = \(bind: messageId)
            """).first() else { return nil }
        return MessageEngagement(
            opens: try row.decode(column: "opens", as: Int.self), clicks: try row.decode(column: "clicks", as: Int.self),
            botEvents: try row.decode(column: "bot_events", as: Int.self),
            firstOpenedAt: try row.decodeOptionalTimestamp("first_opened_at"), firstClickedAt: try row.decodeOptionalTimestamp("first_clicked_at")
        )
    }

    // MARK: Tokens

    /// What a tracking request needs to know about the message its token names, in any
    /// workspace (instance scope: the request has no workspace until the message is found).
    public struct TokenTarget: Sendable, Equatable {
        public var workspaceId: String
        public var contactId: String
        public var status: MessageStatus
        public var updatedAt: Date
    }

    public static func target(messageId: String, db: any SQLDatabase) async throws -> TokenTarget? {
        guard let row = try await db.raw("""
            SELECT workspace_id, contact_id, status, updated_at FROM messages WHERE id = \(bind: messageId)
            """).first() else { return nil }
        guard let status = MessageStatus(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw StorageError.corruptValue(column: "messages.status")
        }
        return TokenTarget(
            workspaceId: try row.decode(column: "workspace_id", as: String.self), contactId: try row.decode(column: "contact_id", as: String.self),
            status: status, updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
