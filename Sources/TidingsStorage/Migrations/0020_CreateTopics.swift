import SQLKit

/// Topics and the subscriptions to them:
/// - `topics`: a workspace's kinds of marketing mail, by slug;
/// - `topic_unsubscribes`: one row per contact and topic it left (a contact in no row
///   receives every topic). "Unsubscribed from all" is the contact's status `unsubscribed`;
///   `partially_unsubscribed` when it left some topics only;
/// - `subscription_changes`: the history of every change, with how it was made (`via`) and
///   the message whose link was used, so statistics count unsubscribes per announcement or
///   automation. `topic_id` there is kept when the topic is deleted (history, not a reference).
/// Rows of a deleted contact or workspace go with it.
struct CreateTopics: Migration {
    let number = 20
    let name = "CreateTopics"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE topics (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                slug TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (workspace_id, slug)
            )
            """,
            """
            CREATE TABLE topic_unsubscribes (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                topic_id TEXT NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
                created_at TEXT NOT NULL,
                PRIMARY KEY (workspace_id, contact_id, topic_id)
            )
            """,
            // Sending under a topic asks which contacts of a batch left it.
            "CREATE INDEX topic_unsubscribes_topic ON topic_unsubscribes (workspace_id, topic_id, contact_id)",
            // Deleting a topic (or a contact) cascades through these.
            "CREATE INDEX topic_unsubscribes_topic_id ON topic_unsubscribes (topic_id)",
            "CREATE INDEX topic_unsubscribes_contact_id ON topic_unsubscribes (contact_id)",
            """
            CREATE TABLE subscription_changes (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                contact_id TEXT NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
                change TEXT NOT NULL CHECK (change IN ('unsubscribed_all', 'resubscribed_all', 'unsubscribed_topic', 'resubscribed_topic')),
                topic_id TEXT,
                via TEXT NOT NULL CHECK (via IN ('api', 'preference_page', 'one_click', 'mailto')),
                message_id TEXT,
                origin_kind TEXT CHECK (origin_kind IN ('api', 'announcement', 'automation')),
                origin_id TEXT,
                at TEXT NOT NULL
            )
            """,
            "CREATE INDEX subscription_changes_contact ON subscription_changes (workspace_id, contact_id, id)",
            "CREATE INDEX subscription_changes_contact_id ON subscription_changes (contact_id)",
            "CREATE INDEX subscription_changes_at ON subscription_changes (workspace_id, at)",
            "CREATE INDEX subscription_changes_origin ON subscription_changes (workspace_id, origin_id, at)",
        ]
        if kind == .postgres {
            statements += EnableRowLevelSecurity.fence(table: "topics", column: "workspace_id")
            statements += EnableRowLevelSecurity.fence(table: "topic_unsubscribes", column: "workspace_id")
            statements += EnableRowLevelSecurity.fence(table: "subscription_changes", column: "workspace_id")
        }
        try await execute(statements, on: db)
    }
}
