import Crypto
import Foundation

/// Signing webhook requests as Standard Webhooks specifies (https://www.standardwebhooks.com):
/// the secret is `whsec_` and the base64 of a random key; each request carries `webhook-id`,
/// `webhook-timestamp` (Unix seconds) and `webhook-signature`, which holds `v1,` and the base64
/// HMAC-SHA256 of `id.timestamp.body` for each secret in use, separated by spaces (two during
/// the overlap after a rotation). Receivers verify with any Standard Webhooks library.
public enum WebhookSignature {
    public static let secretPrefix = "whsec_"
    /// 256-bit keys (the specification allows 24 to 64 bytes).
    static let keyBytes = 32

    /// A new secret, shown to its owner once.
    public static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let key = (0..<keyBytes).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return secretPrefix + Data(key).base64EncodedString()
    }

    /// The key bytes of a secret; `nil` when it is not `whsec_` and base64.
    static func key(of secret: String) -> SymmetricKey? {
        guard secret.hasPrefix(secretPrefix), let bytes = Data(base64Encoded: String(secret.dropFirst(secretPrefix.count))), !bytes.isEmpty else {
            return nil
        }
        return SymmetricKey(data: bytes)
    }

    /// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under `secret`'s key.
    public static func sign(secret: String, id: String, timestamp: Int, body: [UInt8]) -> String? {
        guard let key = key(of: secret) else { return nil }
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array("\(id).\(timestamp).".utf8))
        mac.update(data: body)
        return "v1," + Data(mac.finalize()).base64EncodedString()
    }

    /// The `webhook-signature` header: one `v1,<signature>` per secret, space-separated.
    public static func header(secrets: [String], id: String, timestamp: Int, body: [UInt8]) -> String {
        secrets.compactMap { sign(secret: $0, id: id, timestamp: timestamp, body: body) }.joined(separator: " ")
    }
}
