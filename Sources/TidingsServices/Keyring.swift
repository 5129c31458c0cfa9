import Foundation
import Synchronization
import TidingsCrypto
import TidingsStorage

/// Each workspace's keys: stored wrapped by the key-encryption key, unwrapped on first
/// use and then held only in memory.
///
/// Sealing a value is one call (`seal`), and so is opening it: the place it belongs to
/// (workspace, table, column, row) is bound in, so a copied value does not open elsewhere.
/// Deleting a workspace's key rows leaves its sealed values unreadable (crypto-shredding).
public final class Keyring: Sendable {
    private struct Cache {
        var dataKeys: [String: [String: DataKey]] = [:]
        var current: [String: DataKey] = [:]
        var indexes: [String: BlindIndex] = [:]
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

    public func seal(_ plaintext: String, context: SealContext) async throws -> Data {
        try Sealer.seal(Data(plaintext.utf8), with: try await currentDataKey(for: context.workspaceId), context: context)
    }

    public func open(_ sealed: Data, context: SealContext) async throws -> String {
        let key = try await dataKey(id: try Sealer.keyId(of: sealed), for: context.workspaceId)
        return String(decoding: try Sealer.open(sealed, with: key, context: context), as: UTF8.self)
    }

    /// The key new values are sealed with: the newest data key, created on first use.
    public func currentDataKey(for workspaceId: String) async throws -> DataKey {
        if let key = cache.withLock({ $0.current[workspaceId] }) { return key }
        try await loadDataKeys(for: workspaceId)
        if let key = cache.withLock({ $0.current[workspaceId] }) { return key }
        let key = DataKey.generate(id: Identifier.make("dk", at: now()))
        let stored = WorkspaceKeyRepository.StoredKey(
            id: key.id, purpose: .data, kekId: provider.kekId,
            wrapped: try await key.wrapped(by: provider, for: workspaceId), createdAt: now()
        )
        try await database.transaction { db in
            try await WorkspaceKeyRepository(db, workspaceId: workspaceId).insert(stored)
        }
        // Another instance may have created one at the same moment: both are valid; use the newest.
        try await loadDataKeys(for: workspaceId)
        guard let current = cache.withLock({ $0.current[workspaceId] }) else { throw SealingError.unknownKey(key.id) }
        return current
    }

    /// The data key with `id`, for opening a value sealed with it.
    public func dataKey(id: String, for workspaceId: String) async throws -> DataKey {
        if let key = cache.withLock({ $0.dataKeys[workspaceId]?[id] }) { return key }
        try await loadDataKeys(for: workspaceId)
        guard let key = cache.withLock({ $0.dataKeys[workspaceId]?[id] }) else { throw SealingError.unknownKey(id) }
        return key
    }

    /// The workspace's blind index, for equality lookups of sealed values (one key per workspace).
    public func blindIndex(for workspaceId: String) async throws -> BlindIndex {
        if let index = cache.withLock({ $0.indexes[workspaceId] }) { return index }
        var stored = try await database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspaceId).list(.index) }
        if stored.isEmpty {
            let key = SymmetricKeyMaterial.random()
            let candidate = WorkspaceKeyRepository.StoredKey(
                id: Identifier.make("ik", at: now()), purpose: .index, kekId: provider.kekId,
                wrapped: try await provider.wrap(key, for: workspaceId), createdAt: now()
            )
            // At most one index key per workspace: whoever inserts first wins, everyone reads it back.
            stored = try await database.transaction { db in
                let repository = WorkspaceKeyRepository(db, workspaceId: workspaceId)
                try await repository.insert(candidate)
                return try await repository.list(.index)
            }
        }
        guard let first = stored.first else { throw SealingError.unknownKey("index") }
        let index = BlindIndex(key: try await provider.unwrap(first.wrapped, for: workspaceId))
        cache.withLock { $0.indexes[workspaceId] = index }
        return index
    }

    /// Drops the workspace's unwrapped keys from memory (after its key rows are deleted).
    public func forget(workspaceId: String) {
        cache.withLock { cache in
            cache.dataKeys[workspaceId] = nil
            cache.current[workspaceId] = nil
            cache.indexes[workspaceId] = nil
        }
    }

    private func loadDataKeys(for workspaceId: String) async throws {
        let stored = try await database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspaceId).list(.data) }
        var keys: [String: DataKey] = [:]
        var newest: DataKey?
        for entry in stored {
            let key = DataKey(id: entry.id, key: try await provider.unwrap(entry.wrapped, for: workspaceId))
            keys[entry.id] = key
            if entry.retiredAt == nil { newest = key }
        }
        cache.withLock { cache in
            cache.dataKeys[workspaceId] = keys
            cache.current[workspaceId] = newest
        }
    }
}
