import SQLKit

/// Webhook endpoints and their delivery log.
///
/// - `webhooks`: the URL is sealed (it may carry a token), its host is kept readable for
///   listings; the signing secret is sealed, and so is the one before the last rotation, which
///   signs alongside until `previous_secret_expires_at`. `events` lists the subscribed event
///   types separated by spaces. `failing_since` is set at the first failed attempt after a
///   success and cleared by the next success; an endpoint failing for too long is `disabled`.
/// - `webhook_deliveries`: one row per event and endpoint, written in the transaction of the
///   change the event tells of, with its job (`webhook.deliver`) in `jobs`. The request body is
///   sealed (it names contacts); so is the first bytes of the last answer. `first_attempt_at`
///   starts the retry window (again when a disabled endpoint is enabled). Finished deliveries
///   are purged once they are older than the log's retention.
struct CreateWebhooks: Migration {
    let number = 21
    let name = "CreateWebhooks"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE webhooks (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                url_sealed TEXT NOT NULL,
                host TEXT NOT NULL,
                description TEXT,
                events TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
                secret_sealed TEXT NOT NULL,
                previous_secret_sealed TEXT,
                previous_secret_expires_at TEXT,
                failing_since TEXT,
                disabled_at TEXT,
                disabled_reason TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX webhooks_workspace ON webhooks (workspace_id, status, id)",
            """
            CREATE TABLE webhook_deliveries (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
                event_type TEXT NOT NULL,
                payload_sealed TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                response_status INTEGER,
                response_sealed TEXT,
                error TEXT,
                duration_ms INTEGER,
                first_attempt_at TEXT,
                last_attempt_at TEXT,
                next_attempt_at TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (workspace_id, webhook_id, id)",
            "CREATE INDEX webhook_deliveries_status ON webhook_deliveries (workspace_id, webhook_id, status, id)",
            // The hourly purge of finished deliveries past the log's retention.
            "CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (status, updated_at)",
        ]
        if kind == .postgres {
            for table in ["webhooks", "webhook_deliveries"] {
                statements += EnableRowLevelSecurity.fence(table: table, column: "workspace_id")
            }
        }
        try await execute(statements, on: db)
    }
}
