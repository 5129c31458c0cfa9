import Foundation
import Testing

@Suite("Edge cases")
struct EdgeCaseTests {
    @Test("Times outside the years 0000–9999 in UTC are refused, never stored or crashed on", arguments: TestBackend.all)
    func timesOutsideTheSupportedYears(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let early = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "edge@example.com", "slug": "x", "occurredAt": "0000-01-01T00:00:00+01:00",
            ])
            #expect(early.status == .unprocessableContent)
            #expect(early.errorCode == "invalid_timestamp")
            let late = try await api.post("/v1/api-keys", key: workspace.key, json: [
                "name": "late", "expiresAt": "9999-12-31T23:30:00-01:00",
            ])
            #expect(late.status == .unprocessableContent)
            #expect(late.errorCode == "invalid_timestamp")
            // The server is still up and the valid edge is fine.
            let valid = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "edge@example.com", "slug": "x", "occurredAt": "0001-01-01T00:00:00Z",
            ])
            #expect(valid.status == .created)
            #expect(valid.json["occurredAt"] as? String == "0001-01-01T00:00:00.000Z")
        }
    }

    @Test("More than ten attribute filters is a 422, not a query the database refuses", arguments: TestBackend.all)
    func tooManyFilters(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let ten = (0..<10).map { "attributes[a\($0)]=x" }.joined(separator: "&")
            #expect(try await api.get("/v1/contacts?\(ten)", key: workspace.key).status == .ok)
            let many = (0..<1000).map { "attributes[a\($0)]=x" }.joined(separator: "&")
            let reply = try await api.get("/v1/contacts?\(many)", key: workspace.key)
            #expect(reply.status == .unprocessableContent)
            #expect(reply.errorCode == "too_many_filters")
        }
    }
}
