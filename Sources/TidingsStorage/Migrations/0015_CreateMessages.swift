import SQLKit

/// Messages, their timelines, the job queue that delivers them, suppressed addresses and
/// idempotency keys.
///
/// - A message keeps its request (variables, attachments, cc/bcc, headers, metadata) sealed;
///   it is rendered when it is delivered, from the template version it was accepted with.
/// - A timeline row per step (queued, sending, delivered, deferred, …), numbered in order
///   (steps may share a millisecond); the server's reply may name the recipient, so it is
///   sealed too.
/// - `jobs` is the durable queue: a row is due at `run_at`; a worker claims it by setting
///   `lease_owner` and `lease_until`, and a lease that runs out (a worker that died) makes the
///   row claimable again.
/// - The Message-ID header is `<id@domain>`; only its domain is stored (an address-shaped
///   value in the database would look like personal data to every scan).
/// - `suppressions`: contacts whose mailbox does not exist (a 5.1.x bounce); sends to them stop.
struct CreateMessages: Migration {
    let number = 15
    let name = "CreateMessages"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                template_id TEXT NOT NULL,
                template_slug TEXT NOT NULL,
                template_version INTEGER NOT NULL,
                email_server_id TEXT REFERENCES email_servers (id) ON DELETE SET NULL,
                status TEXT NOT NULL CHECK (status IN
                    ('scheduled', 'queued', 'sending', 'delivered', 'deferred', 'bounced', 'failed', 'suppressed', 'cancelled')),
                request_sealed TEXT NOT NULL,
                message_id_domain TEXT NOT NULL,
                send_at TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at TEXT,
                tls_version TEXT,
                tls_cipher TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX messages_workspace ON messages (workspace_id, id)",
            "CREATE INDEX messages_contact ON messages (workspace_id, contact_id, id)",
            "CREATE INDEX messages_status ON messages (workspace_id, status, id)",
            """
            CREATE TABLE message_events (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                kind TEXT NOT NULL,
                detail_sealed TEXT,
                at TEXT NOT NULL
            )
            """,
            "CREATE UNIQUE INDEX message_events_message ON message_events (workspace_id, message_id, position)",
            """
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                subject_id TEXT NOT NULL,
                run_at TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                lease_owner TEXT,
                lease_until TEXT,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX jobs_due ON jobs (run_at, id)",
            "CREATE UNIQUE INDEX jobs_subject ON jobs (kind, subject_id)",
            """
            CREATE TABLE suppressions (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                reason TEXT NOT NULL,
                reply_sealed TEXT,
                message_id TEXT,
                created_at TEXT NOT NULL,
                PRIMARY KEY (workspace_id, contact_id)
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                request_digest TEXT NOT NULL,
                status INTEGER NOT NULL,
                response TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (workspace_id, key)
            )
            """,
        ]
        if kind == .postgres {
            for table in ["messages", "message_events", "jobs", "suppressions", "idempotency_keys"] {
                statements += EnableRowLevelSecurity.fence(table: table, column: "workspace_id")
            }
        }
        try await execute(statements, on: db)
    }
}
