import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SQLKit
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices
import TidingsStorage

/// Open and click tracking end to end: settings, a tracked message delivered to a real SMTP
/// server (aiosmtpd), its HTML read by Python's own MIME and HTML parsers, the pixel and
/// links requested over a real socket, what is stored, and the daily statistics.
@Suite("Open and click tracking")
struct TrackingAPITests {
    static let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 Needle-Agent-5512"
    static let link = "https://shop.acme.test/orders/A-17?utm=mail&ref=Secret-link-4471"

    /// A Tidings serving its router on a loopback socket (so requests have a client address)
    /// with 127.0.0.1 as a trusted proxy; the raw storage is scanned for `needles` after.
    static func withLiveAPI(
        _ backend: TestBackend, clock: TestClock, needles: [String] = [],
        _ body: @Sendable (TestClient, Tidings) async throws -> Void
    ) async throws {
        let scratch = try await Scratch.make(backend)
        do {
            try await withTidings(on: scratch, clock: clock, flags: [TidingsConfiguration.Key.trustedProxies: "127.0.0.1/32"]) { tidings in
                let application = Application(
                    router: try tidings.makeRouter(transport: tidings.transport(.https)),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: TestLog.logger("tracking")
                )
                try await application.test(.live) { client in try await body(TestClient(client: client), tidings) }
            }
            let found = try await StorageScan.scan(scratch, needles: needles)
            #expect(found.isEmpty, "\(found)")
        } catch {
            await scratch.remove()
            throw error
        }
        await scratch.remove()
    }

    /// A workspace with the templates `news` (links of every kind) and `receipt` (one
    /// link), sending through `peer`.
    static func setUp(_ api: TestClient, _ tidings: Tidings, peer: SMTPPeer) async throws -> TestWorkspace {
        let workspace = try await tidings.makeWorkspace()
        let news = try await api.post("/v1/templates", key: workspace.key, json: [
            "slug": "news", "name": "News", "subject": "News for {{ name }}", "from": "Acme <hello@acme.test>",
            "html": """
                <html><body><p>Hello {{ name }}</p>
                <p><a href="https://shop.acme.test/orders/{{ order }}?utm=mail&amp;ref=Secret-link-4471">Your order</a></p>
                <p><a href="mailto:help@acme.test">Write to us</a> <a href="tel:+4930123">Call</a> <a href="#top">Top</a></p>
                <p><a href="{{ unsubscribe }}">Unsubscribe</a></p>
                </body></html>
                """,
        ])
        #expect(news.status == .created, "\(news.body)")
        let receipt = try await api.post("/v1/templates", key: workspace.key, json: [
            "slug": "receipt", "name": "Receipt", "subject": "Your receipt", "from": "Acme <hello@acme.test>",
            "html": "<p>Thanks. <a href=\"https://shop.acme.test/receipts/{{ order }}\">Receipt</a></p>",
        ])
        #expect(receipt.status == .created, "\(receipt.body)")
        let server = try await api.post("/v1/email-servers", key: workspace.key, json: [
            "name": "Test relay", "host": "127.0.0.1", "port": peer.port, "security": "none",
        ])
        #expect(server.status == .created, "\(server.body)")
        return workspace
    }

    static func enableAll(_ api: TestClient, key: String) async throws {
        let reply = try await api.request(.patch, "/v1/settings/tracking", key: key, json: ["opens": true, "clicks": true, "transactional": true])
        #expect(reply.status == .ok, "\(reply.body)")
    }

    static func send(_ api: TestClient, key: String, to rcpt: String, template: String = "news", extra: [String: Any] = [:], publicURL: String) async throws -> String {
        var body: [String: Any] = [
            "rcpt": rcpt, "templateSlug": template,
            "variables": ["name": "Ada", "order": "A-17", "unsubscribe": "\(publicURL)/u/unsub-token-1"],
        ]
        body.merge(extra) { $1 }
        let accepted = try await api.post("/v1/messages", key: key, json: body)
        #expect(accepted.status == .accepted, "\(accepted.body)")
        return accepted.json["id"] as? String ?? ""
    }

    /// The parts of a received message as Python's `email` package reads them, and the `<a href>`
    /// and `<img>` attributes of its HTML as Python's `html.parser` reads them.
    struct Parsed: @unchecked Sendable {
        // @unchecked: parsed JSON, read only.
        var html: String
        var text: String
        var links: [String]
        var images: [[String: String]]
    }

