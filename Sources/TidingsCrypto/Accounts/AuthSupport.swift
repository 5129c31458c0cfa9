import Foundation

/// Comparison of secret values whose running time does not depend on where they differ.
///
/// A comparison that returns at the first differing byte tells an attacker who can time
/// responses how many leading bytes of a guess were right, turning a brute-force search
/// over the whole value into a byte-by-byte one. Every check of a one-time code, a
/// password hash or a recovery code goes through here instead of `==`.
enum ConstantTime {
    /// `true` when both byte sequences are equal.
    ///
    /// The time taken depends only on the lengths, which are public in every use here
    /// (a code has a fixed number of digits, a hash a fixed size); the contents are
    /// folded into one accumulator with no data-dependent branch.
    static func equals<A: Collection<UInt8>, B: Collection<UInt8>>(_ lhs: A, _ rhs: B) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (left, right) in zip(lhs, rhs) {
            difference |= left ^ right
        }
        return difference == 0
    }
}

/// Random bytes from the operating system's cryptographically secure generator.
///
/// `SystemRandomNumberGenerator` reads from `getrandom`/`arc4random` and is safe to use
/// from any thread; a fresh generator per call keeps this free of shared mutable state.
enum SecureRandom {
    static func bytes(count: Int) -> [UInt8] {
        precondition(count >= 0, "byte count must not be negative")
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}

/// The one normal form in which passwords are measured, compared and hashed.
///
/// The same password can arrive as different code points: "é" typed on one system is
/// U+00E9, pasted from another it may be "e" followed by U+0301. Unicode canonical
/// composition (NFC) maps all such spellings to one, so a password set on a phone still
/// verifies when typed on a laptop, and the policy counts "é" as one character however
/// it was entered.
///
/// NFC rather than the NFKC that NIST SP 800-63B suggests: compatibility folding would
/// also merge characters that look different ("²" and "2", "ﬁ" and "fi"), making
/// passwords slightly easier to guess and letting a ligature count as several characters
/// towards the minimum length. NFC only merges spellings of the same text.
enum PasswordNormalization {
    static func normalize(_ password: String) -> String {
        password.precomposedStringWithCanonicalMapping
    }
}

/// Lowercase hexadecimal for stored forms: unambiguous and safe in any text column.
enum LowercaseHex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes lowercase hex only, so each value has exactly one stored spelling.
    static func decode(_ text: Substring) -> [UInt8]? {
        let bytes = Array(text.utf8)
        guard bytes.count % 2 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count / 2)
        var index = 0
        while index < bytes.count {
            guard let high = value(bytes[index]), let low = value(bytes[index + 1]) else { return nil }
            output.append(high << 4 | low)
            index += 2
        }
        return output
    }

    private static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
