import Crypto
import Foundation
import SQLKit
import HummingbirdTesting
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain
import TidingsServices
import TidingsStorage

@Suite("Keyring")
struct KeyringTests {
    @Test("Values sealed by one instance open in another that shares the database and the KEK", arguments: TestBackend.all)
    func keysArePersistedWrapped(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let sealed = try await tidings.keyring.vault(for: workspace.id).seal("ada@example.com", table: "contacts", column: "email", row: "ct_1")

            let provider = try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)
            let other = Keyring(database: tidings.database, provider: provider)
            #expect(try await other.vault(for: workspace.id).open(sealed, table: "contacts", column: "email", row: "ct_1") == "ada@example.com")

            let stored = try await tidings.database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspace.id).list(.data) }
            #expect(stored.count == 1)
            #expect(stored[0].kekId == provider.kekId(for: workspace.id))
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
                        try await Keyring(database: tidings.database, provider: provider).vault(for: workspace.id)
                            .blindIndex("ada@example.com", column: "contacts.email")
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(indexes.count == 1)
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await tidings.keyring.vault(for: other.id).blindIndex("ada@example.com", column: "contacts.email") != indexes.first)
        }
    }

    @Test("Without its workspace's keys a sealed value is unreadable (crypto-shredding)", arguments: TestBackend.all)
    func deletedKeysShredData(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let sealed = try await tidings.keyring.vault(for: workspace.id).seal(#"{"plan":"pro"}"#, table: "events", column: "properties", row: "ev_1")
            try await tidings.database.transaction { db in
                try await db.raw("DELETE FROM workspace_keys WHERE workspace_id = \(bind: workspace.id)").run()
            }
            tidings.keyring.forget(workspaceId: workspace.id)
            // A fresh vault gets fresh keys, which open nothing sealed before.
            let fresh = try await tidings.keyring.vault(for: workspace.id)
            await #expect(throws: SealingError.self) { _ = try await fresh.open(sealed, table: "events", column: "properties", row: "ev_1") }
        }
    }

    @Test("A sealed email or attribute copied to another contact or workspace does not open", arguments: TestBackend.all)
    func copiedCiphertextsFail(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            for (workspace, email) in [(a, "ada@example.com"), (a, "bob@example.com"), (b, "eve@example.com")] {
                _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string(email), "plan": .string("pro-\(email)")], by: .tester)
            }
            // Copy Ada's sealed address and attribute onto Bob (same workspace), and onto Eve (other workspace).
            try await tidings.database.transaction { db in
                let rows = try await db.raw("SELECT id, workspace_id, email_sealed FROM contacts ORDER BY id").all()
                let ids = try rows.map { try $0.decode(column: "id", as: String.self) }
                let ada = try rows[0].decode(column: "email_sealed", as: String.self)
                let adaPlan = try await db.raw("SELECT value_sealed FROM contact_attributes WHERE contact_id = \(bind: ids[0])").first()!
                    .decode(column: "value_sealed", as: String.self)
                for id in ids.dropFirst() {
                    try await db.raw("UPDATE contacts SET email_sealed = \(bind: ada) WHERE id = \(bind: id)").run()
                    try await db.raw("UPDATE contact_attributes SET value_sealed = \(bind: adaPlan) WHERE contact_id = \(bind: id)").run()
                }
            }
            #expect(try await tidings.contacts.get(workspaceId: a.id, email: "ada@example.com").attributes["plan"] == .string("pro-ada@example.com"))
            await #expect(throws: SealingError.authenticationFailed) {
                _ = try await tidings.contacts.get(workspaceId: a.id, email: "bob@example.com")
            }
            await #expect(throws: SealingError.self) {
                _ = try await tidings.contacts.get(workspaceId: b.id, email: "eve@example.com")
            }
        }
    }

    @Test("Contacts stored in the clear before sealing existed are sealed at start-up and still found", arguments: TestBackend.all)
    func legacyRowsAreRetrofitted(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            // Rows as the previous version wrote them: the address and value in the clear.
            try await tidings.database.transaction { db in
                try await db.raw("""
                    INSERT INTO contacts (id, workspace_id, email_index, email_sealed, status, created_at, updated_at)
                    VALUES ('ct_legacy', \(bind: workspace.id), 'old@example.com', NULL, 'active', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')
                    """).run()
                try await db.raw("""
                    INSERT INTO contact_attributes (contact_id, workspace_id, name, kind, value_index, value_sealed)
                    VALUES ('ct_legacy', \(bind: workspace.id), 'plan', 'string', 'legacy-plan', NULL)
                    """).run()
                try await db.raw("UPDATE workspaces SET owner_email_sealed = 'legacy-owner@example.com' WHERE id = \(bind: workspace.id)").run()
            }
            #expect(try await SealingRetrofit(tidings.environment).run() == 3)
            #expect(try await SealingRetrofit(tidings.environment).run() == 0, "nothing is left in the clear")
            let contact = try await tidings.contacts.get(workspaceId: workspace.id, email: "old@example.com")
            #expect(contact.id == "ct_legacy")
            #expect(contact.attributes["plan"] == .string("legacy-plan"))
            let filtered = try await tidings.contacts.list(workspaceId: workspace.id, filter: .init(attributes: ["plan": "legacy-plan"]), cursor: nil, limit: 10)
            #expect(filtered.items.map(\.id) == ["ct_legacy"])
            #expect(try await tidings.workspaces.find(id: workspace.id)?.ownerEmail.value == "legacy-owner@example.com")
            let clear = try await tidings.database.read { db in
                try await db.raw("""
                    SELECT (SELECT COUNT(*) FROM contacts WHERE email_index LIKE '%@%') + (SELECT COUNT(*) FROM contact_attributes WHERE value_index = 'legacy-plan')
                      + (SELECT COUNT(*) FROM workspaces WHERE owner_email_sealed LIKE '%@%') AS n
                    """).first()!.decode(column: "n", as: Int.self)
            }
            #expect(clear == 0)
        }
    }

    @Test("Rotating a data key re-seals every value, deletes the old key once every instance has switched, and loses nothing", arguments: TestBackend.all)
    func dataKeyRotation(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withTidings(backend, clock: clock) { tidings in
            let workspace = try await tidings.makeWorkspace()
            // A second instance: the same database and KEK, its own keys in memory.
            let other = ServiceEnvironment(
                database: tidings.database, hasher: tidings.environment.hasher,
                keyring: Keyring(database: tidings.database, provider: try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile), now: { clock.now }),
                now: { clock.now }, logger: tidings.logger
            )
            for index in 0..<3 {
                _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string("r\(index)@example.com"), "plan": .string("p\(index)")], by: .tester)
                _ = try await tidings.events.record(workspaceId: workspace.id, body: [
                    "email": .string("r\(index)@example.com"), "slug": .string("paid"), "properties": .object(["n": .number(Double(index))]),
                ], by: .tester)
            }
            _ = try await ContactService(other).get(workspaceId: workspace.id, email: "r0@example.com")
            let before = try await tidings.database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspace.id).list(.data) }

            let result = try await KeyRotation(tidings.environment).rotateDataKey(scope: workspace.id, by: .tester)
            #expect(result.resealed == 9, "3 emails, 3 attribute values, 3 event properties")
            #expect(result.retiredKeysDeleted == 0, "the old key stays while other instances may still use it")
            // The other instance still seals with the old key for up to a minute.
            _ = try await ContactService(other).upsert(workspaceId: workspace.id, body: ["email": .string("late@example.com"), "plan": .string("late")], by: .tester)

            clock.advance(by: Keyring.retiredKeyGrace + 1)
            #expect(try await KeyRotation(tidings.environment).finishRotations() == 1)
            let after = try await tidings.database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspace.id).list(.data) }
            #expect(after.map(\.id) == [result.newKeyId])
            #expect(!after.contains { $0.id == before.first?.id })
            // Every value, including the late one, opens with the new key alone.
            let fresh = ServiceEnvironment(
                database: tidings.database, hasher: tidings.environment.hasher,
                keyring: Keyring(database: tidings.database, provider: try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)),
                logger: tidings.logger
            )
            #expect(try await ContactService(fresh).get(workspaceId: workspace.id, email: "r2@example.com").attributes["plan"] == .string("p2"))
            #expect(try await ContactService(fresh).get(workspaceId: workspace.id, email: "late@example.com").attributes["plan"] == .string("late"))
            #expect(try await ContactService(other).get(workspaceId: workspace.id, email: "late@example.com").attributes["plan"] == .string("late"))
            let events = try await ContactService(fresh).events(workspaceId: workspace.id, email: "r1@example.com", cursor: nil, limit: nil)
            #expect(events.items.first?.properties["n"] == .number(1))
            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "keys.data_key_rotated"), cursor: nil, limit: nil)
            #expect(audited.items.count == 1)
        }
    }

    @Test("Every sealed column of the schema is known to data-key rotation", arguments: TestBackend.all)
    func sealedColumnsAreRegistered(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let columns = try await tidings.database.read { db in
                let query: SQLQueryString = backend == .sqlite
                    ? """
                      SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m, pragma_table_info(m.name) p
                      WHERE m.type = 'table' AND p.name LIKE '%_sealed'
                      """
                    : """
                      SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns
                      WHERE table_schema = current_schema() AND column_name LIKE '%\\_sealed'
                      """
                return try await db.raw(query).all().map {
                    "\(try $0.decode(column: "table_name", as: String.self)).\(try $0.decode(column: "column_name", as: String.self))"
                }
            }
            let registered = Set(SealedColumn.all.map { "\($0.table).\($0.storedIn)" })
            #expect(!columns.isEmpty)
            #expect(Set(columns).isSubset(of: registered), "unregistered: \(Set(columns).subtracting(registered))")
        }
    }

    @Test("Deleting a workspace removes its data and destroys its keys; the deletion is audited", arguments: TestBackend.all)
    func workspaceDeletion(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let doomed = try await tidings.makeWorkspace(name: "Doomed")
            let kept = try await tidings.makeWorkspace(name: "Kept")
            for workspace in [doomed, kept] {
                _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string("dana@example.com"), "plan": .string("pro")], by: .tester)
            }
            // What a backup would hold of the doomed workspace's contact.
            let copied = try await tidings.database.read { db in
                try await db.raw("SELECT id, email_sealed FROM contacts WHERE workspace_id = \(bind: doomed.id)").first()!
            }
            let copiedId = try copied.decode(column: "id", as: String.self)
            let copiedEmail = try copied.decode(column: "email_sealed", as: String.self)

            try await tidings.workspaces.delete(id: doomed.id, by: .tester)
            await #expect(throws: DomainError.self) { try await tidings.workspaces.delete(id: doomed.id, by: .tester) }
            let left = try await tidings.database.read { db in
                try await db.raw("""
                    SELECT (SELECT COUNT(*) FROM workspace_keys WHERE workspace_id = \(bind: doomed.id))
                         + (SELECT COUNT(*) FROM contacts WHERE workspace_id = \(bind: doomed.id))
                         + (SELECT COUNT(*) FROM api_keys WHERE workspace_id = \(bind: doomed.id)) AS n
                    """).first()!.decode(column: "n", as: Int.self)
            }
            #expect(left == 0)
            // The copy no longer opens: the key that sealed it is gone for good.
            let fresh = Keyring(database: tidings.database, provider: try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile))
            // (There are no keys to load, and none can be made for a workspace that no longer exists.)
            await #expect(throws: (any Error).self) {
                _ = try await fresh.vault(for: doomed.id).open(copiedEmail, table: "contacts", column: "email", row: copiedId)
            }
            #expect(try await tidings.contacts.get(workspaceId: kept.id, email: "dana@example.com").attributes["plan"] == .string("pro"))
            let instance = try await tidings.audit.list(workspaceId: "instance", filter: .init(action: "workspace.deleted"), cursor: nil, limit: 10)
            #expect(instance.items.first?.change.targetId == doomed.id)
            #expect(try await tidings.audit.verify().allSatisfy { $0.problem == nil }, "the deleted workspace's audit stream remains intact")
        }
    }

    @Test("A workspace deleted after a backup stays unreadable when that backup is restored with the same KEK", arguments: TestBackend.all)
    func shreddingReachesBackups(backend: TestBackend) async throws {
        let scratch = try await Scratch.make(backend)
        var restored: Scratch?
        do {
            let (backup, doomed, kept, secrets) = try await withTidings(on: scratch) { tidings in
                let doomed = try await tidings.makeWorkspace(name: "Doomed")
                let kept = try await tidings.makeWorkspace(name: "Kept")
                for workspace in [doomed, kept] {
                    _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string("dana@example.com"), "plan": .string("pro")], by: .tester)
                }
                let backup = try await scratch.restoredBackup(of: tidings)
                try await tidings.workspaces.delete(id: doomed.id, by: .tester)
                // The workspace's own KEK is gone from the key store; the instance KEK is untouched.
                let provider = try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)
                #expect(!FileManager.default.fileExists(atPath: "\(provider.workspaceKeyDirectory)/\(doomed.id).key"))
                #expect(FileManager.default.fileExists(atPath: "\(provider.workspaceKeyDirectory)/\(kept.id).key"))
                let secrets = [
                    TidingsConfiguration.Key.kekFile: tidings.configuration.kekFile,
                    TidingsConfiguration.Key.apiKeySecretFile: tidings.configuration.apiKeySecretFile,
                ]
                return (backup, doomed, kept, secrets)
            }
            restored = backup
            // The backup from before the deletion, restored next to the live secrets.
            try await withTidings(on: backup, flags: secrets) { tidings in
                #expect(try await tidings.contacts.get(workspaceId: kept.id, email: "dana@example.com").attributes["plan"] == .string("pro"))
                await #expect(throws: WorkspaceKeysDestroyed.self) {
                    _ = try await tidings.contacts.get(workspaceId: doomed.id, email: "dana@example.com")
                }
                try await tidings.buildApplication().test(.router) { client in
                    let api = TestClient(client: client)
                    let gone = try await api.get("/v1/contacts/dana@example.com", key: doomed.key)
                    #expect(gone.status == .gone)
                    #expect(gone.errorCode == "workspace_deleted")
                    #expect(try await api.get("/v1/contacts/dana@example.com", key: kept.key).status == .ok)
                }
            }
        } catch {
            Issue.record(error)
        }
        await restored?.remove()
        await scratch.remove()
    }

    @Test("Keys wrapped under the instance KEK before workspaces had their own are re-wrapped at start", arguments: TestBackend.all)
    func legacyWrapsMoveUnderWorkspaceKEKs(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await tidings.contacts.upsert(workspaceId: workspace.id, body: ["email": .string("lena@example.com"), "tier": .string("gold")], by: .tester)
            let provider = try LocalKeyProvider.loadOrCreate(at: tidings.configuration.kekFile)
            // Wrap the workspace's keys as earlier versions did: under the instance KEK directly.
            let kek = try KeyFile.loadOrCreate(at: tidings.configuration.kekFile)
            let stored = try await tidings.database.read { db in try await WorkspaceKeyRepository.all(in: db) }
            for entry in stored where entry.scope == workspace.id {
                let material = try await provider.unwrap(entry.key.wrapped, for: entry.scope, kekId: entry.key.kekId)
                let legacy = try Self.legacyWrap(material, kek: kek, scope: entry.scope)
                let id = entry.key.id, scope = entry.scope, kekId = provider.kekId
                try await tidings.database.transaction { db in
                    try await WorkspaceKeyRepository.rewrap(id: id, scope: scope, kekId: kekId, wrapped: legacy, in: db)
                }
            }
            // Still readable as they are …
            let other = Keyring(database: tidings.database, provider: provider)
            _ = try await other.vault(for: workspace.id)
            // … and the next start moves them under the workspace's KEK.
            _ = try await tidings.migrate()
            let after = try await tidings.database.read { db in try await WorkspaceKeyRepository.all(in: db) }
            let workspaceKeys = after.filter { $0.scope == workspace.id }
            #expect(workspaceKeys.count == 2)
            #expect(workspaceKeys.allSatisfy { $0.key.kekId == provider.kekId(for: workspace.id) })
            tidings.keyring.forget(workspaceId: workspace.id)
            #expect(try await tidings.contacts.get(workspaceId: workspace.id, email: "lena@example.com").attributes["tier"] == .string("gold"))
            let migrated = try await tidings.audit.list(workspaceId: Vault.instanceScope, filter: .init(action: "schema.migrated"), cursor: nil, limit: 10)
            #expect(migrated.items.contains { $0.change.summary["keysRewrapped"] == .number(2) })
        }
    }

    /// A data key wrapped the way versions before per-workspace KEKs did.
    static func legacyWrap(_ key: SymmetricKey, kek: SymmetricKey, scope: String) throws -> Data {
        let plain = key.withUnsafeBytes { Data($0) }
        return try AES.GCM.seal(plain, using: kek, authenticating: Data("tidings.data-key.v1:\(scope)".utf8)).combined!
    }
}
