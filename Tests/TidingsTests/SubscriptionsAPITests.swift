import Foundation
import Testing
import TidingsApp
import TidingsDomain
import TidingsStorage

/// `/v1/contacts/{email}/subscriptions`: reading and setting a contact's subscriptions, the
/// contact's status following them, the history, and the audit record of every change.
@Suite("Subscriptions API")
struct SubscriptionsAPITests {
    static func topics(_ reply: TestClient.Reply) -> [String: Bool] {
        var result: [String: Bool] = [:]
        for topic in reply.json["topics"] as? [[String: Any]] ?? [] { result[topic["slug"] as? String ?? "?"] = topic["subscribed"] as? Bool }
        return result
    }

    @Test("Leaving a topic, everything, and coming back: the contact's status, history and audit log follow", arguments: TestBackend.all)
    func setAndGet(backend: TestBackend) async throws {
        // A clock that stands still: the history keeps its order within one millisecond.
        try await withAPI(backend, clock: TestClock()) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            for slug in ["news", "tips"] { _ = try await api.post("/v1/topics", key: key, json: ["slug": slug, "name": slug.capitalized]) }
            _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada@example.com"])
            let path = "/v1/contacts/ada@example.com/subscriptions"

            let initial = try await api.get(path, key: key)
            #expect(initial.status == .ok && initial.json["status"] as? String == "subscribed", "\(initial.body)")
            #expect(Self.topics(initial) == ["news": true, "tips": true])
            let first = try #require((initial.json["topics"] as? [[String: Any]])?.first)
            #expect(first["id"] as? String != nil && first["name"] as? String == "News")

            // One topic left.
            let left = try await api.request(.patch, path, key: key, json: ["topics": [["slug": "news", "subscribed": false]]])
            #expect(left.status == .ok && left.json["status"] as? String == "partially_unsubscribed", "\(left.body)")
            #expect(Self.topics(left) == ["news": false, "tips": true])
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "partially_unsubscribed")
            // The same again changes nothing and records nothing.
            _ = try await api.request(.patch, path, key: key, json: ["topics": [["slug": "news", "subscribed": false]]])

