import Foundation

/// An IPv4 or IPv6 network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is
/// a network of one). Used for the proxies whose forwarding headers are believed.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The address as 16 bytes (IPv4 mapped into `::ffff:0:0/96`), and the prefix length in those bits.
    let bytes: [UInt8]
    let prefixLength: Int
    public let description: String

    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let (bytes, isV4) = Self.address(String(parts[0])) else { return nil }
        let maximum = isV4 ? 32 : 128
        var length = maximum
        if parts.count == 2 {
            guard parts[1].count <= 3, parts[1].allSatisfy(\.isASCII), let value = Int(parts[1]), (0...maximum).contains(value) else { return nil }
            length = value
        }
        self.prefixLength = isV4 ? 96 + length : length
        self.bytes = Self.masked(bytes, prefixLength)
        self.description = trimmed
    }

    /// Whether `address` (text, as a socket reports it) lies in this network.
    public func contains(_ address: String) -> Bool {
        guard let (other, _) = Self.address(address) else { return false }
        return Self.masked(other, prefixLength) == bytes
    }

    /// Parses a comma-separated list; returns the first entry that is not a network as the error.
    public static func parseList(_ text: String) -> Result<[IPNetwork], InvalidEntry> {
        var networks: [IPNetwork] = []
        for entry in text.split(separator: ",") where !entry.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let network = IPNetwork(String(entry)) else { return .failure(InvalidEntry(text: String(entry))) }
            networks.append(network)
        }
        return .success(networks)
    }

    public struct InvalidEntry: Error, Sendable {
        public var text: String
    }

    static func address(_ text: String) -> ([UInt8], Bool)? {
        if let octets = IPAddressTruncation.ipv4(text) {
            return ([UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + octets.map { UInt8($0) }, true)
        }
        if let groups = IPAddressTruncation.ipv6(text) {
            let bytes = groups.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
            // An IPv4-mapped address is the IPv4 client it maps.
            let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
            return (bytes, mapped)
        }
        return nil
    }

    static func masked(_ bytes: [UInt8], _ length: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bits = length - index * 8
            if bits >= 8 { return byte }
            if bits <= 0 { return 0 }
            return byte & UInt8(0xFF << (8 - bits) & 0xFF)
        }
    }
}
