import Foundation
import Testing

/// PostgreSQL cannot store U+0000 in text; it must be refused up front on every backend, never a 500.
@Suite("NUL characters")
struct NULCharacterTests {
    @Test("A NUL in a body, a URL or a CSV cell is a clear 4xx, and nothing is written", arguments: TestBackend.all)
    func nulIsRefused(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let bodies: [(String, [String: Any], String)] = [
                ("/v1/contacts", ["email": "nul@example.com", "note": "a\u{0}b"], "note"),
                ("/v1/contacts", ["email": "nul@example.com", "no\u{0}te": "x"], "no\u{0}te"),
                ("/v1/events", ["email": "nul@example.com", "slug": "x", "properties": ["k": "v\u{0}"]], "properties.k"),
                ("/v1/api-keys", ["name": ",Q\u{17}\u{0}*A", "scopes": NSNull()], "name"),
            ]
            for (path, body, field) in bodies {
                let reply = try await api.post(path, key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent, "\(path)")
                #expect(reply.errorCode == "invalid_character", "\(path)")
                #expect(reply.errorField == field, "\(path)")
            }
            for uri in ["/v1/contacts/nul%00@example.com", "/v1/contacts?attributes%5Bplan%5D=%00", "/v1/api-keys/key_%00"] {
                let reply = try await api.get(uri, key: workspace.key)
                #expect(reply.status == .badRequest, "\(uri)")
                #expect(reply.errorCode == "invalid_character", "\(uri)")
            }
            let control = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "tab\u{7}bell"])
            #expect(control.errorCode == "invalid_name")
            let imported = try await api.request(
                .post, "/v1/contacts/import", key: workspace.key,
                body: "email,note\nok@example.com,fine\nbad@example.com,a\u{0}b\n", contentType: "text/csv"
            )
            #expect(imported.status == .ok)
            #expect(imported.json["created"] as? Int == 1)
            #expect((imported.json["errors"] as? [[String: Any]])?.first?["code"] as? String == "invalid_character")
            let contacts = try await api.get("/v1/contacts", key: workspace.key)
            #expect(contacts.data.compactMap { $0["email"] as? String } == ["ok@example.com"])
        }
    }
}
