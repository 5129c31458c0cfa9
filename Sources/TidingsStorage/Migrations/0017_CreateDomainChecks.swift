import SQLKit

/// The latest checks of each sending domain's DNS records (DKIM per selector, SPF, DMARC),
/// one row per check. What a check found (the records, which may hold report addresses, and
/// the texts built from them) is sealed; the status stays readable so lists and the daily
/// run need no keys. `next_check_at` on the domain says when the daily run is due; NULL:
/// at its next pass.
struct CreateDomainChecks: Migration {
    let number = 17
    let name = "CreateDomainChecks"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            "ALTER TABLE sending_domains ADD COLUMN next_check_at TEXT",
            "CREATE INDEX sending_domains_next_check ON sending_domains (next_check_at)",
            """
            CREATE TABLE domain_checks (
                domain_id TEXT NOT NULL REFERENCES sending_domains (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                check_key TEXT NOT NULL,
                position INTEGER NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pass', 'warning', 'error', 'fail')),
                result_sealed TEXT NOT NULL,
                checked_at TEXT NOT NULL,
                PRIMARY KEY (domain_id, check_key)
            )
            """,
            "CREATE INDEX domain_checks_workspace ON domain_checks (workspace_id, domain_id)",
        ]
        if kind == .postgres {
            statements += EnableRowLevelSecurity.fence(table: "domain_checks", column: "workspace_id")
        }
        try await execute(statements, on: db)
    }
}
