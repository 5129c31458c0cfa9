#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Synchronization

/// Random bits from the operating system's generator, read 4 KiB at a time. Identifiers and
/// nonces take a few bytes each, millions of times in a large fan-out; one read of the kernel's
/// generator per 4 KiB instead of a call per 8 bytes. Every byte is handed out once.
public struct BufferedRandom: RandomNumberGenerator {
    private static let pool = Mutex(Pool())

    private struct Pool {
        var bytes = [UInt8](repeating: 0, count: 4096)
        var used = 4096

        mutating func take(_ count: Int, into target: UnsafeMutableRawBufferPointer) {
            precondition(count <= bytes.count)
            if used + count > bytes.count {
                bytes.withUnsafeMutableBytes { BufferedRandom.fill($0) }
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

    /// The kernel's generator (the one behind getrandom), kept open; -1 when it cannot be opened.
    private static let device: Int32 = open("/dev/urandom", O_RDONLY | O_CLOEXEC)

    /// Fills `buffer` from the operating system in one read where it can.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while device >= 0, offset < buffer.count {
            let count = read(device, buffer.baseAddress! + offset, buffer.count - offset)
            if count > 0 {
                offset += count
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        // Without the device: the standard library's generator.
        var system = SystemRandomNumberGenerator()
        while offset < buffer.count {
            buffer[offset] = UInt8(truncatingIfNeeded: system.next() as UInt64)
            offset += 1
        }
    }

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
