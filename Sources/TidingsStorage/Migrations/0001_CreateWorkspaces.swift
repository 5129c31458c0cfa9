import SQLKit

struct CreateWorkspaces: Migration {
    let number = 1
    let name = "CreateWorkspaces"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE workspaces (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                owner_email TEXT NOT NULL,
                environment TEXT NOT NULL CHECK (environment IN ('production', 'staging', 'development')),
                created_at TEXT NOT NULL
            )
            """,
        ], on: db)
    }
}
