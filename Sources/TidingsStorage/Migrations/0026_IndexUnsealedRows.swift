import SQLKit

/// Every start looks for personal data stored before sealing existed (`SealingRetrofit`):
/// contacts without a sealed address, attributes without a sealed value. Unindexed, that read
/// every contact and attribute, about 7 s at a million contacts, on each start. These
/// partial indexes hold only such rows, so the look is instant, and stay empty once sealed.
struct IndexUnsealedRows: Migration {
    let number = 26
    let name = "IndexUnsealedRows"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "CREATE INDEX contacts_unsealed ON contacts (workspace_id) WHERE email_sealed IS NULL",
            "CREATE INDEX contact_attributes_unsealed ON contact_attributes (workspace_id) WHERE value_sealed IS NULL",
        ], on: db)
    }
}
