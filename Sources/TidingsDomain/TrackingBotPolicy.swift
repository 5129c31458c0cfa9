import Foundation

/// Tells machines from people among the requests for a message's open pixel and links.
///
/// Mail providers fetch images through proxies (Apple Mail Privacy Protection loads every
/// image of every message it receives; Gmail and Yahoo cache them), and security gateways
/// follow every link before the reader sees it. Counting those as opens and clicks would
/// report interest nobody showed, so each request is flagged with a reason and left out of
/// `opened` and `clicked`. The rules, first match wins:
///
/// 1. no `User-Agent` at all;
/// 2. a mail provider's image proxy by name (`GoogleImageProxy`, `ggpht.com`, `YahooMailProxy`);
/// 3. a link-scanning gateway by name (Outlook SafeLinks, Barracuda, Mimecast, Proofpoint,
///    Symantec/MessageLabs, Trend Micro, Sophos, FortiGuard, Forcepoint, IronPort,
///    Zscaler, Cloudmark);
/// 4. an HTTP library or a headless browser (curl, Wget, python-requests, urllib,
///    aiohttp, Go's and Java's clients, OkHttp, libwww-perl, Apache HttpClient,
///    node-fetch, axios, HTTPie, Postman, HeadlessChrome, PhantomJS);
/// 5. a crawler or link previewer (`bot`, `crawler`, `spider`, `slurp`, `preview`,
///    `facebookexternalhit`, `WhatsApp`, `embedly`);
/// 6. Apple Mail Privacy Protection: Apple's network (17.0.0.0/8, 2620:149::/32,
///    2a01:b740::/32) or the bare `Mozilla/5.0` its proxy sends;
/// 7. prefetching: the request came within `prefetchWindow` of the delivery (no person
///    opens a message and clicks in the first two seconds), or while the message was
///    still being delivered.
///
/// Substrings are compared case-insensitively. The list errs towards flagging: a person
/// whose browser calls itself a bot is counted as one.
public enum TrackingBotPolicy {
    public enum Reason: String, Sendable, CaseIterable {
        case noUserAgent = "no_user_agent"
        case imageProxy = "image_proxy"
        case securityScanner = "security_scanner"
        case automation
        case crawler
        case appleMailPrivacy = "apple_mail_privacy"
        case prefetch
    }

    /// Requests this soon after the delivery are machines'.
    public static let prefetchWindow: TimeInterval = 2

    static let imageProxies = ["googleimageproxy", "ggpht.com", "yahoomailproxy"]
    static let securityScanners = [
        "safelinks", "barracuda", "mimecast", "proofpoint", "symantec", "messagelabs", "trendmicro", "trend micro", "sophos",
        "fortiguard", "forcepoint", "ironport", "zscaler", "cloudmark",
    ]
    static let automation = [
        "curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "go-http-client", "java/", "okhttp", "libwww-perl",
        "apache-httpclient", "node-fetch", "axios/", "httpie", "postmanruntime", "headlesschrome", "phantomjs",
    ]
    static let crawlers = ["bot", "crawler", "spider", "slurp", "preview", "facebookexternalhit", "whatsapp", "embedly"]
    static let appleNetworks = ["17.0.0.0/8", "2620:149::/32", "2a01:b740::/32"].compactMap(IPNetwork.init)

    /// The reason a request looks like a machine's, or `nil` for a person.
    /// - Parameters:
    ///   - userAgent: the request's `User-Agent`, as sent.
    ///   - network: the client's address, truncated (`IPAddressTruncation`).
    ///   - secondsSinceDelivery: time since the message was delivered; `0` while it is being
    ///     delivered; `nil` when it was never delivered (the rule does not apply).
    public static func classify(userAgent: String?, network: String?, secondsSinceDelivery: TimeInterval?) -> Reason? {
        let agent = (userAgent ?? "").trimmingCharacters(in: .whitespaces)
        guard !agent.isEmpty else { return .noUserAgent }
        let lower = agent.lowercased()
        if imageProxies.contains(where: lower.contains) { return .imageProxy }
        if securityScanners.contains(where: lower.contains) { return .securityScanner }
        if automation.contains(where: lower.contains) { return .automation }
        if crawlers.contains(where: lower.contains) { return .crawler }
        if lower == "mozilla/5.0" { return .appleMailPrivacy }
        if let network, appleNetworks.contains(where: { $0.contains(network) }) { return .appleMailPrivacy }
        if let seconds = secondsSinceDelivery, seconds < prefetchWindow { return .prefetch }
        return nil
    }
}
