import Foundation
import Testing
@testable import TidingsApp

@Suite("Contacts API")
struct ContactsAPITests {
    @Test("Upsert creates with 201, then updates with 200, merging attributes", arguments: TestBackend.all)
    func upsertCreatesThenUpdates(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let created = try await api.post("/v1/contacts", key: workspace.key, json: [
                "email": "  Ada.Lovelace@Example.COM ", "firstName": "Ada", "seats": 3, "vip": true, "trialEnds": "2027-01-31",
            ])
            #expect(created.status == .created)
            #expect(created.json["email"] as? String == "ada.lovelace@example.com")
            let attributes = try #require(created.json["attributes"] as? [String: Any])
            #expect(attributes["first_name"] as? String == "Ada")
            #expect(attributes["seats"] as? Int == 3)
            #expect(attributes["vip"] as? Bool == true)
            #expect((created.json["attributeTypes"] as? [String: String])?["trial_ends"] == "date")

            let updated = try await api.post("/v1/contacts/", key: workspace.key, json: [
                "email": "ada.lovelace@example.com", "seats": 5, "vip": NSNull(),
            ])
            #expect(updated.status == .ok)
            #expect(updated.json["id"] as? String == created.json["id"] as? String)
            let merged = try #require(updated.json["attributes"] as? [String: Any])
            #expect(merged["seats"] as? Int == 5)
            #expect(merged["first_name"] as? String == "Ada")
            #expect(merged["vip"] == nil)

            let fetched = try await api.get("/v1/contacts/ada.lovelace@example.com", key: workspace.key)
            #expect(fetched.status == .ok)
            #expect((fetched.json["attributes"] as? [String: Any])?["seats"] as? Int == 5)
            #expect((fetched.json["attributes"] as? [String: Any])?["vip"] == nil)
        }
    }

    @Test("Bad contact input is a 422 naming the field", arguments: TestBackend.all)
    func badContactInputIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [([String: Any], String, String?)] = [
                (["firstName": "Ada"], "missing_field", "email"),
                (["email": "not-an-address"], "invalid_email", "email"),
                (["email": 42], "invalid_type", "email"),
                (["email": "a@" + String(repeating: "x", count: 250) + ".com"], "invalid_email", "email"),
                (["email": "a@b.test", "address": ["city": "Paris"]], "unsupported_attribute_type", "address"),
                (["email": "a@b.test", "note": String(repeating: "n", count: 2049)], "attribute_value_too_long", "note"),
                (["email": "a@b.test", "%%%": "x"], "invalid_attribute_name", "%%%"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/contacts", key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent, "\(body.keys.sorted())")
                #expect(reply.errorCode == code, "\(body.keys.sorted())")
                #expect(reply.errorField == field, "\(body.keys.sorted())")
            }
            var tooMany: [String: Any] = ["email": "many@b.test"]
            for index in 0...100 { tooMany["a\(index)"] = index }
            #expect(try await api.post("/v1/contacts", key: workspace.key, json: tooMany).errorCode == "too_many_attributes")
            let list = try await api.get("/v1/contacts", key: workspace.key)
            #expect(list.data.isEmpty, "nothing is written by a rejected request")
        }
    }

    @Test("Deleting by a raw address with + and @ removes the contact and its events; repeating it is fine", arguments: TestBackend.all)
    func deleteByRawAddress(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await api.post("/v1/events", key: workspace.key, json: ["email": "jo+news@example.com", "slug": "signed-up"])
            let deleted = try await api.delete("/v1/contacts/jo+news@example.com", key: workspace.key)
            #expect(deleted.status == .ok)
            #expect(deleted.json["deleted"] as? Bool == true)
            #expect(try await api.get("/v1/contacts/jo+news@example.com", key: workspace.key).status == .notFound)
            let again = try await api.delete("/v1/contacts/jo%2Bnews%40example.com", key: workspace.key)
            #expect(again.status == .ok)
            #expect(again.json["deleted"] as? Bool == false)
            let leftovers = try await tidings.database.read { db in
                try await db.raw("SELECT COUNT(*) AS n FROM events").first()!.decode(column: "n", as: Int.self)
            }
            #expect(leftovers == 0)
        }
    }

    @Test("Listing pages with a cursor and filters by status and attribute", arguments: TestBackend.all)
    func listPagesAndFilters(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            for index in 0..<7 {
                _ = try await api.post("/v1/contacts", key: workspace.key, json: [
                    "email": "user\(index)@example.com", "plan": index % 2 == 0 ? "pro" : "free", "seats": index,
                ])
            }
            var seen: [String] = []
            var cursor: String?
            repeat {
                let uri = "/v1/contacts?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await api.get(uri, key: workspace.key)
                #expect(page.status == .ok)
                seen += page.data.compactMap { $0["email"] as? String }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            #expect(seen == (0..<7).map { "user\($0)@example.com" })

            let pro = try await api.get("/v1/contacts?attributes%5Bplan%5D=pro&status=active", key: workspace.key)
            #expect(pro.data.count == 4)
            let seats = try await api.get("/v1/contacts?attributes[seats]=3", key: workspace.key)
            #expect(seats.data.compactMap { $0["email"] as? String } == ["user3@example.com"])
            #expect(try await api.get("/v1/contacts?status=bounced", key: workspace.key).data.isEmpty)
            #expect(try await api.get("/v1/contacts?status=gone", key: workspace.key).status == .unprocessableContent)
            #expect(try await api.get("/v1/contacts?limit=501", key: workspace.key).errorCode == "invalid_limit")
            #expect(try await api.get("/v1/contacts?limit=ten", key: workspace.key).status == .badRequest)
            #expect(try await api.get("/v1/contacts?cursor=%21%21", key: workspace.key).errorCode == "invalid_cursor")
        }
    }

    @Test("The export holds the contact and all its events", arguments: TestBackend.all)
    func exportHoldsEverything(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "grace@example.com", "team": "navy"])
            for slug in ["signed-up", "invited", "upgraded"] {
                _ = try await api.post("/v1/events", key: workspace.key, json: ["email": "grace@example.com", "slug": slug])
            }
            let export = try await api.get("/v1/contacts/grace@example.com/export", key: workspace.key)
            #expect(export.status == .ok)
            let contact = try #require(export.json["contact"] as? [String: Any])
            #expect(contact["email"] as? String == "grace@example.com")
            let events = try #require(export.json["events"] as? [[String: Any]])
            #expect(events.compactMap { $0["slug"] as? String } == ["signed-up", "invited", "upgraded"])
            #expect(export.headers[.contentDisposition]?.contains("attachment") == true)

            let page = try await api.get("/v1/contacts/grace@example.com/events?limit=2", key: workspace.key)
            #expect(page.data.count == 2)
            #expect(page.json["nextCursor"] is String)
        }
    }
}
