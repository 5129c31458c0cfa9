import SQLKit

/// Each workspace's keys, wrapped by the key-encryption key: data keys that seal values
/// (several over time, after rotation) and one blind-index key for equality lookups.
/// Deleting the workspace deletes these rows, which makes its sealed data unreadable.
struct CreateWorkspaceKeys: Migration {
    let number = 6
    let name = "CreateWorkspaceKeys"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE workspace_keys (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                purpose TEXT NOT NULL CHECK (purpose IN ('data', 'index')),
                kek_id TEXT NOT NULL,
                wrapped TEXT NOT NULL,
                created_at TEXT NOT NULL,
                retired_at TEXT
            )
            """,
            "CREATE INDEX workspace_keys_workspace ON workspace_keys (workspace_id, purpose, id)",
            // One index key per workspace, or lookups made with another key would miss.
            "CREATE UNIQUE INDEX workspace_keys_one_index_key ON workspace_keys (workspace_id) WHERE purpose = 'index'",
        ], on: db)
    }
}
