import Crypto
import Foundation

/// Time-based one-time passwords (RFC 6238) as used by authenticator apps.
///
/// The parameters are fixed at HMAC-SHA-1, 6 digits and a 30-second step because those
/// are the only values every authenticator app honours; apps that ignore the
/// `algorithm`, `digits` and `period` URI parameters would otherwise show codes that
/// never verify. SHA-1's collision weakness does not matter here: HOTP needs only HMAC's
/// pseudo-randomness, which HMAC-SHA-1 still provides.
///
/// A value holds the shared secret; `description` never prints it, so a `TOTP` that
/// ends up in a log line or an error message does not leak the second factor.
public struct TOTP: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// Secret size: 160 bits, the HMAC-SHA-1 output size recommended by RFC 4226 §4.
    public static let secretByteCount = 20
    /// RFC 4226 §4 requires at least 128 bits of shared secret.
    public static let minimumSecretByteCount = 16
    /// Number of digits in a code.
    public static let digits = 6
    /// Length of one time step in seconds.
    public static let period: Int64 = 30
    /// How many steps either side of the current one are still accepted.
    ///
    /// One step covers a clock that is up to 30 seconds off and a code typed just as it
    /// rolled over, without letting a shoulder-surfed code stay valid for long (RFC 6238
    /// §5.2 recommends at most one step of network delay).
    public static let allowedDrift: Int64 = 1

    private let key: SymmetricKey

    /// Creates a generator and verifier for `secret`; `nil` when the secret is shorter than
    /// the 128 bits RFC 4226 requires.
    public init?(secret: Data) {
        guard secret.count >= Self.minimumSecretByteCount else { return nil }
        self.key = SymmetricKey(data: secret)
    }

    /// Creates a generator and verifier from a base32 secret as shown to the user or stored
    /// by another system; `nil` when the text is not base32 or the secret is too short.
    public init?(base32Secret: String) {
        guard let secret = Base32.decode(base32Secret) else { return nil }
        self.init(secret: secret)
    }

    /// A fresh random 160-bit secret, to be stored (sealed) for the account and shown once
    /// to the user as a QR code of ``provisioningURI(issuer:accountName:)``.
    public static func generateSecret() -> Data {
        Data(SecureRandom.bytes(count: secretByteCount))
    }

    /// The raw shared secret, for storage.
    public var secret: Data {
        key.withUnsafeBytes { Data($0) }
    }

    /// The secret in unpadded base32, for manual entry into an authenticator app.
    public var base32Secret: String {
        key.withUnsafeBytes { Base32.encode($0) }
    }

    public var description: String { "TOTP(secret: <redacted>)" }
    public var debugDescription: String { description }

    // MARK: - Provisioning

    /// The `otpauth://` URI that authenticator apps read from a QR code.
    ///
    /// The format is the de-facto "Key URI Format": the label is `Issuer:account`, the
    /// issuer is repeated as a parameter (newer apps read that, older ones the label
    /// prefix), and the algorithm, digit count and period are spelled out even though
    /// they are the defaults, so that no app has to guess.
    ///
    /// Each part is percent-encoded on its own so that a `:` or `&` in an issuer or
    /// account name cannot change how the URI is split. Spaces become `%20` (not `+`,
    /// which some apps would display literally). `@` stays literal in the label, where
    /// RFC 3986 allows it, because account names are usually e-mail addresses.
    ///
    /// - Parameters:
    ///   - issuer: The service name shown in the app, e.g. "Tidings". When empty the
    ///     label is the account name alone and no `issuer` parameter is written.
    ///   - accountName: Which account this is, usually the e-mail address.
    public func provisioningURI(issuer: String, accountName: String) -> String {
        let encodedAccount = Self.percentEncode(accountName, keeping: Self.labelSafe)
        var uri = "otpauth://totp/"
        if issuer.isEmpty {
            uri += encodedAccount
        } else {
            uri += Self.percentEncode(issuer, keeping: Self.unreserved) + ":" + encodedAccount
        }
        uri += "?secret=" + base32Secret
        if !issuer.isEmpty {
            uri += "&issuer=" + Self.percentEncode(issuer, keeping: Self.unreserved)
        }
        uri += "&algorithm=SHA1&digits=\(Self.digits)&period=\(Self.period)"
        return uri
    }

    /// RFC 3986 unreserved characters: the only ones safe in every part of a URI.
    private static let unreserved: Set<UInt8> = Set(
        Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~".utf8)
    )
    private static let labelSafe: Set<UInt8> = unreserved.union([UInt8(ascii: "@")])

    /// Percent-encodes the UTF-8 of `text`, keeping only bytes in `safe` as they are.
    ///
    /// Hand-written rather than `addingPercentEncoding(withAllowedCharacters:)` because
    /// the Foundation character sets for URL parts allow `:`, `&`, `=` and `+`, which
    /// are exactly the characters that must be escaped here.
    private static func percentEncode(_ text: String, keeping safe: Set<UInt8>) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if safe.contains(byte) {
                output.append(byte)
            } else {
                output.append(UInt8(ascii: "%"))
                output.append(hex[Int(byte >> 4)])
                output.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Codes

    /// The RFC 6238 time-step counter for `date`: whole periods since the Unix epoch.
    ///
    /// `nil` for dates before 1970 or too far in the future to count, which no
    /// authenticator app can produce a code for.
    public static func timeStep(for date: Date) -> Int64? {
        let seconds = date.timeIntervalSince1970
        guard seconds.isFinite, seconds >= 0, seconds < 9.0e15 else { return nil }
        return Int64(seconds.rounded(.down)) / period
    }

    /// The code an authenticator app shows at `date`; `nil` where ``timeStep(for:)`` is.
    public func code(at date: Date) -> String? {
        guard let step = Self.timeStep(for: date) else { return nil }
        return code(forStep: step)
    }

    /// The code for a given time-step counter.
    public func code(forStep step: Int64) -> String {
        precondition(step >= 0, "time steps start at the Unix epoch")
        return String(decoding: Self.hotp(key: key, counter: UInt64(step), digits: Self.digits), as: UTF8.self)
    }

    /// Checks a code typed by the user and returns the time step it belongs to.
    ///
    /// The code is compared, in constant time, against the codes of the current step and
    /// of ``allowedDrift`` steps either side. A step is only considered when it is later
    /// than `lastUsedStep`, so once the returned step has been stored for the account the
    /// same code, or any code from the same or an earlier step, is refused: an attacker
    /// who watches a code being typed cannot use it again within its validity window
    /// (RFC 6238 §5.2).
    ///
    /// All candidate steps are always computed and compared, so the time taken does not
    /// tell which one matched. Should a code match more than one step (the same six
    /// digits recurring within the window, about one chance in a million), the latest
    /// step is returned so that storing it rules out every one of them.
    ///
    /// - Parameters:
    ///   - code: What the user typed. Anything other than exactly six ASCII digits is
    ///     refused; callers that want to allow "123 456" should remove the space first.
    ///   - date: The current time.
    ///   - lastUsedStep: The step returned by the last successful verification for this
    ///     account, or `nil` if there has been none.
    /// - Returns: The matched step, to be stored as the new `lastUsedStep` in the same
    ///   transaction that accepts the login; `nil` if the code is refused.
    public func verify(_ code: String, at date: Date, lastUsedStep: Int64?) -> Int64? {
        let typed = Array(code.utf8)
        guard typed.count == Self.digits,
              typed.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let current = Self.timeStep(for: date)
        else { return nil }

        var matched: Int64?
        for step in (current - Self.allowedDrift)...(current + Self.allowedDrift) {
            guard step >= 0, step > (lastUsedStep ?? -1) else { continue }
            let expected = Self.hotp(key: key, counter: UInt64(step), digits: Self.digits)
            if ConstantTime.equals(expected, typed) {
                matched = step
            }
        }
        return matched
    }

    // MARK: - HOTP (RFC 4226)

    /// The HOTP value for `counter` as ASCII digits, zero-padded to `digits`.
    ///
    /// RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte big-endian counter, "dynamic truncation"
    /// to a 31-bit number taken at the offset named by the low nibble of the last byte,
    /// then that number modulo 10^digits. The digit count is a parameter so the RFC 6238
    /// test vectors, which use 8 digits, can check the arithmetic.
    static func hotp(key: SymmetricKey, counter: UInt64, digits: Int) -> [UInt8] {
        precondition((6...9).contains(digits), "HOTP codes have 6 to 9 digits")
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: counterBytes(counter), using: key))
        let truncated = dynamicTruncation(mac)
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        var value = truncated % modulus

        var output = [UInt8](repeating: UInt8(ascii: "0"), count: digits)
        for index in stride(from: digits - 1, through: 0, by: -1) {
            output[index] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        return output
    }

    /// RFC 4226 §5.3 dynamic truncation of an HMAC-SHA-1 result to a 31-bit integer.
    static func dynamicTruncation(_ mac: [UInt8]) -> UInt32 {
        let offset = Int(mac[mac.count - 1] & 0x0F)
        return (UInt32(mac[offset] & 0x7F) << 24)
            | (UInt32(mac[offset + 1]) << 16)
            | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
    }

    private static func counterBytes(_ counter: UInt64) -> [UInt8] {
        (0..<8).map { index in UInt8(truncatingIfNeeded: counter >> UInt64(56 - 8 * index)) }
    }
}
