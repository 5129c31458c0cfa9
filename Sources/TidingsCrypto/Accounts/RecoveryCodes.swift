import Crypto
import Foundation

/// Single-use recovery codes: the way back into an account whose second factor is lost.
///
/// A batch is ten codes, shown once as `xxxxx-xxxxx`. Each has ten characters from a
/// 31-symbol alphabet without the look-alikes 0/O, 1/l/I (about 49.5 bits), so it can be
/// written down and typed back without ambiguity. Input is accepted with or without the
/// dash, in either case and with stray spaces.
///
/// Only a stored form is kept, never the code: `v1$<salt>$<mac>`, HMAC-SHA-256 under a
/// server key of a random 16-byte salt and the normalised code. The key is kept outside
/// the database, so a copy of the database alone gives nothing to brute-force; the
/// per-code salt means that even with the key, each code has to be searched for
/// separately rather than all accounts' codes at once. A fast keyed
/// hash is enough here, unlike for passwords, because the codes are random and long
/// rather than chosen by people.
///
/// "Single use" is the caller's part: when ``firstMatch(_:in:)`` returns an index, delete
/// that stored form in the same transaction that accepts the login.
public struct RecoveryCodes: Sendable {
    /// Codes per batch.
    public static let defaultCount = 10
    /// Characters per code, without the dash.
    public static let codeLength = 10
    /// Digits 2–9 and lowercase letters except i, l and o. Uppercase is never shown but
    /// accepted on input, so "I", "L" and "O" must be absent too, which the lowercase
    /// exclusions ensure.
    public static let alphabet = "23456789abcdefghjkmnpqrstuvwxyz"

    static let saltByteCount = 16
    private static let formatVersion = "v1"
    private static let alphabetBytes = Array(alphabet.utf8)

    private let key: SymmetricKey

    /// - Parameter key: Server-side HMAC key, at least 128 bits, kept outside the database.
    public init(key: SymmetricKey) {
        precondition(key.bitCount >= 128, "the recovery code key must have at least 128 bits")
        self.key = key
    }

    /// A new batch of distinct codes in display form (`xxxxx-xxxxx`).
    ///
    /// Each symbol is drawn uniformly (no modulo bias) from the system's secure random
    /// generator. Show the codes once, store only ``storedForm(of:)`` of each.
    public static func generate(count: Int = defaultCount) -> [String] {
        precondition(count >= 1, "a batch needs at least one code")
        var generator = SystemRandomNumberGenerator()
        var codes: [String] = []
        var seen = Set<String>()
        while codes.count < count {
            var symbols: [UInt8] = []
            symbols.reserveCapacity(codeLength + 1)
            for position in 0..<codeLength {
                if position == codeLength / 2 { symbols.append(UInt8(ascii: "-")) }
                symbols.append(alphabetBytes[Int.random(in: 0..<alphabetBytes.count, using: &generator)])
            }
            let code = String(decoding: symbols, as: UTF8.self)
            // A repeat is astronomically unlikely, but two equal codes would silently
            // leave the user with one code fewer than shown.
            if seen.insert(code).inserted { codes.append(code) }
        }
        return codes
    }

    /// The canonical form of typed input: lowercase, without dashes and whitespace;
    /// `nil` unless exactly ``codeLength`` symbols of ``alphabet`` remain.
    public static func normalize(_ input: String) -> String? {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(codeLength)
        for byte in input.utf8 {
            switch byte {
            case UInt8(ascii: "-"), UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                continue
            default:
                // ASCII letters are lowercased by setting bit 5; anything else that is not
                // in the alphabet (including "0", "1" and non-ASCII) is refused below.
                let lowered = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
                guard alphabetBytes.contains(lowered), symbols.count < codeLength else { return nil }
                symbols.append(lowered)
            }
        }
        guard symbols.count == codeLength else { return nil }
        return String(decoding: symbols, as: UTF8.self)
    }

    /// The form to store for a code, with a fresh random salt; `nil` if `code` is not a
    /// recovery code (see ``normalize(_:)``).
    public func storedForm(of code: String) -> String? {
        guard let canonical = Self.normalize(code) else { return nil }
        let salt = SecureRandom.bytes(count: Self.saltByteCount)
        let mac = Self.mac(canonical, salt: salt, key: key)
        return "\(Self.formatVersion)$\(LowercaseHex.encode(salt))$\(LowercaseHex.encode(mac))"
    }

    /// Which stored code, if any, `input` is; its index into `stored`.
    ///
    /// Every stored form is checked, with a constant-time comparison each, even after a
    /// match, so the time taken does not reveal which code matched. Stored forms that
    /// cannot be read are skipped. Input that is not shaped like a code is refused before
    /// any hashing, which reveals nothing secret.
    public func firstMatch(_ input: String, in stored: [String]) -> Int? {
        guard let canonical = Self.normalize(input) else { return nil }
        var match: Int?
        for (index, entry) in stored.enumerated() {
            guard let (salt, expected) = Self.parse(entry) else { continue }
            let actual = Self.mac(canonical, salt: salt, key: key)
            if ConstantTime.equals(actual, expected), match == nil {
                match = index
            }
        }
        return match
    }

    private static func mac(_ canonical: String, salt: [UInt8], key: SymmetricKey) -> [UInt8] {
        var message = salt
        message.append(contentsOf: canonical.utf8)
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }

    private static func parse(_ entry: String) -> (salt: [UInt8], mac: [UInt8])? {
        let fields = entry.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 3, fields[0] == formatVersion,
              let salt = LowercaseHex.decode(fields[1]), salt.count == saltByteCount,
              let mac = LowercaseHex.decode(fields[2]), mac.count == SHA256.byteCount
        else { return nil }
        return (salt, mac)
    }
}
