import Foundation

/// Opaque, time-ordered identifiers such as `ct_01JD3V9Q4ZK1T8X5M2N7P6R0AB`.
///
/// 48 bits of milliseconds since 1970 followed by 80 random bits, in Crockford
/// base 32, behind a short type prefix. Ordering by id is ordering by creation
/// time, which gives cursor pagination a stable key without a second column.
public enum Identifier {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(_ prefix: String, at date: Date = Date()) -> String {
        var generator = BufferedRandom()
        return make(prefix, milliseconds: UInt64(max(0, date.timeIntervalSince1970 * 1000)), using: &generator)
    }

    static func make(_ prefix: String, milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        // 128 bits: high 48 = time, low 80 = random.
        let high = (milliseconds << 16) | UInt64(generator.next() as UInt16)
        let low: UInt64 = generator.next()
        return prefix + "_" + digits(high: high, low: low)
    }

    /// The 16 bytes behind `id` when it is `prefix_` and 26 canonical base-32 digits (as `make`
    /// writes them); `nil` for anything else. `string(prefix:bytes:)` turns them back.
    public static func bytes(of id: String, prefix: String) -> [UInt8]? {
        let utf8 = Array(id.utf8)
        let head = Array((prefix + "_").utf8)
        guard utf8.count == head.count + 26, Array(utf8[..<head.count]) == head else { return nil }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for (position, character) in utf8[head.count...].enumerated() {
            guard let digit = alphabet.firstIndex(of: character) else { return nil }
            // The first digit carries only 3 of the 130 bits.
            if position == 0, digit > 7 { return nil }
            hi = (hi << 5) | (lo >> 59)
            lo = (lo << 5) | UInt64(digit)
        }
        return withUnsafeBytes(of: hi.bigEndian, Array.init) + withUnsafeBytes(of: lo.bigEndian, Array.init)
    }

    /// The identifier `bytes(of:prefix:)` read.
    public static func string(prefix: String, bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        let hi = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let lo = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return prefix + "_" + digits(high: hi, low: lo)
    }

    /// The identifier right after `id` (one more in its last bit), for a sequence that must
    /// stay in order within one millisecond; `nil` when `id` is not canonical.
    public static func successor(of id: String, prefix: String) -> String? {
        guard var bytes = bytes(of: id, prefix: prefix) else { return nil }
        for index in bytes.indices.reversed() {
            bytes[index] &+= 1
            if bytes[index] != 0 { break }
        }
        return string(prefix: prefix, bytes: bytes)
    }

    private static func digits(high: UInt64, low: UInt64) -> String {
        var out = [UInt8](repeating: 0, count: 26)
        // 26 base-32 digits = 130 bits; the first digit carries only 3 bits.
        var hi = high, lo = low
        for index in stride(from: 25, through: 0, by: -1) {
            out[index] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}
