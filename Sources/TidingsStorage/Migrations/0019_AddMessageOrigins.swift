import SQLKit

/// Where a message came from, so that announcements and automations share the one send
/// pipeline and can still be counted, unsubscribed from and tracked on their own:
/// - `origin_kind`: `api` (`POST /v1/messages`), `announcement` or `automation`;
/// - `origin_id`: the announcement or automation (NULL for `api`);
/// - `topic_id`: the topic the message is sent under (NULL for none);
/// - `marketing`: 1 when the message is not transactional: it carries `List-Unsubscribe` and
///   is not sent to contacts who unsubscribed.
struct AddMessageOrigins: Migration {
    let number = 19
    let name = "AddMessageOrigins"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "ALTER TABLE messages ADD COLUMN origin_kind TEXT NOT NULL DEFAULT 'api' CHECK (origin_kind IN ('api', 'announcement', 'automation'))",
            "ALTER TABLE messages ADD COLUMN origin_id TEXT",
            "ALTER TABLE messages ADD COLUMN topic_id TEXT",
            "ALTER TABLE messages ADD COLUMN marketing BOOLEAN NOT NULL DEFAULT FALSE",
            "CREATE INDEX messages_origin ON messages (workspace_id, origin_id, status)",
        ], on: db)
    }
}
