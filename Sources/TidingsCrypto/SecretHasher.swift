import Crypto
import Foundation

/// Keyed hashing of secrets (HMAC-SHA-256) with a server key kept outside the database.
///
/// API keys are stored only as this hash, so a copy of the database does not
/// let anyone call the API; without the server key the hashes cannot even be
/// brute-forced offline.
public struct SecretHasher: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    /// Lowercase hex of HMAC-SHA-256(key, secret).
    public func hash(_ secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: key)
        return Self.hex(mac)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    // `String(format:)` per byte cost more than the HMAC itself on the request path.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
