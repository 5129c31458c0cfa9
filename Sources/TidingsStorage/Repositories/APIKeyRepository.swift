import Foundation
import SQLKit
import TidingsDomain

/// API keys of one workspace. Every query is scoped by `workspaceId`.
public struct APIKeyRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    private static let columns = "id, workspace_id, name, scopes, hint, created_at, expires_at, revoked_at, last_used_at, exposed_at"

    public func insert(_ key: APIKey, secretHash: String) async throws {
        precondition(key.workspaceId == workspaceId)
        try await db.raw("""
            INSERT INTO api_keys (id, workspace_id, name, scopes, hint, created_at, expires_at, revoked_at, last_used_at)
            VALUES (\(bind: key.id), \(bind: workspaceId), \(bind: key.name), \(bind: Self.encode(key.scopes)),
                    \(bind: key.hint), \(bind: Timestamp.format(key.createdAt)), \(bind: key.expiresAt.stored),
                    NULL, NULL)
            """).run()
        try await addSecret(keyId: key.id, secretHash: secretHash, createdAt: key.createdAt)
    }

    public func list() async throws -> [APIKey] {
        try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM api_keys WHERE workspace_id = \(bind: workspaceId) ORDER BY id
            """).all().map(Self.decode)
    }

    public func find(id: String) async throws -> APIKey? {
        try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM api_keys WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first().map(Self.decode)
    }

    /// Records that the key travelled over plain HTTP (the first time counts).
    public func markExposed(id: String, at now: Date) async throws {
        try await db.raw("""
            UPDATE api_keys SET exposed_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND exposed_at IS NULL
            """).run()
    }

    /// Revokes a key at once: every secret of it stops working.
    public func revoke(id: String, at now: Date) async throws {
        try await db.raw("""
            UPDATE api_keys SET revoked_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND revoked_at IS NULL
            """).run()
    }

    /// Adds a new current secret; the secrets that were current keep working until `oldSecretsValidUntil`.
    public func rotate(id: String, newSecretHash: String, newHint: String, oldSecretsValidUntil: Date, at now: Date) async throws {
        try await db.raw("""
            UPDATE api_key_secrets SET valid_until = \(bind: Timestamp.format(oldSecretsValidUntil))
            WHERE workspace_id = \(bind: workspaceId) AND api_key_id = \(bind: id)
              AND (valid_until IS NULL OR valid_until > \(bind: Timestamp.format(oldSecretsValidUntil)))
            """).run()
        try await addSecret(keyId: id, secretHash: newSecretHash, createdAt: now)
        try await db.raw("""
            UPDATE api_keys SET hint = \(bind: newHint) WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).run()
    }

    public func markUsed(id: String, at now: Date) async throws {
        try await db.raw("""
            UPDATE api_keys SET last_used_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).run()
    }

    private func addSecret(keyId: String, secretHash: String, createdAt: Date) async throws {
        try await db.raw("""
            INSERT INTO api_key_secrets (secret_hash, api_key_id, workspace_id, created_at, valid_until)
            VALUES (\(bind: secretHash), \(bind: keyId), \(bind: workspaceId), \(bind: Timestamp.format(createdAt)), NULL)
            """).run()
    }

    static func encode(_ scopes: [Scope]) -> String {
        scopes.map(\.rawValue).joined(separator: " ")
    }

    static func decode(_ row: any SQLRow) throws -> APIKey {
        APIKey(
            id: try row.decode(column: "id", as: String.self),
            workspaceId: try row.decode(column: "workspace_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            scopes: try row.decode(column: "scopes", as: String.self).split(separator: " ").compactMap { Scope(rawValue: String($0)) },
            hint: try row.decode(column: "hint", as: String.self),
            createdAt: try row.decodeTimestamp("created_at"),
            expiresAt: try row.decodeOptionalTimestamp("expires_at"),
            revokedAt: try row.decodeOptionalTimestamp("revoked_at"),
            lastUsedAt: try row.decodeOptionalTimestamp("last_used_at"),
            exposedAt: try row.decodeOptionalTimestamp("exposed_at")
        )
    }
}

/// Finds the key a presented secret belongs to. This lookup is what establishes the
/// workspace, so it is the one API-key query that is not scoped by workspace.
public struct CredentialRepository: Sendable {
    let db: any SQLDatabase

    public init(_ db: any SQLDatabase) {
        self.db = db
    }

    /// The key whose secret hashes to `secretHash`, if that secret is still valid at `now`.
    /// The key itself may be revoked or expired; the caller decides.
    public func key(forSecretHash secretHash: String, at now: Date) async throws -> APIKey? {
        try await db.raw("""
            SELECT k.id, k.workspace_id, k.name, k.scopes, k.hint, k.created_at, k.expires_at, k.revoked_at, k.last_used_at, k.exposed_at
            FROM api_key_secrets s JOIN api_keys k ON k.id = s.api_key_id AND k.workspace_id = s.workspace_id
            WHERE s.secret_hash = \(bind: secretHash)
              AND (s.valid_until IS NULL OR s.valid_until > \(bind: Timestamp.format(now)))
            """).first().map(APIKeyRepository.decode)
    }
}
