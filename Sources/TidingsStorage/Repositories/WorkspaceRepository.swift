import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Instance-level access to workspaces (operator commands, authentication). Not tenant-scoped
/// by nature; owner addresses are sealed with the instance's keys.
public struct WorkspaceRepository: Sendable {
    let db: any SQLDatabase
    let instance: Vault

    public init(_ db: any SQLDatabase, instance: Vault) {
        precondition(instance.scope == Vault.instanceScope, "workspaces are sealed with the instance's keys")
        self.db = db
        self.instance = instance
    }

    public func insert(_ workspace: Workspace) async throws {
        let owner = try instance.seal(workspace.ownerEmail.value, table: "workspaces", column: "owner_email", row: workspace.id)
        try await db.raw("""
            INSERT INTO workspaces (id, name, owner_email_sealed, environment, created_at)
            VALUES (\(bind: workspace.id), \(bind: workspace.name), \(bind: owner),
                    \(bind: workspace.environment.rawValue), \(bind: Timestamp.format(workspace.createdAt)))
            """).run()
    }

    public func list() async throws -> [Workspace] {
        var workspaces: [Workspace] = []
        for row in try await db.raw("SELECT id, name, owner_email_sealed, environment, created_at FROM workspaces ORDER BY id").all() {
            workspaces.append(try await decode(row))
        }
        return workspaces
    }

    public func find(id: String) async throws -> Workspace? {
        guard let row = try await db.raw("""
            SELECT id, name, owner_email_sealed, environment, created_at FROM workspaces WHERE id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// Whether the workspace exists (no sealed values opened).
    public static func exists(id: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT 1 AS one FROM workspaces WHERE id = \(bind: id)").first() != nil
    }

    func decode(_ row: any SQLRow) async throws -> Workspace {
        let id = try row.decode(column: "id", as: String.self)
        let sealed = try row.decode(column: "owner_email_sealed", as: String.self)
        return Workspace(
            id: id,
            name: try row.decode(column: "name", as: String.self),
            ownerEmail: try EmailAddress(try await instance.open(sealed, table: "workspaces", column: "owner_email", row: id)),
            environment: DeploymentEnvironment(rawValue: try row.decode(column: "environment", as: String.self)) ?? .production,
            createdAt: try row.decodeTimestamp("created_at")
        )
    }
}

extension SQLRow {
    func decodeTimestamp(_ column: String) throws -> Date {
        let text = try decode(column: column, as: String.self)
        guard let date = Timestamp.parse(text) else {
            throw StorageError.corruptValue(column: column)
        }
        return date
    }

    func decodeOptionalTimestamp(_ column: String) throws -> Date? {
        guard let text = try decode(column: column, as: String?.self) else { return nil }
        guard let date = Timestamp.parse(text) else { throw StorageError.corruptValue(column: column) }
        return date
    }
}

public enum StorageError: Error, CustomStringConvertible {
    case corruptValue(column: String)

    public var description: String {
        switch self {
        case .corruptValue(let column): "A stored value in column '\(column)' could not be read."
        }
    }
}

extension Optional where Wrapped == Date {
    /// The stored form of an optional timestamp.
    var stored: String? { map(Timestamp.format) }
}
