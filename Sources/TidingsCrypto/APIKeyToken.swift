/// The secret part of an API key as a customer sees it once:
/// `tdg_` + 43 base-62 characters (256 bits of entropy) + a 6-character checksum.
///
/// The fixed prefix makes leaked keys easy to find with secret scanners; the
/// checksum (CRC-32 of the random part) lets a typo be rejected before any
/// database lookup.
public struct APIKeyToken: Sendable, Equatable, CustomStringConvertible {
    public static let prefix = "tdg_"
    static let randomLength = 43
    static let checksumLength = 6
    public static let length = prefix.count + randomLength + checksumLength

    /// The full token; only ever shown to the customer at creation or rotation.
    public let secret: String

    /// The first characters after the prefix: safe to display and log so a key can be told apart.
    public var hint: String { String(secret.dropFirst(Self.prefix.count).prefix(6)) }

    /// Never print the secret by accident.
    public var description: String { "\(Self.prefix)\(hint)…" }

    public static func generate() -> APIKeyToken {
        var generator = SystemRandomNumberGenerator()
        var random = ""
        random.reserveCapacity(randomLength)
        for _ in 0..<randomLength {
            // Rejection-free: 62 symbols drawn uniformly with `random(in:)`.
            random.append(Base62.alphabet[Int.random(in: 0..<62, using: &generator)])
        }
        return APIKeyToken(uncheckedSecret: prefix + random + checksum(of: random))
    }

    /// Parses a presented token; `nil` when its shape or checksum is wrong.
    public init?(parsing text: some StringProtocol) {
        guard text.utf8.count == Self.length, text.hasPrefix(Self.prefix) else { return nil }
        let body = text.dropFirst(Self.prefix.count)
        guard body.utf8.allSatisfy(Base62.isDigit) else { return nil }
        let random = String(body.prefix(Self.randomLength))
        guard String(body.suffix(Self.checksumLength)) == Self.checksum(of: random) else { return nil }
        self.secret = String(text)
    }

    private init(uncheckedSecret: String) {
        self.secret = uncheckedSecret
    }

    static func checksum(of random: String) -> String {
        Base62.encode(UInt64(CRC32.checksum(random.utf8)), width: checksumLength)
    }
}

enum Base62 {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    static func isDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"): true
        default: false
        }
    }

    static func encode(_ value: UInt64, width: Int) -> String {
        var digits = [Character](repeating: "0", count: width)
        var rest = value
        for index in stride(from: width - 1, through: 0, by: -1) {
            digits[index] = alphabet[Int(rest % 62)]
            rest /= 62
        }
        return String(digits)
    }
}

enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = (crc & 1) == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
