import Crypto
import Foundation
import Synchronization
import TidingsCrypto
import TidingsStorage

/// The keys of every scope — each workspace, and the instance — stored wrapped by the
/// key-encryption key (KEK), unwrapped on first use and then held only in memory.
///
/// `vault(for:)` gives a scope's keys as a `Vault`, which seals, opens, blind-indexes and
/// pseudonymises; repositories of personal data are built from a vault. Deleting a
/// workspace's key rows leaves its sealed values unreadable (crypto-shredding).
public final class Keyring: Sendable {
    private struct Cache {
        var vaults: [String: (vault: Vault, loadedAt: Date)] = [:]
        var signer: CheckpointSigner?
    }

    private let database: any DatabaseClient
    private let provider: any KeyEncryptionKeyProvider
    private let now: @Sendable () -> Date
    private let cache = Mutex(Cache())

    public init(database: any DatabaseClient, provider: any KeyEncryptionKeyProvider, now: @escaping @Sendable () -> Date = Date.init) {
        self.database = database
        self.provider = provider
        self.now = now
    }

    /// How long a scope's keys are used from memory before they are read again, so every
    /// instance follows a data-key rotation made by another within this time.
    public static let vaultLifetime: TimeInterval = 60

    /// How long a retired data key is kept after rotation: long enough for every instance to
    /// have stopped sealing with it (two vault lifetimes).
    public static let retiredKeyGrace: TimeInterval = 2 * vaultLifetime

    /// The id of the KEK new keys are wrapped with.
    public var kekId: String { provider.kekId }

    /// The id of the KEK new keys of `scope` are wrapped with.
    public func kekId(for scope: String) -> String { provider.kekId(for: scope) }

    /// The keys of a workspace (or `Vault.instanceScope`): the current data key, the
    /// retired ones still needed to open older values, and the blind-index key.
    /// The first call for a scope creates its keys.
    public func vault(for scope: String) async throws -> Vault {
        let now = now()
        if let cached = cache.withLock({ $0.vaults[scope] }), now.timeIntervalSince(cached.loadedAt) < Self.vaultLifetime {
            return cached.vault
        }
        let vault = try await loadVault(scope)
        cache.withLock { $0.vaults[scope] = (vault, now) }
        return vault
    }

    /// The instance's key for signing audit checkpoints (Ed25519), created on first use.
    public func checkpointSigner() async throws -> CheckpointSigner {
        if let signer = cache.withLock({ $0.signer }) { return signer }
        let scope = Vault.instanceScope
        var stored = try await database.read { db in try await WorkspaceKeyRepository(db, workspaceId: scope).list(.signing) }
        if stored.isEmpty {
            let fresh = CheckpointSigner.generate()
            let candidate = try await storedKey(prefix: "sk", purpose: .signing, material: SymmetricKey(data: fresh.rawRepresentation), scope: scope)
            // At most one signing key: whoever inserts first wins, everyone reads it back.
            stored = try await database.transaction { db in
                let repository = WorkspaceKeyRepository(db, workspaceId: scope)
                try await repository.insert(candidate)
                return try await repository.list(.signing)
            }
        }
        guard let first = stored.first else { throw SealingError.unknownKey("signing") }
        let material = try await provider.unwrap(first.wrapped, for: scope, kekId: first.kekId)
        let signer = try material.withUnsafeBytes { try CheckpointSigner(rawRepresentation: Data($0)) }
        cache.withLock { $0.signer = signer }
        return signer
    }

    /// Starts a new data key for the scope: new values are sealed with it at once, older
    /// ones stay readable with the retired key until `DataKeyRotation` re-seals them.
    public func rotateDataKey(for scope: String) async throws -> String {
        let key = DataKey.generate(id: Identifier.make("dk", at: now()))
        let stored = WorkspaceKeyRepository.StoredKey(
            id: key.id, purpose: .data, kekId: provider.kekId(for: scope),
            wrapped: try await key.wrapped(by: provider, for: scope), createdAt: now()
        )
        let stamp = now()
        try await database.transaction { db in
            let repository = WorkspaceKeyRepository(db, workspaceId: scope)
            try await repository.retireDataKeys(at: stamp)
            try await repository.insert(stored)
        }
        forget(workspaceId: scope)
        return key.id
    }

