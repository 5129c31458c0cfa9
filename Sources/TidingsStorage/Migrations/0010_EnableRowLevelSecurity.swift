import SQLKit

/// PostgreSQL row-level security on every tenant table: a row is visible and writable only
/// when the connection's `tidings.tenant` setting names its workspace (or the instance
/// scope is set; see `TenantScope`). FORCE applies the policies to the tables' owner too.
/// SQLite has no row-level security; nothing changes there.
struct EnableRowLevelSecurity: Migration {
    let number = 10
    let name = "EnableRowLevelSecurity"

    /// Every tenant table and the column naming its workspace. A test holds every table
    /// with a `workspace_id` (or audit `stream`) column to being listed here.
    static let tenantTables: [(table: String, column: String)] = [
        ("workspaces", "id"),
        ("api_keys", "workspace_id"),
        ("api_key_secrets", "workspace_id"),
        ("contacts", "workspace_id"),
        ("contact_attributes", "workspace_id"),
        ("events", "workspace_id"),
        ("workspace_keys", "workspace_id"),
        ("memberships", "workspace_id"),
        ("operator_access", "workspace_id"),
        ("audit_events", "stream"),
        ("audit_heads", "stream"),
        ("audit_checkpoints", "stream"),
    ]

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        guard kind == .postgres else { return }
        var statements = [
            """
            CREATE FUNCTION tidings_tenant_allows(workspace text) RETURNS boolean LANGUAGE sql STABLE AS $$
                SELECT coalesce(current_setting('tidings.tenant', true), '') IN ('instance', 'ws:' || workspace)
            $$
            """,
        ]
        for (table, column) in Self.tenantTables {
            statements += Self.fence(table: table, column: column)
        }
        try await execute(statements, on: db)
    }

    /// The statements that fence one tenant table (PostgreSQL); later migrations use them for
    /// the tables they add.
    static func fence(table: String, column: String) -> [String] {
        [
            "ALTER TABLE \(table) ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE \(table) FORCE ROW LEVEL SECURITY",
            "CREATE POLICY tenant_fence ON \(table) USING (tidings_tenant_allows(\(column))) WITH CHECK (tidings_tenant_allows(\(column)))",
        ]
    }
}
