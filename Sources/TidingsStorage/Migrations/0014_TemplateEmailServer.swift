import SQLKit

/// A template may name the email server its messages leave through; deleting that server
/// sends them through the workspace's default again.
struct TemplateEmailServer: Migration {
    let number = 14
    let name = "TemplateEmailServer"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "ALTER TABLE templates ADD COLUMN email_server_id TEXT REFERENCES email_servers (id) ON DELETE SET NULL",
        ], on: db)
    }
}
