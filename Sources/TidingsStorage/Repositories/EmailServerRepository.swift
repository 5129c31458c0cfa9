import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// SMTP servers of one workspace; user names and passwords sealed.
public struct EmailServerRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    private static let columns = """
        id, name, host, port, security, username_sealed, password_sealed, max_connections, rate_limit, preset, is_default, tls_pins,
        created_at, updated_at
        """

    public func insert(_ server: EmailServer) async throws {
        precondition(server.workspaceId == workspaceId)
        if server.isDefault { try await clearDefault() }
        try await db.raw("""
            INSERT INTO email_servers (\(unsafeRaw: Self.columns), workspace_id)
            VALUES (\(bind: server.id), \(bind: server.name), \(bind: server.host), \(bind: server.port), \(bind: server.security.rawValue),
                    \(bind: try seal(server.username, "username", server.id)), \(bind: try seal(server.password, "password", server.id)),
                    \(bind: server.maxConnections), \(bind: server.rateLimit), \(bind: server.preset), \(bind: server.isDefault),
                    \(bind: Self.pins(server.tlsPins)), \(bind: Timestamp.format(server.createdAt)), \(bind: Timestamp.format(server.updatedAt)), \(bind: workspaceId))
            """).run()
    }

    public func update(_ server: EmailServer) async throws {
        precondition(server.workspaceId == workspaceId)
        if server.isDefault { try await clearDefault(except: server.id) }
        try await db.raw("""
            UPDATE email_servers SET name = \(bind: server.name), host = \(bind: server.host), port = \(bind: server.port),
                security = \(bind: server.security.rawValue), username_sealed = \(bind: try seal(server.username, "username", server.id)),
                password_sealed = \(bind: try seal(server.password, "password", server.id)), max_connections = \(bind: server.maxConnections),
                rate_limit = \(bind: server.rateLimit), preset = \(bind: server.preset), is_default = \(bind: server.isDefault),
                tls_pins = \(bind: Self.pins(server.tlsPins)), updated_at = \(bind: Timestamp.format(server.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: server.id)
            """).run()
    }

    public func list() async throws -> [EmailServer] {
        var servers: [EmailServer] = []
        for row in try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM email_servers WHERE workspace_id = \(bind: workspaceId) ORDER BY id
            """).all() {
            servers.append(try await decode(row))
        }
        return servers
    }

    public func find(id: String) async throws -> EmailServer? {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM email_servers WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    public func delete(id: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM email_servers WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) RETURNING id
            """).first() != nil
    }

    /// Makes the oldest remaining server the default if none is.
    public func ensureDefault() async throws {
        let hasDefault = try await db.raw("""
            SELECT id FROM email_servers WHERE workspace_id = \(bind: workspaceId) AND is_default
            """).first() != nil
        guard !hasDefault, let oldest = try await db.raw("""
            SELECT id FROM email_servers WHERE workspace_id = \(bind: workspaceId) ORDER BY id LIMIT 1
            """).first()?.decode(column: "id", as: String.self) else { return }
        try await db.raw("""
            UPDATE email_servers SET is_default = \(bind: true) WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: oldest)
            """).run()
    }

    private func clearDefault(except id: String? = nil) async throws {
        try await db.raw("""
            UPDATE email_servers SET is_default = \(bind: false)
            WHERE workspace_id = \(bind: workspaceId) AND is_default AND id <> \(bind: id ?? "")
            """).run()
    }

    /// Pins are base64, which holds no space: stored space-separated, NULL for none.
    private static func pins(_ pins: [String]) -> String? {
        pins.isEmpty ? nil : pins.joined(separator: " ")
    }

    private func seal(_ value: String?, _ column: String, _ id: String) throws -> String? {
        try value.map { try vault.seal($0, table: "email_servers", column: column, row: id) }
    }

    private func decode(_ row: any SQLRow) async throws -> EmailServer {
        let id = try row.decode(column: "id", as: String.self)
        func open(_ column: String) async throws -> String? {
            guard let sealed = try row.decode(column: "\(column)_sealed", as: String?.self) else { return nil }
            return try await vault.open(sealed, table: "email_servers", column: column, row: id)
        }
        guard let security = EmailServer.Security(rawValue: try row.decode(column: "security", as: String.self)) else {
            throw StorageError.corruptValue(column: "email_servers.security")
        }
        return EmailServer(
            id: id, workspaceId: workspaceId, name: try row.decode(column: "name", as: String.self),
            host: try row.decode(column: "host", as: String.self), port: try row.decode(column: "port", as: Int.self), security: security,
            username: try await open("username"), password: try await open("password"),
            maxConnections: try row.decode(column: "max_connections", as: Int.self), rateLimit: try row.decode(column: "rate_limit", as: Double?.self),
            preset: try row.decode(column: "preset", as: String?.self), isDefault: try row.decode(column: "is_default", as: Bool.self),
            tlsPins: (try row.decode(column: "tls_pins", as: String?.self) ?? "").split(separator: " ").map(String.init),
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
