import Foundation
import Hummingbird
import Testing
import TidingsCrypto
import TidingsDomain
@testable import TidingsApp

@Suite("API keys API")
struct APIKeysAPITests {
    /// Creates a key through the API and returns its id and its secret.
    private func createKey(
        _ api: TestClient, admin: String, name: String = "Key", scopes: [String]? = nil, expiresAt: Date? = nil
    ) async throws -> (id: String, secret: String) {
        var body: [String: Any] = ["name": name]
        if let scopes { body["scopes"] = scopes }
        if let expiresAt { body["expiresAt"] = Timestamp.format(expiresAt) }
        let reply = try await api.post("/v1/api-keys", key: admin, json: body)
        try #require(reply.status == .created, "\(reply.body)")
        return (try #require(reply.json["id"] as? String), try #require(reply.json["secret"] as? String))
    }

    // MARK: - Creating and reading

    @Test("Creating a key answers 201 with a tdg_ secret shown once; later reads never contain it", arguments: TestBackend.all)
    func secretIsShownOnce(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let created = try await api.post("/v1/api-keys", key: workspace.key, json: [
                "name": "  CRM sync ", "scopes": ["contacts:write", "Events:Write"],
            ])

            #expect(created.status == .created)
            let secret = try #require(created.json["secret"] as? String)
            #expect(secret.wholeMatch(of: /tdg_[0-9A-Za-z]{49}/) != nil)
            #expect(APIKeyToken(parsing: secret) != nil, "the checksum of an issued secret is valid")
            #expect(created.json["name"] as? String == "CRM sync")
            #expect(created.json["scopes"] as? [String] == ["contacts:write", "events:write"])
            #expect(created.json["hint"] as? String == String(secret.dropFirst(4).prefix(6)))
            #expect(created.json["status"] as? String == "active")
            #expect(created.json["lastUsedAt"] is NSNull)
            let id = try #require(created.json["id"] as? String)

            let fetched = try await api.get("/v1/api-keys/\(id)", key: workspace.key)
            #expect(fetched.status == .ok)
            #expect(fetched.json["secret"] == nil)
            #expect(!fetched.body.contains(secret))
            let list = try await api.get("/v1/api-keys", key: workspace.key)
            #expect(list.status == .ok)
            #expect(list.data.count == 2, "the owner key and the new one")
            #expect(list.data.allSatisfy { $0["secret"] == nil })
            #expect(!list.body.contains(secret))
            #expect(!list.body.contains(workspace.key))
        }
    }

