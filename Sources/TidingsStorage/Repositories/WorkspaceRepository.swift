import Foundation
import SQLKit
import TidingsDomain

/// Instance-level access to workspaces (operator commands, authentication). Not tenant-scoped by nature.
public struct WorkspaceRepository: Sendable {
    let db: any SQLDatabase

    public init(_ db: any SQLDatabase) {
        self.db = db
    }

    public func insert(_ workspace: Workspace) async throws {
        try await db.raw("""
            INSERT INTO workspaces (id, name, owner_email, environment, created_at)
            VALUES (\(bind: workspace.id), \(bind: workspace.name), \(bind: workspace.ownerEmail.value),
                    \(bind: workspace.environment.rawValue), \(bind: Timestamp.format(workspace.createdAt)))
            """).run()
    }

    public func list() async throws -> [Workspace] {
        try await db.raw("SELECT id, name, owner_email, environment, created_at FROM workspaces ORDER BY id")
            .all().map(Self.decode)
    }

    public func find(id: String) async throws -> Workspace? {
        try await db.raw("""
            SELECT id, name, owner_email, environment, created_at FROM workspaces WHERE id = \(bind: id)
            """).first().map(Self.decode)
    }

    static func decode(_ row: any SQLRow) throws -> Workspace {
        Workspace(
            id: try row.decode(column: "id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            ownerEmail: try EmailAddress(row.decode(column: "owner_email", as: String.self)),
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
