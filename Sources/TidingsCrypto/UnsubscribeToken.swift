import Crypto
import Foundation

/// The capability in an unsubscribe link (`/u/{token}`): who may change which contact's
/// subscriptions, from which message. Nothing is stored for it; the token carries the
/// workspace, contact and message ids and a MAC over them, made with a key derived from the
/// workspace's blind-index key. So a token cannot be forged or guessed (128-bit MAC), the
/// contact is known only through a valid MAC, and deleting the workspace (its keys) kills
/// every link it sent. The index key is never rotated, so links in old mail keep working
/// after a data-key rotation.
///
/// Layout, base64url without padding: version `1`, a flags byte, the three ids, then the
/// first 16 bytes of the MAC over everything before it. An id in Tidings' canonical form
/// (`ws_`/`ct_`/`msg_` and 26 base-32 digits) takes its 16 bytes; any other id is written
/// out, length-prefixed (the flag says which). Typically 88 characters.
public struct UnsubscribeToken: Sendable, Equatable {
    public var workspaceId: String
    public var contactId: String
    /// The message the link was sent in; `nil` for a link made outside a message.
    public var messageId: String?

    public init(workspaceId: String, contactId: String, messageId: String?) {
        self.workspaceId = workspaceId
        self.contactId = contactId
        self.messageId = messageId
    }

    static let version: UInt8 = 1
    static let macLength = 16
    static let purpose = "unsubscribe-link"
    /// Longest id written out in full.
    static let maxRawIdLength = 120
    /// Longer input is not a token; checked before any decoding.
    public static let maxLength = 600

    /// The token, signed with `vault` (the keys of `workspaceId`).
    public func encode(with vault: Vault) -> String {
        precondition(vault.scope == workspaceId, "a token is signed with its own workspace's keys")
        var bytes: [UInt8] = [Self.version, 0]
        for (bit, id, prefix) in [(0, workspaceId, "ws"), (1, contactId, "ct"), (2, messageId ?? "", "msg")] {
            if bit == 2, messageId == nil {
                bytes[1] |= 1 << 3
            } else if let compact = Identifier.bytes(of: id, prefix: prefix) {
                bytes += compact
            } else {
                let raw = Array(id.utf8.prefix(Self.maxRawIdLength))
                bytes[1] |= 1 << bit
                bytes += [UInt8(raw.count)] + raw
            }
        }
        bytes += vault.index.authenticationCode(bytes, purpose: Self.purpose).prefix(Self.macLength)
        return Self.base64url(bytes)
    }

    /// The workspace a token names, read without any key, to pick the keys that check it.
    /// `nil` when the text is not shaped like a token at all.
    public static func claimedWorkspace(_ token: String) -> String? {
        parse(token)?.token.workspaceId
    }

    /// The token's content when `vault`'s workspace signed it; `nil` for anything forged,
    /// altered, truncated, or signed by another workspace.
    public static func verify(_ token: String, with vault: Vault) -> UnsubscribeToken? {
        guard let parsed = parse(token), parsed.token.workspaceId == vault.scope else { return nil }
        let expected = vault.index.authenticationCode(parsed.signed, purpose: purpose).prefix(macLength)
        // Constant time: a mismatch at the first byte takes as long as one at the last.
        var difference: UInt8 = 0
        for (left, right) in zip(expected, parsed.mac) { difference |= left ^ right }
        return difference == 0 ? parsed.token : nil
    }

    private static func parse(_ token: String) -> (token: UnsubscribeToken, signed: [UInt8], mac: [UInt8])? {
        guard token.utf8.count <= maxLength, let bytes = base64urlDecode(token), bytes.count > 2 + macLength,
              bytes[0] == version, bytes[1] & 0xF0 == 0 else { return nil }
        let flags = bytes[1]
        var offset = 2
        let end = bytes.count - macLength
        var ids: [String?] = []
        for (bit, prefix) in [(0, "ws"), (1, "ct"), (2, "msg")] {
            if bit == 2, flags & (1 << 3) != 0 {
                guard flags & (1 << 2) == 0 else { return nil }
                ids.append(nil)
            } else if flags & (1 << bit) == 0 {
                guard offset + 16 <= end, let id = Identifier.string(prefix: prefix, bytes: Array(bytes[offset..<offset + 16])) else { return nil }
                ids.append(id)
                offset += 16
            } else {
                guard offset < end else { return nil }
                let length = Int(bytes[offset])
                guard length > 0, offset + 1 + length <= end, let id = String(validating: bytes[(offset + 1)..<(offset + 1 + length)], as: UTF8.self) else {
                    return nil
                }
                ids.append(id)
                offset += 1 + length
            }
        }
        guard offset == end, let workspaceId = ids[0], let contactId = ids[1] else { return nil }
        return (UnsubscribeToken(workspaceId: workspaceId, contactId: contactId, messageId: ids[2]), Array(bytes[..<end]), Array(bytes[end...]))
    }

    static func base64url(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static func base64urlDecode(_ text: String) -> [UInt8]? {
        guard text.utf8.allSatisfy({ byte in
            (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x2D || byte == 0x5F
        }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64).map(Array.init)
    }
}