            // Everything left; the topic choices stay.
            let all = try await api.request(.patch, path, key: key, json: ["status": "unsubscribed"])
            #expect(all.json["status"] as? String == "unsubscribed" && Self.topics(all) == ["news": false, "tips": true])
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "unsubscribed")
            #expect(try await api.get("/v1/contacts?status=unsubscribed", key: key).data.count == 1)

            // GET's answer sent back as it is changes nothing.
            let roundTrip = try await api.request(.patch, path, key: key, json: all.json)
            #expect(roundTrip.status == .ok && roundTrip.json["status"] as? String == "unsubscribed", "\(roundTrip.body)")

            // Back to the topics chosen before, then to everything.
            let partial = try await api.request(.patch, path, key: key, json: ["status": "partially_unsubscribed"])
            #expect(partial.json["status"] as? String == "partially_unsubscribed" && Self.topics(partial) == ["news": false, "tips": true])
            let everything = try await api.request(.patch, path, key: key, json: ["status": "subscribed"])
            #expect(everything.json["status"] as? String == "subscribed" && Self.topics(everything) == ["news": true, "tips": true])
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "active")

            let history = try await api.get("\(path)/changes", key: key)
            #expect(history.data.map { $0["change"] as? String } == [
                "unsubscribed_topic", "unsubscribed_all", "resubscribed_all", "resubscribed_topic",
            ], "\(history.body)")
            #expect(history.data.allSatisfy { $0["via"] as? String == "api" && $0["messageId"] is NSNull })
            #expect(history.data[0]["topic"] as? String == "news" && history.data[1]["topic"] is NSNull)
            let paged = try await api.get("\(path)/changes?limit=3", key: key)
            let cursor = try #require(paged.json["nextCursor"] as? String)
            #expect(try await api.get("\(path)/changes?limit=3&cursor=\(cursor)", key: key).data.map { $0["change"] as? String } == ["resubscribed_topic"])

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(), cursor: nil, limit: 100, oldestFirst: true)
            let changes = audited.items.filter { $0.change.action.hasPrefix("contact.") && $0.change.action != "contact.created" }
            #expect(changes.map(\.change.action) == ["contact.topics_changed", "contact.unsubscribed", "contact.resubscribed", "contact.topics_changed"])
            #expect(changes[0].change.summary["unsubscribed"] == .array([.string("news")]))
            #expect(changes[3].change.summary["resubscribed"] == .array([.string("news")]))
            #expect(changes.allSatisfy { $0.actor.kind == .apiKey && $0.change.summary["via"] == .string("api") })
            // The address appears only as the workspace's pseudonym.
            let pseudonym = try await tidings.keyring.vault(for: workspace.id).pseudonym("ada@example.com")
            #expect(changes.allSatisfy { $0.change.summary["email"] == .string(pseudonym) })
            #expect(!audited.items.contains { "\($0.change.summary)".contains("ada@example.com") })

            // The export holds the subscriptions and their history.
            let export = try await api.get("/v1/contacts/ada@example.com/export", key: key)
            #expect((export.json["subscriptions"] as? [String: Any])?["status"] as? String == "subscribed")
            #expect((export.json["subscriptionChanges"] as? [[String: Any]])?.count == 4)
        }
    }

    @Test("Bad subscription input is a 4xx naming the field and changes nothing", arguments: TestBackend.all)
    func errors(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            _ = try await api.post("/v1/topics", key: key, json: ["slug": "news"])
            _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada@example.com"])
            let path = "/v1/contacts/ada@example.com/subscriptions"
            let cases: [([String: Any], String, String)] = [
                (["status": "gone"], "invalid_status", "status"),
                (["topics": "news"], "invalid_type", "topics"),
                (["topics": ["news"]], "invalid_type", "topics[0]"),
                (["topics": [["slug": "news"]]], "missing_field", "topics[0].subscribed"),
                (["topics": [["subscribed": false]]], "missing_field", "topics[0].slug"),
                (["topics": [["slug": "nope", "subscribed": false]]], "unknown_topic", "topics[0].slug"),
                (["topics": [["id": "top_nope", "subscribed": false]]], "unknown_topic", "topics[0].id"),
                (["topics": [["slug": "news", "subscribed": false, "colour": 1]]], "unknown_field", "topics[0].colour"),
                (["topics": [["slug": "news", "subscribed": false], ["slug": "news", "subscribed": true]]], "duplicate_topic", "topics[1]"),
                (["status": "subscribed", "topics": [["slug": "news", "subscribed": false]]], "conflicting_topics", "topics[0].subscribed"),
                (["status": "partially_unsubscribed"], "no_topic_left", "topics"),
                (["extra": true], "unknown_field", "extra"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.request(.patch, path, key: key, json: body)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            #expect(try await api.get(path, key: key).json["status"] as? String == "subscribed", "nothing changed")
            #expect(try await api.get("\(path)/changes", key: key).data.isEmpty)
            #expect(try await api.get("/v1/contacts/nobody@example.com/subscriptions", key: key).errorCode == "contact_not_found")
            #expect(try await api.request(.patch, "/v1/contacts/nobody@example.com/subscriptions", key: key, json: ["status": "unsubscribed"]).status == .notFound)
            #expect(try await api.get("/v1/contacts/not-an-address/subscriptions", key: key).status == .unprocessableContent)
            #expect(try await api.get("\(path)/changes?limit=501", key: key).errorCode == "invalid_limit")
            let reader = try await api.post("/v1/api-keys", key: key, json: ["name": "reader", "scopes": ["contacts:read"]])
            let readerKey = try #require(reader.json["secret"] as? String)
            #expect(try await api.get(path, key: readerKey).status == .ok)
            #expect(try await api.request(.patch, path, key: readerKey, json: ["status": "unsubscribed"]).errorCode == "insufficient_scope")
            // Another workspace's key finds no such contact.
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await api.get(path, key: other.key).status == .notFound)
        }
    }

    @Test("A bounce hides an unsubscribe only until it is cleared", arguments: TestBackend.all)
    func bounceKeepsTheChoice(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada@example.com"])
            _ = try await api.request(.patch, "/v1/contacts/ada@example.com/subscriptions", key: key, json: ["status": "unsubscribed"])
            // The mailbox bounces (as the delivery worker records it).
            let vault = try await tidings.keyring.vault(for: workspace.id)
            try await tidings.database.transaction { db in
                let contacts = ContactRepository(db, vault: vault)
                let id = try #require(try await contacts.findId(email: try EmailAddress("ada@example.com")))
                try await SuppressionRepository(db, vault: vault).add(contactId: id, reason: "bounced", reply: "550 5.1.1 unknown", messageId: nil, at: Date())
                try await contacts.setStatus(contactId: id, .bounced, at: Date())
            }
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "bounced")
            #expect(try await api.get("/v1/contacts/ada@example.com/subscriptions", key: key).json["status"] as? String == "unsubscribed")
            #expect(try await api.delete("/v1/suppressions/ada@example.com", key: key).status == .noContent)
            #expect(try await api.get("/v1/contacts/ada@example.com", key: key).json["status"] as? String == "unsubscribed")
        }
    }
}
