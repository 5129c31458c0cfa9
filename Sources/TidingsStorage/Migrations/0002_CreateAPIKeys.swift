import SQLKit

struct CreateAPIKeys: Migration {
    let number = 2
    let name = "CreateAPIKeys"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                scopes TEXT NOT NULL,
                hint TEXT NOT NULL,
                created_at TEXT NOT NULL,
                expires_at TEXT,
                revoked_at TEXT,
                last_used_at TEXT
            )
            """,
            "CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id)",
            // A key has one current secret and, after a rotation, old ones that work until `valid_until`.
            """
            CREATE TABLE api_key_secrets (
                secret_hash TEXT PRIMARY KEY,
                api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                created_at TEXT NOT NULL,
                valid_until TEXT
            )
            """,
            "CREATE INDEX api_key_secrets_key ON api_key_secrets (api_key_id)",
        ], on: db)
    }
}
