import Foundation
import HTTPTypes
import Testing
import TidingsApp
import TidingsDomain

/// `/v1/messages` end to end: the API accepts, the queue holds, the worker renders, signs and
/// delivers to a real SMTP server (aiosmtpd), and the timeline tells what happened.
@Suite("Messages API")
struct MessagesAPITests {
    /// A workspace with a template `welcome`, the sending domain acme.test (DKIM keys) and an
    /// email server pointing at `peer`.
    struct Setup: Sendable {
        var workspace: TestWorkspace
        var dnsRecords: [String: String]
        var serverId: String
    }

    static func setUp(_ api: TestClient, _ tidings: Tidings, peer: SMTPPeer, security: String = "none", extra: [String: Any] = [:]) async throws -> Setup {
        let workspace = try await tidings.makeWorkspace()
        let template = try await api.post("/v1/templates", key: workspace.key, json: [
            "slug": "welcome", "name": "Welcome", "subject": "Hi {{ name }}{{^ name }}there{{/ name }}, order {{ order.id }}",
            "from": "Acme <hello@acme.test>",
            "html": "<p>Hello {{ name }} ({{ contact.plan }}), see <a href=\"https://acme.test/o/{{ order.id }}\">your order</a>.</p>",
        ])
        #expect(template.status == .created, "\(template.body)")
        let domain = try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.test"])
        #expect(domain.status == .created, "\(domain.body)")
        var records: [String: String] = [:]
        for record in domain.json["dnsRecords"] as? [[String: String]] ?? [] { records[record["name"]!] = record["value"]! }
        var serverBody: [String: Any] = ["name": "Test relay", "host": "127.0.0.1", "port": peer.port, "security": security]
        serverBody.merge(extra) { $1 }
        let server = try await api.post("/v1/email-servers", key: workspace.key, json: serverBody)
        #expect(server.status == .created, "\(server.body)")
        return Setup(workspace: workspace, dnsRecords: records, serverId: server.json["id"] as? String ?? "")
    }

    static func status(of id: String, _ api: TestClient, key: String) async throws -> String? {
        try await api.get("/v1/messages/\(id)", key: key).json["status"] as? String
    }

