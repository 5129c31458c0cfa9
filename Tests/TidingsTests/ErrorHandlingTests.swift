import Foundation
import HTTPTypes
import Hummingbird
import Testing
@testable import TidingsApp

@Suite("Error handling")
struct ErrorHandlingTests {
    private static let requestIdHeader = HTTPField.Name("X-Request-Id")!

    @Test("A body that is not a JSON object is a 400, an empty one 400 empty_body", arguments: TestBackend.all)
    func unreadableBodyIsBadRequest(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [(String, String)] = [
                ("{\"email\": \"ada@example.com\",", "malformed_json"),
                ("{'email': 'ada@example.com'}", "malformed_json"),
                ("[{\"email\": \"ada@example.com\"}]", "malformed_json"),
                ("\"ada@example.com\"", "malformed_json"),
                ("42", "malformed_json"),
                ("null", "malformed_json"),
                ("", "empty_body"),
            ]

            for (body, code) in cases {
                for path in ["/v1/contacts", "/v1/events", "/v1/api-keys"] {
                    let reply = try await api.request(.post, path, key: workspace.key, body: body, contentType: "application/json")
                    #expect(reply.status == .badRequest, "\(path) \(body)")
                    #expect(reply.errorCode == code, "\(path) \(body)")
                }
            }
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.isEmpty)
        }
    }

    @Test("A body over 1 MiB is 413 body_too_large naming the limit; one of exactly 1 MiB is read", arguments: TestBackend.all)
    func bodyOverLimitIsTooLarge(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let object = "{\"email\":\"ada@example.com\"}"
            let atLimit = object + String(repeating: " ", count: 1_048_576 - object.utf8.count)
            let overLimit = atLimit + " "

            let refused = try await api.request(.post, "/v1/contacts", key: workspace.key, body: overLimit, contentType: "application/json")
            let accepted = try await api.request(.post, "/v1/contacts", key: workspace.key, body: atLimit, contentType: "application/json")

            #expect(refused.status == .contentTooLarge)
            #expect(refused.errorCode == "body_too_large")
            let message = try #require((refused.json["error"] as? [String: Any])?["message"] as? String)
            #expect(message.contains("1048576"))
            #expect(accepted.status == .created)
        }
    }

    @Test("A JSON route refuses form and plain-text bodies with 415", arguments: TestBackend.all)
    func wrongContentTypeIsUnsupported(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [(String, String, String)] = [
                ("/v1/contacts", "text/plain", "{\"email\":\"ada@example.com\"}"),
                ("/v1/contacts", "application/x-www-form-urlencoded", "email=ada%40example.com"),
                ("/v1/events", "text/plain; charset=utf-8", "{\"email\":\"ada@example.com\",\"slug\":\"x\"}"),
                ("/v1/events", "application/x-www-form-urlencoded", "email=ada%40example.com&slug=x"),
                ("/v1/api-keys", "multipart/form-data; boundary=x", "--x--"),
            ]

            for (path, contentType, body) in cases {
                let reply = try await api.request(.post, path, key: workspace.key, body: body, contentType: contentType)
                #expect(reply.status == .unsupportedMediaType, "\(path) \(contentType)")
                #expect(reply.errorCode == "unsupported_media_type", "\(path) \(contentType)")
            }
            let charset = try await api.request(
                .post, "/v1/contacts", key: workspace.key, body: "{\"email\":\"ada@example.com\"}", contentType: "application/json; charset=utf-8"
            )
            #expect(charset.status == .created)
            let untyped = try await api.request(.post, "/v1/contacts", key: workspace.key, body: "{\"email\":\"bob@example.com\"}")
            #expect(untyped.status == .created, "a missing Content-Type is read as JSON, as SendStreak clients send it")
            #expect(try await api.get("/v1/contacts", key: workspace.key).data.count == 2)
        }
    }

    @Test("An unknown route is 404 route_not_found, with or without a key", arguments: TestBackend.all)
    func unknownRouteIsNotFound(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            for path in ["/v1/nothing", "/v2/contacts", "/v1/contacts/ada@example.com/history", "/nothing"] {
                for key in [workspace.key, nil] {
                    let reply = try await api.get(path, key: key)
                    #expect(reply.status == .notFound, "\(path)")
                    #expect(reply.errorCode == "route_not_found", "\(path)")
                }
            }
        }
    }

    @Test("A known path with another method is 405 with an Allow header listing the methods", arguments: TestBackend.all)
    func wrongMethodIsNotAllowed(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [(HTTPRequest.Method, String, Set<String>)] = [
                (.put, "/v1/contacts", ["GET", "POST"]),
                (.patch, "/v1/events", ["POST"]),
                (.get, "/v1/events", ["POST"]),
                (.put, "/v1/contacts/ada@example.com", ["GET", "DELETE"]),
                (.delete, "/v1/api-keys", ["GET", "POST"]),
                (.get, "/v1/api-keys/key_123/rotate", ["POST"]),
            ]

            for (method, path, allowed) in cases {
                for key in [workspace.key, nil] {
                    let reply = try await api.request(method, path, key: key, json: ["email": "ada@example.com"])
                    #expect(reply.status == .methodNotAllowed, "\(method) \(path)")
                    #expect(reply.errorCode == "method_not_allowed", "\(method) \(path)")
                    let allow = Set((reply.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                    #expect(allow == allowed, "\(method) \(path)")
                }
            }
        }
    }

    @Test("A 405 never lists the refused method as allowed", arguments: TestBackend.all)
    func allowHeaderNeverListsTheRefusedMethod(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            // `import` is both a fixed segment (POST) and a value of `{email}` (GET, DELETE).
            let cases: [(HTTPRequest.Method, String)] = [
                (.get, "/v1/contacts/import"), (.delete, "/v1/contacts/import"), (.get, "/v1/contacts/import/events"),
            ]

            for (method, path) in cases {
                let reply = try await api.request(method, path, key: workspace.key)
                #expect(reply.status.code < 500, "\(method) \(path)")
                if reply.status == .methodNotAllowed {
                    let allow = (reply.headers[.allow] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                    #expect(!allow.contains(method.rawValue), "\(method) \(path) → Allow: \(reply.headers[.allow] ?? "")")
                }
            }
        }
    }

    @Test("A rule broken inside a database transaction is still its 422, not a 500", arguments: TestBackend.all)
    func domainErrorInsideTransactionKeepsItsStatus(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            var full: [String: Any] = ["email": "ada@example.com"]
            for index in 0..<100 { full["a\(index)"] = index }
            #expect(try await api.post("/v1/contacts", key: workspace.key, json: full).status == .created)

            // The limit on the merged attributes is checked after the contact is read, inside the upsert's transaction.
            let overflow = try await api.post("/v1/contacts", key: workspace.key, json: ["email": "ada@example.com", "one_more": 1])

            #expect(overflow.status == .unprocessableContent)
            #expect(overflow.errorCode == "too_many_attributes")
            let stored = try await api.get("/v1/contacts/ada@example.com", key: workspace.key)
            #expect((stored.json["attributes"] as? [String: Any])?.count == 100)
        }
    }

    @Test("Every error has the one JSON shape and the X-Request-Id of its response", arguments: TestBackend.all)
    func everyErrorHasTheSameShape(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let reader = try #require(try await api.post(
                "/v1/api-keys", key: workspace.key, json: ["name": "reader", "scopes": ["contacts:read"]]
            ).json["secret"] as? String)
            let revoked = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "gone"])
            let revokedId = try #require(revoked.json["id"] as? String)
            _ = try await api.delete("/v1/api-keys/\(revokedId)", key: workspace.key)

            let replies: [(String, TestClient.Reply)] = [
                ("400", try await api.request(.post, "/v1/contacts", key: workspace.key, body: "{", contentType: "application/json")),
                ("400 query", try await api.get("/v1/contacts?limit=ten", key: workspace.key)),
                ("401", try await api.get("/v1/contacts", key: nil)),
                ("401 revoked", try await api.get("/v1/contacts", key: try #require(revoked.json["secret"] as? String))),
                ("403", try await api.post("/v1/contacts", key: reader, json: ["email": "ada@example.com"])),
                ("404 route", try await api.get("/v1/nothing", key: nil)),
                ("404 contact", try await api.get("/v1/contacts/ada@example.com", key: workspace.key)),
                ("405", try await api.request(.put, "/v1/contacts", key: workspace.key)),
                ("409", try await api.post("/v1/api-keys/\(revokedId)/rotate", key: workspace.key, json: [String: Any]())),
                ("413", try await api.request(
                    .post, "/v1/events", key: workspace.key, body: String(repeating: " ", count: 1_048_577), contentType: "application/json"
                )),
                ("415", try await api.request(.post, "/v1/events", key: workspace.key, body: "x", contentType: "text/plain")),
                ("422", try await api.post("/v1/events", key: workspace.key, json: ["email": "ada@example.com", "slug": "Signed Up!"])),
                ("422 import", try await api.request(.post, "/v1/contacts/import", key: workspace.key, body: "name\nada\n", contentType: "text/csv")),
            ]

            for (label, reply) in replies {
                #expect((400..<500).contains(reply.status.code), "\(label): \(reply.status)")
                #expect(reply.headers[.contentType]?.hasPrefix("application/json") == true, "\(label)")
                #expect(reply.json.keys.sorted() == ["error"], "\(label): \(reply.body)")
                let error = try #require(reply.json["error"] as? [String: Any], "\(label)")
                #expect(Set(error.keys).isSuperset(of: ["code", "message", "requestId"]), "\(label): \(reply.body)")
                #expect(Set(error.keys).isSubset(of: ["code", "message", "requestId", "field"]), "\(label): \(reply.body)")
                #expect((error["code"] as? String)?.isEmpty == false, "\(label)")
                #expect((error["message"] as? String)?.isEmpty == false, "\(label)")
                let requestId = try #require(error["requestId"] as? String, "\(label)")
                #expect(reply.headers[Self.requestIdHeader] == requestId, "\(label)")
            }
            let ids = replies.compactMap { ($0.1.json["error"] as? [String: Any])?["requestId"] as? String }
            #expect(Set(ids).count == replies.count, "each request has its own id")
        }
    }

    @Test("A plain caller-supplied X-Request-Id is echoed; a long or odd one is replaced", arguments: TestBackend.all)
    func callerRequestIdIsEchoedOnlyWhenPlain(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let plain = "trace-2027_01-abcDEF123"
            let longest = String(repeating: "a", count: 64)
            let odd = [
                String(repeating: "a", count: 65),
                String(repeating: "x", count: 200),
                "has spaces in it",
                "quote\"injection",
                "<script>",
                "ünïcode",
            ]

            let echoedOnSuccess = try await api.request(.get, "/v1/contacts", key: workspace.key, headers: [Self.requestIdHeader: plain])
            let echoedOnError = try await api.request(.get, "/v1/nothing", key: nil, headers: [Self.requestIdHeader: plain])
            let echoedLongest = try await api.request(.get, "/v1/contacts", key: workspace.key, headers: [Self.requestIdHeader: longest])

            #expect(echoedOnSuccess.status == .ok)
            #expect(echoedOnSuccess.headers[Self.requestIdHeader] == plain)
            #expect(echoedOnError.headers[Self.requestIdHeader] == plain)
            #expect((echoedOnError.json["error"] as? [String: Any])?["requestId"] as? String == plain)
            #expect(echoedLongest.headers[Self.requestIdHeader] == longest)
            for given in odd {
                let reply = try await api.request(.get, "/v1/nothing", key: nil, headers: [Self.requestIdHeader: given])
                let replaced = try #require(reply.headers[Self.requestIdHeader], "\(given)")
                #expect(replaced != given, "\(given)")
                #expect(replaced.hasPrefix("req_"), "\(given)")
                #expect((reply.json["error"] as? [String: Any])?["requestId"] as? String == replaced, "\(given)")
                #expect(!reply.body.contains(given), "\(given)")
            }
        }
    }
}
