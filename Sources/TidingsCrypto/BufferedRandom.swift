import Synchronization

/// Random bits from the operating system's generator, read 4 KiB at a time. Identifiers and
/// nonces take a few bytes each, millions of times in a large fan-out; one `getrandom` call
/// per 4 KiB instead of one or two per value. Every byte is handed out once.
public struct BufferedRandom: RandomNumberGenerator {
    private static let pool = Mutex(Pool())

    private struct Pool {
        var bytes = [UInt8](repeating: 0, count: 4096)
        var used = 4096

        mutating func take(_ count: Int, into target: UnsafeMutableRawBufferPointer) {
            precondition(count <= bytes.count)
            if used + count > bytes.count {
                var system = SystemRandomNumberGenerator()
                bytes.withUnsafeMutableBytes { buffer in
                    var offset = 0
                    while offset < buffer.count {
                        let word = system.next() as UInt64
                        withUnsafeBytes(of: word) { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: 8) }
                        offset += 8
                    }
                }
                used = 0
            }
            bytes.withUnsafeBytes { source in
                target.baseAddress!.copyMemory(from: source.baseAddress!.advanced(by: used), byteCount: count)
            }
            // Handed out bytes are not kept.
            bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: used).initializeMemory(as: UInt8.self, repeating: 0, count: count) }
            used += count
        }
    }

    public init() {}

    public mutating func next() -> UInt64 {
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { target in Self.pool.withLock { $0.take(8, into: target) } }
        return value
    }

    /// `count` random bytes (at most 4 KiB).
    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { target in pool.withLock { $0.take(count, into: target) } }
        return out
    }
}
