import SQLKit

/// Segments (saved filters; a filter may compare attributes with personal values, so it is
/// sealed) and announcements with the progress of their fan-out.
///
/// A contact gets at most one message per announcement: a partial unique index on
/// `messages (origin_id, contact_id)` for announcement mail holds that even if a fan-out
/// batch were ever written twice.
struct CreateSegmentsAndAnnouncements: Migration {
    let number = 24
    let name = "CreateSegmentsAndAnnouncements"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE segments (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                filter_sealed TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX segments_workspace ON segments (workspace_id, id)",
            """
            CREATE TABLE announcements (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                template_slug TEXT NOT NULL,
                segment_id TEXT REFERENCES segments (id) ON DELETE RESTRICT,
                topic TEXT,
                critical BOOLEAN NOT NULL DEFAULT FALSE,
                track_opens BOOLEAN,
                track_clicks BOOLEAN,
                status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled')),
                paused_from TEXT,
                send_at TEXT,
                cursor TEXT,
                considered INTEGER NOT NULL DEFAULT 0,
                messages INTEGER NOT NULL DEFAULT 0,
                not_in_segment INTEGER NOT NULL DEFAULT 0,
                unsubscribed INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                started_at TEXT,
                queued_at TEXT,
                finished_at TEXT
            )
            """,
            "CREATE INDEX announcements_workspace ON announcements (workspace_id, id)",
            "CREATE INDEX announcements_unfinished ON announcements (status, finished_at)",
            "CREATE UNIQUE INDEX messages_announcement_contact ON messages (origin_id, contact_id) WHERE origin_kind = 'announcement'",
        ]
        if kind == .postgres {
            for table in ["segments", "announcements"] {
                statements += EnableRowLevelSecurity.fence(table: table, column: "workspace_id")
            }
        }
        try await execute(statements, on: db)
    }
}
