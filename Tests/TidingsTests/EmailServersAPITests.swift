import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsDomain

@Suite("Email servers API")
struct EmailServersAPITests {
    @Test("Servers are added, read, changed and deleted; the password is write-only and sealed", arguments: TestBackend.all)
    func lifecycle(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let ses = try await api.post("/v1/email-servers", key: workspace.key, json: [
                "name": "SES Ireland", "preset": "amazon-ses-eu-west-1", "username": "smtp-user@acme.test",
                "password": "Quokka-smtp-secret-9917", "rateLimit": 14,
            ])
            #expect(ses.status == .created, "\(ses.body)")
            #expect(ses.json["host"] as? String == "email-smtp.eu-west-1.amazonaws.com")
            #expect(ses.json["port"] as? Int == 587 && ses.json["security"] as? String == "starttls")
            #expect(ses.json["isDefault"] as? Bool == true, "the first server is the default")
            #expect(ses.json["hasPassword"] as? Bool == true && ses.json["password"] == nil)
            #expect(!ses.body.contains("Quokka-smtp-secret-9917"))
            let sesId = try #require(ses.json["id"] as? String)

            let own = try await api.post("/v1/email-servers", key: workspace.key, json: [
                "name": "Own relay", "host": "Mail.Acme.test", "security": "tls", "maxConnections": 2,
            ])
            #expect(own.status == .created, "\(own.body)")
            #expect(own.json["host"] as? String == "mail.acme.test" && own.json["port"] as? Int == 465)
            #expect(own.json["isDefault"] as? Bool == false && own.json["hasPassword"] as? Bool == false)
            let ownId = try #require(own.json["id"] as? String)

            // Making the second the default takes it from the first.
            let promoted = try await api.request(.patch, "/v1/email-servers/\(ownId)", key: workspace.key, json: ["isDefault": true])
            #expect(promoted.json["isDefault"] as? Bool == true)
            #expect(try await api.get("/v1/email-servers/\(sesId)", key: workspace.key).json["isDefault"] as? Bool == false)
            let unset = try await api.request(.patch, "/v1/email-servers/\(ownId)", key: workspace.key, json: ["isDefault": false])
            #expect(unset.errorCode == "default_required")

            // A change that leaves the password out keeps it; null removes it.
            let renamed = try await api.request(.patch, "/v1/email-servers/\(sesId)", key: workspace.key, json: ["name": "SES"])
            #expect(renamed.json["hasPassword"] as? Bool == true && renamed.json["name"] as? String == "SES")
            let stored = try await tidings.emailServers.get(workspaceId: workspace.id, id: sesId)
            #expect(stored.password == "Quokka-smtp-secret-9917" && stored.username == "smtp-user@acme.test")
            let raw = try await tidings.database.read { db in
                try await db.raw("SELECT username_sealed, password_sealed FROM email_servers WHERE id = \(bind: sesId)").first()!
            }
            #expect(try !(raw.decode(column: "password_sealed", as: String.self).contains("Quokka")))
            let cleared = try await api.request(.patch, "/v1/email-servers/\(sesId)", key: workspace.key, json: ["password": NSNull()])
            #expect(cleared.json["hasPassword"] as? Bool == false)

            #expect(try await api.get("/v1/email-servers", key: workspace.key).data.count == 2)
            #expect(try await api.delete("/v1/email-servers/\(ownId)", key: workspace.key).status == .noContent)
            #expect(try await api.get("/v1/email-servers/\(sesId)", key: workspace.key).json["isDefault"] as? Bool == true,
                    "deleting the default makes the oldest remaining one the default")
            #expect(try await api.get("/v1/email-servers/\(ownId)", key: workspace.key).errorCode == "email_server_not_found")

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "email_server.*"), cursor: nil, limit: 20, oldestFirst: true)
            #expect(audited.items.map(\.change.action) == [
                "email_server.created", "email_server.created", "email_server.updated", "email_server.updated", "email_server.updated", "email_server.deleted",
            ])
            let summaries = audited.items.map { "\($0.change.summary)" }.joined()
            #expect(!summaries.contains("Quokka"), "the audit names fields, never the password")
        }
    }

    @Test("Bad settings are a 422 naming the field; plaintext only to loopback", arguments: TestBackend.all)
    func validation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [([String: Any], String, String)] = [
                (["host": "smtp.acme.test", "security": "none"], "insecure_server", "security"),
                (["host": "smtp.acme.test", "security": "ssl"], "invalid_security", "security"),
                (["host": "smtp acme"], "invalid_host", "host"),
                ([:], "missing_field", "host"),
                (["preset": "hotmail"], "unknown_preset", "preset"),
                (["host": "smtp.acme.test", "port": 70000], "invalid_port", "port"),
                (["host": "smtp.acme.test", "password": "x"], "invalid_credentials", "username"),
                (["host": "smtp.acme.test", "username": "a\r\nRCPT TO:<x@y.z>"], "invalid_credentials", "username"),
                (["host": "smtp.acme.test", "maxConnections": 0], "invalid_max_connections", "maxConnections"),
                (["host": "smtp.acme.test", "rateLimit": 0], "invalid_rate_limit", "rateLimit"),
                (["host": "smtp.acme.test", "isDefault": "yes"], "invalid_type", "isDefault"),
                (["host": "smtp.acme.test", "colour": "red"], "unknown_field", "colour"),
                (["host": "smtp.acme.test", "tlsPins": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="], "invalid_type", "tlsPins"),
                (["host": "smtp.acme.test", "tlsPins": [7]], "invalid_type", "tlsPins"),
                (["host": "smtp.acme.test", "tlsPins": ["not a digest"]], "invalid_tls_pin", "tlsPins"),
                // The base64 of 20 bytes (a SHA-1 digest), not 32.
                (["host": "smtp.acme.test", "tlsPins": ["3q2+7wAAAAAAAAAAAAAAAAAAAAA="]], "invalid_tls_pin", "tlsPins"),
                (["host": "smtp.acme.test", "tlsPins": (0..<11).map { _ in Data(repeating: 1, count: 32).base64EncodedString() }], "invalid_tls_pin", "tlsPins"),
                (["host": "127.0.0.1", "security": "none", "tlsPins": [Data(count: 32).base64EncodedString()]], "pins_without_tls", "tlsPins"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/email-servers", key: workspace.key, json: body.merging(["name": "S"]) { $1 })
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            let loopback = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "Local", "host": "127.0.0.1", "security": "none"])
            #expect(loopback.status == .created && loopback.json["port"] as? Int == 25)
        }
    }

    @Test("Key pins are stored normalised, listed with the server, changed and removed, and audited by name", arguments: TestBackend.all)
    func pins(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let current = Data((0..<32).map { UInt8($0) }).base64EncodedString()
            let next = Data((0..<32).map { UInt8(255 - $0) }).base64EncodedString()
            let created = try await api.post("/v1/email-servers", key: workspace.key, json: [
                "name": "Pinned", "host": "smtp.acme.test", "tlsPins": [" \(current) ", "sha256/\(next)", current],
            ])
            #expect(created.status == .created, "\(created.body)")
            #expect(created.json["tlsPins"] as? [String] == [current, next], "trimmed, prefix dropped, repeats removed")
            let id = try #require(created.json["id"] as? String)
            #expect(try await api.get("/v1/email-servers/\(id)", key: workspace.key).json["tlsPins"] as? [String] == [current, next])
            #expect(try await tidings.emailServers.get(workspaceId: workspace.id, id: id).tlsPins == [current, next])

            // Rotation: the old key dropped once the server uses the new one.
            let rotated = try await api.request(.patch, "/v1/email-servers/\(id)", key: workspace.key, json: ["tlsPins": [next]])
            #expect(rotated.json["tlsPins"] as? [String] == [next])
            let renamed = try await api.request(.patch, "/v1/email-servers/\(id)", key: workspace.key, json: ["name": "Still pinned"])
            #expect(renamed.json["tlsPins"] as? [String] == [next], "a change that leaves the pins out keeps them")
            let none = try await api.request(.patch, "/v1/email-servers/\(id)", key: workspace.key, json: ["host": "127.0.0.1", "security": "none"])
            #expect(none.errorCode == "pins_without_tls" && none.errorField == "tlsPins", "\(none.body)")
            let cleared = try await api.request(.patch, "/v1/email-servers/\(id)", key: workspace.key, json: ["tlsPins": NSNull()])
            #expect(cleared.json["tlsPins"] as? [String] == [])
            let unpinned = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "Plain", "preset": "postmark"])
            #expect(unpinned.json["tlsPins"] as? [String] == [])

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "email_server.updated"), cursor: nil, limit: 20, oldestFirst: true)
            #expect(audited.items.map { "\($0.change.summary)" }.filter { $0.contains("tlsPins") }.count == 2)
        }
    }

    @Test("Servers are admin-only and invisible to other workspaces", arguments: TestBackend.all)
    func separation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let owner = try await tidings.makeWorkspace(name: "Owner")
            let other = try await tidings.makeWorkspace(name: "Other")
            let created = try await api.post("/v1/email-servers", key: owner.key, json: ["name": "S", "preset": "postmark"])
            let id = try #require(created.json["id"] as? String)
            #expect(try await api.get("/v1/email-servers/\(id)", key: other.key).status == .notFound)
            #expect(try await api.request(.patch, "/v1/email-servers/\(id)", key: other.key, json: ["name": "x"]).status == .notFound)
            #expect(try await api.delete("/v1/email-servers/\(id)", key: other.key).status == .notFound)
            #expect(try await api.get("/v1/email-servers", key: other.key).data.isEmpty)
            let sender = try await api.post("/v1/api-keys", key: owner.key, json: ["name": "s", "scopes": ["messages:send"]])
            #expect(try await api.get("/v1/email-servers", key: try #require(sender.json["secret"] as? String)).errorCode == "insufficient_scope")
        }
    }
}
