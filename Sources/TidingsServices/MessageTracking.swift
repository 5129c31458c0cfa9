import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsMail

/// The tracked URLs of a workspace's messages: `{publicURL}/t/o/{token}` for the open
/// pixel, `{publicURL}/t/c/{token}` for a link. Tokens are MACed with the workspace's
/// blind-index key, which outlives data-key rotations (old mail keeps working) and is
/// destroyed with the workspace (its links stop working with it).
struct TrackingTokens: Sendable {
    let vault: Vault

    func mac(_ token: TrackingToken) -> String {
        TrackingToken.mac(fromHex: vault.blindIndex(token.payload, column: "tracking_token"))
    }

    func encoded(_ token: TrackingToken) -> String {
        token.encoded(mac: mac(token))
    }

    /// Whether `mac` is the token's, compared in constant time.
    func verify(_ token: TrackingToken, mac claimed: String) -> Bool {
        let expected = Array(mac(token).utf8)
        let given = Array(claimed.utf8)
        guard expected.count == given.count else { return false }
        return zip(expected, given).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Tracking applied to a message's HTML as it is built for delivery.
struct MessageTracking: Sendable {
    /// The base of tracked URLs, without a trailing slash.
    let publicURL: String

    init(publicURL: String) {
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        self.publicURL = base
    }

    /// URLs that are Tidings' own and never tracked: unsubscribe pages, tracked URLs.
    var ownPrefixes: [String] { ["\(publicURL)/u/", "\(publicURL)/t/"] }

    /// The HTML to send and the message's link list to store.
    ///
    /// A link's token names its position in the list. `existing` is the list stored by an
    /// earlier attempt: its positions are kept and new links appended, so a link in a copy
    /// delivered before still leads where it did.
    func apply(html: String, messageId: String, decision: TrackingDecision, existing: [String], vault: Vault) -> (html: String, links: [String]) {
        let tokens = TrackingTokens(vault: vault)
        var links = existing
        var result = html
        if decision.clicks {
            var positions = Dictionary(links.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { first, _ in first })
            result = TrackedHTML.rewriteLinks(result, skipping: ownPrefixes) { url in
                let position: Int
                if let known = positions[url] {
                    position = known
                } else {
                    guard links.count < TrackingToken.maxLinks else { return nil }
                    position = links.count
                    links.append(url)
                    positions[url] = position
                }
                return "\(publicURL)/t/c/" + tokens.encoded(TrackingToken(click: messageId, position: position))
            }
        }
        if decision.opens {
            result = TrackedHTML.addPixel(result, source: "\(publicURL)/t/o/" + tokens.encoded(TrackingToken(open: messageId)))
        }
        return (result, links)
    }
}
