import SQLKit

/// Each workspace's SMTP servers. The user name and password are sealed with the
/// workspace's keys; at most one server per workspace is its default.
struct CreateEmailServers: Migration {
    let number = 13
    let name = "CreateEmailServers"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE email_servers (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                host TEXT NOT NULL,
                port INTEGER NOT NULL,
                security TEXT NOT NULL CHECK (security IN ('tls', 'starttls', 'none')),
                username_sealed TEXT,
                password_sealed TEXT,
                max_connections INTEGER NOT NULL,
                rate_limit DOUBLE PRECISION,
                preset TEXT,
                is_default BOOLEAN NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX email_servers_workspace ON email_servers (workspace_id, id)",
            "CREATE UNIQUE INDEX email_servers_one_default ON email_servers (workspace_id) WHERE is_default",
        ]
        if kind == .postgres {
            statements += EnableRowLevelSecurity.fence(table: "email_servers", column: "workspace_id")
        }
        try await execute(statements, on: db)
    }
}