    /// Re-wraps every stored key not yet under the KEK this keyring wraps its scope with:
    /// keys under `previous` (the KEK being replaced), and keys of a workspace still under
    /// the instance KEK from before workspaces had KEKs of their own. The keys themselves,
    /// and so all sealed data, stay the same. Returns how many keys were re-wrapped.
    public func rewrapAll(from previous: (any KeyEncryptionKeyProvider)? = nil) async throws -> Int {
        let stored = try await database.read { db in try await WorkspaceKeyRepository.all(in: db) }
        var rewrapped: [(scope: String, id: String, kekId: String, wrapped: Data)] = []
        for (scope, key) in stored where key.kekId != provider.kekId(for: scope) {
            let source: any KeyEncryptionKeyProvider
            if provider.opens(kekId: key.kekId, for: scope) {
                source = provider
            } else if let previous, previous.opens(kekId: key.kekId, for: scope) {
                source = previous
            } else {
                throw SealingError.unknownKey("KEK \(key.kekId) (wraps key \(key.id))")
            }
            let material = try await source.unwrap(key.wrapped, for: scope, kekId: key.kekId)
            rewrapped.append((scope, key.id, provider.kekId(for: scope), try await provider.wrap(material, for: scope)))
        }
        try await database.transaction { [rewrapped] db in
            for entry in rewrapped {
                try await WorkspaceKeyRepository.rewrap(id: entry.id, scope: entry.scope, kekId: entry.kekId, wrapped: entry.wrapped, in: db)
            }
        }
        return rewrapped.count
    }

    /// Destroys the workspace's KEK in the provider (crypto-shredding) and forgets its keys.
    public func destroyKeys(for workspaceId: String) async throws {
        precondition(workspaceId != Vault.instanceScope, "the instance's keys are never destroyed")
        forget(workspaceId: workspaceId)
        try await provider.destroyKeys(for: workspaceId)
        forget(workspaceId: workspaceId)
    }

    /// Drops a scope's unwrapped keys from memory (after rotation, or after its key rows are deleted).
    public func forget(workspaceId: String) {
        cache.withLock { cache in
            cache.vaults[workspaceId] = nil
            if workspaceId == Vault.instanceScope { cache.signer = nil }
        }
    }

    private func loadVault(_ scope: String) async throws -> Vault {
        var (data, index) = try await database.read { db in
            let repository = WorkspaceKeyRepository(db, workspaceId: scope)
            return (try await repository.list(.data), try await repository.list(.index))
        }
        if data.allSatisfy({ $0.retiredAt != nil }) || index.isEmpty {
            let newData = data.allSatisfy({ $0.retiredAt != nil })
                ? try await storedKey(prefix: "dk", purpose: .data, material: SymmetricKeyMaterial.random(), scope: scope) : nil
            let newIndex = index.isEmpty
                ? try await storedKey(prefix: "ik", purpose: .index, material: SymmetricKeyMaterial.random(), scope: scope) : nil
            // Whoever inserts first wins the single index key; everyone reads back what is stored.
            // Two processes may both add a data key: both are valid, the newest is current.
            (data, index) = try await database.transaction { db in
                let repository = WorkspaceKeyRepository(db, workspaceId: scope)
                if let newData { try await repository.insert(newData) }
                if let newIndex { try await repository.insert(newIndex) }
                return (try await repository.list(.data), try await repository.list(.index))
            }
        }
        var keys: [DataKey] = []
        var current: DataKey?
        for entry in data {
            let key = DataKey(id: entry.id, key: try await provider.unwrap(entry.wrapped, for: scope, kekId: entry.kekId))
            keys.append(key)
            if entry.retiredAt == nil { current = key }
        }
        guard let current, let indexKey = index.first else { throw SealingError.unknownKey("data") }
        return Vault(
            scope: scope, current: current, keys: keys,
            index: BlindIndex(key: try await provider.unwrap(indexKey.wrapped, for: scope, kekId: indexKey.kekId)),
            reload: { [weak self] keyId in
                guard let self else { throw SealingError.unknownKey(keyId) }
                self.forget(workspaceId: scope)
                guard let key = try await self.vault(for: scope).dataKey(id: keyId) else { throw SealingError.unknownKey(keyId) }
                return key
            }
        )
    }

    private func storedKey(
        prefix: String, purpose: WorkspaceKeyRepository.Purpose, material: SymmetricKey, scope: String
    ) async throws -> WorkspaceKeyRepository.StoredKey {
        WorkspaceKeyRepository.StoredKey(
            id: Identifier.make(prefix, at: now()), purpose: purpose, kekId: provider.kekId(for: scope),
            wrapped: try await provider.wrap(material, for: scope), createdAt: now()
        )
    }
}
