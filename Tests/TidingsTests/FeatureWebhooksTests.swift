import Foundation
import HTTPTypes
import Testing
import TidingsDomain
@testable import TidingsApp

/// Every feature tells webhook endpoints what happened, signed like message outcomes:
/// unsubscribes, the end of a contact's way through an automation, the end of an announcement,
/// and a person's opens and clicks (machine requests are not told).
@Suite("Webhooks from every feature")
struct FeatureWebhooksTests {
    static let browser = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

    /// The path of the first `/t/o/…` or `/t/c/…` URL in a message (its HTML part is
    /// quoted-printable: soft line breaks joined, `=3D` decoded).
    static func trackingPath(_ kind: String, in raw: String) -> String? {
        let text = raw.replacingOccurrences(of: "=\r\n", with: "").replacingOccurrences(of: "=3D", with: "=")
        guard let start = text.range(of: "/t/\(kind)/") else { return nil }
        let rest = text[start.lowerBound...]
        return String(rest.prefix { $0 != "\"" && $0 != "'" && $0 != ">" && !$0.isWhitespace })
    }

    @Test("Unsubscribes, automations, announcements, opens and clicks reach a webhook endpoint, signed", arguments: TestBackend.all)
    func everyFeatureTells(backend: TestBackend) async throws {
        let clock = TestClock()
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            try await WebhookReceiver.with { receiver in
                try await withAPI(backend, clock: clock, flags: WebhooksAPITests.development) { api, tidings in
                    let setup = try await MessagesAPITests.setUp(api, tidings, peer: peer)
                    let key = setup.workspace.key
                    let hook = try await WebhooksAPITests.create(api, key: key, url: "\(receiver.baseURL)/all", events: [
                        "contact.unsubscribed", "automation.finished", "announcement.finished", "message.opened", "message.clicked",
                    ])
                    try receiver.trust([hook.secret])
                    let tracking = try await api.request(.patch, "/v1/settings/tracking", key: key, json: ["opens": true, "clicks": true])
                    #expect(tracking.status == .ok, "\(tracking.body)")

                    // An automation sends at once and is done for this contact.
                    let automation = try await api.post("/v1/automations", key: key, json: [
                        "name": "Welcome", "templateSlug": "welcome", "triggerEvent": "signup", "frequency": "once", "status": "enabled",
                    ])
                    #expect(automation.status == .created, "\(automation.body)")
                    _ = try await api.post("/v1/events", key: key, json: ["email": "ada@example.com", "slug": "signup"])
                    _ = try await tidings.automationWorker.drain()
                    _ = try await tidings.automationWorker.drain()

                    // An announcement to everyone (Ada), delivered, then finished.
                    let announcement = try #require(try await api.post("/v1/announcements", key: key, json: ["name": "News", "templateSlug": "welcome"]).json["id"] as? String)
                    _ = try await api.post("/v1/announcements/\(announcement)/send", key: key, json: [:])
                    _ = try await tidings.fanOuts.drain()
                    #expect(try await tidings.deliveries.drain() == 2)
                    _ = try await tidings.fanOuts.drain()

                    // Ada opens and clicks a minute later (sooner would look like a scanner).
                    clock.advance(by: 60)
                    let mail = try #require(try await peer.waitForMessages(2).first { $0.text.contains("List-Unsubscribe: <") }, "the announcement")
                    let pixel = try #require(Self.trackingPath("o", in: mail.text), "\(mail.text)")
                    let link = try #require(Self.trackingPath("c", in: mail.text))
                    var headers: HTTPFields = [:]
                    headers[.userAgent] = Self.browser
                    #expect(try await api.request(.get, pixel, key: nil, headers: headers).status == .ok)
                    #expect(try await api.request(.get, link, key: nil, headers: headers).status == .found)
                    // A link scanner's request is not told.
                    headers[.userAgent] = "curl/8.5.0"
                    _ = try await api.request(.get, link, key: nil, headers: headers)

                    // Ada unsubscribes with the announcement's one-click link (RFC 8058).
                    let header = try #require(mail.text.components(separatedBy: "\r\n").first { $0.hasPrefix("List-Unsubscribe: <") })
                    let oneClick = try #require(Self.trackingPath("", in: header.replacingOccurrences(of: "/u/", with: "/t//u/"))?.dropFirst("/t/".count))
                    let unsubscribed = try await api.request(
                        .post, String(oneClick), key: nil, body: "List-Unsubscribe=One-Click", contentType: "application/x-www-form-urlencoded"
                    )
                    #expect(unsubscribed.status == .ok, "\(oneClick): \(unsubscribed.body)")
                    let stats = try await api.get("/v1/stats?announcementId=\(announcement)", key: key)
                    let totals = try #require(stats.json["totals"] as? [String: Any], "\(stats.body)")
                    #expect(totals["unsubscribed"] as? Int == 1 && totals["opened"] as? Int == 1 && totals["clicked"] as? Int == 1, "\(totals)")
                    _ = try await tidings.webhookDeliveries.drain()

                    let got = receiver.received()
                    #expect(got.allSatisfy { $0.verified })
                    let byType = Dictionary(grouping: got, by: { $0.json["type"] as? String ?? "" })
                    #expect(Set(byType.keys) == ["contact.unsubscribed", "automation.finished", "announcement.finished", "message.opened", "message.clicked"], "\(byType.keys)")
                    #expect(byType["message.clicked"]?.count == 1, "the scanner's click is not told")
                    let left = try #require(byType["contact.unsubscribed"]?.first?.data)
                    #expect(left["email"] as? String == "ada@example.com" && left["all"] as? Bool == true && left["via"] as? String == "one_click", "\(left)")
                    let finished = try #require(byType["automation.finished"]?.first?.data)
                    #expect(finished["state"] as? String == "completed" && finished["automationId"] as? String == automation.json["id"] as? String)
                    let done = try #require(byType["announcement.finished"]?.first?.data)
                    #expect(done["announcementId"] as? String == announcement && done["delivered"] as? Double == 1)
                    let opened = try #require(byType["message.opened"]?.first?.data)
                    #expect((opened["messageId"] as? String)?.hasPrefix("msg_") == true)
                }
            }
        }
    }
}