    @Test("A key created without scopes gets everything but key management", arguments: TestBackend.all)
    func defaultScopesExcludeAdmin(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let key = try await createKey(api, admin: workspace.key)

            let fetched = try await api.get("/v1/api-keys/\(key.id)", key: workspace.key)
            #expect(fetched.json["scopes"] as? [String] == ["contacts:write", "events:write", "messages:send", "templates:write", "automations:write"])
            #expect(try await api.get("/v1/api-keys", key: key.secret).errorCode == "insufficient_scope")
        }
    }

    @Test("Unknown fields and unknown scopes in a create body are a 422 naming them", arguments: TestBackend.all)
    func badCreateBodyIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            let unknownField = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "k", "colour": "red"])
            #expect(unknownField.status == .unprocessableContent)
            #expect(unknownField.errorCode == "unknown_field")
            #expect(unknownField.errorField == "colour")

            let unknownScope = try await api.post("/v1/api-keys", key: workspace.key, json: [
                "name": "k", "scopes": ["contacts:read", "contacts:delete"],
            ])
            #expect(unknownScope.status == .unprocessableContent)
            #expect(unknownScope.errorCode == "invalid_scopes")
            #expect(unknownScope.errorField == "scopes")
            let message = (unknownScope.json["error"] as? [String: Any])?["message"] as? String
            #expect(message?.contains("contacts:delete") == true)

            let cases: [([String: Any], String, String)] = [
                (["scopes": ["admin"]], "missing_field", "name"),
                (["name": "   "], "invalid_name", "name"),
                (["name": "k", "scopes": [String]()], "invalid_scopes", "scopes"),
                (["name": "k", "scopes": "admin"], "invalid_type", "scopes"),
                (["name": "k", "expiresAt": "next week"], "invalid_timestamp", "expiresAt"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/api-keys", key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent, "\(body)")
                #expect(reply.errorCode == code, "\(body)")
                #expect(reply.errorField == field, "\(body)")
            }
            #expect(try await api.get("/v1/api-keys", key: workspace.key).data.count == 1, "nothing was created")
        }
    }

    // MARK: - Scopes

    @Test("A key may do what its scopes permit and gets 403 insufficient_scope for the rest", arguments: TestBackend.all)
    func scopesAreEnforced(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let reader = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"]).secret
            let writer = try await createKey(api, admin: workspace.key, scopes: ["contacts:write"]).secret
            let tracker = try await createKey(api, admin: workspace.key, scopes: ["events:write"]).secret
            let contact = ["email": "ada@example.com"]
            let event = ["email": "ada@example.com", "slug": "signed-up"]

            #expect(try await api.get("/v1/contacts", key: reader).status == .ok)
            let readerWrites = try await api.post("/v1/contacts", key: reader, json: contact)
            #expect(readerWrites.status == .forbidden)
            #expect(readerWrites.errorCode == "insufficient_scope")
            #expect(try await api.delete("/v1/contacts/ada@example.com", key: reader).errorCode == "insufficient_scope")
            #expect(try await api.post("/v1/events", key: reader, json: event).errorCode == "insufficient_scope")

            #expect(try await api.post("/v1/contacts", key: writer, json: contact).status == .created)
            #expect(try await api.get("/v1/contacts", key: writer).status == .ok, "contacts:write implies contacts:read")
            #expect(try await api.get("/v1/contacts/ada@example.com", key: writer).status == .ok)
            #expect(try await api.post("/v1/events", key: writer, json: event).errorCode == "insufficient_scope")

            #expect(try await api.post("/v1/events", key: tracker, json: event).status == .created)
            #expect(try await api.get("/v1/contacts", key: tracker).errorCode == "insufficient_scope")
            #expect(try await api.get("/v1/contacts/ada@example.com/events", key: reader).data.count == 1)
        }
    }

    @Test("A key without admin cannot touch any /v1/api-keys route", arguments: TestBackend.all)
    func onlyAdminManagesKeys(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let everythingElse = ["contacts:write", "events:write", "messages:send", "templates:write", "automations:write"]
            let (id, secret) = try await createKey(api, admin: workspace.key, scopes: everythingElse)

            let replies = [
                try await api.get("/v1/api-keys", key: secret),
                try await api.post("/v1/api-keys", key: secret, json: ["name": "escalate", "scopes": ["admin"]]),
                try await api.get("/v1/api-keys/\(id)", key: secret),
                try await api.post("/v1/api-keys/\(id)/rotate", key: secret, json: [String: Any]()),
                try await api.delete("/v1/api-keys/\(id)", key: secret),
            ]

            for reply in replies {
                #expect(reply.status == .forbidden)
                #expect(reply.errorCode == "insufficient_scope")
            }
            #expect(try await api.get("/v1/api-keys", key: workspace.key).data.count == 2, "no key was created")
            #expect(try await api.get("/v1/contacts", key: secret).status == .ok, "the key was neither rotated nor revoked")
        }
    }

    // MARK: - Authentication

    @Test("Missing, non-Bearer, malformed, mistyped and unknown keys are all 401 with WWW-Authenticate", arguments: TestBackend.all)
    func badCredentialsAreUnauthorized(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let real = workspace.key
            let typoIndex = real.index(real.startIndex, offsetBy: 10)
            let typo = real.replacingCharacters(in: typoIndex...typoIndex, with: real[typoIndex] == "a" ? "b" : "a")
            let unknown = APIKeyToken.generate().secret
            let cases: [(String, String?)] = [
                ("no Authorization header", nil),
                ("Basic scheme", "Basic \(Data("user:\(real)".utf8).base64EncodedString())"),
                ("the key without a scheme", real),
                ("Bearer and nothing else", "Bearer"),
                ("Bearer and blanks", "Bearer    "),
                ("not a tdg_ key", "Bearer sk_live_1234567890"),
                ("a truncated key", "Bearer \(real.dropLast())"),
                ("a one-character typo", "Bearer \(typo)"),
                ("a well-formed key nobody issued", "Bearer \(unknown)"),
            ]

            for (label, authorization) in cases {
                var headers: HTTPFields = [:]
                if let authorization { headers[.authorization] = authorization }
                let reply = try await api.request(.get, "/v1/contacts", key: nil, headers: headers)
                #expect(reply.status == .unauthorized, "\(label)")
                #expect(reply.headers[.wwwAuthenticate] == "Bearer", "\(label)")
                #expect(reply.errorCode != nil, "\(label)")
                #expect(!reply.body.contains(real), "\(label)")
            }
            #expect(try await api.get("/v1/contacts", key: real).status == .ok)
            let lowercaseScheme = try await api.request(.get, "/v1/contacts", key: nil, headers: [.authorization: "bearer \(real)"])
            #expect(lowercaseScheme.status == .ok, "the scheme is case-insensitive")
        }
    }

    // MARK: - Revoking

    @Test("A revoked key is refused on the very next request; revoking it again is 200 and changes nothing", arguments: TestBackend.all)
    func revokedKeyStopsAtOnce(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, secret) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            #expect(try await api.get("/v1/contacts", key: secret).status == .ok)

            let revoked = try await api.delete("/v1/api-keys/\(id)", key: workspace.key)

            #expect(revoked.status == .ok)
            #expect(revoked.json["status"] as? String == "revoked")
            let revokedAt = try #require(revoked.json["revokedAt"] as? String)
            #expect(revokedAt == Timestamp.format(clock.now))
            let refused = try await api.get("/v1/contacts", key: secret)
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.wwwAuthenticate] == "Bearer")

            clock.advance(by: 60)
            let again = try await api.delete("/v1/api-keys/\(id)", key: workspace.key)
            #expect(again.status == .ok)
            #expect(again.json["revokedAt"] as? String == revokedAt, "the first revocation time is kept")
            #expect(try await api.get("/v1/contacts", key: secret).status == .unauthorized)
            #expect(try await api.get("/v1/contacts", key: workspace.key).status == .ok, "other keys are untouched")
        }
    }

    @Test("An unknown key id is 404 api_key_not_found for get, revoke and rotate", arguments: TestBackend.all)
    func unknownKeyIdIsNotFound(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let id = Identifier.make("key")

            let replies = [
                try await api.get("/v1/api-keys/\(id)", key: workspace.key),
                try await api.delete("/v1/api-keys/\(id)", key: workspace.key),
                try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: [String: Any]()),
            ]

            for reply in replies {
                #expect(reply.status == .notFound)
                #expect(reply.errorCode == "api_key_not_found")
            }
        }
    }

    // MARK: - Rotating

    @Test("After a rotation both secrets work for 24 hours by default, then only the new one", arguments: TestBackend.all)
    func rotationOverlapsForADayByDefault(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, old) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])

            let rotated = try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: [String: Any]())

            #expect(rotated.status == .ok)
            #expect(rotated.json["id"] as? String == id, "rotation keeps the key's id")
            let new = try #require(rotated.json["secret"] as? String)
            #expect(new != old)
            #expect(rotated.json["hint"] as? String == String(new.dropFirst(4).prefix(6)))
            #expect(try await api.get("/v1/contacts", key: old).status == .ok)
            #expect(try await api.get("/v1/contacts", key: new).status == .ok)

            clock.advance(by: 24 * 3600 - 1)
            #expect(try await api.get("/v1/contacts", key: old).status == .ok, "still inside the overlap")

            clock.advance(by: 2)
            #expect(try await api.get("/v1/contacts", key: old).status == .unauthorized)
            #expect(try await api.get("/v1/contacts", key: new).status == .ok)
            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["secret"] == nil)
        }
    }

    @Test("Rotating with overlapSeconds 0 retires the old secret at once", arguments: TestBackend.all)
    func rotationWithoutOverlap(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, old) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])

            let rotated = try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: ["overlapSeconds": 0])

            #expect(rotated.status == .ok)
            let new = try #require(rotated.json["secret"] as? String)
            #expect(try await api.get("/v1/contacts", key: old).status == .unauthorized)
            #expect(try await api.get("/v1/contacts", key: new).status == .ok)
        }
    }

    @Test("A second rotation shortens, never extends, the life of the first secret", arguments: TestBackend.all)
    func secondRotationDoesNotExtendOldSecrets(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, first) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            let second = try #require(try await api.post(
                "/v1/api-keys/\(id)/rotate", key: workspace.key, json: ["overlapSeconds": 3600]
            ).json["secret"] as? String)
            clock.advance(by: 1800)

            let third = try #require(try await api.post(
                "/v1/api-keys/\(id)/rotate", key: workspace.key, json: ["overlapSeconds": 7 * 24 * 3600]
            ).json["secret"] as? String)

            clock.advance(by: 1801)
            #expect(try await api.get("/v1/contacts", key: first).status == .unauthorized)
            #expect(try await api.get("/v1/contacts", key: second).status == .ok)
            #expect(try await api.get("/v1/contacts", key: third).status == .ok)
        }
    }

    @Test("An empty POST without a body rotates with the default overlap", arguments: TestBackend.all)
    func rotationWithoutBody(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let first = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            let second = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])

            let withZeroLength = try await api.request(
                .post, "/v1/api-keys/\(first.id)/rotate", key: workspace.key, headers: [.contentLength: "0"]
            )
            let withoutLength = try await api.request(.post, "/v1/api-keys/\(second.id)/rotate", key: workspace.key)

            #expect(withZeroLength.status == .ok)
            #expect(try await api.get("/v1/contacts", key: first.secret).status == .ok, "the old secret overlaps")
            // A POST with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 §6.3),
            // which is how `curl -X POST` and HTTP/2 clients send it.
            #expect(withoutLength.status == .ok, "\(withoutLength.body)")
            #expect(withoutLength.json["secret"] is String)
        }
    }

    @Test("A revoked or expired key cannot be rotated: 409 api_key_not_active", arguments: TestBackend.all)
    func inactiveKeyCannotBeRotated(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let revoked = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            let expiring = try await createKey(
                api, admin: workspace.key, scopes: ["contacts:read"], expiresAt: clock.now.addingTimeInterval(60)
            )
            _ = try await api.delete("/v1/api-keys/\(revoked.id)", key: workspace.key)
            clock.advance(by: 61)

            for id in [revoked.id, expiring.id] {
                let reply = try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: [String: Any]())
                #expect(reply.status == .conflict)
                #expect(reply.errorCode == "api_key_not_active")
            }
            #expect(try await api.get("/v1/contacts", key: revoked.secret).status == .unauthorized)
            #expect(try await api.get("/v1/contacts", key: expiring.secret).status == .unauthorized)
        }
    }

    @Test("An overlap that is negative, over 30 days or not a number is refused and changes nothing", arguments: TestBackend.all)
    func invalidOverlapIsRejected(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, secret) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            let hint = try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["hint"] as? String
            let cases: [(Any, String)] = [(-1, "invalid_overlap"), (3_000_000, "invalid_overlap"), ("x", "invalid_type")]

            for (overlap, code) in cases {
                let reply = try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: ["overlapSeconds": overlap])
                #expect(reply.status == .unprocessableContent, "\(overlap)")
                #expect(reply.errorCode == code, "\(overlap)")
                #expect(reply.errorField == "overlapSeconds", "\(overlap)")
            }
            let unknownField = try await api.post("/v1/api-keys/\(id)/rotate", key: workspace.key, json: ["overlap": 10])
            #expect(unknownField.errorCode == "unknown_field")
            let malformed = try await api.request(
                .post, "/v1/api-keys/\(id)/rotate", key: workspace.key, body: "{\"overlapSeconds\":", contentType: "application/json"
            )
            #expect(malformed.status == .badRequest)

            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["hint"] as? String == hint)
            #expect(try await api.get("/v1/contacts", key: secret).status == .ok)
        }
    }

    // MARK: - Expiry and usage

    @Test("An expiry that is not in the future is a 422 at creation", arguments: TestBackend.all)
    func pastExpiryIsRejected(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()

            for offset in [-3600.0, 0] {
                let reply = try await api.post("/v1/api-keys", key: workspace.key, json: [
                    "name": "stale", "expiresAt": Timestamp.format(clock.now.addingTimeInterval(offset)),
                ])
                #expect(reply.status == .unprocessableContent, "\(offset)")
                #expect(reply.errorCode == "invalid_expiry", "\(offset)")
                #expect(reply.errorField == "expiresAt", "\(offset)")
            }
            #expect(try await api.get("/v1/api-keys", key: workspace.key).data.count == 1)
        }
    }

    @Test("A key with an expiry works until that instant and is a 401 from then on", arguments: TestBackend.all)
    func keyExpires(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let expiresAt = clock.now.addingTimeInterval(3600)
            let (id, secret) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"], expiresAt: expiresAt)
            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["expiresAt"] as? String == Timestamp.format(expiresAt))

            clock.advance(by: 3599)
            #expect(try await api.get("/v1/contacts", key: secret).status == .ok)

            clock.advance(by: 1)
            let expired = try await api.get("/v1/contacts", key: secret)
            #expect(expired.status == .unauthorized)
            #expect(expired.headers[.wwwAuthenticate] == "Bearer")
            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["status"] as? String == "expired")
        }
    }

    @Test("lastUsedAt is null until the key is used, then the time of use", arguments: TestBackend.all)
    func lastUsedAtIsRecorded(backend: TestBackend) async throws {
        let clock = TestClock()
        try await withAPI(backend, clock: clock) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let (id, secret) = try await createKey(api, admin: workspace.key, scopes: ["contacts:read"])
            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["lastUsedAt"] is NSNull)

            clock.advance(by: 10)
            _ = try await api.get("/v1/contacts", key: secret)

            let used = try await api.get("/v1/api-keys/\(id)", key: workspace.key)
            #expect(used.json["lastUsedAt"] as? String == Timestamp.format(clock.now))

            clock.advance(by: 3600)
            _ = try await api.get("/v1/contacts", key: secret)
            #expect(try await api.get("/v1/api-keys/\(id)", key: workspace.key).json["lastUsedAt"] as? String == Timestamp.format(clock.now))
        }
    }
}