    static func parse(_ received: SMTPPeer.Received) async throws -> Parsed {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-mail-\(UUID().uuidString).eml")
        try Data(received.bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = """
            import email, json, sys
            from email import policy
            from html.parser import HTMLParser
            message = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=policy.default)
            html = message.get_body(preferencelist=('html',)).get_content()
            text = message.get_body(preferencelist=('plain',)).get_content()
            class Parser(HTMLParser):
                links, images = [], []
                def handle_starttag(self, tag, attrs):
                    attributes = dict(attrs)
                    if tag == 'a' and 'href' in attributes: self.links.append(attributes['href'])
                    if tag == 'img': self.images.append(attributes)
            parser = Parser()
            parser.feed(html)
            print(json.dumps({'html': html, 'text': text, 'links': parser.links, 'images': parser.images}))
            """
        let result = try await run(SMTPPeer.python, ["-c", script, file.path])
        guard result.status == 0, let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] else {
            throw SMTPPeer.Failure(description: "Python could not read the message: \(result.stderr)")
        }
        return Parsed(
            html: object["html"] as? String ?? "", text: object["text"] as? String ?? "", links: object["links"] as? [String] ?? [],
            images: object["images"] as? [[String: String]] ?? []
        )
    }

    /// The path of a URL under the public URL.
    static func path(_ url: String, publicURL: String) -> String {
        url.hasPrefix(publicURL) ? String(url.dropFirst(publicURL.count)) : url
    }

    static func get(_ api: TestClient, _ path: String, agent: String?, forwardedFor: String? = nil) async throws -> TestClient.Reply {
        var headers: HTTPFields = [:]
        if let agent { headers[.userAgent] = agent }
        if let forwardedFor { headers[HTTPField.Name("X-Forwarded-For")!] = forwardedFor }
        return try await api.request(.get, path, key: nil, headers: headers)
    }

    // MARK: Tests

