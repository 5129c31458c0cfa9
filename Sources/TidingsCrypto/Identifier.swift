import Foundation

/// Opaque, time-ordered identifiers such as `ct_01JD3V9Q4ZK1T8X5M2N7P6R0AB`.
///
/// 48 bits of milliseconds since 1970 followed by 80 random bits, in Crockford
/// base 32, behind a short type prefix. Ordering by id is ordering by creation
/// time, which gives cursor pagination a stable key without a second column.
public enum Identifier {
    private static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    public static func make(_ prefix: String, at date: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(prefix, milliseconds: UInt64(max(0, date.timeIntervalSince1970 * 1000)), using: &generator)
    }

    static func make(_ prefix: String, milliseconds: UInt64, using generator: inout some RandomNumberGenerator) -> String {
        // 128 bits: high 48 = time, low 80 = random.
        let high = (milliseconds << 16) | UInt64(generator.next() as UInt16)
        let low: UInt64 = generator.next()
        var out = [UInt8](repeating: 0, count: 26)
        // 26 base-32 digits = 130 bits; the first digit carries only 3 bits.
        var hi = high, lo = low
        for index in stride(from: 25, through: 0, by: -1) {
            out[index] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return prefix + "_" + String(decoding: out, as: UTF8.self)
    }
}
