import Foundation
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices
import TidingsStorage

@Suite("Storage")
struct StorageTests {
    @Test("Migrations apply once, in order, and report their status", arguments: TestBackend.all)
    func migrationsApplyOnce(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            // withTidings has migrated already: a second run changes nothing.
            #expect(try await tidings.migrate().isEmpty)
            let status = try await tidings.migrator.status()
            // Numbers are agreed between changes in progress, so one may land before a lower one.
            let numbers = status.map(\.number)
            #expect(numbers.first == 1 && numbers == numbers.sorted() && Set(numbers).count == numbers.count, "\(numbers)")
            #expect(status.allSatisfy { $0.appliedAt != nil })
            #expect(try await tidings.migrator.isCurrent())
        }
    }

    @Test("Concurrent upserts of one new address create exactly one contact", arguments: TestBackend.all)
    func concurrentUpsertsCreateOneContact(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await tidings.contacts.upsert(
                            workspaceId: workspace.id, body: ["email": .string("race@example.com"), "n": .number(Double(index))], by: .tester
                        ).created
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(results.filter { $0 }.count == 1)
            let page = try await tidings.contacts.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 10)
            #expect(page.items.count == 1)
        }
    }

    @Test("Repositories only ever see their own workspace's rows", arguments: TestBackend.all)
    func repositoriesAreScoped(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await tidings.contacts.upsert(workspaceId: a.id, body: ["email": .string("shared@example.com"), "plan": .string("a")], by: .tester)
            let email = try EmailAddress("shared@example.com")
            let vaultOfB = try await tidings.keyring.vault(for: b.id)
            let seenByB = try await tidings.database.read { db in
                try await ContactRepository(db, vault: vaultOfB).find(email: email)
            }
            #expect(seenByB == nil)
            let deletedByB = try await tidings.database.transaction { db in
                try await ContactRepository(db, vault: vaultOfB).delete(email: email)
            }
            #expect(deletedByB == nil)
            let keysOfB = try await tidings.database.read { db in try await APIKeyRepository(db, workspaceId: b.id).list() }
            #expect(keysOfB.allSatisfy { $0.workspaceId == b.id })
            #expect(try await tidings.contacts.get(workspaceId: a.id, email: "shared@example.com").attributes["plan"] == .string("a"))
        }
    }

    @Test("A failing write leaves nothing half-written", arguments: TestBackend.all)
    func failedTransactionRollsBack(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            struct Boom: Error {}
            let vault = try await tidings.keyring.vault(for: workspace.id)
            await #expect(throws: Boom.self) {
                try await tidings.database.transaction { db in
                    let contact = Contact(
                        id: "ct_rollback", workspaceId: workspace.id, email: try EmailAddress("half@example.com"),
                        status: .active, attributes: ["plan": .string("pro")], createdAt: Date(), updatedAt: Date()
                    )
                    _ = try await ContactRepository(db, vault: vault).insert(contact)
                    throw Boom()
                }
            }
            await #expect(throws: DomainError.self) {
                try await tidings.contacts.get(workspaceId: workspace.id, email: "half@example.com")
            }
        }
    }
}

@Suite("Secrets at rest")
struct SecretsAtRestTests {
    @Test("API key secrets are stored only as keyed hashes: the database never holds the key", arguments: TestBackend.all)
    func keysAreNotStored(backend: TestBackend) async throws {
        try await withTidings(backend) { tidings in
            let workspace = try await tidings.makeWorkspace()
            let issued = try await tidings.apiKeys.create(workspaceId: workspace.id, name: "ci", scopes: [.contactsRead], expiresAt: nil, by: .tester)
            let rotated = try await tidings.apiKeys.rotate(workspaceId: workspace.id, id: issued.key.id, overlap: 60, by: .tester)
            let secrets = [workspace.key, issued.token.secret, rotated.token.secret]
            // Everything the key tables hold, as text.
            let stored = try await tidings.database.read { db in
                var text = ""
                for table in ["api_keys", "api_key_secrets"] {
                    for row in try await db.raw("SELECT * FROM \(unsafeRaw: table)").all() {
                        for column in row.allColumns {
                            text += (try? row.decode(column: column, as: String?.self) ?? "") ?? ""
                            text += " "
                        }
                    }
                }
                return text
            }
            #expect(stored.contains(issued.key.id), "the scan reads the key rows")
            for secret in secrets {
                #expect(!stored.contains(secret))
                #expect(!stored.contains(String(secret.dropFirst(4).prefix(20))), "only the 6-character hint of the random part is stored")
            }
            if case .sqlite(let path) = tidings.configuration.database {
                for file in [path, path + "-wal"] {
                    let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
                    for secret in secrets {
                        #expect(bytes.range(of: Data(secret.utf8)) == nil, "\(file) holds a key")
                    }
                }
            }
        }
    }
}

@Suite("Sealed event properties")
struct SealedEventPropertiesTests {
    @Test("Event properties are sealed at rest, read back intact, and do not open in another row", arguments: TestBackend.all)
    func propertiesAreSealed(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let marker = "plan-\(UUID().uuidString)"
            let recorded = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "sealed@example.com", "slug": "upgraded", "properties": ["plan": marker, "seats": 7],
            ])
            #expect(recorded.status == .created)
            _ = try await api.post("/v1/events", key: workspace.key, json: ["email": "sealed@example.com", "slug": "noted"])

            let events = try await api.get("/v1/contacts/sealed@example.com/events", key: workspace.key)
            let properties = events.data.first?["properties"] as? [String: Any]
            #expect(properties?["plan"] as? String == marker)
            #expect(properties?["seats"] as? Int == 7)

            let stored = try await tidings.database.read { db in
                try await db.raw("SELECT id, properties FROM events ORDER BY id").all().map {
                    (try $0.decode(column: "id", as: String.self), try $0.decode(column: "properties", as: String?.self))
                }
            }
            #expect(stored.count == 2)
            #expect(!(stored[0].1 ?? "").contains(marker))
            #expect(!(stored[0].1 ?? "").contains("plan"), "not even the property names are stored in the clear")
            if case .sqlite(let path) = tidings.configuration.database {
                for file in [path, path + "-wal"] {
                    let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
                    #expect(bytes.range(of: Data(marker.utf8)) == nil, "\(file) holds a property value")
                }
            }

            // Copying the sealed value onto the other event makes that event unreadable, not readable.
            try await tidings.database.transaction { db in
                try await db.raw("UPDATE events SET properties = \(bind: stored[0].1) WHERE id = \(bind: stored[1].0)").run()
            }
            let tampered = try await api.get("/v1/contacts/sealed@example.com/events", key: workspace.key)
            #expect(tampered.status == .internalServerError)
        }
    }
}
