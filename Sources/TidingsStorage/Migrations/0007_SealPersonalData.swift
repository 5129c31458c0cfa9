import SQLKit

/// Contact emails, attribute values and workspace owner addresses are stored sealed.
///
/// The plaintext columns are renamed to what they hold from now on — a keyed blind index
/// (for lookups and uniqueness) or the sealed value — and rows written before this change
/// are sealed at start-up by the keyring (`SealingRetrofit`): a plaintext value is
/// recognisable because it contains `@` or has no sealed twin yet, which no index or
/// sealed value (hex, base64) ever does.
///
/// Instance-level keys (for users and operators, and the audit signing key) get their own
/// table, since they belong to no workspace.
struct SealPersonalData: Migration {
    let number = 7
    let name = "SealPersonalData"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            "ALTER TABLE contacts RENAME COLUMN email TO email_index",
            "ALTER TABLE contacts ADD COLUMN email_sealed TEXT",
            "ALTER TABLE contact_attributes RENAME COLUMN value TO value_index",
            "ALTER TABLE contact_attributes ADD COLUMN value_sealed TEXT",
            "ALTER TABLE workspaces RENAME COLUMN owner_email TO owner_email_sealed",
            """
            CREATE TABLE instance_keys (
                id TEXT PRIMARY KEY,
                purpose TEXT NOT NULL CHECK (purpose IN ('data', 'index', 'signing')),
                kek_id TEXT NOT NULL,
                wrapped TEXT NOT NULL,
                created_at TEXT NOT NULL,
                retired_at TEXT
            )
            """,
            "CREATE UNIQUE INDEX instance_keys_one_index_key ON instance_keys (purpose) WHERE purpose IN ('index', 'signing')",
        ], on: db)
    }
}
