import Foundation
import SQLKit
import TidingsDomain

/// The wrapped keys of one workspace. Every query is scoped by `workspaceId`.
public struct WorkspaceKeyRepository: Sendable {
    public enum Purpose: String, Sendable {
        case data, index
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

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    /// Stores a key. An index key is stored only if the workspace has none yet;
    /// returns whether this one was stored.
    @discardableResult
    public func insert(_ key: StoredKey) async throws -> Bool {
        let rows = try await db.raw("""
            INSERT INTO workspace_keys (id, workspace_id, purpose, kek_id, wrapped, created_at, retired_at)
            VALUES (\(bind: key.id), \(bind: workspaceId), \(bind: key.purpose.rawValue), \(bind: key.kekId),
                    \(bind: key.wrapped.base64EncodedString()), \(bind: Timestamp.format(key.createdAt)), NULL)
            ON CONFLICT DO NOTHING
            RETURNING id
            """).all()
        return !rows.isEmpty
    }

    /// The workspace's keys of one purpose, oldest first.
    public func list(_ purpose: Purpose) async throws -> [StoredKey] {
        try await db.raw("""
            SELECT id, purpose, kek_id, wrapped, created_at, retired_at FROM workspace_keys
            WHERE workspace_id = \(bind: workspaceId) AND purpose = \(bind: purpose.rawValue) ORDER BY id
            """).all().map { row in
                StoredKey(
                    id: try row.decode(column: "id", as: String.self),
                    purpose: Purpose(rawValue: try row.decode(column: "purpose", as: String.self)) ?? purpose,
                    kekId: try row.decode(column: "kek_id", as: String.self),
                    wrapped: Data(base64Encoded: try row.decode(column: "wrapped", as: String.self)) ?? Data(),
                    createdAt: try row.decodeTimestamp("created_at"),
                    retiredAt: try row.decodeOptionalTimestamp("retired_at")
                )
            }
    }
}