    @Test("A tracked message's link redirects to exactly its URL, the pixel is a GIF; rows hold truncated IPs and pseudonyms; bots are not opens", arguments: TestBackend.all)
    func trackedMessageEndToEnd(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await Self.withLiveAPI(backend, clock: clock, needles: ["Secret-link-4471", "Needle-Agent-5512"]) { api, tidings in
                let publicURL = tidings.configuration.publicURL
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let key = workspace.key
                #expect(try await api.get("/v1/settings/tracking", key: key).json["opens"] as? Bool == false, "off until turned on")
                try await Self.enableAll(api, key: key)
                let settings = try await api.get("/v1/settings/tracking", key: key)
                #expect(settings.json["opens"] as? Bool == true && settings.json["clicks"] as? Bool == true && settings.json["transactional"] as? Bool == true)
                let audit = try await api.get("/v1/audit-events", key: key)
                #expect(audit.data.contains { $0["action"] as? String == "tracking.settings_changed" }, "\(audit.body.prefix(2000))")

                let id = try await Self.send(api, key: key, to: "ada@example.com", publicURL: publicURL)
                #expect(try await tidings.deliveries.drain() == 1)
                let mail = try await Self.parse(try #require(peer.received().first))

                // Links: the order link is tracked; mailto, tel, the anchor and the unsubscribe link are not.
                #expect(mail.links.count == 5, "\(mail.links)")
                let tracked = try #require(mail.links.first)
                #expect(tracked.hasPrefix("\(publicURL)/t/c/"), "\(tracked)")
                #expect(Array(mail.links.dropFirst()) == ["mailto:help@acme.test", "tel:+4930123", "#top", "\(publicURL)/u/unsub-token-1"])
                #expect(!mail.html.contains("Secret-link-4471"), "the URL is in no tracked link")
                #expect(mail.text.contains(Self.link), "the text part keeps the original link: \(mail.text)")
                #expect(!mail.text.contains("/t/c/") && !mail.text.contains("/t/o/"))
                let pixel = try #require(mail.images.first)
                #expect(mail.images.count == 1 && pixel["width"] == "1" && pixel["height"] == "1" && pixel["alt"] == "")
                let pixelURL = try #require(pixel["src"])
                #expect(pixelURL.hasPrefix("\(publicURL)/t/o/"))
                #expect(mail.html.range(of: "<img")!.lowerBound < mail.html.range(of: "</body>")!.lowerBound, "the pixel is inside the body")

                // A person, a minute later, behind the trusted proxy (a second between requests keeps
                // their rows in order).
                clock.advance(by: 60)
                let clickedAt = clock.now
                let click = try await Self.get(api, Self.path(tracked, publicURL: publicURL), agent: Self.firefox, forwardedFor: "203.0.113.77")
                #expect(click.status == .found, "\(click.body)")
                #expect(click.headers[.location] == Self.link)
                #expect(click.headers[.cacheControl] == "no-store")
                clock.advance(by: 1)
                let openedAt = clock.now
                let open = try await Self.get(api, Self.path(pixelURL, publicURL: publicURL), agent: Self.firefox)
                #expect(open.status == .ok && open.headers[.contentType] == "image/gif" && open.body.hasPrefix("GIF89a"))
                #expect(open.headers[.cacheControl]?.contains("no-store") == true)
                // Gmail's image proxy, and a link scanner: recorded, flagged, not counted.
                let proxy = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
                clock.advance(by: 1)
                #expect(try await Self.get(api, Self.path(pixelURL, publicURL: publicURL), agent: proxy).status == .ok)
                clock.advance(by: 1)
                #expect(try await Self.get(api, Self.path(tracked, publicURL: publicURL), agent: "curl/8.5.0").headers[.location] == Self.link)

                let detail = try await api.get("/v1/messages/\(id)", key: key)
                let tracking = try #require(detail.json["tracking"] as? [String: Any], "\(detail.body)")
                #expect(tracking["opens"] as? Int == 1 && tracking["clicks"] as? Int == 1 && tracking["botEvents"] as? Int == 2, "\(tracking)")
                #expect(tracking["firstOpenedAt"] as? String == Timestamp.format(clickedAt), "the click was the first sign of reading")
                #expect(tracking["firstClickedAt"] as? String == Timestamp.format(clickedAt))
                #expect(Timestamp.format(openedAt) > Timestamp.format(clickedAt))

                // What is stored: truncated addresses, a pseudonym, no contact id, the agent sealed.
                let contactId = try await tidings.adminDatabase.read { db in
                    try await db.raw("SELECT contact_id FROM messages WHERE id = \(bind: id)").first()!.decode(column: "contact_id", as: String.self)
                }
                let rows = try await tidings.adminDatabase.read { db in
                    try await db.raw("SELECT * FROM tracking_events ORDER BY id").all()
                }
                #expect(rows.count == 4)
                var networks: [String?] = []
                for row in rows {
                    networks.append(try row.decode(column: "ip_truncated", as: String?.self))
                    let pseudonym = try row.decode(column: "contact_pseudonym", as: String.self)
                    #expect(pseudonym.hasPrefix("p_") && pseudonym != contactId)
                    for column in ["id", "workspace_id", "message_id", "contact_pseudonym", "kind", "ip_truncated", "user_agent_sealed", "bot_reason", "at"] {
                        let value = try row.decode(column: column, as: String?.self) ?? ""
                        #expect(!value.contains(contactId) && !value.contains("ada@example.com") && !value.contains("Mozilla"), "\(column): \(value)")
                    }
                }
                #expect(networks == ["203.0.113.0", "127.0.0.0", "127.0.0.0", "127.0.0.0"], "IPs are truncated before they are stored")
                let reasons = try rows.map { try $0.decode(column: "bot_reason", as: String?.self) }
                #expect(reasons == [nil, nil, "image_proxy", "automation"])

                let today = String(Timestamp.format(clock.now).prefix(10))
                let stats = try await api.get("/v1/stats?from=\(today)&to=\(today)", key: key)
                let totals = try #require(stats.json["totals"] as? [String: Int], "\(stats.body)")
                #expect(totals["sent"] == 1 && totals["delivered"] == 1 && totals["opened"] == 1 && totals["clicked"] == 1)
                #expect(totals["botOpens"] == 1 && totals["botClicks"] == 1)
            }
        }
    }