    @Test("A message is accepted (202), delivered with DKIM that dkimpy verifies, and its timeline and the contact's history show it", arguments: TestBackend.all)
    func sendAndDeliver(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await Self.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                _ = try await api.post("/v1/contacts", key: key, json: ["email": "ada@example.com", "plan": "pro"])
                let pdf = Data("%PDF-1.4 invoice".utf8).base64EncodedString()
                let accepted = try await api.post("/v1/messages", key: key, json: [
                    "rcpt": "Ada@Example.com", "templateSlug": "welcome",
                    "variables": ["name": "Ada <script>", "order": ["id": "A-17"]],
                    "cc": ["billing@example.com"], "bcc": ["audit@example.net"],
                    "headers": ["X-Campaign": "onboarding", "List-Unsubscribe": "<https://acme.test/u/1>"],
                    "metadata": ["orderId": "A-17"],
                    "attachments": [["content": pdf, "filename": "invoice.pdf", "contentType": "application/pdf"]],
                ])
                #expect(accepted.status == .accepted, "\(accepted.body)")
                #expect(accepted.json["status"] as? String == "queued")
                let id = try #require(accepted.json["id"] as? String)

                #expect(try await tidings.deliveries.drain() == 1)
                let message = try await api.get("/v1/messages/\(id)", key: key)
                #expect(message.json["status"] as? String == "delivered", "\(message.body)")
                #expect(message.json["rcpt"] as? String == "ada@example.com" && message.json["templateVersion"] as? Int == 1)
                #expect(message.json["attempts"] as? Int == 1)
                #expect(message.json["tlsVerified"] is NSNull && message.json["tlsVersion"] is NSNull, "no TLS to a plain loopback server")
                let timeline = try #require(message.json["timeline"] as? [[String: Any]])
                #expect(timeline.map { $0["status"] as? String } == ["queued", "sending", "delivered"])
                let replies = try #require(timeline.last?["replies"] as? [String: String])
                #expect(replies["ada@example.com"]?.hasPrefix("250 2.0.0 Ok: queued as") == true, "\(replies)")
                #expect(Set(replies.keys) == ["ada@example.com", "billing@example.com", "audit@example.net"])
                #expect((message.json["attachments"] as? [[String: Any]])?.first?["size"] as? Int == 16)

                let received = try #require(peer.received().first)
                #expect(Set(received.recipients) == ["ada@example.com", "billing@example.com", "audit@example.net"])
                #expect(received.mailFrom == "hello@acme.test")
                let text = received.text
                #expect(text.contains("Message-ID: \(message.json["messageId"] as? String ?? "?")\r\n"))
                let subject = text.components(separatedBy: "\r\n").first { $0.hasPrefix("Subject:") }
                #expect(subject == "Subject: Hi Ada <script>, order A-17", "the subject is not HTML-escaped")
                // Quoted-printable undone enough to read the parts.
                let body = text.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=3D", with: "=")
                #expect(body.contains("Hello Ada &lt;script&gt; (pro)"), "the HTML is escaped, and contact attributes render")
                #expect(body.contains("https://acme.test/o/A-17"), "the text part keeps the link")
                #expect(text.contains("X-Campaign: onboarding\r\n") && text.contains("Cc: billing@example.com\r\n"))
                #expect(!text.contains("audit@example.net"), "bcc stays out of the headers")
                #expect(text.contains("filename=\"invoice.pdf\"") || text.contains("filename=invoice.pdf"))
                let verdicts = try await dkimVerify(received.bytes, records: setup.dnsRecords)
                #expect(verdicts == [true, true], "both signatures (RSA and Ed25519) verify: \(verdicts)")

                // The contact was matched case-insensitively; its history lists the message.
                let history = try await api.get("/v1/messages?contact=ada@example.com", key: key)
                #expect(history.data.map { $0["id"] as? String } == [id])
                // Sending to a new address creates the contact.
                let second = try await api.post("/v1/messages", key: key, json: ["rcpt": "new@example.org", "templateSlug": "welcome"])
                #expect(second.status == .accepted)
                #expect(try await api.get("/v1/contacts/new@example.org", key: key).status == .ok)
                try await tidings.deliveries.drain()
                #expect(peer.received().last?.text.contains("Subject: Hi there, order\r\n") == true, "the inverted section is the fallback")
            }
        }
    }

    @Test("Bad input is a 4xx naming the field; without an email server nothing is queued (409)", arguments: TestBackend.all)
    func validation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            _ = try await api.post("/v1/templates", key: workspace.key, json: ["slug": "t", "subject": "s", "from": "a@acme.test", "html": "<p>x</p>"])
            let noServer = try await api.post("/v1/messages", key: workspace.key, json: ["rcpt": "a@example.com", "templateSlug": "t"])
            #expect(noServer.status == .conflict && noServer.errorCode == "no_email_server")
            #expect(try await api.get("/v1/messages", key: workspace.key).data.isEmpty)
            #expect(try await api.get("/v1/contacts/a@example.com", key: workspace.key).status == .notFound, "nothing was stored")

            _ = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "local", "host": "127.0.0.1", "port": 2525, "security": "none"])
            let cases: [([String: Any], String, String)] = [
                (["templateSlug": "t"], "missing_field", "rcpt"),
                (["rcpt": "not an address", "templateSlug": "t"], "invalid_email", "rcpt"),
                (["rcpt": "a@example.com", "templateSlug": "nope"], "unknown_template", "templateSlug"),
                (["rcpt": "a@example.com", "templateSlug": "t", "headers": ["Bcc": "x@example.com"]], "header_not_allowed", "headers"),
                (["rcpt": "a@example.com", "templateSlug": "t", "headers": ["X-Note": "a\r\nBcc: x@example.com"]], "invalid_header", "headers"),
                (["rcpt": "a@example.com", "templateSlug": "t", "attachments": [["content": "***", "filename": "a.txt"]]], "invalid_attachment", "attachments[0].content"),
                (["rcpt": "a@example.com", "templateSlug": "t", "attachments": [["content": "YQ==", "filename": "../a"]]], "invalid_attachment", "attachments[0].filename"),
                (["rcpt": "a@example.com", "templateSlug": "t", "cc": ["b@example.com", "bad"]], "invalid_email", "cc[1]"),
                (["rcpt": "a@example.com", "templateSlug": "t", "sendAt": "2099-01-01T00:00:00Z"], "invalid_timestamp", "sendAt"),
                (["rcpt": "a@example.com", "templateSlug": "t", "colour": "red"], "unknown_field", "colour"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/messages", key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            let batch = try await api.post("/v1/messages/batch", key: workspace.key, json: ["messages": [
                ["rcpt": "a@example.com", "templateSlug": "t"], ["rcpt": "bad", "templateSlug": "t"], "not an object",
            ]])
            #expect(batch.status == .ok, "\(batch.body)")
            let results = try #require(batch.json["results"] as? [[String: Any]])
            #expect(results.count == 3 && results[0]["status"] as? String == "queued")
            #expect((results[1]["error"] as? [String: Any])?["field"] as? String == "messages[1].rcpt")
            #expect(batch.json["accepted"] as? Int == 1 && batch.json["rejected"] as? Int == 2)
            let tooMany = try await api.post("/v1/messages/batch", key: workspace.key, json: ["messages": Array(repeating: ["rcpt": "a@example.com", "templateSlug": "t"], count: 501)])
            #expect(tooMany.status == .contentTooLarge && tooMany.errorCode == "batch_too_large")
            // A key that may only read cannot send.
            let readOnly = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "reader", "scopes": ["messages:read"]])
            let readerKey = try #require(readOnly.json["secret"] as? String)
            #expect(try await api.post("/v1/messages", key: readerKey, json: ["rcpt": "a@example.com", "templateSlug": "t"]).status == .forbidden)
        }
    }

    @Test("An Idempotency-Key replays the first answer for the same body and refuses a different one", arguments: TestBackend.all)
    func idempotency(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await Self.setUp(api, tidings, peer: peer)
                let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "order-A-17"]
                let body: [String: Any] = ["rcpt": "ada@example.com", "templateSlug": "welcome", "variables": ["name": "Ada"]]
                let first = try await api.request(.post, "/v1/messages", key: setup.workspace.key, json: body, headers: headers)
                let again = try await api.request(.post, "/v1/messages", key: setup.workspace.key, json: body, headers: headers)
                #expect(first.status == .accepted && again.status == .accepted)
                #expect(first.json["id"] as? String == again.json["id"] as? String)
                let other = try await api.request(.post, "/v1/messages", key: setup.workspace.key, json: ["rcpt": "bob@example.com", "templateSlug": "welcome"], headers: headers)
                #expect(other.status == .conflict && other.errorCode == "idempotency_key_reused")
                #expect(try await tidings.deliveries.drain() == 1)
                #expect(peer.received().count == 1, "one message, not two")
            }
        }
    }

    @Test("4xx defers with backoff until the give-up time, then fails; 5.1.1 bounces and suppresses the contact", arguments: TestBackend.all)
    func deferralsAndBounces(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "451 4.7.1 Greylisted, try again", "--reply-for", "grey@example.com"]) { grey in
            try await withAPI(backend, clock: clock) { api, tidings in
                let setup = try await Self.setUp(api, tidings, peer: grey)
                let key = setup.workspace.key
                let id = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "grey@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                try await tidings.deliveries.drain()
                var message = try await api.get("/v1/messages/\(id)", key: key)
                #expect(message.json["status"] as? String == "deferred", "\(message.body)")
                let next = try #require((message.json["nextAttemptAt"] as? String).flatMap(Timestamp.parse))
                let wait = next.timeIntervalSince(clock.now)
                #expect(wait >= 48 && wait <= 72, "the first retry after about a minute: \(wait)")
                let deferred = try #require((message.json["timeline"] as? [[String: Any]])?.last)
                #expect((deferred["replies"] as? [String: String])?["grey@example.com"]?.contains("451 4.7.1 Greylisted") == true)
                #expect(try await tidings.deliveries.drain() == 0, "not due yet")
                clock.advance(by: wait + 1)
                #expect(try await tidings.deliveries.drain() == 1)
                message = try await api.get("/v1/messages/\(id)", key: key)
                #expect(message.json["attempts"] as? Int == 2 && message.json["status"] as? String == "deferred")
                // Cancelling a deferred message stops it.
                let other = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "grey@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                try await tidings.deliveries.drain()
                #expect(try await api.delete("/v1/messages/\(other)", key: key).json["status"] as? String == "cancelled")
                #expect(try await api.delete("/v1/messages/\(other)", key: key).errorCode == "not_cancellable")
                // After 72 hours the message fails.
                clock.advance(by: 73 * 3600)
                try await tidings.deliveries.drain()
                message = try await api.get("/v1/messages/\(id)", key: key)
                #expect(message.json["status"] as? String == "failed", "\(message.body)")
                #expect(try await Self.status(of: other, api, key: key) == "cancelled")
            }
        }
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "550 5.1.1 <gone@example.com>: user unknown"]) { peer in
            try await withAPI(backend) { api, tidings in
                let setup = try await Self.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let first = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "gone@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                try await tidings.deliveries.drain()
                #expect(try await Self.status(of: first, api, key: key) == "bounced")
                #expect(try await api.get("/v1/contacts/gone@example.com", key: key).json["status"] as? String == "bounced")
                let suppressions = try await api.get("/v1/suppressions", key: key)
                #expect(suppressions.data.map { $0["email"] as? String } == ["gone@example.com"])
                #expect((suppressions.data.first?["reply"] as? String)?.hasPrefix("550 5.1.1") == true)
                // Later sends are blocked and recorded as suppressed; nothing reaches the server.
                let blocked = try await api.post("/v1/messages", key: key, json: ["rcpt": "gone@example.com", "templateSlug": "welcome"])
                #expect(blocked.status == .accepted && blocked.json["status"] as? String == "suppressed")
                #expect(try await tidings.deliveries.drain() == 0)
                #expect(peer.commands().filter { $0.hasPrefix("RCPT") }.count == 1)
                // Clearing the bounce sends again.
                #expect(try await api.delete("/v1/suppressions/gone@example.com", key: key).status == .noContent)
                #expect(try await api.delete("/v1/suppressions/gone@example.com", key: key).status == .notFound)
                #expect(try await api.get("/v1/suppressions", key: key).data.isEmpty)
                let again = try await api.post("/v1/messages", key: key, json: ["rcpt": "gone@example.com", "templateSlug": "welcome"])
                #expect(again.json["status"] as? String == "queued")
            }
        }
    }

    @Test("A scheduled message waits for its time and can be cancelled until then; lists filter and page", arguments: TestBackend.all)
    func scheduledAndListed(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend, clock: clock) { api, tidings in
                let setup = try await Self.setUp(api, tidings, peer: peer)
                let key = setup.workspace.key
                let later = Timestamp.format(clock.now.addingTimeInterval(3600))
                let scheduled = try await api.post("/v1/messages", key: key, json: ["rcpt": "ada@example.com", "templateSlug": "welcome", "sendAt": later])
                #expect(scheduled.json["status"] as? String == "scheduled")
                let kept = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "bob@example.com", "templateSlug": "welcome", "sendAt": later]).json["id"] as? String)
                #expect(try await tidings.deliveries.drain() == 0)
                let cancelled = try await api.delete("/v1/messages/\(scheduled.json["id"] as! String)", key: key)
                #expect(cancelled.status == .ok && cancelled.json["status"] as? String == "cancelled")
                clock.advance(by: 3601)
                #expect(try await tidings.deliveries.drain() == 1)
                #expect(try await Self.status(of: kept, api, key: key) == "delivered")
                #expect(peer.received().map(\.recipients) == [["bob@example.com"]])

                for index in 0..<3 { _ = try await api.post("/v1/messages", key: key, json: ["rcpt": "c\(index)@example.com", "templateSlug": "welcome"]) }
                let page = try await api.get("/v1/messages?status=queued&limit=2", key: key)
                #expect(page.data.count == 2 && page.json["nextCursor"] as? String != nil)
                let rest = try await api.get("/v1/messages?status=queued&limit=2&cursor=\(page.json["nextCursor"] as! String)", key: key)
                #expect(rest.data.count == 1 && rest.json["nextCursor"] is NSNull)
                #expect(try await api.get("/v1/messages?template=welcome&status=cancelled", key: key).data.count == 1)
                #expect(try await api.get("/v1/messages?status=nope", key: key).errorCode == "invalid_status")
                #expect(try await api.get("/v1/messages/msg_unknown", key: key).status == .notFound)
                // Another workspace sees none of it.
                let other = try await tidings.makeWorkspace(name: "Other")
                #expect(try await api.get("/v1/messages/\(kept)", key: other.key).status == .notFound)
                #expect(try await api.get("/v1/messages", key: other.key).data.isEmpty)
            }
        }
    }

    @Test("A pinned server: the right key delivers with TLS 1.3, cipher, verification and pin in the timeline; a wrong one defers, naming the mismatch", arguments: TestBackend.all)
    func pinnedServer(backend: TestBackend) async throws {
        let right = try await SMTPPeer.keyPin(of: "server")
        let wrong = try await SMTPPeer.keyPin(of: "other")
        try await SMTPPeer.with(["--mode", "starttls"]) { peer in
            try await withAPI(backend, flags: [TidingsConfiguration.Key.smtpCaFile: SMTPPeer.caFile]) { api, tidings in
                // Both keys listed: the state while a server's key is being rolled over.
                let setup = try await Self.setUp(api, tidings, peer: peer, security: "starttls", extra: ["tlsPins": [wrong, right]])
                let key = setup.workspace.key
                let first = try await api.post("/v1/messages", key: key, json: ["rcpt": "pin@example.com", "templateSlug": "welcome"])
                let firstId = try #require(first.json["id"] as? String)
                #expect(try await tidings.deliveries.drain() == 1)
                let delivered = try await api.get("/v1/messages/\(firstId)", key: key)
                #expect(delivered.json["status"] as? String == "delivered", "\(delivered.body)")
                #expect(delivered.json["tlsVersion"] as? String == "TLSv1.3")
                #expect((delivered.json["tlsCipher"] as? String)?.hasPrefix("TLS_AES_") == true, "\(delivered.body)")
                #expect(delivered.json["tlsVerified"] as? Bool == true)
                let step = try #require((delivered.json["timeline"] as? [[String: Any]])?.last)
                #expect(step["status"] as? String == "delivered")
                #expect(step["tlsVersion"] as? String == "TLSv1.3" && step["tlsCipher"] as? String == delivered.json["tlsCipher"] as? String)
                #expect(step["tlsVerified"] as? Bool == true && step["tlsPin"] as? String == "matched", "\(step)")
                #expect(peer.received().count == 1 && peer.received().first?.tls == true)

                // The server's key no longer among the pins: the attempt ends at the handshake.
                let changed = try await api.request(.patch, "/v1/email-servers/\(setup.serverId)", key: key, json: ["tlsPins": [wrong]])
                #expect(changed.status == .ok, "\(changed.body)")
                let second = try await api.post("/v1/messages", key: key, json: ["rcpt": "pin@example.com", "templateSlug": "welcome"])
                let secondId = try #require(second.json["id"] as? String)
                #expect(try await tidings.deliveries.drain() == 1)
                let deferred = try await api.get("/v1/messages/\(secondId)", key: key)
                #expect(deferred.json["status"] as? String == "deferred", "\(deferred.body)")
                let last = try #require((deferred.json["timeline"] as? [[String: Any]])?.last)
                let reason = try #require((last["replies"] as? [String: String])?["pin@example.com"])
                #expect(reason.hasPrefix("TLS certificate pin mismatch") && reason.contains(right), "\(reason)")
                #expect(deferred.json["tlsVerified"] is NSNull, "no TLS connection carried this message")
                #expect(peer.received().count == 1, "nothing was sent to the server whose key matched no pin")

                // The server test says the same, and shows the key to pin.
                let tested = try await api.post("/v1/email-servers/\(setup.serverId)/test", key: key, json: [String: Any]())
                #expect(tested.json["ok"] as? Bool == false && tested.json["pin"] as? String == "mismatched", "\(tested.body)")
                let tls = try #require(tested.json["tls"] as? [String: Any])
                #expect(tls["serverKey"] as? String == right && tls["verified"] as? Bool == true && tls["version"] as? String == "TLSv1.3")
                let failed = try #require((tested.json["steps"] as? [[String: Any]])?.first { $0["ok"] as? Bool == false })
                #expect(failed["step"] as? String == "TLS handshake" && (failed["detail"] as? String)?.contains("pin mismatch") == true, "\(failed)")
                _ = try await api.request(.patch, "/v1/email-servers/\(setup.serverId)", key: key, json: ["tlsPins": [right]])
                let passed = try await api.post("/v1/email-servers/\(setup.serverId)/test", key: key, json: [String: Any]())
                #expect(passed.json["ok"] as? Bool == true && passed.json["pin"] as? String == "matched", "\(passed.body)")
                _ = try await api.request(.patch, "/v1/email-servers/\(setup.serverId)", key: key, json: ["tlsPins": []])
                let unpinned = try await api.post("/v1/email-servers/\(setup.serverId)/test", key: key, json: [String: Any]())
                #expect(unpinned.json["pin"] as? String == "not_configured" && (unpinned.json["tls"] as? [String: Any])?["serverKey"] as? String == right)

                let audited = try await tidings.audit.list(workspaceId: setup.workspace.id, filter: .init(action: "email_server.tested"), cursor: nil, limit: 10, oldestFirst: true)
                #expect(audited.items.map { $0.change.summary["pin"] } == [.string("mismatched"), .string("matched"), .string("not_configured")])
            }
        }
    }

    @Test("POST /v1/email-servers/{id}/test reports each step: TLS and AUTH succeed, or the step that failed", arguments: [TestBackend.sqlite])
    func serverTest(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "starttls-auth", "--user", "relay", "--password", "Right-pass-1"]) { peer in
            try await withAPI(backend, flags: [TidingsConfiguration.Key.smtpCaFile: SMTPPeer.caFile]) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let good = try await api.post("/v1/email-servers", key: workspace.key, json: [
                    "name": "relay", "host": "localhost", "port": peer.port, "security": "starttls", "username": "relay", "password": "Right-pass-1",
                ])
                let result = try await api.post("/v1/email-servers/\(good.json["id"] as! String)/test", key: workspace.key, json: [String: Any]())
                #expect(result.status == .ok && result.json["ok"] as? Bool == true, "\(result.body)")
                let steps = try #require(result.json["steps"] as? [[String: Any]])
                #expect(steps.map { $0["step"] as? String } == ["connect", "greeting", "EHLO", "STARTTLS", "TLS handshake", "EHLO", "AUTH", "QUIT"])
                let tls = try #require(result.json["tls"] as? [String: Any])
                #expect(tls["version"] as? String == "TLSv1.3" && tls["verified"] as? Bool == true, "\(result.body)")
                #expect(result.json["pin"] as? String == "not_configured")
                #expect(!result.body.contains("Right-pass-1"))

                let bad = try await api.post("/v1/email-servers", key: workspace.key, json: [
                    "name": "wrong", "host": "localhost", "port": peer.port, "security": "starttls", "username": "relay", "password": "Wrong-pass-2",
                ])
                let failed = try await api.post("/v1/email-servers/\(bad.json["id"] as! String)/test", key: workspace.key, json: [String: Any]())
                #expect(failed.status == .ok && failed.json["ok"] as? Bool == false)
                let last = try #require((failed.json["steps"] as? [[String: Any]])?.last(where: { $0["ok"] as? Bool == false }))
                #expect(last["step"] as? String == "AUTH" && (last["detail"] as? String)?.contains("535") == true, "\(failed.body)")
                #expect(peer.received().isEmpty, "a test sends no message")
            }
        }
    }
}
