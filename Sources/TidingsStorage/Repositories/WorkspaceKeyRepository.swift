import Foundation
import SQLKit
import TidingsDomain

/// The wrapped keys of one scope: a workspace (`workspace_keys`, deleted with it) or the
/// instance (`instance_keys`). Every query is scoped by the workspace id.
public struct WorkspaceKeyRepository: Sendable {
    public enum Purpose: String, Sendable {
        /// Seal values; several over time, after rotation.
        case data
        /// The blind-index key: one per scope.
        case index
        /// Signs audit checkpoints (Ed25519): instance scope only.
        case signing
    }

    /// A key as stored: wrapped by the KEK named `kekId`.
    public struct StoredKey: Sendable, Equatable {
        public var id: String
        public var purpose: Purpose
        public var kekId: String
        public var wrapped: Data
        public var createdAt: Date
        public var retiredAt: Date?

        public init(id: String, purpose: Purpose, kekId: String, wrapped: Data, createdAt: Date, retiredAt: Date? = nil) {
            self.id = id
            self.purpose = purpose
            self.kekId = kekId
            self.wrapped = wrapped
            self.createdAt = createdAt
            self.retiredAt = retiredAt
        }
    }

    let db: any SQLDatabase
    let workspaceId: String

    /// The scope name of instance-level keys (matches `Vault.instanceScope`).
    public static let instanceScope = "instance"

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    private var isInstance: Bool { workspaceId == Self.instanceScope }

    /// Stores a key. An index or signing key is stored only if the scope has none yet;
    /// returns whether this one was stored.
    @discardableResult
    public func insert(_ key: StoredKey) async throws -> Bool {
        let wrapped = key.wrapped.base64EncodedString()
        let created = Timestamp.format(key.createdAt)
        let query: SQLQueryString = isInstance
            ? """
              INSERT INTO instance_keys (id, purpose, kek_id, wrapped, created_at, retired_at)
              VALUES (\(bind: key.id), \(bind: key.purpose.rawValue), \(bind: key.kekId), \(bind: wrapped), \(bind: created), NULL)
              ON CONFLICT DO NOTHING RETURNING id
              """
            : """
              INSERT INTO workspace_keys (id, workspace_id, purpose, kek_id, wrapped, created_at, retired_at)
              VALUES (\(bind: key.id), \(bind: workspaceId), \(bind: key.purpose.rawValue), \(bind: key.kekId),
                      \(bind: wrapped), \(bind: created), NULL)
              ON CONFLICT DO NOTHING RETURNING id
              """
        return !(try await db.raw(query).all()).isEmpty
    }

    /// The scope's keys of one purpose, oldest first.
    public func list(_ purpose: Purpose) async throws -> [StoredKey] {
        let query: SQLQueryString = isInstance
            ? """
              SELECT id, purpose, kek_id, wrapped, created_at, retired_at FROM instance_keys
              WHERE purpose = \(bind: purpose.rawValue) ORDER BY id
              """
            : """
              SELECT id, purpose, kek_id, wrapped, created_at, retired_at FROM workspace_keys
              WHERE workspace_id = \(bind: workspaceId) AND purpose = \(bind: purpose.rawValue) ORDER BY id
              """
        return try await db.raw(query).all().map(Self.decode)
    }

    /// Marks every current data key retired; the next one created becomes current.
    public func retireDataKeys(at now: Date) async throws {
        let stamp = Timestamp.format(now)
        let query: SQLQueryString = isInstance
            ? "UPDATE instance_keys SET retired_at = \(bind: stamp) WHERE purpose = 'data' AND retired_at IS NULL"
            : """
              UPDATE workspace_keys SET retired_at = \(bind: stamp)
              WHERE workspace_id = \(bind: workspaceId) AND purpose = 'data' AND retired_at IS NULL
              """
        try await db.raw(query).run()
    }

    /// Deletes a retired data key once nothing is sealed with it any more.
    public func deleteRetired(id: String) async throws {
        let query: SQLQueryString = isInstance
            ? "DELETE FROM instance_keys WHERE id = \(bind: id) AND purpose = 'data' AND retired_at IS NOT NULL"
            : """
              DELETE FROM workspace_keys
              WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND purpose = 'data' AND retired_at IS NOT NULL
              """
        try await db.raw(query).run()
    }

    /// Every stored key of every scope, for re-wrapping under a new KEK.
    public static func all(in db: any SQLDatabase) async throws -> [(scope: String, key: StoredKey)] {
        var result: [(String, StoredKey)] = []
        for row in try await db.raw("SELECT id, purpose, kek_id, wrapped, created_at, retired_at FROM instance_keys ORDER BY id").all() {
            result.append((instanceScope, try decode(row)))
        }
        for row in try await db.raw("""
            SELECT workspace_id, id, purpose, kek_id, wrapped, created_at, retired_at FROM workspace_keys ORDER BY workspace_id, id
            """).all() {
            result.append((try row.decode(column: "workspace_id", as: String.self), try decode(row)))
        }
        return result
    }

    /// Replaces a key's wrapping (same key, new KEK).
    public static func rewrap(id: String, scope: String, kekId: String, wrapped: Data, in db: any SQLDatabase) async throws {
        let text = wrapped.base64EncodedString()
        let query: SQLQueryString = scope == instanceScope
            ? "UPDATE instance_keys SET kek_id = \(bind: kekId), wrapped = \(bind: text) WHERE id = \(bind: id)"
            : """
              UPDATE workspace_keys SET kek_id = \(bind: kekId), wrapped = \(bind: text)
              WHERE workspace_id = \(bind: scope) AND id = \(bind: id)
              """
        try await db.raw(query).run()
    }

    static func decode(_ row: any SQLRow) throws -> StoredKey {
        guard let purpose = Purpose(rawValue: try row.decode(column: "purpose", as: String.self)),
              let wrapped = Data(base64Encoded: try row.decode(column: "wrapped", as: String.self))
        else { throw StorageError.corruptValue(column: "keys.wrapped") }
        return StoredKey(
            id: try row.decode(column: "id", as: String.self),
            purpose: purpose,
            kekId: try row.decode(column: "kek_id", as: String.self),
            wrapped: wrapped,
            createdAt: try row.decodeTimestamp("created_at"),
            retiredAt: try row.decodeOptionalTimestamp("retired_at")
        )
    }
}
