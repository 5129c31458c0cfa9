import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices

@Suite("Templates API")
struct TemplatesAPITests {
    static var welcome: [String: Any] { [
        "slug": "welcome",
        "name": "Welcome",
        "subject": "Welcome, {{ contact.first_name }}{{^ contact.first_name }}friend{{/ contact.first_name }}!",
        "from": "{{ company }} Team <hello@acme.test>",
        "replyTo": "Support <support@acme.test>",
        "html": """
            <h1>Hi {{ contact.first_name }}</h1>
            <p>Your plan: {{ plan }}.</p>
            {{#items}}
            <p>{{ title }}</p>
            {{/items}}
            <p><a href="{{{ unsubscribe_link }}}">Unsubscribe</a></p>
            """,
    ] }

    @Test("A template is created, read, listed, versioned on update, previewed and deleted", arguments: TestBackend.all)
    func lifecycle(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let created = try await api.post("/v1/templates", key: workspace.key, json: Self.welcome)
            #expect(created.status == .created, "\(created.body)")
            #expect(created.json["version"] as? Int == 1)
            #expect(created.json["text"] is NSNull && created.json["replyTo"] as? String == "Support <support@acme.test>")
            #expect(created.json["variables"] as? [String] == ["contact.first_name", "company", "plan", "items", "title", "unsubscribe_link"])

            let fetched = try await api.get("/v1/templates/welcome", key: workspace.key)
            #expect(fetched.status == .ok)
            #expect(fetched.json["html"] as? String == Self.welcome["html"] as? String)
            #expect(try await api.get("/v1/templates", key: workspace.key).data.map { $0["slug"] as? String } == ["welcome"])

            let updated = try await api.request(.patch, "/v1/templates/welcome", key: workspace.key, json: [
                "subject": "Hello {{ contact.first_name }}", "text": "Hi {{ contact.first_name }}, plan {{ plan }}.",
            ])
            #expect(updated.status == .ok, "\(updated.body)")
            #expect(updated.json["version"] as? Int == 2)
            #expect(updated.json["name"] as? String == "Welcome", "fields not given keep their values")
            let first = try await api.get("/v1/templates/welcome?version=1", key: workspace.key)
            #expect(first.json["subject"] as? String == Self.welcome["subject"] as? String)
            #expect(first.json["version"] as? Int == 1)
            #expect(try await api.get("/v1/templates/welcome?version=3", key: workspace.key).errorCode == "template_version_not_found")

            // Preview: escaped HTML, raw unsubscribe link, the text the update set.
            let preview = try await api.post("/v1/templates/welcome/preview", key: workspace.key, json: [
                "variables": ["contact": ["first_name": "Ada"], "plan": "<Pro>", "company": "Acme", "items": [["title": "One"], ["title": "Two"]]],
            ])
            #expect(preview.status == .ok, "\(preview.body)")
            #expect(preview.json["subject"] as? String == "Hello Ada")
            #expect(preview.json["from"] as? String == "Acme Team <hello@acme.test>")
            #expect(preview.json["replyTo"] as? String == "Support <support@acme.test>")
            let html = try #require(preview.json["html"] as? String)
            #expect(html.contains("<p>Your plan: &lt;Pro&gt;.</p>\n<p>One</p>\n<p>Two</p>"))
            #expect(html.contains("href=\"\(TemplateService.previewUnsubscribeLink)\""))
            #expect(preview.json["text"] as? String == "Hi Ada, plan <Pro>.")
            // Version 1 had no text: it is derived from the HTML, links kept.
            let derived = try await api.post("/v1/templates/welcome/preview", key: workspace.key, json: ["version": 1, "variables": ["plan": "Pro"]])
            #expect(derived.json["subject"] as? String == "Welcome, friend!")
            #expect(derived.json["text"] as? String == "Hi\n\nYour plan: Pro.\n\nUnsubscribe (\(TemplateService.previewUnsubscribeLink))")

            #expect(try await api.delete("/v1/templates/welcome", key: workspace.key).status == .noContent)
            #expect(try await api.get("/v1/templates/welcome", key: workspace.key).errorCode == "template_not_found")
            #expect(try await api.delete("/v1/templates/welcome", key: workspace.key).status == .notFound)

            let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "template.*"), cursor: nil, limit: 10, oldestFirst: true)
            #expect(audited.items.map(\.change.action) == ["template.created", "template.updated", "template.deleted"])
        }
    }

    @Test("A syntax error is a 422 naming the field, line and column; nothing is saved", arguments: TestBackend.all)
    func syntaxErrors(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            var broken = Self.welcome
            broken["html"] = "<p>Hi</p>\n  {{#items}}<p>{{title}}</p>"
            let reply = try await api.post("/v1/templates", key: workspace.key, json: broken)
            #expect(reply.status == .unprocessableContent)
            #expect(reply.errorCode == "template_syntax")
            #expect(reply.errorField == "html")
            let message = (reply.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("line 2, column 3"), "\(message)")
            #expect(try await api.get("/v1/templates/welcome", key: workspace.key).status == .notFound)

            #expect(try await api.post("/v1/templates", key: workspace.key, json: Self.welcome).status == .created)
            let badUpdate = try await api.request(.patch, "/v1/templates/welcome", key: workspace.key, json: ["subject": "Hi {{ name"])
            #expect(badUpdate.errorCode == "template_syntax" && badUpdate.errorField == "subject")
            #expect(try await api.get("/v1/templates/welcome", key: workspace.key).json["version"] as? Int == 1)
        }
    }

    @Test("Bad input is a clear 4xx naming the problem", arguments: TestBackend.all)
    func validation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            #expect(try await api.post("/v1/templates", key: workspace.key, json: Self.welcome).status == .created)
            let cases: [([String: Any], String, String)] = [
                (["slug": "Welcome"], "invalid_slug", "slug"),
                (["slug": "-x"], "invalid_slug", "slug"),
                (["slug": "welcome"], "template_exists", "slug"),
                (["slug": "t2", "from": "Acme <{{ sender }}>"], "invalid_mailbox", "from"),
                (["slug": "t3", "from": "Acme <not-an-address>"], "invalid_email", "from"),
                (["slug": "t4", "html": "  "], "missing_field", "html"),
                (["slug": "t5", "colour": "red"], "unknown_field", "colour"),
                (["slug": "t7", "from": "Acme\r\nBcc: x@example.com <hello@acme.test>"], "invalid_mailbox", "from"),
                (["slug": "t6", "subject": String(repeating: "x", count: 999)], "too_long", "subject"),
            ]
            for (change, code, field) in cases {
                let body = Self.welcome.merging(change) { $1 }
                let reply = try await api.post("/v1/templates", key: workspace.key, json: body)
                #expect(reply.errorCode == code, "\(change): \(reply.body)")
                #expect(reply.errorField == field, "\(change)")
                #expect(reply.status == (code == "template_exists" ? .conflict : .unprocessableContent), "\(change)")
            }
            let renamed = try await api.request(.patch, "/v1/templates/welcome", key: workspace.key, json: ["slug": "other"])
            #expect(renamed.errorCode == "slug_immutable")
            #expect(try await api.get("/v1/templates?limit=101", key: workspace.key).errorCode == "invalid_limit")
            #expect(try await api.get("/v1/templates/welcome?version=0", key: workspace.key).errorCode == "invalid_version")
            #expect(try await api.get("/v1/templates/Not%20A%20Slug", key: workspace.key).errorCode == "template_not_found")
        }
    }

    @Test("Reading needs templates:read, changing needs templates:write; another workspace's template is 404", arguments: TestBackend.all)
    func scopesAndSeparation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let owner = try await tidings.makeWorkspace(name: "Owner")
            let other = try await tidings.makeWorkspace(name: "Other")
            #expect(try await api.post("/v1/templates", key: owner.key, json: Self.welcome).status == .created)
            let reader = try await api.post("/v1/api-keys", key: owner.key, json: ["name": "reader", "scopes": ["templates:read"]])
            let readerKey = try #require(reader.json["secret"] as? String)
            #expect(try await api.get("/v1/templates/welcome", key: readerKey).status == .ok)
            #expect(try await api.post("/v1/templates/welcome/preview", key: readerKey, json: [:] as [String: Any]).status == .ok)
            #expect(try await api.request(.patch, "/v1/templates/welcome", key: readerKey, json: ["name": "x"]).errorCode == "insufficient_scope")
            #expect(try await api.delete("/v1/templates/welcome", key: readerKey).errorCode == "insufficient_scope")

            #expect(try await api.get("/v1/templates", key: other.key).data.isEmpty)
            #expect(try await api.get("/v1/templates/welcome", key: other.key).status == .notFound)
            #expect(try await api.post("/v1/templates/welcome/preview", key: other.key, json: [:] as [String: Any]).status == .notFound)
            #expect(try await api.request(.patch, "/v1/templates/welcome", key: other.key, json: ["name": "x"]).status == .notFound)
            #expect(try await api.delete("/v1/templates/welcome", key: other.key).status == .notFound)
            // The same slug is free in another workspace.
            #expect(try await api.post("/v1/templates", key: other.key, json: Self.welcome).status == .created)
            #expect(try await api.get("/v1/templates/welcome", key: owner.key).json["version"] as? Int == 1)
        }
    }

    @Test("Content is sealed at rest, and a header field never carries a line break from a variable", arguments: TestBackend.all)
    func sealedAndHeaderSafe(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            var body = Self.welcome
            body["subject"] = "Quokka-subject-7781 {{ name }}"
            #expect(try await api.post("/v1/templates", key: workspace.key, json: body).status == .created)
            let stored = try await tidings.database.read { db in
                try await db.raw("SELECT content_sealed FROM template_versions").all().map { try $0.decode(column: "content_sealed", as: String.self) }
            }
            #expect(stored.count == 1)
            #expect(!stored[0].contains("Quokka-subject-7781") && !stored[0].contains("hello@acme.test"))

            let preview = try await api.post("/v1/templates/welcome/preview", key: workspace.key, json: [
                "variables": ["name": "Ada\r\nBcc: victim@example.com", "company": "Evil\nInc"],
            ])
            let subject = try #require(preview.json["subject"] as? String)
            let from = try #require(preview.json["from"] as? String)
            #expect(!subject.contains("\r") && !subject.contains("\n") && !from.contains("\n"))
            #expect(subject == "Quokka-subject-7781 Ada  Bcc: victim@example.com")
        }
    }

    @Test("A template may name one of the workspace's email servers; deleting the server falls back to the default", arguments: TestBackend.all)
    func emailServer(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let other = try await tidings.makeWorkspace(name: "Other")
            let server = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "Relay", "preset": "postmark"])
            let serverId = try #require(server.json["id"] as? String)
            let foreign = try await api.post("/v1/email-servers", key: other.key, json: ["name": "Theirs", "preset": "brevo"])
            let foreignId = try #require(foreign.json["id"] as? String)

            var body = Self.welcome
            body["emailServerId"] = foreignId
            let refused = try await api.post("/v1/templates", key: workspace.key, json: body)
            #expect(refused.errorCode == "email_server_not_found" && refused.errorField == "emailServerId")
            body["emailServerId"] = serverId
            let created = try await api.post("/v1/templates", key: workspace.key, json: body)
            #expect(created.json["emailServerId"] as? String == serverId)
            let kept = try await api.request(.patch, "/v1/templates/welcome", key: workspace.key, json: ["subject": "Hi"])
            #expect(kept.json["emailServerId"] as? String == serverId, "an update that does not name it keeps it")

            #expect(try await api.delete("/v1/email-servers/\(serverId)", key: workspace.key).status == .noContent)
            #expect(try await api.get("/v1/templates/welcome", key: workspace.key).json["emailServerId"] is NSNull)
        }
    }
}