    @Test("Forged, altered, foreign and out-of-range tokens are 404 and never redirect", arguments: TestBackend.all)
    func forgedTokensAreNotFound(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await Self.withLiveAPI(backend, clock: clock) { api, tidings in
                let publicURL = tidings.configuration.publicURL
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                try await Self.enableAll(api, key: workspace.key)
                let id = try await Self.send(api, key: workspace.key, to: "ada@example.com", publicURL: publicURL)
                try await tidings.deliveries.drain()
                let mail = try await Self.parse(try #require(peer.received().first))
                let click = String(try #require(mail.links.first).dropFirst("\(publicURL)/t/c/".count))
                let open = String(try #require(mail.images.first?["src"]).dropFirst("\(publicURL)/t/o/".count))
                clock.advance(by: 60)
                #expect(try await Self.get(api, "/t/c/\(click)", agent: Self.firefox).status == .found, "the real token works")

                let parts = click.split(separator: ".").map(String.init)
                #expect(parts.count == 3 && parts[0] == id && parts[1] == "0")
                let mac = parts[2]
                // A MAC made with a workspace's key: valid for what it covers, and nothing else.
                func macFor(_ token: TrackingToken, workspaceId: String) async throws -> String {
                    let vault = try await tidings.keyring.vault(for: workspaceId)
                    return TrackingToken.mac(fromHex: vault.blindIndex(token.payload, column: "tracking_token"))
                }
                let other = try await tidings.makeWorkspace(name: "Other")
                let foreign = try await macFor(TrackingToken(click: id, position: 0), workspaceId: other.id)
                let beyond = try await macFor(TrackingToken(click: id, position: 7), workspaceId: workspace.id)
                var flipped = Array(mac)
                flipped[3] = flipped[3] == "A" ? "B" : "A"
                let forged = [
                    "/t/c/\(id).1.\(mac)",                      // another link index, same MAC
                    "/t/c/\(id).7.\(beyond)",                   // a valid MAC for a link the message does not have
                    "/t/c/\(id).0.\(foreign)",                  // signed with another workspace's key
                    "/t/c/\(id).0.\(String(flipped))",          // one character changed
                    "/t/c/msg_01JD3V9Q4ZK1T8X5M2N7P6R0AB.0.\(mac)", // another (unknown) message
                    "/t/c/\(open)",                             // the open token as a click token
                    "/t/o/\(click)",                            // and the other way round
                    "/t/o/\(id).\(foreign)",
                    "/t/c/\(id).0", "/t/c/garbage", "/t/c/..%2F..%2Fetc", "/t/c/\(String(repeating: "x", count: 4000))",
                    "/t/c/%E2%9C%93", "/t/o/", "/t/c/\(id).0.\(mac)%20", "/t/c/\(id).00.\(mac)",
                ]
                for path in forged {
                    let reply = try await Self.get(api, path, agent: Self.firefox)
                    #expect(reply.status == .notFound, "\(path.prefix(80)): \(reply.status) \(reply.body.prefix(200))")
                    #expect(reply.headers[.location] == nil)
                }
                let detail = try await api.get("/v1/messages/\(id)", key: workspace.key)
                #expect((detail.json["tracking"] as? [String: Any])?["clicks"] as? Int == 1, "only the real click was recorded")

                // A data-key rotation re-seals the link list; links in mail already sent keep working.
                _ = try await KeyRotation(tidings.environment).rotateDataKey(scope: workspace.id, by: .tester)
                clock.advance(by: Keyring.retiredKeyGrace + 1)
                #expect(try await KeyRotation(tidings.environment).finishRotations() == 1)
                let rotated = try await Self.get(api, "/t/c/\(click)", agent: Self.firefox)
                #expect(rotated.status == .found && rotated.headers[.location] == Self.link)
                // A deleted workspace's links and pixels lead nowhere.
                try await tidings.workspaces.delete(id: workspace.id, by: .tester)
                #expect(try await Self.get(api, "/t/c/\(click)", agent: Self.firefox).status == .notFound)
                #expect(try await Self.get(api, "/t/o/\(open)", agent: Self.firefox).status == .notFound)
            }
        }
    }

    @Test("Without tracking nothing is rewritten; transactional mail and per-message choices follow the settings", arguments: TestBackend.all)
    func trackingOffLeavesMailAlone(backend: TestBackend) async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await withAPI(backend) { api, tidings in
                let publicURL = tidings.configuration.publicURL
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let key = workspace.key
                func delivered(_ extra: [String: Any] = [:]) async throws -> Parsed {
                    let count = peer.received().count
                    _ = try await Self.send(api, key: key, to: "ada@example.com", extra: extra, publicURL: publicURL)
                    try await tidings.deliveries.drain()
                    return try await Self.parse(try #require(try await peer.waitForMessages(count + 1).last))
                }
                let original = ["https://shop.acme.test/orders/A-17?utm=mail&ref=Secret-link-4471", "mailto:help@acme.test", "tel:+4930123", "#top", "\(publicURL)/u/unsub-token-1"]

                // The default: off.
                var mail = try await delivered()
                #expect(mail.links == original && mail.images.isEmpty && !mail.html.contains("/t/"))

                // On for announcements and automations only: this API message stays untracked.
                #expect(try await api.request(.patch, "/v1/settings/tracking", key: key, json: ["opens": true, "clicks": true]).status == .ok)
                mail = try await delivered()
                #expect(mail.links == original && mail.images.isEmpty)

                // A message's own choice wins: clicks only …
                mail = try await delivered(["tracking": ["clicks": true]])
                #expect(mail.links.first?.hasPrefix("\(publicURL)/t/c/") == true && mail.images.isEmpty)
                // … and with transactional mail tracked, a message can opt out.
                #expect(try await api.request(.patch, "/v1/settings/tracking", key: key, json: ["transactional": true]).status == .ok)
                mail = try await delivered(["tracking": ["opens": false, "clicks": false]])
                #expect(mail.links == original && mail.images.isEmpty)
                mail = try await delivered()
                #expect(mail.links.first?.hasPrefix("\(publicURL)/t/c/") == true && mail.images.count == 1)
                #expect(Array(mail.links.dropFirst()) == Array(original.dropFirst()))
            }
        }
    }

    @Test("Settings and message choices: bad input is a 4xx naming the field; only admin keys change settings", arguments: TestBackend.all)
    func settingsValidation(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [([String: Any], String, String)] = [
                (["opens": "yes"], "invalid_type", "opens"),
                (["clicks": 1], "invalid_type", "clicks"),
                (["colour": true], "unknown_field", "colour"),
            ]
            for (body, code, field) in cases {
                let reply = try await api.request(.patch, "/v1/settings/tracking", key: workspace.key, json: body)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(body): \(reply.body)")
            }
            let unchanged = try await api.request(.patch, "/v1/settings/tracking", key: workspace.key, json: [String: Any]())
            #expect(unchanged.status == .ok && unchanged.json["updatedAt"] is NSNull)
            let limited = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "sender", "scopes": ["messages:send"]])
            let sender = try #require(limited.json["secret"] as? String)
            #expect(try await api.request(.patch, "/v1/settings/tracking", key: sender, json: ["opens": true]).status == .forbidden)
            #expect(try await api.get("/v1/settings/tracking", key: sender).status == .forbidden)
            #expect(try await api.get("/v1/settings/tracking", key: nil).status == .unauthorized)

