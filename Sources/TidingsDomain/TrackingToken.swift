import Foundation

/// The token of a tracking URL: `/t/o/{token}` for a message's open pixel, `/t/c/{token}`
/// for one of its links.
///
/// `msg_….{mac}` (open) and `msg_….{position}.{mac}` (click), where `position` is the
/// link's index in the message's stored link list and `mac` is a keyed MAC (the
/// workspace's key, 128 bits, base64url) over `payload`. Nothing in a token can be
/// changed without the key: a forged or altered one matches no MAC and is answered 404,
/// so a link can only ever lead to a URL that was in the message sent. Only the
/// canonical form parses (no leading zeros, no padding), so each message and link has
/// exactly one valid token.
public struct TrackingToken: Sendable, Equatable {
    public var kind: TrackingEventKind
    public var messageId: String
    /// The link's index; `nil` for the open pixel.
    public var position: Int?

    public init(open messageId: String) {
        self.kind = .open
        self.messageId = messageId
        self.position = nil
    }

    public init(click messageId: String, position: Int) {
        self.kind = .click
        self.messageId = messageId
        self.position = position
    }

    /// Links per message that get a tracked URL; the rest are left as they are.
    public static let maxLinks = 1000
    /// Characters of a MAC: 16 bytes in base64url without padding.
    public static let macLength = 22

    /// What the MAC covers; the kind keeps an open token from passing as a click token.
    public var payload: String {
        switch kind {
        case .open: "open\u{0}\(messageId)"
        case .click: "click\u{0}\(messageId)\u{0}\(position ?? 0)"
        }
    }

    /// The token text, with `mac` from `mac(fromHex:)`.
    public func encoded(mac: String) -> String {
        switch kind {
        case .open: "\(messageId).\(mac)"
        case .click: "\(messageId).\(position ?? 0).\(mac)"
        }
    }

    /// The token and the MAC it claims, when `text` has the canonical shape for `kind`.
    /// The MAC is not checked here.
    public static func parse(_ text: String, kind: TrackingEventKind) -> (token: TrackingToken, mac: String)? {
        guard text.utf8.count <= 80 else { return nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == (kind == .open ? 2 : 3) else { return nil }
        let messageId = String(parts[0])
        guard isMessageId(messageId) else { return nil }
        let mac = String(parts[parts.count - 1])
        guard mac.utf8.count == macLength, mac.utf8.allSatisfy(isBase64URL) else { return nil }
        switch kind {
        case .open:
            return (TrackingToken(open: messageId), mac)
        case .click:
            let digits = parts[1]
            guard (1...4).contains(digits.utf8.count), digits.utf8.allSatisfy({ (48...57).contains($0) }),
                  digits == "0" || digits.first != "0", let position = Int(digits), position < maxLinks else { return nil }
            return (TrackingToken(click: messageId, position: position), mac)
        }
    }

    /// The MAC text from the hex of a keyed hash: its first 16 bytes in base64url.
    public static func mac(fromHex hex: String) -> String {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while bytes.count < 16, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex), let byte = UInt8(hex[index..<next], radix: 16) {
            bytes.append(byte)
            index = next
        }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// `msg_` and 26 characters of Crockford base 32 (`Identifier`).
    static func isMessageId(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 30, text.hasPrefix("msg_") else { return false }
        return bytes[4...].allSatisfy { (48...57).contains($0) || (65...90).contains($0) }
    }

    static func isBase64URL(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
    }
}
