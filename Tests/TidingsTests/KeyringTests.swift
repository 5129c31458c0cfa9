import Foundation
import Testing
import TidingsApp
import TidingsCrypto
import TidingsServices
import TidingsStorage

@Suite("Keyring")
struct KeyringTests {
    @Test("Values sealed by one instance open in another that shares the database and the KEK", arguments: TestBackend.all)
    func keysArePersistedWrapped(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let context = SealContext(workspaceId: workspace.id, table: "contacts", column: "email", rowId: "ct_1")
            let sealed = try await tidings.keyring.seal("ada@example.com", context: context)

            let provider = try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)
            let other = Keyring(database: tidings.database, provider: provider)
            #expect(try await other.open(sealed, context: context) == "ada@example.com")

            let stored = try await tidings.database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspace.id).list(.data) }
            #expect(stored.count == 1)
            #expect(stored[0].kekId == provider.kekId)
            let rawKey = try await provider.unwrap(stored[0].wrapped, for: workspace.id)
            #expect(stored[0].wrapped.range(of: rawKey.withUnsafeBytes { Data($0) }) == nil, "only the wrapped key is stored")
        }
    }

    @Test("Concurrent first uses agree on one blind-index key per workspace", arguments: TestBackend.all)
    func oneIndexKeyPerWorkspace(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let provider = try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)
            let indexes = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        // Separate keyrings stand for separate instances.
                        try await Keyring(database: tidings.database, provider: provider).blindIndex(for: workspace.id).index("ada@example.com")
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(indexes.count == 1)
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await tidings.keyring.blindIndex(for: other.id).index("ada@example.com") != indexes.first)
        }
    }

    @Test("Without its workspace's keys a sealed value is unreadable (crypto-shredding)", arguments: TestBackend.all)
    func deletedKeysShredData(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let context = SealContext(workspaceId: workspace.id, table: "events", column: "properties", rowId: "ev_1")
            let sealed = try await tidings.keyring.seal(#"{"plan":"pro"}"#, context: context)
            try await tidings.database.transaction { db in
                try await db.raw("DELETE FROM workspace_keys WHERE workspace_id = \(bind: workspace.id)").run()
            }
            tidings.keyring.forget(workspaceId: workspace.id)
            await #expect(throws: SealingError.self) { _ = try await tidings.keyring.open(sealed, context: context) }
        }
    }
}
