import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsStorage

/// PostgreSQL's second tenant fence: row-level security, with the application connected as
/// a role that neither owns the tables nor bypasses the policies.
@Suite("Row-level security (PostgreSQL)")
struct RowLevelSecurityTests {
    static let postgres = TestBackend.all.filter { $0 == .postgres }

    @Test("Every tenant table has row-level security forced and a policy", arguments: postgres)
    func everyTenantTableHasAPolicy(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let rows = try await tidings.database.read { db in
                try await db.raw("""
                    SELECT c.relname AS name, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                           (SELECT COUNT(*) FROM pg_policies p WHERE p.tablename = c.relname AND p.schemaname = n.nspname) AS policies
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'r' AND n.nspname = current_schema() AND EXISTS (
                        SELECT 1 FROM information_schema.columns i
                        WHERE i.table_schema = n.nspname AND i.table_name = c.relname AND i.column_name IN ('workspace_id', 'stream'))
                       OR (c.relkind = 'r' AND n.nspname = current_schema() AND c.relname = 'workspaces')
                    ORDER BY c.relname
                    """).all()
            }
            #expect(rows.count >= 12)
            for row in rows {
                let name = try row.decode(column: "name", as: String.self)
                #expect(try row.decode(column: "enabled", as: Bool.self), "\(name): row-level security enabled")
                #expect(try row.decode(column: "forced", as: Bool.self), "\(name): forced for the owner too")
                #expect(try row.decode(column: "policies", as: Int.self) >= 1, "\(name): has a policy")
            }
        }
    }

    @Test("Tidings connects as a role that neither owns the tables nor bypasses row-level security", arguments: postgres)
    func applicationRoleIsNotTheOwner(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let row = try await tidings.database.read { db in
                try await db.raw("""
                    SELECT current_user::text AS role, (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) AS privileged,
                           (SELECT tableowner::text FROM pg_tables WHERE tablename = 'contacts' AND schemaname = current_schema()) AS owner
                    """).first()!
            }
            #expect(try row.decode(column: "role", as: String.self) == TestBackend.applicationRole)
            #expect(try row.decode(column: "privileged", as: Bool.self) == false)
            #expect(try row.decode(column: "owner", as: String.self) != TestBackend.applicationRole)
            // Audit rows: no UPDATE (beyond clearing payloads) and no DELETE, even without the triggers.
            await #expect(throws: (any Error).self) {
                try await tidings.database.transaction { db in try await db.raw("DELETE FROM audit_events").run() }
            }
            await #expect(throws: (any Error).self) {
                try await tidings.database.transaction { db in try await db.raw("ALTER TABLE audit_events DISABLE TRIGGER USER").run() }
            }
        }
    }

    @Test("A query without a workspace condition still sees only the workspace of its scope", arguments: postgres)
    func policiesFenceTenants(backend: TestBackend) async throws {
        try await withAPI(backend) { client, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            for index in 0..<3 { _ = try await client.post("/v1/contacts", key: a.key, json: ["email": "a\(index)@example.com"]) }
            for index in 0..<2 { _ = try await client.post("/v1/contacts", key: b.key, json: ["email": "b\(index)@example.com"]) }
            func count(_ scope: TenantScope?) async throws -> Int {
                try await TenantScope.$current.withValue(scope) {
                    try await tidings.database.read { db in
                        try await db.raw("SELECT COUNT(*) AS n FROM contacts").first()!.decode(column: "n", as: Int.self)
                    }
                }
            }
            #expect(try await count(.workspace(a.id)) == 3)
            #expect(try await count(.workspace(b.id)) == 2)
            #expect(try await count(nil) == 0, "no scope, no tenant rows")
            #expect(try await count(.instance) == 5)
            // Writing another workspace's row from A's scope is refused by the policy.
            await #expect(throws: (any Error).self) {
                try await TenantScope.$current.withValue(.workspace(a.id)) {
                    try await tidings.database.transaction { db in
                        try await db.raw("UPDATE contacts SET status = 'bounced' WHERE workspace_id = \(bind: b.id)").run()
                        let changed = try await db.raw("SELECT COUNT(*) AS n FROM contacts WHERE status = 'bounced'").first()!.decode(column: "n", as: Int.self)
                        if changed == 0 { throw CancellationError() }
                    }
                }
            }
            await #expect(throws: (any Error).self) {
                try await TenantScope.$current.withValue(.workspace(a.id)) {
                    try await tidings.database.transaction { db in
                        try await db.raw("""
                            INSERT INTO contacts (id, workspace_id, email_index, email_sealed, status, created_at, updated_at)
                            VALUES ('ct_x', \(bind: b.id), 'i', 's', 'active', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')
                            """).run()
                    }
                }
            }
        }
    }
}
