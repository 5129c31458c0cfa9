import Foundation
import HTTPTypes
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain
import TidingsServices
import TidingsStorage

/// `/v1/webhooks` end to end: endpoints are managed through the API, events are queued in the
/// transaction of their change, and the worker delivers them to a real receiver
/// (`scripts/peers/webhook_receiver.py`) that checks every Standard Webhooks signature with
/// its own HMAC code. Retries, giving up and disabling run on the test clock.
@Suite("Webhooks API")
struct WebhooksAPITests {
    /// A development instance: plain `http://` to the loopback receiver is allowed.
    static let development = [TidingsConfiguration.Key.environment: "development"]

    static func create(_ api: TestClient, key: String, url: String, events: [String]) async throws -> (id: String, secret: String) {
        let reply = try await api.post("/v1/webhooks", key: key, json: ["url": url, "events": events])
        #expect(reply.status == .created, "\(reply.body)")
        return (try #require(reply.json["id"] as? String), try #require(reply.json["secret"] as? String))
    }

    /// Emits events as the features that own them do: inside a transaction, through the outbox.
    @discardableResult
    static func emit(_ tidings: Tidings, workspaceId: String, _ events: [WebhookEvent]) async throws -> Int {
        let vault = try await tidings.keyring.vault(for: workspaceId)
        let now = tidings.environment.now()
        return try await tidings.database.transaction { db in
            try await WebhookOutbox.emit(events, workspaceId: workspaceId, vault: vault, db: db, now: now)
        }
    }

    static func unsubscribed(_ email: String, at date: Date) -> WebhookEvent {
        WebhookEvent(.contactUnsubscribed, data: ["email": .string(email), "topics": .array([.string("news")])], at: date)
    }

    static func deliveries(_ api: TestClient, key: String, webhook: String, query: String = "") async throws -> [[String: Any]] {
        try await api.get("/v1/webhooks/\(webhook)/deliveries\(query)", key: key).data
    }

    // MARK: Managing endpoints

    @Test("An endpoint is created with its secret shown once, changed, listed and deleted; bad input is a 422 naming the field", arguments: TestBackend.all)
    func manageEndpoints(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let key = workspace.key
            let created = try await api.post("/v1/webhooks", key: key, json: [
                "url": "https://93.184.215.14/hooks?token=Secret-token-4471", "events": ["message.bounced", "message.delivered", "message.bounced"],
                "description": "  CRM sync  ",
            ])
            #expect(created.status == .created, "\(created.body)")
            let id = try #require(created.json["id"] as? String)
            let secret = try #require(created.json["secret"] as? String)
            #expect(secret.hasPrefix("whsec_") && Data(base64Encoded: String(secret.dropFirst(6)))?.count == 32)
            #expect(created.json["events"] as? [String] == ["message.bounced", "message.delivered"], "sorted, duplicates folded")
            #expect(created.json["host"] as? String == "93.184.215.14" && created.json["status"] as? String == "enabled")
            #expect(created.json["description"] as? String == "CRM sync" && created.json["previousSecretExpiresAt"] is NSNull)

            let read = try await api.get("/v1/webhooks/\(id)", key: key)
            #expect(read.status == .ok && read.json["secret"] == nil, "the secret is shown only once")
            #expect(read.json["url"] as? String == "https://93.184.215.14/hooks?token=Secret-token-4471")
            #expect(try await api.get("/v1/webhooks", key: key).data.map { $0["id"] as? String } == [id])

            let changed = try await api.request(.patch, "/v1/webhooks/\(id)", key: key, json: ["events": ["contact.unsubscribed"], "description": NSNull()])
            #expect(changed.status == .ok && changed.json["events"] as? [String] == ["contact.unsubscribed"] && changed.json["description"] is NSNull)

            let unknown = try await api.request(.patch, "/v1/webhooks/\(id)", key: key, json: ["events": ["message.delivered", "message.exploded"]])
            #expect(unknown.status == .unprocessableContent && unknown.errorCode == "unknown_event_type" && unknown.errorField == "events[1]")
            #expect(unknown.body.contains("message.exploded"), "the refusal names the unknown type")
            let cases: [([String: Any], String, String)] = [
                (["events": ["message.delivered"]], "missing_field", "url"),
                (["url": "https://93.184.215.14/"], "missing_field", "events"),
                (["url": "https://93.184.215.14/", "events": []], "invalid_events", "events"),
                (["url": "https://93.184.215.14/", "events": ["message.delivered"], "colour": "red"], "unknown_field", "colour"),
                (["url": "https://93.184.215.14/", "events": ["message.delivered"], "description": String(repeating: "x", count: 501)], "invalid_description", "description"),
                (["url": "not a url", "events": ["message.delivered"]], "invalid_url", "url"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.post("/v1/webhooks", key: key, json: body)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }

            // The delivery log pages like other lists, and checks its parameters.
            #expect(try await api.get("/v1/webhooks/\(id)/deliveries", key: key).json["nextCursor"] is NSNull)
            #expect(try await api.get("/v1/webhooks/\(id)/deliveries?status=lost", key: key).errorField == "status")
            #expect(try await api.get("/v1/webhooks/\(id)/deliveries?limit=0", key: key).errorField == "limit")
            #expect(try await api.get("/v1/webhooks/\(id)/deliveries?cursor=bm9wZQ", key: key).errorField == "cursor")
            // Enabling an enabled endpoint changes nothing.
            #expect(try await api.request(.post, "/v1/webhooks/\(id)/enable", key: key).json["status"] as? String == "enabled")

            // Another workspace sees none of it; a key without `admin` may not manage webhooks.
            let other = try await tidings.makeWorkspace(name: "Other")
            for (method, path) in [(HTTPRequest.Method.get, ""), (.delete, ""), (.post, "/rotate-secret"), (.post, "/enable"), (.get, "/deliveries")] {
                #expect(try await api.request(method, "/v1/webhooks/\(id)\(path)", key: other.key).status == .notFound, "\(method) \(path)")
            }
            #expect(try await api.request(.patch, "/v1/webhooks/\(id)", key: other.key, json: ["description": "x"]).status == .notFound)
            #expect(try await api.get("/v1/webhooks", key: other.key).data.isEmpty)
            let sender = try await api.post("/v1/api-keys", key: key, json: ["name": "sender", "scopes": ["messages:send"]])
            let senderKey = try #require(sender.json["secret"] as? String)
            #expect(try await api.get("/v1/webhooks", key: senderKey).status == .forbidden)
            #expect(try await api.post("/v1/webhooks", key: senderKey, json: ["url": "https://93.184.215.14/", "events": ["message.delivered"]]).status == .forbidden)

            #expect(try await api.delete("/v1/webhooks/\(id)", key: key).status == .noContent)
            #expect(try await api.get("/v1/webhooks/\(id)", key: key).status == .notFound)

            // Every change is audited, naming the host and never the URL's token.
            let audit = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "webhook.*"), cursor: nil, limit: 50)
            #expect(Array(audit.items.map(\.change.action).reversed()) == ["webhook.created", "webhook.updated", "webhook.deleted"])
            for event in audit.items {
                #expect(event.change.summary["host"] == .string("93.184.215.14"))
                #expect(!JSONValue.object(event.change.summary).serializedString.contains("Secret-token"))
            }
        }
    }

    @Test("In production, targets on loopback, private, link-local or otherwise inner addresses are refused with a 422 naming url, by address and by DNS", arguments: TestBackend.all)
    func innerTargetsAreRefusedInProduction(backend: TestBackend) async throws {
        try await DNSServer.with { dns in
            var zone = DNSZone()
            zone.host("public.hooks.test", "93.184.215.14")
            zone.host("private.hooks.test", "10.1.2.3")
            zone.host("mixed.hooks.test", "93.184.215.14", "192.168.7.7")
            zone.host("metadata.hooks.test", "169.254.169.254")
            zone.host("v6.hooks.test", "fd00::1")
            try await dns.serve(zone)
            let flags = [TidingsConfiguration.Key.dnsServer: dns.address, TidingsConfiguration.Key.dnsTimeout: "5"]
            try await withAPI(backend, flags: flags) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let refused = [
                    "http://127.0.0.1:8080/hooks", "https://127.0.0.1/hooks", "https://localhost/hooks", "https://[::1]/hooks",
                    "https://10.1.2.3/", "https://172.20.0.1/", "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data",
                    "https://100.64.0.1/", "https://0.0.0.0/", "https://[fd00::1]/", "https://[fe80::1]/", "https://[::ffff:192.168.0.1]/",
                    "https://[64:ff9b::a00:1]/", "https://224.0.0.1/", "https://2130706433/", "https://0x7f.1/", "https://127.1/",
                    "https://private.hooks.test/in", "https://mixed.hooks.test/in", "https://metadata.hooks.test/", "https://v6.hooks.test/",
                    "https://missing.hooks.test/in", "https://user:password@public.hooks.test/in", "ftp://public.hooks.test/",
                ]
                for url in refused {
                    let reply = try await api.post("/v1/webhooks", key: workspace.key, json: ["url": url, "events": ["message.delivered"]])
                    #expect(reply.status == .unprocessableContent && reply.errorCode == "invalid_url" && reply.errorField == "url", "\(url): \(reply.body)")
                }
                let named = try await api.post("/v1/webhooks", key: workspace.key, json: ["url": "https://private.hooks.test/in", "events": ["message.delivered"]])
                #expect(named.body.contains("10.1.2.3") && named.body.contains("private"), "the refusal says why: \(named.body)")

                let accepted = try await Self.create(api, key: workspace.key, url: "https://Public.Hooks.Test/in?token=abc", events: ["message.delivered"])
                let read = try await api.get("/v1/webhooks/\(accepted.id)", key: workspace.key)
                #expect(read.json["url"] as? String == "https://public.hooks.test/in?token=abc" && read.json["host"] as? String == "public.hooks.test")
                // A change of URL is held to the same rule.
                let moved = try await api.request(.patch, "/v1/webhooks/\(accepted.id)", key: workspace.key, json: ["url": "https://192.168.0.10/in"])
                #expect(moved.status == .unprocessableContent && moved.errorField == "url")
                #expect(try await api.get("/v1/webhooks/\(accepted.id)", key: workspace.key).json["host"] as? String == "public.hooks.test")
            }
        }
    }

    @Test("In development, plain http:// to loopback and private addresses are allowed", arguments: TestBackend.all)
    func developmentAllowsLocalTargets(backend: TestBackend) async throws {
        try await withAPI(backend, flags: Self.development) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            for url in ["http://127.0.0.1:9000/hooks", "http://localhost:9000/hooks", "https://10.1.2.3/hooks", "https://[::1]:8443/hooks"] {
                let reply = try await api.post("/v1/webhooks", key: workspace.key, json: ["url": url, "events": ["message.delivered"]])
                #expect(reply.status == .created, "\(url): \(reply.body)")
            }
            // Plain http:// elsewhere stays refused: only loopback may go unencrypted.
            let plain = try await api.post("/v1/webhooks", key: workspace.key, json: ["url": "http://10.1.2.3/hooks", "events": ["message.delivered"]])
            #expect(plain.status == .unprocessableContent && plain.errorField == "url")
        }
    }

    // MARK: Signing and delivering

    @Test("A delivery is signed as Standard Webhooks says: an independent verifier accepts it and refuses it tampered; redirects and silence are failed attempts", arguments: TestBackend.all)
    func signedDelivery(backend: TestBackend) async throws {
        let clock = TestClock()
        var flags = Self.development
        flags[TidingsConfiguration.Key.webhookTimeoutSeconds] = "1"
        try await WebhookReceiver.with { receiver in
            try await withAPI(backend, clock: clock, flags: flags) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let hook = try await Self.create(api, key: workspace.key, url: "\(receiver.baseURL)/hooks?token=T1", events: ["contact.unsubscribed"])
                try receiver.trust([hook.secret])

                let happened = clock.now.addingTimeInterval(-2)
                #expect(try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: happened)]) == 1)
                #expect(try await Self.emit(tidings, workspaceId: workspace.id, [WebhookEvent(.messageOpened, data: [:], at: happened)]) == 0,
                        "nothing is queued for a type no endpoint subscribes to")
                #expect(try await tidings.webhookDeliveries.drain() == 1)

                let got = try #require(receiver.received().first)
                #expect(got.verified && got.answered == 200 && got.matched == [0], "the receiver's own HMAC accepts the signature")
                #expect(got.path == "/hooks?token=T1" && got.headers["content-type"] == "application/json")
                #expect(got.headers["webhook-timestamp"] == String(Int(clock.now.timeIntervalSince1970)))
                #expect(got.signatures.count == 1 && got.signatures[0].hasPrefix("v1,"))
                #expect(got.json["type"] as? String == "contact.unsubscribed" && got.json["timestamp"] as? String == Timestamp.format(happened))
                #expect(got.data["email"] as? String == "ada@example.com" && got.data["topics"] as? [String] == ["news"])

                let log = try await Self.deliveries(api, key: workspace.key, webhook: hook.id)
                #expect(log.count == 1)
                #expect(log[0]["id"] as? String == got.headers["webhook-id"], "webhook-id is the delivery's id")
                #expect(log[0]["status"] as? String == "succeeded" && log[0]["attempts"] as? Int == 1 && log[0]["responseStatus"] as? Int == 200)
                #expect(log[0]["eventType"] as? String == "contact.unsubscribed" && log[0]["durationMs"] is Int && log[0]["nextAttemptAt"] is NSNull)

                // The same request with one byte of the body changed, or another timestamp, is refused.
                let url = "\(receiver.baseURL)/hooks?token=T1"
                let headers = ["webhook-id", "webhook-timestamp", "webhook-signature"].flatMap { ["--header", "\($0): \(got.headers[$0] ?? "")"] }
                let tampered = got.body.replacingOccurrences(of: "ada@example.com", with: "eve@example.com")
                let forged = try await run("/usr/bin/curl", ["--silent", "--output", "/dev/null", "--write-out", "%{http_code}", url] + headers + ["--data-raw", tampered])
                #expect(forged.stdout == "401")
                let replayed = try await run("/usr/bin/curl", [
                    "--silent", "--output", "/dev/null", "--write-out", "%{http_code}", url, "--header", "webhook-id: \(got.headers["webhook-id"] ?? "")",
                    "--header", "webhook-timestamp: \(Int(clock.now.timeIntervalSince1970) + 300)", "--header", "webhook-signature: \(got.headers["webhook-signature"] ?? "")",
                    "--data-raw", got.body,
                ])
                #expect(replayed.stdout == "401")
                #expect(receiver.received().dropFirst().map(\.verified) == [false, false])

                // A redirect is not followed: the attempt failed, and is tried again later.
                try receiver.answer("redirect")
                clock.advance(by: 1)
                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("bo@example.com", at: clock.now)])
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                var latest = try #require(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).first)
                #expect(latest["status"] as? String == "pending" && latest["responseStatus"] as? Int == 302, "\(latest)")
                #expect((latest["error"] as? String)?.contains("redirects are not followed") == true)
                #expect(!receiver.received().contains { $0.path == "/elsewhere" })
                // No answer within the time limit (1 s here) is a failed attempt too.
                try receiver.answer("stall 3")
                clock.advance(by: 10)
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                latest = try #require(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).first)
                #expect(latest["attempts"] as? Int == 2 && latest["responseStatus"] is NSNull, "\(latest)")
                #expect((latest["error"] as? String)?.contains("No answer within 1 s") == true, "\(latest)")

                // Finished deliveries leave the log after 30 days; one still pending stays.
                clock.advance(by: 31 * 86400)
                #expect(try await tidings.webhooks.purgeDeliveryLog() == 1)
                #expect(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).map { $0["status"] as? String } == ["pending"])
            }
        }
    }

    @Test("An HTTPS receiver is reached at the address that was checked, with its certificate verified for the URL's name", arguments: TestBackend.all)
    func httpsDelivery(backend: TestBackend) async throws {
        var flags = Self.development
        flags[TidingsConfiguration.Key.webhookCaFile] = SMTPPeer.caFile
        try await WebhookReceiver.with(tls: true) { receiver in
            try await withAPI(backend, flags: flags) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let hook = try await Self.create(api, key: workspace.key, url: "\(receiver.baseURL)/tls", events: ["contact.unsubscribed"])
                try receiver.trust([hook.secret])
                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: Date())])
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                #expect(receiver.received().map(\.verified) == [true])
                #expect(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).first?["status"] as? String == "succeeded")
            }
        }
    }

    @Test("After a rotation both secrets sign for 24 hours, then only the new one", arguments: TestBackend.all)
    func rotationOverlap(backend: TestBackend) async throws {
        let clock = TestClock()
        try await WebhookReceiver.with { receiver in
            try await withAPI(backend, clock: clock, flags: Self.development) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let hook = try await Self.create(api, key: workspace.key, url: "\(receiver.baseURL)/rotate", events: ["contact.unsubscribed"])
                let rotated = try await api.request(.post, "/v1/webhooks/\(hook.id)/rotate-secret", key: workspace.key)
                #expect(rotated.status == .ok, "\(rotated.body)")
                let fresh = try #require(rotated.json["secret"] as? String)
                #expect(fresh != hook.secret && fresh.hasPrefix("whsec_"))
                #expect(rotated.json["previousSecretExpiresAt"] as? String == Timestamp.format(clock.now.addingTimeInterval(24 * 3600)))
                #expect(try await api.get("/v1/webhooks/\(hook.id)", key: workspace.key).json["secret"] == nil)
                try receiver.trust([fresh, hook.secret])

                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: clock.now)])
                try await tidings.webhookDeliveries.drain()
                let during = try #require(receiver.received().last)
                #expect(during.signatures.count == 2 && during.matched == [0, 1], "v1,<new> v1,<old>: \(during.headers["webhook-signature"] ?? "")")

                clock.advance(by: 24 * 3600 + 1)
                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: clock.now)])
                try await tidings.webhookDeliveries.drain()
                let after = try #require(receiver.received().last)
                #expect(after.signatures.count == 1 && after.matched == [0], "only the new secret signs now")

                let audit = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "webhook.secret_rotated"), cursor: nil, limit: 10)
                #expect(audit.items.count == 1)
            }
        }
    }

    @Test("Failures are retried with growing waits until 3 days after the first attempt; then the delivery fails, the endpoint is disabled (audited) and waits until enabled", arguments: TestBackend.all)
    func retriesGiveUpAndDisabling(backend: TestBackend) async throws {
        let clock = TestClock()
        try await WebhookReceiver.with { receiver in
            try await withAPI(backend, clock: clock, flags: Self.development) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let key = workspace.key
                let hook = try await Self.create(api, key: key, url: "\(receiver.baseURL)/flaky", events: ["contact.unsubscribed"])
                try receiver.trust([hook.secret])
                try receiver.answer("503")
                try receiver.reply("Service unavailable, try later")
                let start = clock.now
                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("first@example.com", at: start)])
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                #expect(try await tidings.webhookDeliveries.drain() == 0, "the retry is not due yet")
                let firstId = try #require(try await Self.deliveries(api, key: key, webhook: hook.id).first?["id"] as? String)

                func first() async throws -> [String: Any] {
                    let all = try await Self.deliveries(api, key: key, webhook: hook.id)
                    return all.first { $0["id"] as? String == firstId } ?? [:]
                }
                var entry = try await first()
                #expect(entry["responseStatus"] as? Int == 503 && entry["responseBody"] as? String == "Service unavailable, try later")
                var attemptTimes = [start]
                var secondEmitted = false
                // The clock moves to the next attempt due, whichever delivery's it is, so each is
                // made at its own time (two falling due together could race to disable the endpoint).
                while entry["status"] as? String == "pending", entry["nextAttemptAt"] is String, attemptTimes.count < 20 {
                    let due = try await Self.deliveries(api, key: key, webhook: hook.id, query: "?status=pending")
                        .compactMap { ($0["nextAttemptAt"] as? String).flatMap(Timestamp.parse) }.min()!
                    clock.advance(by: due.timeIntervalSince(clock.now) + 0.01)
                    if !secondEmitted, clock.now.timeIntervalSince(start) > 24 * 3600 {
                        // Another event while the endpoint keeps failing: it waits in the queue too.
                        try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("second@example.com", at: clock.now)])
                        secondEmitted = true
                    }
                    #expect(try await tidings.webhookDeliveries.drain() >= 1)
                    let previous = entry["lastAttemptAt"] as? String
                    entry = try await first()
                    if entry["lastAttemptAt"] as? String != previous { attemptTimes.append(clock.now) }
                }
                #expect(secondEmitted)
                #expect(attemptTimes.count >= 9, "about ten attempts in three days: \(attemptTimes.count)")
                let gaps = zip(attemptTimes.dropFirst(), attemptTimes).map { $0.timeIntervalSince($1) }
                let schedule: [TimeInterval] = [5, 300, 1800, 7200, 18000, 36000, 50400]
                for (index, gap) in gaps.dropLast().enumerated() {
                    let base = index < schedule.count ? schedule[index] : 50400
                    #expect(gap >= base * 0.8 && gap <= base * 1.2 + 1, "wait \(index + 1): \(gap) s for \(base) s")
                }
                #expect(abs(attemptTimes.last!.timeIntervalSince(start) - 72 * 3600) < 1, "the last attempt falls 72 hours after the first")
                #expect(entry["status"] as? String == "failed" && entry["attempts"] as? Int == attemptTimes.count && entry["nextAttemptAt"] is NSNull,
                        "\(entry) after \(attemptTimes.map { $0.timeIntervalSince(start) })")
                #expect((entry["error"] as? String)?.contains("72 hours") == true, "\(entry)")

                // Every attempt failed for 3 days: the endpoint is disabled, by the system, with an audit event.
                let disabled = try await api.get("/v1/webhooks/\(hook.id)", key: key)
                #expect(disabled.json["status"] as? String == "disabled" && disabled.json["disabledAt"] is String, "\(disabled.body)")
                #expect((disabled.json["disabledReason"] as? String)?.contains("72 hours") == true)
                let audited = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "webhook.disabled"), cursor: nil, limit: 10)
                #expect(audited.items.count == 1 && audited.items.first?.actor.kind == .system)
                // The later event stays in the log, unscheduled; new events are not queued for it.
                let waiting = try await Self.deliveries(api, key: key, webhook: hook.id, query: "?status=pending")
                #expect(waiting.count == 1 && waiting[0]["nextAttemptAt"] is NSNull, "\(waiting)")
                #expect(try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("third@example.com", at: clock.now)]) == 0)
                clock.advance(by: 7 * 86400)
                #expect(try await tidings.webhookDeliveries.drain() == 0, "a disabled endpoint is not called")

                // Enabled again, with a receiver that answers: the waiting delivery goes out at once.
                try receiver.answer(nil)
                let enabled = try await api.request(.post, "/v1/webhooks/\(hook.id)/enable", key: key)
                #expect(enabled.status == .ok && enabled.json["status"] as? String == "enabled" && enabled.json["disabledAt"] is NSNull)
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                #expect(receiver.received().last?.data["email"] as? String == "second@example.com" && receiver.received().last?.verified == true)
                #expect(try await Self.deliveries(api, key: key, webhook: hook.id, query: "?status=pending").isEmpty)
                let reenabled = try await tidings.audit.list(workspaceId: workspace.id, filter: .init(action: "webhook.enabled"), cursor: nil, limit: 10)
                #expect(reenabled.items.first?.change.summary["pendingDeliveries"] == .number(1))
            }
        }
    }

    @Test("A delivery claimed by a worker that died is taken over once its lease runs out", arguments: TestBackend.all)
    func deadWorkersDeliveryIsTakenOver(backend: TestBackend) async throws {
        let clock = TestClock()
        try await WebhookReceiver.with { receiver in
            try await withAPI(backend, clock: clock, flags: Self.development) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                let hook = try await Self.create(api, key: workspace.key, url: "\(receiver.baseURL)/lease", events: ["contact.unsubscribed"])
                try receiver.trust([hook.secret])
                try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: clock.now)])
                // Another process claims the delivery and dies before it records anything.
                let lease = tidings.configuration.webhooks.lease
                let claimed = try await tidings.database.transaction { [now = clock.now] db in
                    try await JobRepository(db).claim(
                        kinds: [WebhookOutbox.jobKind], owner: "worker_killed", now: now, leaseUntil: now.addingTimeInterval(lease), limit: 10
                    )
                }
                #expect(claimed.count == 1)
                #expect(try await tidings.webhookDeliveries.drain() == 0, "held by the other worker's lease")
                clock.advance(by: lease + 1)
                #expect(try await tidings.webhookDeliveries.drain() == 1)
                #expect(receiver.received().map(\.verified) == [true])
                #expect(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).first?["status"] as? String == "succeeded")
            }
        }
    }

    @Test("A name that resolved to a public address when saved but to loopback at delivery (DNS rebinding) is not called", arguments: TestBackend.all)
    func rebindingIsCaughtAtDelivery(backend: TestBackend) async throws {
        try await DNSServer.with { dns in
            try await WebhookReceiver.with { receiver in
                var zone = DNSZone()
                zone.host("rebind.hooks.test", "93.184.215.14")
                try await dns.serve(zone)
                let flags = [TidingsConfiguration.Key.dnsServer: dns.address, TidingsConfiguration.Key.dnsTimeout: "5"]
                try await withAPI(backend, flags: flags) { api, tidings in
                    let workspace = try await tidings.makeWorkspace()
                    let hook = try await Self.create(api, key: workspace.key, url: "https://rebind.hooks.test:\(receiver.port)/in", events: ["contact.unsubscribed"])
                    var rebound = DNSZone()
                    rebound.host("rebind.hooks.test", "127.0.0.1")
                    try await dns.serve(rebound)
                    try await Self.emit(tidings, workspaceId: workspace.id, [Self.unsubscribed("ada@example.com", at: Date())])
                    #expect(try await tidings.webhookDeliveries.drain() == 1)
                    let entry = try #require(try await Self.deliveries(api, key: workspace.key, webhook: hook.id).first)
                    #expect(entry["status"] as? String == "pending" && entry["attempts"] as? Int == 1 && entry["responseStatus"] is NSNull)
                    let error = entry["error"] as? String ?? ""
                    #expect(error.contains("resolves to 127.0.0.1") && error.contains("loopback"), "\(error)")
                    #expect(receiver.received().isEmpty, "no request reached the loopback receiver")
                }
            }
        }
    }

    // MARK: Message outcomes

    @Test("Delivered and bounced messages reach the receiver from a real SMTP exchange, signed, with the message's details", arguments: TestBackend.all)
    func messageOutcomes(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "550 5.1.1 <gone@example.com>: user unknown", "--reply-for", "gone@example.com"]) { peer in
            try await WebhookReceiver.with { receiver in
                try await withAPI(backend, flags: Self.development) { api, tidings in
                    let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                    let key = setup.workspace.key
                    let hook = try await Self.create(api, key: key, url: "\(receiver.baseURL)/mail", events: ["message.delivered", "message.bounced"])
                    try receiver.trust([hook.secret])
                    let delivered = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "ada@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                    let bounced = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "gone@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                    #expect(try await tidings.deliveries.drain() == 2)
                    #expect(try await tidings.webhookDeliveries.drain() == 2)

                    let got = receiver.received()
                    #expect(got.count == 2 && got.allSatisfy { $0.verified })
                    let byType = Dictionary(got.map { ($0.json["type"] as? String ?? "", $0) }, uniquingKeysWith: { first, _ in first })
                    let ada = try #require(byType["message.delivered"]?.data)
                    #expect(ada["messageId"] as? String == delivered && ada["email"] as? String == "ada@example.com")
                    #expect(ada["contactId"] as? String == (try await api.get("/v1/contacts/ada@example.com", key: key).json["id"] as? String))
                    #expect(ada["templateSlug"] as? String == "welcome" && ada["status"] as? String == "delivered" && ada["reason"] == nil)
                    let origin = try #require(ada["origin"] as? [String: Any])
                    #expect(origin["kind"] as? String == "api" && origin["id"] is NSNull)
                    let gone = try #require(byType["message.bounced"]?.data)
                    #expect(gone["messageId"] as? String == bounced && gone["status"] as? String == "bounced")
                    #expect((gone["reason"] as? String)?.contains("550 5.1.1") == true, "\(gone)")
                }
            }
        }
    }

    @Test("A deferred message tells message.deferred with the reply, and message.failed once it is given up", arguments: TestBackend.all)
    func deferredThenFailed(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "451 4.7.1 Greylisted, try again"]) { peer in
            try await WebhookReceiver.with { receiver in
                try await withAPI(backend, clock: clock, flags: Self.development) { api, tidings in
                    let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                    let key = setup.workspace.key
                    let hook = try await Self.create(api, key: key, url: "\(receiver.baseURL)/mail", events: ["message.deferred", "message.failed"])
                    try receiver.trust([hook.secret])
                    let id = try #require(try await api.post("/v1/messages", key: key, json: ["rcpt": "grey@example.com", "templateSlug": "welcome"]).json["id"] as? String)
                    try await tidings.deliveries.drain()
                    try await tidings.webhookDeliveries.drain()
                    let deferred = try #require(receiver.received().last)
                    #expect(deferred.json["type"] as? String == "message.deferred" && deferred.data["messageId"] as? String == id)
                    #expect((deferred.data["reason"] as? String)?.contains("451 4.7.1 Greylisted") == true && deferred.data["status"] as? String == "deferred")
                    clock.advance(by: 73 * 3600)
                    try await tidings.deliveries.drain()
                    try await tidings.webhookDeliveries.drain()
                    let failed = try #require(receiver.received().last)
                    #expect(failed.json["type"] as? String == "message.failed" && failed.data["status"] as? String == "failed")
                    #expect((failed.data["reason"] as? String)?.contains("72 hours") == true, "\(failed.data)")
                    #expect(receiver.received().allSatisfy { $0.verified })
                }
            }
        }
    }

    // MARK: Storage

    @Test("Secrets, URL tokens, request bodies and answers are not in raw storage", arguments: TestBackend.all)
    func nothingInTheClear(backend: TestBackend) async throws {
        let needles = ["Pangolin-token-8812", "Payload-value-7713", "Echo-snippet-5531"]
        try await WebhookReceiver.with { receiver in
            let scratch = try await Scratch.make(backend)
            let secrets = try await withTidings(on: scratch, flags: Self.development) { tidings in
                let application = try tidings.buildApplication()
                return try await application.test(.router) { client in
                    let api = TestClient(client: client)
                    let workspace = try await tidings.makeWorkspace()
                    let hook = try await Self.create(api, key: workspace.key, url: "\(receiver.baseURL)/in?token=Pangolin-token-8812", events: ["contact.unsubscribed"])
                    let rotated = try #require(try await api.request(.post, "/v1/webhooks/\(hook.id)/rotate-secret", key: workspace.key).json["secret"] as? String)
                    try receiver.trust([rotated, hook.secret])
                    try receiver.reply("Echo-snippet-5531 for zelda.payload@scan.test")
                    try await Self.emit(tidings, workspaceId: workspace.id, [WebhookEvent(.contactUnsubscribed, data: [
                        "email": .string("zelda.payload@scan.test"), "note": .string("Payload-value-7713"),
                    ], at: Date())])
                    #expect(try await tidings.webhookDeliveries.drain() == 1)
                    #expect(receiver.received().first?.verified == true)
                    let log = try await Self.deliveries(api, key: workspace.key, webhook: hook.id)
                    #expect((log.first?["responseBody"] as? String)?.hasPrefix("Echo-snippet-5531") == true, "readable through the API")
                    return [hook.secret, rotated, String(hook.secret.dropFirst(6)), String(rotated.dropFirst(6))]
                }
            }
            let found = try await StorageScan.scan(scratch, needles: needles + secrets)
            #expect(found.isEmpty, "\(found)")
            await scratch.remove()
        }
    }
}
