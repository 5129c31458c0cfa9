import Foundation
import Testing
import TidingsDomain
@testable import TidingsApp

@Suite("Events API")
struct EventsAPITests {
    @Test("An event for an unknown address creates the contact once", arguments: TestBackend.all)
    func eventCreatesContact(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let first = try await api.post("/v1/events", key: workspace.key, json: ["email": " Jo+News@Example.com", "slug": "signed-up"])
            let second = try await api.post("/v1/events", key: workspace.key, json: ["email": "jo+news@example.com", "slug": "logged-in"])

            #expect(first.status == .created)
            #expect(first.json["contactCreated"] as? Bool == true)
            #expect(first.json["email"] as? String == "jo+news@example.com")
            #expect(second.status == .created)
            #expect(second.json["contactCreated"] as? Bool == false)
            #expect(second.json["contactId"] as? String == first.json["contactId"] as? String)
            let contact = try await api.get("/v1/contacts/jo+news@example.com", key: workspace.key)
            #expect(contact.status == .ok)
            #expect(contact.json["id"] as? String == first.json["contactId"] as? String)
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.count == 1)
        }
    }

    @Test("Properties keep their types and appear in the contact's events", arguments: TestBackend.all)
    func propertiesKeepTypes(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let recorded = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "ada@example.com", "slug": "order.completed",
                "properties": ["planName": "pro", "amount": 49.5, "seats": 3, "trial": false, "renewsOn": "2027-02-01", "coupon": NSNull()],
            ])

            #expect(recorded.status == .created)
            let events = try await api.get("/v1/contacts/ada@example.com/events", key: workspace.key)
            #expect(events.status == .ok)
            #expect(events.data.count == 1)
            #expect(events.data.first?["slug"] as? String == "order.completed")
            #expect(events.data.first?["id"] as? String == recorded.json["id"] as? String)
            // JSONSerialization blurs booleans and numbers, so the properties are read as typed JSON values.
            let page = try JSONDecoder().decode(EventPage.self, from: Data(events.body.utf8))
            #expect(page.data.first?.properties == [
                "plan_name": .string("pro"), "amount": .number(49.5), "seats": .number(3), "trial": .bool(false),
                "renews_on": .string("2027-02-01"),
            ])
            #expect(events.body.contains("\"seats\":3,"), "an integral number prints without a fraction")
        }
    }

    private struct EventPage: Decodable {
        struct Event: Decodable { var properties: [String: JSONValue] }
        var data: [Event]
    }

    @Test("occurredAt is honoured, converted to UTC, and may not lie more than 24 hours ahead", arguments: TestBackend.all)
    func occurredAtIsHonoured(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let past = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "ada@example.com", "slug": "signed-up", "occurredAt": "2026-12-01T10:00:00+02:00",
            ])
            let nearFuture = Timestamp.format(clock.now.addingTimeInterval(23 * 3600))
            let skewed = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "ada@example.com", "slug": "clock-skew", "occurredAt": nearFuture,
            ])
            let farFuture = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "ada@example.com", "slug": "too-late", "occurredAt": Timestamp.format(clock.now.addingTimeInterval(24 * 3600 + 60)),
            ])
            let notADate = try await api.post("/v1/events", key: workspace.key, json: [
                "email": "ada@example.com", "slug": "bad", "occurredAt": "yesterday",
            ])
            let defaulted = try await api.post("/v1/events", key: workspace.key, json: ["email": "ada@example.com", "slug": "now"])

            #expect(past.status == .created)
            #expect(past.json["occurredAt"] as? String == "2026-12-01T08:00:00.000Z")
            #expect(past.json["createdAt"] as? String == Timestamp.format(clock.now))
            #expect(skewed.status == .created)
            #expect(skewed.json["occurredAt"] as? String == nearFuture)
            #expect(farFuture.status == .unprocessableContent)
            #expect(farFuture.errorCode == "invalid_timestamp")
            #expect(farFuture.errorField == "occurredAt")
            #expect(notADate.status == .unprocessableContent)
            #expect(notADate.errorField == "occurredAt")
            #expect(defaulted.json["occurredAt"] as? String == Timestamp.format(clock.now))
            let stored = try await api.get("/v1/contacts/ada@example.com/events", key: workspace.key)
            #expect(stored.data.compactMap { $0["occurredAt"] as? String }.contains("2026-12-01T08:00:00.000Z"))
            #expect(stored.data.count == 3, "the refused events were not stored")
        }
    }

    @Test("A slug is lowercased, and one with spaces or symbols is 422 invalid_slug", arguments: TestBackend.all)
    func slugIsNormalisedOrRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let upper = try await api.post("/v1/events", key: workspace.key, json: ["email": "ada@example.com", "slug": "Signed-Up"])
            let bad = try await api.post("/v1/events", key: workspace.key, json: ["email": "bob@example.com", "slug": "Signed Up!"])

            #expect(upper.status == .created)
            #expect(upper.json["slug"] as? String == "signed-up")
            #expect(bad.status == .unprocessableContent)
            #expect(bad.errorCode == "invalid_slug")
            #expect(bad.errorField == "slug")
            #expect(try await api.get("/v1/contacts/bob@example.com", key: workspace.key).status == .notFound,
                    "a refused event creates no contact")
        }
    }

    @Test("A bad event body is a 422 naming the field, and writes nothing", arguments: TestBackend.all)
    func badEventBodyIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [([String: Any], String, String)] = [
                (["slug": "signed-up"], "missing_field", "email"),
                (["email": NSNull(), "slug": "signed-up"], "missing_field", "email"),
                (["email": "ada@example.com"], "missing_field", "slug"),
                (["email": "ada@example.com", "slug": 7], "invalid_type", "slug"),
                (["email": "not-an-address", "slug": "signed-up"], "invalid_email", "email"),
                (["email": "ada@example.com", "slug": "signed-up", "properties": "plan=pro"], "invalid_type", "properties"),
                (["email": "ada@example.com", "slug": "signed-up", "properties": ["pro"]], "invalid_type", "properties"),
                (["email": "ada@example.com", "slug": "signed-up", "properties": ["cart": ["id": 1]]], "unsupported_attribute_type", "properties.cart"),
                (["email": "ada@example.com", "slug": "signed-up", "occurredAt": 1_800_000_000], "invalid_type", "occurredAt"),
                (["email": "ada@example.com", "slug": "signed-up", "userId": 42], "unknown_field", "userId"),
            ]

            for (body, code, field) in cases {
                let reply = try await api.post("/v1/events", key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent, "\(body)")
                #expect(reply.errorCode == code, "\(body)")
                #expect(reply.errorField == field, "\(body)")
            }
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.isEmpty)
        }
    }
}
