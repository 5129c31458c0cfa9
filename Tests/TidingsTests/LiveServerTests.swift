import Foundation
import Testing

/// The real binary, started the way an operator starts it, driven by `curl` exactly as
/// SendStreak's documentation shows — only the base URL changes.
@Suite("Live server", .serialized)
struct LiveServerTests {
    @Test("SendStreak's documented curl calls work against tidings serve", arguments: TestBackend.all)
    func sendStreakCurlExamplesWork(backend: TestBackend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await backend.makeDatabase(in: directory)
        defer { Task { await database.drop() } }
        // Trace level: the strictest test of what reaches the log.
        let server = ServerProcess(dataDirectory: directory, databaseURL: database.url, extraEnvironment: ["TIDINGS_LOG_LEVEL": "trace"])
        try await server.start()

        // The operator creates a workspace with the CLI while the server runs.
        let created = try server.command(["workspace", "create", "--name", "Docs", "--owner-email", "owner@docs.test", "--json"])
        #expect(created.status == 0, "\(created.stderr)")
        let workspace = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])
        let key = try #require(workspace["apiKey"])
        #expect(workspace["workspaceId"]?.hasPrefix("ws_") == true)

        // Contacts API: create or update.
        let contact = try curl([
            "--location", "\(server.baseURL)/v1/contacts",
            "--header", "Content-Type: application/json",
            "--header", "Authorization: Bearer \(key)",
            "--data-raw", #"{"email": "someone@example.com", "planId": "professional", "lastSeen": "2024-01-11T15:18:59.937Z", "country": "Germany"}"#,
        ])
        #expect(contact.status == 201)
        let attributes = contact.json["attributes"] as? [String: Any]
        #expect(attributes?["plan_id"] as? String == "professional")
        #expect((contact.json["attributeTypes"] as? [String: String])?["last_seen"] == "date")

        // Events API: send an event; the contact is created when missing.
        let event = try curl([
            "--location", "\(server.baseURL)/v1/events",
            "--header", "Content-Type: application/json",
            "--header", "Authorization: Bearer \(key)",
            "--data-raw", #"{"email": "someone+else@example.com", "slug": "signup"}"#,
        ])
        #expect((200..<300).contains(event.status))
        #expect(event.json["contactCreated"] as? Bool == true)

        // Contacts API: delete, with a raw @ and + in the path.
        for email in ["someone@example.com", "someone+else@example.com"] {
            let deleted = try curl([
                "--location", "--request", "DELETE", "\(server.baseURL)/v1/contacts/\(email)",
                "--header", "Authorization: Bearer \(key)",
            ])
            #expect(deleted.status == 200)
            #expect(deleted.json["deleted"] as? Bool == true)
        }
        let remaining = try curl(["\(server.baseURL)/v1/contacts", "--header", "Authorization: Bearer \(key)"])
        #expect((remaining.json["data"] as? [Any])?.isEmpty == true)

        // A bad key is a 401, as SendStreak clients expect.
        #expect(try curl(["\(server.baseURL)/v1/contacts", "--header", "Authorization: Bearer nope"]).status == 401)

        // Graceful shutdown on SIGTERM.
        let status = try await server.stop()
        #expect(status == 0, "exit status after SIGTERM")

        // Nothing personal or secret ever reaches the log, even at trace level.
        let log = server.log
        #expect(log.contains("/v1/contacts/{email}"), "the access log names route templates")
        for secret in [key, "someone@example.com", "someone+else@example.com", "professional", "Germany", "owner@docs.test"] {
            #expect(!log.contains(secret), "the log contains '\(secret.prefix(12))…'")
        }
    }

    @Test("Commands honour the same settings as the server, and migrate --status lists migrations", arguments: TestBackend.all)
    func commandsShareSettings(backend: TestBackend) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let database = try await backend.makeDatabase(in: directory)
        defer { Task { await database.drop() } }
        let server = ServerProcess(dataDirectory: directory, databaseURL: database.url)

        let pending = try server.command(["migrate", "--status"])
        #expect(pending.status == 0, "\(pending.stderr)")
        #expect(pending.stdout.contains("0001  CreateWorkspaces") && pending.stdout.contains("pending"))
        let migrated = try server.command(["migrate"])
        #expect(migrated.status == 0 && migrated.stdout.contains("CreateEvents"), "\(migrated.stderr)")
        #expect(try server.command(["migrate"]).stdout.contains("up to date"))
        #expect(!(try server.command(["migrate", "--status"]).stdout.contains("pending")))

        let created = try server.command(["workspace", "create", "--name", "Two", "--owner-email", "two@docs.test", "--json"])
        let workspace = try #require(try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])
        let workspaceId = try #require(workspace["workspaceId"])
        #expect(try server.command(["workspace", "list"]).stdout.contains(workspaceId))

        let key = try server.command(["apikey", "create", "--workspace", workspaceId, "--name", "reader", "--scope", "contacts:read", "--json"])
        #expect(key.status == 0, "\(key.stderr)")
        let keyId = try #require((try JSONSerialization.jsonObject(with: Data(key.stdout.utf8)) as? [String: Any])?["id"] as? String)
        #expect(try server.command(["apikey", "list", "--workspace", workspaceId]).stdout.contains(keyId))
        #expect(try server.command(["apikey", "revoke", "--workspace", workspaceId, "--id", keyId]).status == 0)
        #expect(try server.command(["apikey", "list", "--workspace", workspaceId]).stdout.contains("\(keyId)  revoked"))

        // With TIDINGS_LOG_FORMAT=json every log line is one JSON object.
        var jsonEnvironment = server.environment
        jsonEnvironment["TIDINGS_LOG_FORMAT"] = "json"
        let logged = try run(try ServerProcess.binary, ["workspace", "create", "--name", "Json", "--owner-email", "json@docs.test"], environment: jsonEnvironment)
        #expect(logged.status == 0)
        let lines = logged.stderr.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] is String && object?["level"] is String, "not a JSON log line: \(line.prefix(80))")
        }
        #expect(!logged.stderr.contains("json@docs.test"))

        let bad = try server.command(["workspace", "create", "--name", "Bad", "--owner-email", "not-an-address"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("email"))
        await database.drop()
    }
}

struct CurlReply {
    var status: Int
    var json: [String: Any]
}

/// Runs curl as a user would and returns the status and the JSON body.
func curl(_ arguments: [String]) throws -> CurlReply {
    let result = try run("/usr/bin/curl", ["--silent", "--show-error", "--write-out", "\n%{http_code}"] + arguments)
    guard result.status == 0 else { throw ServerProcess.Failure(description: "curl failed: \(result.stderr)") }
    let parts = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    let status = Int(parts.last ?? "") ?? 0
    let body = parts.dropLast().joined(separator: "\n")
    let json = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    return CurlReply(status: status, json: json)
}
