import Foundation
import Testing
import TidingsApp
import TidingsDomain

/// `/v1/topics`: created, read, changed and deleted by slug; every change audited; every
/// mistake a 4xx naming the field.
@Suite("Topics API")
struct TopicsAPITests {
    @Test("Topics are created, listed by slug, read, renamed and deleted, each change audited", arguments: TestBackend.all)
    func crud(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            let news = try await api.post("/v1/topics", key: key, json: ["slug": "news", "name": "Product news", "description": "Once a month."])
            #expect(news.status == .created, "\(news.body)")
            #expect(news.json["slug"] as? String == "news" && news.json["name"] as? String == "Product news")
            #expect(news.json["description"] as? String == "Once a month.")
            #expect((news.json["id"] as? String)?.hasPrefix("top_") == true)
            let tips = try await api.post("/v1/topics", key: key, json: ["slug": "tips"])
            #expect(tips.json["name"] as? String == "tips", "the name defaults to the slug")
            #expect(tips.json["description"] is NSNull)

            let page = try await api.get("/v1/topics?limit=1", key: key)
            #expect(page.data.map { $0["slug"] as? String } == ["news"])
            let cursor = try #require(page.json["nextCursor"] as? String)
            let rest = try await api.get("/v1/topics?limit=1&cursor=\(cursor)", key: key)
            #expect(rest.data.map { $0["slug"] as? String } == ["tips"] && rest.json["nextCursor"] is NSNull)

            let renamed = try await api.request(.patch, "/v1/topics/tips", key: key, json: ["name": "Tips & tricks", "description": "Weekly."])
            #expect(renamed.status == .ok && renamed.json["name"] as? String == "Tips & tricks", "\(renamed.body)")
            let cleared = try await api.request(.patch, "/v1/topics/tips", key: key, json: ["description": NSNull()])
            #expect(cleared.json["description"] is NSNull && cleared.json["name"] as? String == "Tips & tricks")
            #expect(try await api.get("/v1/topics/tips", key: key).json["name"] as? String == "Tips & tricks")

            #expect(try await api.delete("/v1/topics/tips", key: key).status == .noContent)
            #expect(try await api.get("/v1/topics/tips", key: key).errorCode == "topic_not_found")
            #expect(try await api.delete("/v1/topics/tips", key: key).status == .notFound)

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 50, oldestFirst: true)
            let actions = audited.items.map(\.change.action).filter { $0.hasPrefix("topic.") }
            #expect(actions == ["topic.created", "topic.created", "topic.updated", "topic.updated", "topic.deleted"])
            #expect(audited.items.first { $0.change.action == "topic.deleted" }?.change.summary["slug"] == .string("tips"))

            // Another workspace sees none of it.
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await api.get("/v1/topics/news", key: other.key).status == .notFound)
            #expect(try await api.get("/v1/topics", key: other.key).data.isEmpty)
            #expect(try await api.post("/v1/topics", key: other.key, json: ["slug": "news"]).status == .created, "slugs are unique per workspace")
        }
    }

    @Test("Bad topic input is a 4xx naming the field; scopes are enforced", arguments: TestBackend.all)
    func errors(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            let cases: [([String: Any], String, String?)] = [
                ([:], "missing_field", "slug"),
                (["slug": "Bad Slug"], "invalid_slug", "slug"),
                (["slug": "ok", "name": "  "], "invalid_name", "name"),
                (["slug": "ok", "name": 3], "invalid_type", "name"),
                (["slug": "ok", "description": String(repeating: "x", count: 1001)], "too_long", "description"),
                (["slug": "ok", "description": "a\u{7}b"], "invalid_description", "description"),
                (["slug": "ok", "colour": "red"], "unknown_field", "colour"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/topics", key: key, json: body)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            #expect(try await api.post("/v1/topics", key: key, json: ["slug": "news"]).status == .created)
            let again = try await api.post("/v1/topics", key: key, json: ["slug": "news"])
            #expect(again.status == .conflict && again.errorCode == "topic_exists" && again.errorField == "slug")
            let renamed = try await api.request(.patch, "/v1/topics/news", key: key, json: ["slug": "other"])
            #expect(renamed.status == .unprocessableContent && renamed.errorCode == "slug_immutable")
            #expect(try await api.request(.patch, "/v1/topics/nope", key: key, json: ["name": "x"]).errorCode == "topic_not_found")
            #expect(try await api.get("/v1/topics/NOT%20A%20SLUG", key: key).status == .notFound)
            #expect(try await api.get("/v1/topics?limit=0", key: key).errorCode == "invalid_limit")
            #expect(try await api.get("/v1/topics?cursor=%25%25", key: key).errorCode == "invalid_cursor")
            let malformed = try await api.request(.post, "/v1/topics", key: key, body: "{", contentType: "application/json")
            #expect(malformed.status == .badRequest && malformed.errorCode == "malformed_json")

            let reader = try await api.post("/v1/api-keys", key: key, json: ["name": "reader", "scopes": ["contacts:read"]])
            let readerKey = try #require(reader.json["secret"] as? String)
            #expect(try await api.get("/v1/topics", key: readerKey).status == .ok)
            #expect(try await api.post("/v1/topics", key: readerKey, json: ["slug": "x"]).errorCode == "insufficient_scope")
            #expect(try await api.delete("/v1/topics/news", key: readerKey).status == .forbidden)
            #expect(try await api.get("/v1/topics", key: nil).status == .unauthorized)
        }
    }

    @Test("Deleting a topic forgets who left it: contacts who had left only that topic are subscribed again", arguments: TestBackend.all)
    func deleteSettlesStatuses(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let key = try await tidings.makeWorkspace().key
            for slug in ["news", "tips"] { _ = try await api.post("/v1/topics", key: key, json: ["slug": slug]) }
            for email in ["ada@example.com", "bob@example.com"] { _ = try await api.post("/v1/contacts", key: key, json: ["email": email]) }
            _ = try await api.request(.patch, "/v1/contacts/ada@example.com/subscriptions", key: key, json: ["topics": [["slug": "news", "subscribed": false]]])
            _ = try await api.request(.patch, "/v1/contacts/bob@example.com/subscriptions", key: key, json: ["topics": [
                ["slug": "news", "subscribed": false], ["slug": "tips", "subscribed": false],
            ]])
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "partially_unsubscribed")
            #expect(try await api.delete("/v1/topics/news", key: key).status == .noContent)
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "active")
            #expect(try await api.get("/v1/contacts/bob@example.com", key: key).json["status"] as? String == "partially_unsubscribed")
            let bob = try await api.get("/v1/contacts/bob@example.com/subscriptions", key: key)
            #expect((bob.json["topics"] as? [[String: Any]])?.map { $0["slug"] as? String } == ["tips"])
            // The history keeps the change, with the topic's id but no slug any more.
            let history = try await api.get("/v1/contacts/ada@example.com/subscriptions/changes", key: key)
            #expect(history.data.count == 1 && history.data[0]["topic"] is NSNull && history.data[0]["topicId"] as? String != nil)
        }
    }
}
