import Foundation

/// RFC 4648 base32 (alphabet `A–Z2–7`), the encoding authenticator apps expect for
/// one-time-password secrets.
///
/// Output carries no `=` padding: the Key URI format used by authenticator apps asks for
/// the secret without it, and a padded string is longer to type by hand. Input is read
/// leniently because people copy secrets from screens and e-mails: lowercase letters,
/// spaces, tabs, line breaks and trailing `=` padding are all accepted.
public enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    /// Value (0–31) of each ASCII byte in the alphabet, either case; 0xFF for anything else.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, symbol) in alphabet.enumerated() {
            table[Int(symbol)] = UInt8(index)
            // Lowercase letters decode like their uppercase forms; digits have no case.
            if symbol >= UInt8(ascii: "A"), symbol <= UInt8(ascii: "Z") {
                table[Int(symbol | 0x20)] = UInt8(index)
            }
        }
        return table
    }()

    /// Uppercase base32 of `bytes`, without padding.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bitCount = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bitCount += 8
            while bitCount >= 5 {
                bitCount -= 5
                output.append(alphabet[Int((buffer >> UInt32(bitCount)) & 0x1F)])
            }
            // Keep only the bits not yet written so the buffer never overflows.
            buffer &= (1 << UInt32(bitCount)) - 1
        }
        if bitCount > 0 {
            output.append(alphabet[Int((buffer << UInt32(5 - bitCount)) & 0x1F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The bytes encoded by `text`, or `nil` when it is not base32.
    ///
    /// Whitespace anywhere and `=` padding at the end are ignored and letters may be in
    /// either case. Rejected: any other character, `=` followed by data, a number of
    /// symbols no byte string encodes to (1, 3 or 6 modulo 8), and non-zero unused bits in
    /// the last symbol. The last two make every byte string have exactly one accepted
    /// spelling (up to case, whitespace and padding), so a mistyped secret is reported
    /// rather than silently decoded to something else.
    public static func decode(_ text: some StringProtocol) -> Data? {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(text.utf8.count)
        var sawPadding = false
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "="):
                sawPadding = true
            default:
                guard !sawPadding else { return nil }
                let value = values[Int(byte)]
                guard value != 0xFF else { return nil }
                symbols.append(value)
            }
        }
        switch symbols.count % 8 {
        case 1, 3, 6: return nil
        default: break
        }

        var output = Data()
        output.reserveCapacity(symbols.count * 5 / 8)
        var buffer: UInt32 = 0
        var bitCount = 0
        for value in symbols {
            buffer = (buffer << 5) | UInt32(value)
            bitCount += 5
            if bitCount >= 8 {
                bitCount -= 8
                output.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bitCount)))
                buffer &= (1 << UInt32(bitCount)) - 1
            }
        }
        // Whatever is left are the unused low bits of the final symbol; they must be zero.
        guard buffer == 0 else { return nil }
        return output
    }
}