            _ = try await api.post("/v1/templates", key: workspace.key, json: ["slug": "t", "subject": "s", "from": "a@acme.test", "html": "<p>x</p>"])
            _ = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "local", "host": "127.0.0.1", "port": 2525, "security": "none"])
            for (tracking, code, field) in [
                (["opens": "no"] as [String: Any], "invalid_type", "tracking.opens"), (["pixel": true], "unknown_field", "tracking.pixel"),
            ] {
                let reply = try await api.post("/v1/messages", key: workspace.key, json: ["rcpt": "a@example.com", "templateSlug": "t", "tracking": tracking])
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(reply.body)")
            }
            let notObject = try await api.post("/v1/messages", key: workspace.key, json: ["rcpt": "a@example.com", "templateSlug": "t", "tracking": true])
            #expect(notObject.status == .unprocessableContent && notObject.errorField == "tracking")
        }
    }

    @Test("Daily statistics per day and per template match what was sent, delivered, bounced, failed, suppressed, opened and clicked", arguments: TestBackend.all)
    func statsPerDayAndTemplate(backend: TestBackend) async throws {
        let clock = TestClock()
        // The peer refuses one mailbox for good; everything else is accepted.
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", "rcpt", "--reply", "550 5.1.1 No such user", "--reply-for", "gone@example.com"]) { peer in
            try await Self.withLiveAPI(backend, clock: clock) { api, tidings in
                let publicURL = tidings.configuration.publicURL
                let workspace = try await Self.setUp(api, tidings, peer: peer)
                let key = workspace.key
                try await Self.enableAll(api, key: key)
                #expect(try await api.post("/v1/templates", key: key, json: [
                    "slug": "notice", "subject": "Notice", "from": "hello@acme.test", "html": "<p>Notice</p>",
                ]).status == .created)

                // Day 1 (2027-01-15): two news delivered, one bounced; one receipt delivered.
                let ada = try await Self.send(api, key: key, to: "ada@example.com", publicURL: publicURL)
                let bea = try await Self.send(api, key: key, to: "bea@example.com", publicURL: publicURL)
                _ = try await Self.send(api, key: key, to: "gone@example.com", publicURL: publicURL)
                let cy = try await Self.send(api, key: key, to: "cy@example.com", template: "receipt", publicURL: publicURL)
                #expect(try await tidings.deliveries.drain() == 4)
                #expect(try await MessagesAPITests.status(of: bea, api, key: key) == "delivered")
                // The bounced mailbox is suppressed from now on; a notice whose template is gone fails.
                let suppressed = try await api.post("/v1/messages", key: key, json: ["rcpt": "gone@example.com", "templateSlug": "news"])
                #expect(suppressed.json["status"] as? String == "suppressed", "\(suppressed.body)")
                _ = try await Self.send(api, key: key, to: "dan@example.com", template: "notice", publicURL: publicURL)
                #expect(try await api.delete("/v1/templates/notice", key: key).status == .noContent)
                try await tidings.deliveries.drain()
                // While the day goes on, its numbers are counted from the messages.
                let live = try await api.get("/v1/stats?from=2027-01-15&to=2027-01-15", key: key)
                #expect(live.json["totals"] as? [String: Int] == [
                    "sent": 4, "delivered": 3, "bounced": 1, "failed": 1, "suppressed": 1, "opened": 0, "clicked": 0, "unsubscribed": 0,
                    "botOpens": 0, "botClicks": 0,
                ], "\(live.body)")

                // Day 2: Ada opens and clicks, Bea's copy is only fetched by a link checker, Cy clicks
                // with images blocked (a click is an open too).
                clock.advance(by: 86400)
                // The refused mailbox got nothing, and the notice never left.
                let mails = try await peer.waitForMessages(3)
                #expect(mails.count == 3)
                var byRecipient: [String: Parsed] = [:]
                for mail in mails { byRecipient[mail.recipients.first ?? ""] = try await Self.parse(mail) }
                let adaMail = try #require(byRecipient["ada@example.com"]), beaMail = try #require(byRecipient["bea@example.com"])
                let cyMail = try #require(byRecipient["cy@example.com"])
                #expect(try await Self.get(api, Self.path(adaMail.images[0]["src"]!, publicURL: publicURL), agent: Self.firefox).status == .ok)
                #expect(try await Self.get(api, Self.path(adaMail.links[0], publicURL: publicURL), agent: Self.firefox).status == .found)
                #expect(try await Self.get(api, Self.path(adaMail.links[0], publicURL: publicURL), agent: Self.firefox).status == .found)
                #expect(try await Self.get(api, Self.path(beaMail.images[0]["src"]!, publicURL: publicURL), agent: "python-requests/2.32").status == .ok)
                #expect(try await Self.get(api, Self.path(cyMail.links[0], publicURL: publicURL), agent: Self.firefox).status == .found)
                #expect((try await api.get("/v1/messages/\(ada)", key: key).json["tracking"] as? [String: Any])?["clicks"] as? Int == 2)
                #expect((try await api.get("/v1/messages/\(cy)", key: key).json["tracking"] as? [String: Any])?["firstOpenedAt"] as? String != nil)

                func report(_ query: String) async throws -> (days: [String: [String: Int]], totals: [String: Int]) {
                    let reply = try await api.get("/v1/stats?from=2027-01-14&to=2027-01-16\(query)", key: key)
                    #expect(reply.status == .ok, "\(reply.body)")
                    var days: [String: [String: Int]] = [:]
                    for row in reply.data {
                        let date = row["date"] as? String ?? "?"
                        days[date] = row.filter { $0.key != "date" }.compactMapValues { $0 as? Int }
                    }
                    #expect(reply.data.map { $0["date"] as? String } == ["2027-01-14", "2027-01-15", "2027-01-16"], "every day, in order")
                    return (days, reply.json["totals"] as? [String: Int] ?? [:])
                }
                func expectCounts(_ counts: [String: Int]?, _ expected: [String: Int], _ label: String) {
                    let zeros = Dictionary(uniqueKeysWithValues: ["sent", "delivered", "opened", "clicked", "bounced", "failed", "suppressed", "unsubscribed", "botOpens", "botClicks"].map { ($0, 0) })
                    #expect(counts == zeros.merging(expected) { $1 }, "\(label)")
                }
                let all = try await report("")
                expectCounts(all.days["2027-01-14"], [:], "the day before")
                expectCounts(all.days["2027-01-15"], ["sent": 4, "delivered": 3, "bounced": 1, "failed": 1, "suppressed": 1], "day 1")
                expectCounts(all.days["2027-01-16"], ["opened": 2, "clicked": 2, "botOpens": 1], "day 2")
                expectCounts(all.totals, ["sent": 4, "delivered": 3, "bounced": 1, "failed": 1, "suppressed": 1, "opened": 2, "clicked": 2, "botOpens": 1], "totals")

                let news = try await report("&templateSlug=news")
                expectCounts(news.days["2027-01-15"], ["sent": 3, "delivered": 2, "bounced": 1, "suppressed": 1], "news, day 1")
                expectCounts(news.days["2027-01-16"], ["opened": 1, "clicked": 1, "botOpens": 1], "news, day 2")
                let receipts = try await report("&templateSlug=receipt")
                expectCounts(receipts.totals, ["sent": 1, "delivered": 1, "opened": 1, "clicked": 1], "receipts")
                let notices = try await report("&templateSlug=notice")
                expectCounts(notices.totals, ["failed": 1], "notices")
                let announcement = try await report("&announcementId=ann_01JD3V9Q4ZK1T8X5M2N7P6R0AB")
                expectCounts(announcement.totals, [:], "no announcement sent anything")

                // Past days are kept once counted: asked again, and after a contact is erased, day 1 is
                // unchanged; today (still going on) is counted afresh.
                let again = try await report("")
                #expect(again.days == all.days && again.totals == all.totals)
                #expect(try await api.delete("/v1/contacts/ada@example.com", key: key).status == .ok)
                let erased = try await report("")
                expectCounts(erased.days["2027-01-15"], ["sent": 4, "delivered": 3, "bounced": 1, "failed": 1, "suppressed": 1], "day 1 after erasure")
                expectCounts(erased.days["2027-01-16"], ["opened": 1, "clicked": 1, "botOpens": 1], "day 2 after erasure")
                let receiptsAgain = try await report("&templateSlug=receipt")
                expectCounts(receiptsAgain.totals, ["sent": 1, "delivered": 1, "opened": 1, "clicked": 1], "receipts, from kept counts")

                let defaults = try await api.get("/v1/stats", key: key)
                #expect(defaults.data.count == 30 && defaults.data.last?["date"] as? String == "2027-01-16", "the last 30 days up to today")
                #expect((defaults.json["totals"] as? [String: Int])?["delivered"] == 3, "\(defaults.body.prefix(300))")
            }
        }
    }

    @Test("Bad statistics queries are 4xx naming the parameter", arguments: TestBackend.all)
    func badStatsQueries(backend: TestBackend) async throws {
        try await withAPI(backend) { api, tidings in
            let workspace = try await tidings.makeWorkspace()
            let cases: [(String, String, String)] = [
                ("from=2027-13-01", "invalid_date", "from"),
                ("from=2027-02-30", "invalid_date", "from"),
                ("from=27-01-01", "invalid_date", "from"),
                ("to=yesterday", "invalid_date", "to"),
                ("to=2027-01-01T00:00:00Z", "invalid_date", "to"),
                ("from=2027-01-10&to=2027-01-01", "invalid_range", "from"),
                ("from=2025-01-01&to=2027-01-01", "range_too_long", "to"),
                ("groupBy=week", "invalid_group_by", "groupBy"),
                ("templateSlug=Not%20a%20slug", "invalid_slug", "templateSlug"),
                ("announcementId=a&automationId=b", "conflicting_filters", "automationId"),
                ("announcementId=", "invalid_id", "announcementId"),
            ]
            for (query, code, field) in cases {
                let reply = try await api.get("/v1/stats?\(query)", key: workspace.key)
                #expect(reply.status == .unprocessableContent && reply.errorCode == code && reply.errorField == field, "\(query): \(reply.body)")
            }
            #expect(try await api.get("/v1/stats?from=2026-01-01&to=2027-01-01", key: workspace.key).status == .ok, "366 days is allowed")
            #expect(try await api.get("/v1/stats", key: nil).status == .unauthorized)
            let limited = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "events", "scopes": ["events:write"]])
            #expect(try await api.get("/v1/stats", key: try #require(limited.json["secret"] as? String)).status == .forbidden)
        }
    }
}
