import SQLKit

/// Sending domains and their DKIM keys. Private keys are sealed with the workspace's keys;
/// the records to publish are derived from them when asked for.
struct CreateSendingDomains: Migration {
    let number = 12
    let name = "CreateSendingDomains"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE sending_domains (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                domain TEXT NOT NULL,
                created_at TEXT NOT NULL,
                UNIQUE (workspace_id, domain)
            )
            """,
            """
            CREATE TABLE dkim_keys (
                id TEXT PRIMARY KEY,
                domain_id TEXT NOT NULL REFERENCES sending_domains (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                algorithm TEXT NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
                selector TEXT NOT NULL,
                private_key_sealed TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX dkim_keys_domain ON dkim_keys (domain_id)",
            "CREATE INDEX dkim_keys_workspace ON dkim_keys (workspace_id)",
        ]
        if kind == .postgres {
            statements += EnableRowLevelSecurity.fence(table: "sending_domains", column: "workspace_id")
            statements += EnableRowLevelSecurity.fence(table: "dkim_keys", column: "workspace_id")
        }
        try await execute(statements, on: db)
    }
}
