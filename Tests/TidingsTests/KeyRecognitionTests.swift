import Foundation
import Testing
import TidingsApp
import TidingsDomain
import TidingsStorage

@Suite("Key recognition")
struct KeyRecognitionTests {
    @Test("A key revoked by another process stops working within a second", arguments: TestBackend.all)
    func revocationElsewhereIsSeenWithinASecond(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            #expect(try await api.get("/v1/contacts", key: workspace.key).status == .ok)
            // Another instance (or `tidings apikey revoke`) writes straight to the shared database.
            let keyId = try await tidings.apiKeys.list(workspaceId: workspace.id)[0].id
            try await tidings.database.transaction { db in
                try await APIKeyRepository(db, workspaceId: workspace.id).revoke(id: keyId, at: clock.now)
            }
            clock.advance(by: 1.01)
            let refused = try await api.get("/v1/contacts", key: workspace.key)
            #expect(refused.status == .unauthorized)
        }
    }

    @Test("A key revoked through this instance is refused on the very next request", arguments: TestBackend.all)
    func revocationHereIsImmediate(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let reader = try await tidings.apiKeys.create(workspaceId: workspace.id, name: "reader", scopes: [.contactsRead], expiresAt: nil, by: .tester)
            #expect(try await api.get("/v1/contacts", key: reader.token.secret).status == .ok)
            #expect(try await api.delete("/v1/api-keys/\(reader.key.id)", key: workspace.key).status == .ok)
            #expect(try await api.get("/v1/contacts", key: reader.token.secret).status == .unauthorized)
        }
    }
}
