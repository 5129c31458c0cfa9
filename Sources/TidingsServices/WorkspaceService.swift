import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Creating and listing workspaces: operator actions, run from the CLI.
public struct WorkspaceService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    public struct Created: Sendable {
        public var workspace: Workspace
        public var apiKey: APIKey
        /// Shown once; only its keyed hash is stored.
        public var token: APIKeyToken
    }

    /// Creates a workspace and its first API key, with the `admin` scope, in one transaction.
    public func create(
        name rawName: String, ownerEmail rawEmail: String, environment: DeploymentEnvironment, by actor: AuditActor
    ) async throws -> Created {
        let name = try Workspace.validateName(rawName)
        let ownerEmail = try EmailAddress(rawEmail, field: "ownerEmail")
        let now = env.now()
        let workspace = Workspace(
            id: Identifier.make("ws", at: now), name: name, ownerEmail: ownerEmail,
            environment: environment, createdAt: now
        )
        let token = APIKeyToken.generate()
        let key = APIKey(
            id: Identifier.make("key", at: now), workspaceId: workspace.id, name: "Owner key",
            scopes: [.admin], hint: token.hint, createdAt: now, expiresAt: nil, revokedAt: nil, lastUsedAt: nil
        )
        let secretHash = env.hasher.hash(token.secret)
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await WorkspaceRepository(db, instance: instance).insert(workspace)
            try await APIKeyRepository(db, workspaceId: workspace.id).insert(key, secretHash: secretHash)
            let created = AuditChange("workspace.created", target: ("workspace", workspace.id), summary: [
                "name": .string(name), "environment": .string(environment.rawValue), "ownerEmail": .string(instance.pseudonym(ownerEmail.value)),
            ])
            try await audit.record([
                (Vault.instanceScope, actor, created),
                (workspace.id, actor, created),
                (workspace.id, actor, APIKeyService.created(key)),
            ], db: db)
        }
        env.logger.info("Workspace created", metadata: ["workspace": "\(workspace.id)", "api_key": "\(key.id)"])
        return Created(workspace: workspace, apiKey: key, token: token)
    }

    /// Deletes a workspace with everything in it — contacts, events, keys, members — and its
    /// data keys, so any copy of its sealed values is unreadable (crypto-shredding). Its audit
    /// stream stays (it holds no personal data in the clear) and records the deletion.
    /// Deletes the workspace with everything in it and destroys its keys: the workspace's KEK
    /// in the key provider first, so no copy of its rows — in a backup or anywhere else —
    /// opens again, then its rows and wrapped keys. The KEK goes first so that a failure in
    /// between leaves a workspace that can still be deleted by running this again.
    public func delete(id: String, by actor: AuditActor) async throws {
        guard try await env.database.read({ db in try await WorkspaceRepository.exists(id: id, in: db) }) else {
            throw DomainError.notFound("workspace_not_found", "No workspace with this id exists.")
        }
        try await env.keyring.destroyKeys(for: id)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let keys = try await db.raw("SELECT COUNT(*) AS n FROM workspace_keys WHERE workspace_id = \(bind: id)").first()?
                .decode(column: "n", as: Int.self) ?? 0
            try await db.raw("DELETE FROM workspaces WHERE id = \(bind: id)").run()
            let deleted = AuditChange("workspace.deleted", target: ("workspace", id), summary: [
                "keysDestroyed": .number(Double(keys)), "kekDestroyed": .string(env.keyring.kekId(for: id)),
            ])
            try await audit.record([(Vault.instanceScope, actor, deleted), (id, actor, deleted)], db: db)
        }
        env.keyring.forget(workspaceId: id)
        try await env.database.discardReplacedContent(of: ["workspace_keys"])
        env.logger.notice("Workspace deleted; its keys are destroyed", metadata: ["workspace": "\(id)"])
    }

    public func list() async throws -> [Workspace] {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in try await WorkspaceRepository(db, instance: instance).list() }
    }

    public func find(id: String) async throws -> Workspace? {
        let instance = try await env.keyring.vault(for: Vault.instanceScope)
        return try await env.database.read { db in try await WorkspaceRepository(db, instance: instance).find(id: id) }
    }
}
