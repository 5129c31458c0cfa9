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

    /// A separate key for another purpose, derived from this one (HKDF), so one server
    /// secret serves several uses without any two sharing a key.
    public func derivedKey(for purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data("tidings.\(purpose).v1".utf8), outputByteCount: 32)
    }

    /// A random token for a person to hold (session, setup link): 256 bits, base64url.
    public static func randomToken() -> String {
        SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
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
