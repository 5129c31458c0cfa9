import SQLKit

/// The audit log: one hash-chained stream per workspace (and `instance`), the head of each
/// stream, and signed checkpoints. Rows are append-only: the database refuses UPDATE and
/// DELETE (SQLite and PostgreSQL triggers; on PostgreSQL the application role is also not
/// granted them), except that retention may clear an event's payload columns.
///
/// There is no foreign key to `workspaces`: the record of a workspace outlives it.
struct CreateAuditLog: Migration {
    let number = 8
    let name = "CreateAuditLog"

    /// The columns retention may clear; every other column is fixed once written.
    static let payloadColumns = ["actor_network", "actor_agent", "summary"]
    static let fixedColumns = [
        "stream", "seq", "id", "occurred_at", "actor_kind", "actor_id", "action", "target_kind", "target_id",
        "payload_hash", "prev_hash", "hash",
    ]

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE audit_events (
                stream TEXT NOT NULL,
                seq BIGINT NOT NULL CHECK (seq > 0),
                id TEXT NOT NULL UNIQUE,
                occurred_at TEXT NOT NULL,
                actor_kind TEXT NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'system', 'operator')),
                actor_id TEXT NOT NULL,
                actor_network TEXT,
                actor_agent TEXT,
                action TEXT NOT NULL,
                target_kind TEXT,
                target_id TEXT,
                summary TEXT,
                payload_hash TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL,
                PRIMARY KEY (stream, seq)
            )
            """,
            "CREATE INDEX audit_events_time ON audit_events (stream, occurred_at)",
            "CREATE INDEX audit_events_target ON audit_events (stream, target_id)",
            "CREATE TABLE audit_heads (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL)",
            """
            CREATE TABLE audit_checkpoints (
                stream TEXT NOT NULL,
                seq BIGINT NOT NULL,
                hash TEXT NOT NULL,
                key_id TEXT NOT NULL,
                signature TEXT NOT NULL,
                signed_at TEXT NOT NULL,
                PRIMARY KEY (stream, seq)
            )
            """,
        ], on: db)
        let unchanged = Self.fixedColumns.map { "NEW.\($0) IS NOT DISTINCT FROM OLD.\($0)" }
        let cleared = Self.payloadColumns.map { "(NEW.\($0) IS NULL OR NEW.\($0) IS NOT DISTINCT FROM OLD.\($0))" }
        let allowed = (unchanged + cleared).joined(separator: " AND ")
        switch kind {
        case .sqlite:
            let sqliteAllowed = allowed.replacingOccurrences(of: "IS NOT DISTINCT FROM", with: "IS")
            try await execute([
                "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END",
                """
                CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events WHEN NOT (\(sqliteAllowed))
                BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END
                """,
                "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END",
                "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END",
            ], on: db)
        case .postgres:
            try await execute([
                """
                CREATE FUNCTION tidings_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'audit_events' AND (\(allowed)) THEN
                        RETURN NEW;
                    END IF;
                    RAISE EXCEPTION 'audit rows are append-only' USING ERRCODE = 'insufficient_privilege';
                END
                $$
                """,
                "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION tidings_audit_append_only()",
                "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints FOR EACH ROW EXECUTE FUNCTION tidings_audit_append_only()",
            ], on: db)
        }
    }
}
