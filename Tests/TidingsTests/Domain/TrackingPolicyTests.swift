import Foundation
import Testing
@testable import TidingsDomain

@Suite("Tracking: bot policy, tokens and the tracking decision")
struct TrackingPolicyTests {
    static let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

    @Test("Proxies, scanners, libraries and crawlers are flagged by their user agent", arguments: [
        ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", TrackingBotPolicy.Reason.imageProxy),
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", .imageProxy),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", .securityScanner),
        ("Mimecast URL Protect", .securityScanner),
        ("Proofpoint URL Defense", .securityScanner),
        ("Microsoft Outlook SafeLinks", .securityScanner),
        ("curl/8.5.0", .automation),
        ("Wget/1.21.4", .automation),
        ("python-requests/2.32.3", .automation),
        ("Go-http-client/2.0", .automation),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0.0.0 Safari/537.36", .automation),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", .crawler),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", .crawler),
        ("Mozilla/5.0 (compatible; SkypeUriPreview Preview/0.5)", .crawler),
        ("Some Web Crawler 1.0", .crawler),
        ("facebookexternalhit/1.1", .crawler),
        ("Mozilla/5.0", .appleMailPrivacy),
        ("", .noUserAgent),
        ("   ", .noUserAgent),
    ])
    func flagsByUserAgent(agent: String, reason: TrackingBotPolicy.Reason) {
        #expect(TrackingBotPolicy.classify(userAgent: agent, network: "198.51.100.0", secondsSinceDelivery: 3600) == reason, "\(agent)")
    }

    @Test("A browser a person uses is not flagged; a missing user agent is")
    func peopleAreNotFlagged() {
        for agent in [
            Self.firefox,
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17726; Pro)",
            "Thunderbird/128.0",
        ] {
            #expect(TrackingBotPolicy.classify(userAgent: agent, network: "203.0.113.0", secondsSinceDelivery: 60) == nil, "\(agent)")
        }
        #expect(TrackingBotPolicy.classify(userAgent: nil, network: "203.0.113.0", secondsSinceDelivery: 60) == .noUserAgent)
    }

    @Test("Apple's network is Mail Privacy Protection, whatever the user agent says")
    func appleNetworks() {
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: "17.58.101.0", secondsSinceDelivery: 600) == .appleMailPrivacy)
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: "2620:149:a:", secondsSinceDelivery: 600) == nil, "not an address")
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: "2620:149:a::", secondsSinceDelivery: 600) == .appleMailPrivacy)
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: "18.58.101.0", secondsSinceDelivery: 600) == nil)
    }

    @Test("A request within two seconds of delivery, or during it, is a prefetch; later, or never delivered, it is not")
    func prefetchWindow() {
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: nil, secondsSinceDelivery: 0) == .prefetch)
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: nil, secondsSinceDelivery: 1.999) == .prefetch)
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: nil, secondsSinceDelivery: 2) == nil)
        #expect(TrackingBotPolicy.classify(userAgent: Self.firefox, network: nil, secondsSinceDelivery: nil) == nil)
    }

    @Test("A token round-trips; every other shape, or a changed part, does not parse as the same token")
    func tokens() throws {
        let id = "msg_01JD3V9Q4ZK1T8X5M2N7P6R0AB"
        let mac = TrackingToken.mac(fromHex: String(repeating: "ab", count: 32))
        #expect(mac.count == TrackingToken.macLength)
        let click = TrackingToken(click: id, position: 12)
        let parsed = try #require(TrackingToken.parse(click.encoded(mac: mac), kind: .click))
        #expect(parsed.token == click && parsed.mac == mac)
        let open = TrackingToken(open: id)
        #expect(TrackingToken.parse(open.encoded(mac: mac), kind: .open)?.token == open)
        #expect(TrackingToken.parse(open.encoded(mac: mac), kind: .click) == nil, "an open token is no click token")
        #expect(TrackingToken.parse(click.encoded(mac: mac), kind: .open) == nil)
        #expect(open.payload != TrackingToken(click: id, position: 0).payload)
        for bad in [
            "", ".", "\(id).", "\(id).\(mac).", "\(id).012.\(mac)", "\(id).-1.\(mac)", "\(id).1000.\(mac)", "\(id).1.\(mac)=",
            "\(id).1.\(mac.dropLast())", "msg_01jd3v9q4zk1t8x5m2n7p6r0ab.1.\(mac)", "ct_01JD3V9Q4ZK1T8X5M2N7P6R0AB.1.\(mac)",
            "\(id).1.\(mac.dropLast())+", "\(id)/../1.\(mac)", "\(id).1.\(mac)\u{0}", String(repeating: "A", count: 5000),
        ] {
            #expect(TrackingToken.parse(bad, kind: .click) == nil, "\(bad)")
        }
    }

    @Test("Settings decide for the kind of mail; a message's override wins both ways")
    func decisions() {
        let announcement = MessageOrigin(kind: .announcement, id: "ann_1", marketing: true)
        let settings = TrackingSettings(opens: true, clicks: false, transactional: false)
        #expect(settings.decide(origin: announcement, override: nil) == TrackingDecision(opens: true, clicks: false))
        #expect(settings.decide(origin: .api, override: nil) == TrackingDecision(opens: false, clicks: false), "transactional mail is not tracked")
        var all = settings
        all.transactional = true
        #expect(all.decide(origin: .api, override: nil) == TrackingDecision(opens: true, clicks: false))
        #expect(TrackingSettings.off.decide(origin: announcement, override: nil) == TrackingDecision(opens: false, clicks: false), "off by default")
        #expect(settings.decide(origin: announcement, override: TrackingOverride(opens: false)) == TrackingDecision(opens: false, clicks: false))
        #expect(TrackingSettings.off.decide(origin: .api, override: TrackingOverride(clicks: true)) == TrackingDecision(opens: false, clicks: true))
    }
}
