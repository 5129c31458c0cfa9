/// Client addresses are truncated before they are stored or logged (T5.3): IPv4 to its /24,
/// IPv6 to its /48. Enough to tell networks apart, not enough to single out a person.
public enum IPAddressTruncation {
    /// The truncated form (`203.0.113.0`, `2001:db8:85a3::`), or `nil` for text that is not an address.
    public static func truncate(_ text: String) -> String? {
        if let octets = ipv4(text) {
            return "\(octets[0]).\(octets[1]).\(octets[2]).0"
        }
        if let groups = ipv6(text) {
            // IPv4-mapped addresses (::ffff:a.b.c.d) are IPv4 clients: truncate as such.
            if groups[0..<5].allSatisfy({ $0 == 0 }), groups[5] == 0xFFFF {
                return "\(groups[6] >> 8).\(groups[6] & 0xFF).\(groups[7] >> 8).0"
            }
            return String(groups[0], radix: 16) + ":" + String(groups[1], radix: 16) + ":" + String(groups[2], radix: 16) + "::"
        }
        return nil
    }

    static func ipv4(_ text: some StringProtocol) -> [UInt16]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var octets: [UInt16] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let value = UInt16(part), value <= 255 else { return nil }
            octets.append(value)
        }
        return octets
    }

    /// The eight 16-bit groups of an IPv6 address (with `::` and a trailing dotted IPv4 part allowed).
    static func ipv6(_ text: String) -> [UInt16]? {
        var body = Substring(text)
        if let zone = body.firstIndex(of: "%") { body = body[..<zone] }
        guard body.contains(":"), body.count <= 45 else { return nil }
        let halves = body.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains("."), let octets = ipv4(piece) {
                    result.append(octets[0] << 8 | octets[1])
                    result.append(octets[2] << 8 | octets[3])
                } else {
                    guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 {
            return head.count == 8 ? head : nil
        }
        guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
        return head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
    }
}
