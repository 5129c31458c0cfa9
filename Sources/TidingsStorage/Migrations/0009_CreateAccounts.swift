import SQLKit

/// People who sign in to the dashboard: accounts (members and operators), their
/// workspace memberships, MFA recovery codes, web sessions, single-use setup links,
/// sign-in throttling, operators' confidentiality acknowledgements and their recorded
/// reasons for opening a workspace.
///
/// Addresses and TOTP secrets are sealed with the instance's keys; passwords, recovery
/// codes, session tokens and setup links are stored only as hashes.
struct CreateAccounts: Migration {
    let number = 9
    let name = "CreateAccounts"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        try await execute([
            """
            CREATE TABLE accounts (
                id TEXT PRIMARY KEY,
                email_index TEXT NOT NULL UNIQUE,
                email_sealed TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind IN ('member', 'operator')),
                status TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
                password_hash TEXT,
                totp_sealed TEXT,
                totp_last_step BIGINT,
                mfa_enrolled_at TEXT,
                created_at TEXT NOT NULL,
                last_sign_in_at TEXT,
                disabled_at TEXT
            )
            """,
            """
            CREATE TABLE account_recovery_codes (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                code_hash TEXT NOT NULL,
                used_at TEXT,
                PRIMARY KEY (account_id, code_hash)
            )
            """,
            """
            CREATE TABLE memberships (
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
                created_at TEXT NOT NULL,
                PRIMARY KEY (workspace_id, account_id)
            )
            """,
            "CREATE INDEX memberships_account ON memberships (account_id)",
            """
            CREATE TABLE web_sessions (
                token_hash TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                stage TEXT NOT NULL CHECK (stage IN ('mfa_required', 'mfa_enrolment', 'complete')),
                created_at TEXT NOT NULL,
                last_seen_at TEXT NOT NULL,
                pending_totp_sealed TEXT
            )
            """,
            "CREATE INDEX web_sessions_account ON web_sessions (account_id)",
            """
            CREATE TABLE setup_links (
                token_hash TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                expires_at TEXT NOT NULL,
                used_at TEXT
            )
            """,
            """
            CREATE TABLE sign_in_throttle (
                subject TEXT PRIMARY KEY,
                failures INTEGER NOT NULL,
                last_failure_at TEXT NOT NULL,
                blocked_until TEXT
            )
            """,
            """
            CREATE TABLE operator_acknowledgements (
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                statement_version TEXT NOT NULL,
                acknowledged_at TEXT NOT NULL,
                PRIMARY KEY (account_id, statement_version)
            )
            """,
            """
            CREATE TABLE operator_access (
                id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                reason_sealed TEXT NOT NULL,
                opened_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX operator_access_lookup ON operator_access (account_id, workspace_id, expires_at)",
        ], on: db)
    }
}
