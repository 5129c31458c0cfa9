import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Every column that holds sealed values, and how its rows are named in the seal context.
/// Data-key rotation re-seals exactly these; a test holds every `*_sealed` column of the
/// schema to being listed here, so a new sealed column cannot be forgotten.
public struct SealedColumn: Sendable {
    public var table: String
    /// The column name bound into the seal context.
    public var column: String
    /// The column the sealed text is stored in.
    public var storedIn: String
    /// `workspace_id` for tenant tables; `nil` for instance-level tables.
    public var scopeColumn: String?
    /// The columns whose values, joined by `/`, name the row in the seal context.
    public var rowKey: [String]

    public static let all: [SealedColumn] = [
        SealedColumn(table: "contacts", column: "email", storedIn: "email_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "contact_attributes", column: "value", storedIn: "value_sealed", scopeColumn: "workspace_id", rowKey: ["contact_id", "name"]),
        SealedColumn(table: "events", column: "properties", storedIn: "properties", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "workspaces", column: "owner_email", storedIn: "owner_email_sealed", scopeColumn: nil, rowKey: ["id"]),
        SealedColumn(table: "accounts", column: "email", storedIn: "email_sealed", scopeColumn: nil, rowKey: ["id"]),
        SealedColumn(table: "accounts", column: "totp", storedIn: "totp_sealed", scopeColumn: nil, rowKey: ["id"]),
        SealedColumn(table: "web_sessions", column: "pending_totp", storedIn: "pending_totp_sealed", scopeColumn: nil, rowKey: ["token_hash"]),
        SealedColumn(table: "operator_access", column: "reason", storedIn: "reason_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "template_versions", column: "content", storedIn: "content_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "dkim_keys", column: "private_key", storedIn: "private_key_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "email_servers", column: "username", storedIn: "username_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "email_servers", column: "password", storedIn: "password_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "messages", column: "request", storedIn: "request_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "message_events", column: "detail", storedIn: "detail_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "suppressions", column: "reply", storedIn: "reply_sealed", scopeColumn: "workspace_id", rowKey: ["contact_id"]),
        SealedColumn(table: "domain_checks", column: "result", storedIn: "result_sealed", scopeColumn: "workspace_id", rowKey: ["domain_id", "check_key"]),
        SealedColumn(table: "segments", column: "filter", storedIn: "filter_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "automations", column: "definition", storedIn: "definition_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "webhooks", column: "url", storedIn: "url_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "webhooks", column: "secret", storedIn: "secret_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "webhooks", column: "previous_secret", storedIn: "previous_secret_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "webhook_deliveries", column: "payload", storedIn: "payload_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "webhook_deliveries", column: "response", storedIn: "response_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
        SealedColumn(table: "message_links", column: "urls", storedIn: "urls_sealed", scopeColumn: "workspace_id", rowKey: ["message_id"]),
        SealedColumn(table: "tracking_events", column: "user_agent", storedIn: "user_agent_sealed", scopeColumn: "workspace_id", rowKey: ["id"]),
    ]
}

/// Rotating keys: a new data key for a workspace (re-sealing its values, then deleting
/// the old key), and re-wrapping every data key under a new key-encryption key.
public struct KeyRotation: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    static let batchSize = 500

    public struct DataKeyResult: Sendable {
        public var newKeyId: String
        public var resealed: Int
        public var retiredKeysDeleted: Int
    }

    /// Starts a new data key for the scope (a workspace id or `instance`), re-seals every
    /// value sealed with an older key, in batches, and deletes the old keys once unused.
    /// Values written meanwhile are sealed with the new key already; an interrupted run is
    /// finished by running it again (`resealRetired`).
    public func rotateDataKey(scope: String, by actor: AuditActor) async throws -> DataKeyResult {
        let newKeyId = try await env.keyring.rotateDataKey(for: scope)
        let (resealed, deleted) = try await resealRetired(scope: scope)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await audit.record(
                AuditChange("keys.data_key_rotated", target: ("data_key", newKeyId), summary: [
                    "resealed": .number(Double(resealed)), "retiredKeysDeleted": .number(Double(deleted)),
                ]),
                in: scope, by: actor, db: db
            )
        }
        return DataKeyResult(newKeyId: newKeyId, resealed: resealed, retiredKeysDeleted: deleted)
    }

    /// Re-seals values still sealed with retired keys, then deletes the retired keys that
    /// every instance has stopped using (retired at least `Keyring.retiredKeyGrace` ago).
    /// Keys retired more recently stay until a later run (the server runs one hourly).
    public func resealRetired(scope: String) async throws -> (resealed: Int, keysDeleted: Int) {
        env.keyring.forget(workspaceId: scope)
        let vault = try await env.keyring.vault(for: scope)
        var resealed = 0
        for column in SealedColumn.all where (column.scopeColumn == nil) == (scope == Vault.instanceScope) {
            resealed += try await reseal(column, vault: vault)
        }
        let cutoff = env.now() - Keyring.retiredKeyGrace
        let retired = try await env.database.read { db in
            try await WorkspaceKeyRepository(db, workspaceId: scope).list(.data).filter { ($0.retiredAt ?? .distantFuture) <= cutoff }
        }
        // Values another instance sealed with these keys during the grace period are re-sealed first.
        if !retired.isEmpty {
            for column in SealedColumn.all where (column.scopeColumn == nil) == (scope == Vault.instanceScope) {
                resealed += try await reseal(column, vault: vault)
            }
        }
        try await env.database.transaction { db in
            for key in retired { try await WorkspaceKeyRepository(db, workspaceId: scope).deleteRetired(id: key.id) }
        }
        env.keyring.forget(workspaceId: scope)
        return (resealed, retired.count)
    }

    private func reseal(_ column: SealedColumn, vault: Vault) async throws -> Int {
        let keyColumns = column.rowKey.map { SQLIdentifier($0) }
        var count = 0
        var offset = 0
        while true {
            var query = SQLQueryString("SELECT ")
            query.appendInterpolation(SQLList(keyColumns + [SQLIdentifier(column.storedIn)]))
            query.appendInterpolation(" FROM \(ident: column.table) WHERE \(ident: column.storedIn) IS NOT NULL" as SQLQueryString)
            if let scopeColumn = column.scopeColumn {
                query.appendInterpolation(" AND \(ident: scopeColumn) = \(bind: vault.scope)" as SQLQueryString)
            }
            query.appendInterpolation(" ORDER BY \(SQLList(keyColumns)) LIMIT \(literal: Self.batchSize) OFFSET \(literal: offset)" as SQLQueryString)
            let rows = try await env.database.read { [query] db in try await db.raw(query).all() }
            if rows.isEmpty { return count }
            offset += rows.count
            var updates: [(key: [String], sealed: String)] = []
            for row in rows {
                let stored = try row.decode(column: column.storedIn, as: String.self)
                guard vault.isSealedWithRetiredKey(stored) else { continue }
                let key = try column.rowKey.map { try row.decode(column: $0, as: String.self) }
                let plaintext = try await vault.open(stored, table: column.table, column: column.column, row: key.joined(separator: "/"))
                updates.append((key, try vault.seal(plaintext, table: column.table, column: column.column, row: key.joined(separator: "/"))))
            }
            guard !updates.isEmpty else { continue }
            try await env.database.transaction { [updates] db in
                for update in updates {
                    var statement = SQLQueryString("UPDATE \(ident: column.table) SET \(ident: column.storedIn) = \(bind: update.sealed) WHERE 1 = 1")
                    if let scopeColumn = column.scopeColumn {
                        statement.appendInterpolation(" AND \(ident: scopeColumn) = \(bind: vault.scope)" as SQLQueryString)
                    }
                    for (name, value) in zip(column.rowKey, update.key) {
                        statement.appendInterpolation(" AND \(ident: name) = \(bind: value)" as SQLQueryString)
                    }
                    try await db.raw(statement).run()
                }
            }
            count += updates.count
        }
    }

    /// Finishes rotations: for every scope with retired data keys, re-seals what still uses
    /// them and deletes those past their grace period. Run hourly by the server.
    @discardableResult
    public func finishRotations() async throws -> Int {
        let scopes = try await env.database.read { db in
            try await db.raw("""
                SELECT DISTINCT workspace_id AS scope FROM workspace_keys WHERE purpose = 'data' AND retired_at IS NOT NULL
                UNION SELECT 'instance' AS scope FROM instance_keys WHERE purpose = 'data' AND retired_at IS NOT NULL
                """).all().map { try $0.decode(column: "scope", as: String.self) }
        }
        var deleted = 0
        for scope in scopes { deleted += try await resealRetired(scope: scope).keysDeleted }
        return deleted
    }

    /// Re-wraps every stored key (all workspaces and the instance) from `previous` to this
    /// instance's KEK. Sealed data is untouched: the keys stay the same, only their wrapping changes.
    public func rewrapAll(from previous: any KeyEncryptionKeyProvider, by actor: AuditActor) async throws -> Int {
        let count = try await env.keyring.rewrapAll(from: previous)
        let audit = try await env.auditRecorder()
        let kekId = env.keyring.kekId
        try await env.database.transaction { db in
            try await audit.record(
                AuditChange("keys.kek_rotated", target: ("kek", kekId), summary: [
                    "previousKek": .string(previous.kekId), "keysRewrapped": .number(Double(count)),
                ]),
                in: Vault.instanceScope, by: actor, db: db
            )
        }
        return count
    }
}
