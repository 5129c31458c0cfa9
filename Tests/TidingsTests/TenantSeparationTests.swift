import Foundation
import Testing
@testable import TidingsApp

/// Workspace B holds a valid admin key; nothing it sends may read or change workspace A.
@Suite("Tenant separation")
struct TenantSeparationTests {
    @Test("Another workspace's contact is not found by get, events or export", arguments: TestBackend.all)
    func contactOfAnotherWorkspaceIsNotFound(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "ada@example.com", "plan": "pro"])
            _ = try await api.post("/v1/events", key: a.key, json: ["email": "ada@example.com", "slug": "signed-up"])

            for path in ["/v1/contacts/ada@example.com", "/v1/contacts/ada@example.com/events", "/v1/contacts/ada@example.com/export"] {
                let reply = try await api.get(path, key: b.key)
                #expect(reply.status == .notFound, "\(path)")
                #expect(reply.errorCode == "contact_not_found", "\(path)")
                #expect(!reply.body.contains("pro") && !reply.body.contains("signed-up"), "\(path)")
            }
            #expect(try await api.get("/v1/contacts/ada@example.com", key: a.key).status == .ok)
        }
    }

    @Test("Deleting another workspace's address deletes nothing there", arguments: TestBackend.all)
    func deleteDoesNotCrossWorkspaces(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "ada@example.com", "plan": "pro"])
            _ = try await api.post("/v1/events", key: a.key, json: ["email": "ada@example.com", "slug": "signed-up"])

            let deleted = try await api.delete("/v1/contacts/ada@example.com", key: b.key)

            #expect(deleted.status == .ok)
            #expect(deleted.json["deleted"] as? Bool == false)
            let kept = try await api.get("/v1/contacts/ada@example.com", key: a.key)
            #expect(kept.status == .ok)
            #expect((kept.json["attributes"] as? [String: Any])?["plan"] as? String == "pro")
            #expect(try await api.get("/v1/contacts/ada@example.com/events", key: a.key).data.count == 1)
        }
    }

    @Test("A list shows only the caller's contacts, with or without filters", arguments: TestBackend.all)
    func listDoesNotCrossWorkspaces(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            for index in 0..<3 {
                _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "a\(index)@example.com", "plan": "pro"])
            }
            _ = try await api.post("/v1/contacts", key: b.key, json: ["email": "b0@example.com", "plan": "free"])

            for query in ["", "?attributes[plan]=pro", "?attributes[plan]=free", "?status=active", "?limit=500"] {
                let reply = try await api.get("/v1/contacts\(query)", key: b.key)
                #expect(reply.status == .ok, "\(query)")
                let emails = reply.data.compactMap { $0["email"] as? String }
                #expect(emails.allSatisfy { $0.hasPrefix("b") }, "\(query): \(emails)")
            }
            #expect(try await api.get("/v1/contacts?attributes[plan]=pro", key: b.key).data.isEmpty)
            #expect(try await api.get("/v1/contacts", key: a.key).data.count == 3)
        }
    }

    @Test("A cursor from one workspace reveals nothing of it to another", arguments: TestBackend.all)
    func cursorDoesNotCrossWorkspaces(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            for index in 0..<4 {
                _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "a\(index)@example.com"])
                _ = try await api.post("/v1/events", key: a.key, json: ["email": "a0@example.com", "slug": "step-\(index)"])
            }
            _ = try await api.post("/v1/contacts", key: b.key, json: ["email": "b0@example.com"])
            let contactCursor = try #require(try await api.get("/v1/contacts?limit=1", key: a.key).json["nextCursor"] as? String)
            let eventCursor = try #require(
                try await api.get("/v1/contacts/a0@example.com/events?limit=1", key: a.key).json["nextCursor"] as? String
            )

            let contacts = try await api.get("/v1/contacts?cursor=\(contactCursor)", key: b.key)
            let events = try await api.get("/v1/contacts/a0@example.com/events?cursor=\(eventCursor)", key: b.key)

            #expect(contacts.status == .ok)
            #expect(contacts.data.compactMap { $0["email"] as? String }.allSatisfy { $0.hasPrefix("b") })
            #expect(!contacts.body.contains("a1@example.com"))
            #expect(events.status == .notFound)
            #expect(events.errorCode == "contact_not_found")
        }
    }

    @Test("Upserting and recording events for the same address creates the caller's own contact", arguments: TestBackend.all)
    func writesCreateOwnContact(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            let original = try await api.post("/v1/contacts", key: a.key, json: ["email": "ada@example.com", "plan": "pro", "seats": 3])
            _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "grace@example.com"])
            _ = try await api.post("/v1/events", key: a.key, json: ["email": "grace@example.com", "slug": "signed-up"])

            let upserted = try await api.post("/v1/contacts", key: b.key, json: ["email": "ada@example.com", "plan": "free", "seats": NSNull()])
            let recorded = try await api.post("/v1/events", key: b.key, json: ["email": "grace@example.com", "slug": "churned"])

            #expect(upserted.status == .created)
            #expect(upserted.json["id"] as? String != original.json["id"] as? String)
            #expect(upserted.json["attributes"] as? [String: String] == ["plan": "free"])
            #expect(recorded.status == .created)
            #expect(recorded.json["contactCreated"] as? Bool == true)
            let ada = try await api.get("/v1/contacts/ada@example.com", key: a.key)
            let attributes = try #require(ada.json["attributes"] as? [String: Any])
            #expect(attributes["plan"] as? String == "pro")
            #expect(attributes["seats"] as? Int == 3)
            #expect(ada.json["updatedAt"] as? String == original.json["updatedAt"] as? String)
            let graceEvents = try await api.get("/v1/contacts/grace@example.com/events", key: a.key)
            #expect(graceEvents.data.compactMap { $0["slug"] as? String } == ["signed-up"])
            let bGraceEvents = try await api.get("/v1/contacts/grace@example.com/events", key: b.key)
            #expect(bGraceEvents.data.compactMap { $0["slug"] as? String } == ["churned"])
        }
    }

    @Test("A CSV import of another workspace's addresses leaves that workspace's contacts alone", arguments: TestBackend.all)
    func importDoesNotCrossWorkspaces(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "ada@example.com", "plan": "pro"])
            _ = try await api.post("/v1/contacts", key: a.key, json: ["email": "grace@example.com", "plan": "pro"])

            let imported = try await api.request(
                .post, "/v1/contacts/import", key: b.key,
                body: "email,plan\nada@example.com,free\ngrace@example.com,free\n", contentType: "text/csv"
            )

            #expect(imported.status == .ok)
            #expect(imported.json["created"] as? Int == 2)
            #expect(imported.json["updated"] as? Int == 0)
            for email in ["ada@example.com", "grace@example.com"] {
                let inA = try await api.get("/v1/contacts/\(email)", key: a.key)
                #expect((inA.json["attributes"] as? [String: Any])?["plan"] as? String == "pro", "\(email)")
                let inB = try await api.get("/v1/contacts/\(email)", key: b.key)
                #expect((inB.json["attributes"] as? [String: Any])?["plan"] as? String == "free", "\(email)")
            }
        }
    }

    @Test("Another workspace's API key is not found by get, revoke or rotate, and keeps working", arguments: TestBackend.all)
    func apiKeyOfAnotherWorkspaceIsNotFound(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            let created = try await api.post("/v1/api-keys", key: a.key, json: ["name": "A's CRM", "scopes": ["contacts:read"]])
            let id = try #require(created.json["id"] as? String)
            let secret = try #require(created.json["secret"] as? String)

            let replies = [
                try await api.get("/v1/api-keys/\(id)", key: b.key),
                try await api.post("/v1/api-keys/\(id)/rotate", key: b.key, json: ["overlapSeconds": 0]),
                try await api.delete("/v1/api-keys/\(id)", key: b.key),
            ]

            for reply in replies {
                #expect(reply.status == .notFound)
                #expect(reply.errorCode == "api_key_not_found")
                #expect(!reply.body.contains("A's CRM"))
            }
            #expect(try await api.get("/v1/contacts", key: secret).status == .ok)
            let stillActive = try await api.get("/v1/api-keys/\(id)", key: a.key)
            #expect(stillActive.json["status"] as? String == "active")
            #expect(stillActive.json["hint"] as? String == created.json["hint"] as? String)
        }
    }

    @Test("A workspace's key list holds only its own keys", arguments: TestBackend.all)
    func apiKeyListDoesNotCrossWorkspaces(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let a = try await tidings.makeWorkspace(name: "A")
            let b = try await tidings.makeWorkspace(name: "B")
            _ = try await api.post("/v1/api-keys", key: a.key, json: ["name": "A's CRM"])
            let aIds = try await api.get("/v1/api-keys", key: a.key).data.compactMap { $0["id"] as? String }

            let list = try await api.get("/v1/api-keys", key: b.key)

            #expect(list.status == .ok)
            #expect(list.data.count == 1, "only B's owner key")
            #expect(list.data.compactMap { $0["id"] as? String }.allSatisfy { !aIds.contains($0) })
            #expect(!list.body.contains("A's CRM"))
        }
    }
}
