import Foundation
import Testing
@testable import TidingsApp

@Suite("Contact import API")
struct ContactImportAPITests {
    private func importCSV(
        _ api: TestClient, key: String, _ csv: String, types: String? = nil, contentType: String? = "text/csv"
    ) async throws -> TestClient.Reply {
        let uri = "/v1/contacts/import" + (types.map { "?types=\($0)" } ?? "")
        return try await api.request(.post, uri, key: key, body: csv, contentType: contentType)
    }

    private func attributes(_ api: TestClient, key: String, _ email: String) async throws -> [String: Any] {
        let reply = try await api.get("/v1/contacts/\(email)", key: key)
        try #require(reply.status == .ok, "\(email): \(reply.body)")
        return reply.json["attributes"] as? [String: Any] ?? [:]
    }

    @Test("Header names are normalised like JSON keys and typed columns store their type", arguments: TestBackend.all)
    func headerIsNormalisedAndTypesApply(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let csv = "email,first name,Plan,seats\r\nada@example.com,Ada,Pro,3\r\ngrace@example.com,Grace,free,12\r\n"

            let typed = try await importCSV(api, key: workspace.key, csv, types: "seats:number")

            #expect(typed.status == .ok)
            #expect(typed.json["created"] as? Int == 2)
            #expect(typed.json["rejected"] as? Int == 0)
            let ada = try await api.get("/v1/contacts/ada@example.com", key: workspace.key)
            let attributes = try #require(ada.json["attributes"] as? [String: Any])
            #expect(Set(attributes.keys) == ["first_name", "plan", "seats"])
            #expect(attributes["first_name"] as? String == "Ada")
            #expect(attributes["plan"] as? String == "Pro", "values keep their case")
            #expect(attributes["seats"] as? Int == 3)
            #expect(ada.json["attributeTypes"] as? [String: String] == ["first_name": "string", "plan": "string", "seats": "number"])
            #expect(try await api.get("/v1/contacts?attributes[seats]=12", key: workspace.key).data.count == 1)

            let untyped = try await importCSV(api, key: workspace.key, "email,seats\nlin@example.com,7\n")
            #expect(untyped.status == .ok)
            let lin = try await api.get("/v1/contacts/lin@example.com", key: workspace.key)
            #expect((lin.json["attributes"] as? [String: Any])?["seats"] as? String == "7", "an untyped column is text")
        }
    }

    @Test("Bad rows are rejected with their 1-based line while the others land; a multi-line field shifts later lines", arguments: TestBackend.all)
    func badRowsAreReportedByLine(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let csv = """
                email,first name,Plan,seats
                ada@example.com,Ada,pro,3
                not-an-address,Bob,free,1
                grace@example.com,"Grace
                Hopper",pro,5
                short@example.com,Only two

                lin@example.com,Lin,free,lots
                ken@example.com,Ken,free,2,extra
                joan@example.com,Joan,pro,4
                """

            let reply = try await importCSV(api, key: workspace.key, csv, types: "seats:number")

            #expect(reply.status == .ok)
            #expect(reply.json["created"] as? Int == 3)
            #expect(reply.json["updated"] as? Int == 0)
            #expect(reply.json["rejected"] as? Int == 4)
            #expect(reply.json["errorsTruncated"] as? Bool == false)
            let errors = try #require(reply.json["errors"] as? [[String: Any]])
            #expect(errors.compactMap { $0["line"] as? Int } == [3, 6, 8, 9])
            #expect(errors.compactMap { $0["code"] as? String } == [
                "invalid_email", "wrong_field_count", "invalid_attribute_value", "wrong_field_count",
            ])
            #expect(errors[2]["field"] as? String == "seats")
            #expect(!reply.body.contains("not-an-address"), "errors never repeat the data")
            let grace = try await attributes(api, key: workspace.key, "grace@example.com")
            #expect(grace["first_name"] as? String == "Grace\nHopper")
            #expect(try await api.get("/v1/contacts/joan@example.com", key: workspace.key).status == .ok)
            #expect(try await api.get("/v1/contacts/short@example.com", key: workspace.key).status == .notFound)
            #expect(try await api.get("/v1/contacts/lin@example.com", key: workspace.key).status == .notFound)
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.count == 3)
        }
    }

    @Test("An empty cell leaves the attribute as it was; a repeated address counts as updated", arguments: TestBackend.all)
    func emptyCellsAndDuplicates(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "ada@example.com", "plan": "pro", "seats": 3])
            let csv = """
                email,plan,seats,team
                ada@example.com,,,navy
                grace@example.com,free,1,
                Grace@Example.com,,2,
                """

            let reply = try await importCSV(api, key: workspace.key, csv, types: "seats:number")

            #expect(reply.status == .ok)
            #expect(reply.json["created"] as? Int == 1)
            #expect(reply.json["updated"] as? Int == 2)
            #expect(reply.json["rejected"] as? Int == 0)
            let ada = try await attributes(api, key: workspace.key, "ada@example.com")
            #expect(ada["plan"] as? String == "pro")
            #expect(ada["seats"] as? Int == 3)
            #expect(ada["team"] as? String == "navy")
            let grace = try await attributes(api, key: workspace.key, "grace@example.com")
            #expect(grace["plan"] as? String == "free")
            #expect(grace["seats"] as? Int == 2)
            #expect(grace["team"] == nil)
        }
    }

    @Test("A header without an email column is 422 missing_email_column and writes nothing", arguments: TestBackend.all)
    func missingEmailColumnIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let reply = try await importCSV(api, key: workspace.key, "e-mail,plan\nada@example.com,pro\n")

            #expect(reply.status == .unprocessableContent)
            #expect(reply.errorCode == "missing_email_column")
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.isEmpty)
        }
    }

    @Test("A types parameter naming an unknown column or type is 422 and writes nothing", arguments: TestBackend.all)
    func badTypesAreRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let csv = "email,seats\nada@example.com,3\n"

            for types in ["plan:string", "seats:integer", "seats"] {
                let reply = try await importCSV(api, key: workspace.key, csv, types: types)
                #expect(reply.status == .unprocessableContent, "\(types)")
                #expect(reply.errorCode == "invalid_types", "\(types)")
                #expect(reply.errorField == "types", "\(types)")
            }
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.isEmpty)
        }
    }

    @Test("An import sent as anything but text/csv is 415 and writes nothing", arguments: TestBackend.all)
    func wrongContentTypeIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let csv = "email\nada@example.com\n"

            for contentType in ["application/json", "text/plain", nil] {
                let reply = try await importCSV(api, key: workspace.key, csv, contentType: contentType)
                #expect(reply.status == .unsupportedMediaType, "\(contentType ?? "none")")
                #expect(reply.errorCode == "unsupported_media_type", "\(contentType ?? "none")")
            }
            let withCharset = try await importCSV(api, key: workspace.key, csv, contentType: "text/csv; charset=utf-8")
            #expect(withCharset.status == .ok)
            #expect(withCharset.json["created"] as? Int == 1)
        }
    }

    @Test("A file of 2,000 rows imports completely across several batches", arguments: TestBackend.all)
    func largeFileImportsCompletely(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            var csv = "email,plan,seats\n"
            for index in 0..<2000 {
                csv += "user\(index)@example.com,\(index % 2 == 0 ? "pro" : "free"),\(index)\n"
            }

            let reply = try await importCSV(api, key: workspace.key, csv, types: "seats:number")

            #expect(reply.status == .ok)
            #expect(reply.json["created"] as? Int == 2000)
            #expect(reply.json["rejected"] as? Int == 0)
            var emails: [String] = []
            var cursor: String?
            repeat {
                let page = try await api.get("/v1/contacts?limit=500" + (cursor.map { "&cursor=\($0)" } ?? ""), key: workspace.key)
                emails += page.data.compactMap { $0["email"] as? String }
                cursor = page.json["nextCursor"] as? String
            } while cursor != nil
            #expect(Set(emails) == Set((0..<2000).map { "user\($0)@example.com" }))
            #expect(emails.count == 2000)
            let last = try await attributes(api, key: workspace.key, "user1999@example.com")
            #expect(last["seats"] as? Int == 1999)
            #expect(try await api.get("/v1/contacts?attributes[plan]=pro&limit=500", key: workspace.key).data.count == 500)
        }
    }
}

@Suite("Contact import limits")
struct ContactImportLimitTests {
    @Test("An upload over the limit is a 413 that reports the rows already imported, and they are kept", arguments: TestBackend.all)
    func oversizeUploadKeepsWhatWasRead(backend: TestBackend) async throws {
        try await withAPI(backend, flags: ["tidings.importMaxBytes": "4096"]) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            var csv = "email,n\n"
            for index in 0..<2000 { csv += "big\(index)@example.com,\(index)\n" }
            let reply = try await api.request(.post, "/v1/contacts/import", key: workspace.key, body: csv, contentType: "text/csv")
            #expect(reply.status == .contentTooLarge)
            let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("4096 bytes") && message.contains("created"))
            let page = try await api.get("/v1/contacts?limit=500", key: workspace.key)
            #expect(!page.data.isEmpty, "the rows read before the limit are kept")
            #expect(page.data.count < 2000)
        }
    }
}
