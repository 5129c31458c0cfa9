import Foundation
import Testing

/// Exactly-once automations, tested as an operator would break them: `tidings serve` is
/// killed with SIGKILL while contacts are being enrolled and sent to, again while they wait
/// between steps, and again while the later steps run; each time it is started again. Every
/// contact still gets each step's message exactly once (one Message-ID per step; SMTP may
/// repeat a message whose delivery was cut off, always with its Message-ID).
@Suite("Automation durability")
struct AutomationDurabilityTests {
    static let contacts = (0..<16).map { "member\($0)@example.com" }

    @Test("A sequence killed during and between its steps completes with one message per step", arguments: TestBackend.all)
    func sequenceSurvivesKills(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let scratch = try await Scratch.make(backend)
            // Short leases, so the killed process's claims are taken over quickly.
            let environment = ["TIDINGS_DELIVERY_LEASE_SECONDS": "3"]
            func start() async throws -> ServerProcess {
                let server = ServerProcess(dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL, extraEnvironment: environment)
                try await server.start()
                return server
            }
            var server = try await start()
            let created = try await server.command(["workspace", "create", "--name", "Kill", "--owner-email", "kill@docs.test", "--json"])
            let key = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])?["apiKey"])
            let auth = ["--header", "Authorization: Bearer \(key)", "--header", "Content-Type: application/json"]
            for step in 1...3 {
                let template = try await curl(["\(server.baseURL)/v1/templates"] + auth + [
                    "--data-raw", #"{"slug": "step\#(step)", "subject": "Step \#(step)", "from": "Club <club@acme.test>", "html": "<p>Step \#(step)</p>"}"#,
                ])
                #expect(template.status == 201)
            }
            let smtp = try await curl(["\(server.baseURL)/v1/email-servers"] + auth + [
                "--data-raw", #"{"name": "peer", "host": "127.0.0.1", "port": \#(peer.port), "security": "none"}"#,
            ])
            #expect(smtp.status == 201)
            let automation = try await curl(["\(server.baseURL)/v1/automations"] + auth + ["--data-raw", """
                {"name": "Club", "triggerEvent": "joined", "status": "enabled", "steps": [
                  {"type": "send", "templateSlug": "step1"},
                  {"type": "waitFor", "event": "confirmed", "timeout": {"amount": 1, "unit": "days"}},
                  {"type": "send", "templateSlug": "step2"},
                  {"type": "send", "templateSlug": "step3"}
                ]}
                """])
            #expect(automation.status == 201)
            let id = try #require(automation.json["id"] as? String)

            // 1. Killed while contacts are being enrolled and their first step sent.
            try await Self.post(Self.contacts, slug: "joined", base: server.baseURL, auth: auth)
            try await Self.waitFor(peer, atLeast: 1)
            await server.kill()
            server = try await start()
            try await Self.waitUntil(peer, every: Self.contacts, has: ["Step 1"])

            // 2. Killed while every contact waits for `confirmed`: the waits are rows, not memory.
            await server.kill()
            server = try await start()
            let confirmedBefore = peer.received().count
            try await Self.post(Self.contacts, slug: "confirmed", base: server.baseURL, auth: auth)

            // 3. Killed while the second and third steps run.
            try await Self.waitFor(peer, atLeast: confirmedBefore + 1)
            await server.kill()
            server = try await start()
            try await Self.waitUntil(peer, every: Self.contacts, has: ["Step 1", "Step 2", "Step 3"])
            // Time for anything that would come twice to come.
            try await Task.sleep(for: .seconds(4))

            let sent = Self.messages(peer)
            for email in Self.contacts {
                let ids = sent[email] ?? [:]
                #expect(ids.keys.sorted() == ["Step 1", "Step 2", "Step 3"], "\(email): \(ids)")
                for (subject, messageIds) in ids {
                    #expect(messageIds.count == 1, "\(email) got \(subject) as \(messageIds.count) different messages")
                }
            }
            let detail = try await curl(["\(server.baseURL)/v1/automations/\(id)", "--header", "Authorization: Bearer \(key)"])
            let stats = try #require(detail.json["stats"] as? [String: Any])
            #expect(stats["enrolled"] as? Int == Self.contacts.count, "\(stats)")
            #expect(stats["completed"] as? Int == Self.contacts.count, "\(stats)")
            #expect(stats["sent"] as? Int == 3 * Self.contacts.count, "\(stats)")
            for email in Self.contacts.prefix(4) {
                let history = try await curl(["\(server.baseURL)/v1/messages?contact=\(email)", "--header", "Authorization: Bearer \(key)"])
                #expect((history.json["data"] as? [Any])?.count == 3, "\(email): one message per step")
            }
            _ = try await server.stop()
            await scratch.remove()
        }
    }

    /// Records `slug` for each address, four clients at a time.
    static func post(_ emails: [String], slug: String, base: String, auth: [String]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: emails.count, by: 4).map({ Array(emails[$0..<min($0 + 4, emails.count)]) }) {
                group.addTask {
                    for email in chunk {
                        let reply = try await curl(["\(base)/v1/events"] + auth + ["--data-raw", #"{"email": "\#(email)", "slug": "\#(slug)"}"#])
                        #expect(reply.status < 300, "\(reply.json)")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func waitFor(_ peer: SMTPPeer, atLeast count: Int) async throws {
        let deadline = Date().addingTimeInterval(60)
        while peer.received().count < count, Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
    }

    static func waitUntil(_ peer: SMTPPeer, every emails: [String], has subjects: Set<String>) async throws {
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline {
            let sent = messages(peer)
            if emails.allSatisfy({ subjects.isSubset(of: Set((sent[$0] ?? [:]).keys)) }) { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("Not every contact got \(subjects.sorted()) in time: \(messages(peer))")
    }

    /// Recipient → subject → the distinct Message-IDs it arrived with.
    static func messages(_ peer: SMTPPeer) -> [String: [String: Set<String>]] {
        var result: [String: [String: Set<String>]] = [:]
        for message in peer.received() {
            let lines = message.text.components(separatedBy: "\r\n")
            guard let subject = lines.first(where: { $0.hasPrefix("Subject: ") })?.dropFirst(9),
                  let messageId = lines.first(where: { $0.hasPrefix("Message-ID: ") })?.dropFirst(12) else { continue }
            for recipient in message.recipients { result[recipient, default: [:]][String(subject), default: []].insert(String(messageId)) }
        }
        return result
    }
}
