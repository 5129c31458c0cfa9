import SQLKit

/// Open and click tracking, and the indexes behind the daily statistics.
///
/// - `tracking_settings`: a workspace's switches (no row: everything off).
/// - `message_links`: the links of each tracked message, in the order their tokens number
///   them, as one sealed JSON array (URLs may carry personal data). A click token names a
///   message and a position in this list, so a redirect can only lead to a URL that was in
///   the message.
/// - `tracking_events`: each request for a pixel or a tracked link. The contact appears only
///   as a keyed pseudonym, the client's address only truncated (/24, /48), its user agent
///   shortened and sealed; `bot_reason` says why a request was taken for a machine's.
/// - `message_engagement`: per message, the counts and the first open and click by a
///   person, kept with each event so statistics and message details read one row.
/// - `messages_final`: messages by status and last change; a final status never changes
///   again, so its `updated_at` is when the message was delivered, bounced or failed.
/// - `daily_stats`: the counts of each day that is over, per template and origin (`origin_id`
///   `''` for none), and `daily_stats_days` the days counted: a report reads these instead
///   of the messages of those days.
struct CreateTracking: Migration {
    let number = 22
    let name = "CreateTracking"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE tracking_settings (
                workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
                opens BOOLEAN NOT NULL DEFAULT FALSE,
                clicks BOOLEAN NOT NULL DEFAULT FALSE,
                transactional BOOLEAN NOT NULL DEFAULT FALSE,
                updated_at TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE message_links (
                message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                urls_sealed TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX message_links_workspace ON message_links (workspace_id, message_id)",
            """
            CREATE TABLE tracking_events (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                contact_pseudonym TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('open', 'click')),
                link_position INTEGER,
                ip_truncated TEXT,
                user_agent_sealed TEXT,
                is_bot BOOLEAN NOT NULL,
                bot_reason TEXT,
                at TEXT NOT NULL
            )
            """,
            "CREATE INDEX tracking_events_message ON tracking_events (workspace_id, message_id, id)",
            "CREATE INDEX tracking_events_at ON tracking_events (workspace_id, at)",
            """
            CREATE TABLE message_engagement (
                message_id TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                opens INTEGER NOT NULL DEFAULT 0,
                clicks INTEGER NOT NULL DEFAULT 0,
                bot_events INTEGER NOT NULL DEFAULT 0,
                first_opened_at TEXT,
                first_clicked_at TEXT
            )
            """,
            "CREATE INDEX message_engagement_opened ON message_engagement (workspace_id, first_opened_at)",
            "CREATE INDEX message_engagement_clicked ON message_engagement (workspace_id, first_clicked_at)",
            "CREATE INDEX messages_final ON messages (workspace_id, status, updated_at)",
            """
            CREATE TABLE daily_stats_days (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                day TEXT NOT NULL,
                counted_at TEXT NOT NULL,
                PRIMARY KEY (workspace_id, day)
            )
            """,
            """
            CREATE TABLE daily_stats (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                day TEXT NOT NULL,
                template_slug TEXT NOT NULL,
                origin_kind TEXT NOT NULL,
                origin_id TEXT NOT NULL,
                metric TEXT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (workspace_id, day, template_slug, origin_kind, origin_id, metric)
            )
            """,
        ]
        if kind == .postgres {
            for table in ["tracking_settings", "message_links", "tracking_events", "message_engagement", "daily_stats_days", "daily_stats"] {
                statements += EnableRowLevelSecurity.fence(table: table, column: "workspace_id")
            }
        }
        try await execute(statements, on: db)
    }
}
