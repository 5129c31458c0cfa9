import SQLKit

struct CreateEvents: Migration {
    let number = 4
    let name = "CreateEvents"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE events (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                slug TEXT NOT NULL,
                properties TEXT,
                occurred_at TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX events_contact ON events (workspace_id, contact_id, id)",
        ], on: db)
    }
}
