import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Sending domains of one workspace and their DKIM keys, private keys sealed.
public struct SendingDomainRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    /// A DKIM key as stored: its private key opened.
    public struct StoredKey: Sendable, Equatable {
        public var id: String
        public var algorithm: String
        public var selector: String
        public var privateKey: String

        public init(id: String, algorithm: String, selector: String, privateKey: String) {
            self.id = id
            self.algorithm = algorithm
            self.selector = selector
            self.privateKey = privateKey
        }
    }

    public struct Row: Sendable {
        public var id: String
        public var domain: String
        public var createdAt: Date
    }

    /// Returns `false`, writing nothing, when the workspace already has the domain.
    public func insert(id: String, domain: String, keys: [StoredKey], at now: Date) async throws -> Bool {
        let inserted = try await db.raw("""
            INSERT INTO sending_domains (id, workspace_id, domain, created_at)
            VALUES (\(bind: id), \(bind: workspaceId), \(bind: domain), \(bind: Timestamp.format(now)))
            ON CONFLICT (workspace_id, domain) DO NOTHING
            RETURNING id
            """).first()
        guard inserted != nil else { return false }
        for key in keys {
            try await db.raw("""
                INSERT INTO dkim_keys (id, domain_id, workspace_id, algorithm, selector, private_key_sealed, created_at)
                VALUES (\(bind: key.id), \(bind: id), \(bind: workspaceId), \(bind: key.algorithm), \(bind: key.selector),
                        \(bind: try vault.seal(key.privateKey, table: "dkim_keys", column: "private_key", row: key.id)),
                        \(bind: Timestamp.format(now)))
                """).run()
        }
        return true
    }

    public func list() async throws -> [Row] {
        try await db.raw("""
            SELECT id, domain, created_at FROM sending_domains WHERE workspace_id = \(bind: workspaceId) ORDER BY domain
            """).all().map(Self.decode)
    }

    public func find(domain: String) async throws -> Row? {
        try await db.raw("""
            SELECT id, domain, created_at FROM sending_domains WHERE workspace_id = \(bind: workspaceId) AND domain = \(bind: domain)
            """).first().map(Self.decode)
    }

    /// The domain's keys, oldest first.
    public func keys(domainId: String) async throws -> [StoredKey] {
        var keys: [StoredKey] = []
        for row in try await db.raw("""
            SELECT id, algorithm, selector, private_key_sealed FROM dkim_keys
            WHERE workspace_id = \(bind: workspaceId) AND domain_id = \(bind: domainId) ORDER BY id
            """).all() {
            let id = try row.decode(column: "id", as: String.self)
            keys.append(StoredKey(
                id: id, algorithm: try row.decode(column: "algorithm", as: String.self),
                selector: try row.decode(column: "selector", as: String.self),
                privateKey: try await vault.open(
                    try row.decode(column: "private_key_sealed", as: String.self), table: "dkim_keys", column: "private_key", row: id
                )
            ))
        }
        return keys
    }

    public func delete(domain: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM sending_domains WHERE workspace_id = \(bind: workspaceId) AND domain = \(bind: domain) RETURNING id
            """).first() != nil
    }

    private static func decode(_ row: any SQLRow) throws -> Row {
        Row(id: try row.decode(column: "id", as: String.self), domain: try row.decode(column: "domain", as: String.self),
            createdAt: try row.decodeTimestamp("created_at"))
    }
}
