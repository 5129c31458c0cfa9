import SQLKit

struct CreateContacts: Migration {
    let number = 3
    let name = "CreateContacts"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE contacts (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                email TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('active', 'bounced', 'unsubscribed', 'partially_unsubscribed')),
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (workspace_id, email)
            )
            """,
            "CREATE INDEX contacts_workspace ON contacts (workspace_id, id)",
            // One row per attribute, so equality filters use an index (and each value can be sealed on its own).
            """
            CREATE TABLE contact_attributes (
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('string', 'number', 'boolean', 'date')),
                value TEXT NOT NULL,
                PRIMARY KEY (contact_id, name)
            )
            """,
            "CREATE INDEX contact_attributes_lookup ON contact_attributes (workspace_id, name, value)",
        ], on: db)
    }
}
