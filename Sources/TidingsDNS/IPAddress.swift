/// An IPv4 or IPv6 address as its bytes, read from and written as text without the
/// system's resolver.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes.
    case v4([UInt8])
    /// 16 bytes.
    case v6([UInt8])

    public var bytes: [UInt8] {
        switch self {
        case .v4(let bytes), .v6(let bytes): bytes
        }
    }

    /// 32 or 128.
    public var bitCount: Int { bytes.count * 8 }

    /// Dotted-quad IPv4 (no leading zeros, as RFC 7208 §12 writes it) or IPv6 text
    /// (RFC 4291 §2.2, with `::` and a trailing dotted quad).
    public init?(_ text: some StringProtocol) {
        if let v4 = Self.parseV4(Substring(text)) {
            self = .v4(v4)
        } else if let v6 = Self.parseV6(Substring(text)) {
            self = .v6(v6)
        } else {
            return nil
        }
    }

    /// The 4 bytes of a dotted quad without leading zeros.
    public static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                  part.count == 1 || part.first != "0", let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// The 16 bytes of an IPv6 address in text.
    public static func parseV6(_ text: Substring) -> [UInt8]? {
        guard text.contains(":"), text.utf8.count <= 45 else { return nil }
        var halves = [text]
        if let gap = text.firstRange(of: "::") {
            halves = [text[..<gap.lowerBound], text[gap.upperBound...]]
            guard halves[1].firstRange(of: "::") == nil else { return nil }
        }
        func groups(_ part: Substring, allowV4Tail: Bool) -> [UInt8]? {
            if part.isEmpty { return [] }
            var bytes: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, allowV4Tail, piece.contains(".") {
                    guard let v4 = parseV4(piece) else { return nil }
                    bytes += v4
                    continue
                }
                guard (1...4).contains(piece.count), piece.allSatisfy(\.isHexDigit), let value = UInt16(piece, radix: 16) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return bytes
        }
        if halves.count == 1 {
            guard let bytes = groups(halves[0], allowV4Tail: true), bytes.count == 16 else { return nil }
            return bytes
        }
        guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true),
              head.count + tail.count <= 14 else { return nil }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    /// Dotted quad, or RFC 5952's canonical IPv6 text (lowercase, the longest run of two or
    /// more zero groups as `::`).
    public var description: String {
        switch self {
        case .v4(let bytes):
            return bytes.map(String.init).joined(separator: ".")
        case .v6(let bytes):
            let groups = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            var best = (start: -1, length: 0)
            var index = 0
            while index < groups.count {
                guard groups[index] == 0 else {
                    index += 1
                    continue
                }
                var end = index
                while end < groups.count, groups[end] == 0 { end += 1 }
                if end - index > best.length, end - index >= 2 { best = (index, end - index) }
                index = end
            }
            let text = groups.map { String($0, radix: 16) }
            guard best.start >= 0 else { return text.joined(separator: ":") }
            return text[..<best.start].joined(separator: ":") + "::" + text[(best.start + best.length)...].joined(separator: ":")
        }
    }

    /// Whether the first `prefixLength` bits of both addresses are equal; addresses of
    /// different families never match.
    public func matches(_ network: IPAddress, prefixLength: Int) -> Bool {
        let mine = bytes, theirs = network.bytes
        guard mine.count == theirs.count, (0...bitCount).contains(prefixLength) else { return false }
        let whole = prefixLength / 8
        guard mine[..<whole] == theirs[..<whole] else { return false }
        let rest = prefixLength % 8
        guard rest > 0 else { return true }
        let mask = UInt8(0xFF) << (8 - rest)
        return mine[whole] & mask == theirs[whole] & mask
    }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool {
        switch self {
        case .v4(let bytes): bytes[0] == 127
        case .v6(let bytes): bytes == Array(repeating: 0, count: 15) + [1]
        }
    }

    /// The name a PTR or `%{i}` lookup uses: `4.3.2.1` or the IPv6 nibbles, reversed (RFC 7208 §7.3).
    public var reversedLabels: [String] {
        switch self {
        case .v4(let bytes): bytes.reversed().map(String.init)
        case .v6(let bytes): bytes.reversed().flatMap { [String($0 & 0x0F, radix: 16), String($0 >> 4, radix: 16)] }
        }
    }

    /// The `%{i}` macro's form: dotted quad, or 32 dot-separated nibbles for IPv6.
    public var spfMacroText: String {
        switch self {
        case .v4: description
        case .v6(let bytes): bytes.flatMap { [String($0 >> 4, radix: 16), String($0 & 0x0F, radix: 16)] }.joined(separator: ".")
        }
    }
}
