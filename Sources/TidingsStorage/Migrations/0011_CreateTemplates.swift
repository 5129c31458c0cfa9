import SQLKit

/// Email templates and their versions. A template row names the current version; every
/// update adds a version row, whose content (subject, from, reply-to, HTML, text) is sealed
/// with the workspace's keys. On PostgreSQL both tables are fenced by row-level security.
struct CreateTemplates: Migration {
    let number = 11
    let name = "CreateTemplates"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE templates (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                slug TEXT NOT NULL,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (workspace_id, slug)
            )
            """,
            """
            CREATE TABLE template_versions (
                id TEXT PRIMARY KEY,
                template_id TEXT NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                version INTEGER NOT NULL,
                content_sealed TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (template_id, version)
            )
            """,
            "CREATE INDEX template_versions_workspace ON template_versions (workspace_id)",
        ]
        if kind == .postgres {
            statements += EnableRowLevelSecurity.fence(table: "templates", column: "workspace_id")
            statements += EnableRowLevelSecurity.fence(table: "template_versions", column: "workspace_id")
        }
        try await execute(statements, on: db)
    }
}
