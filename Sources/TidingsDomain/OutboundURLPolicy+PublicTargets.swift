/// Targets that users choose (webhook endpoints): on a production instance they must be public
/// services. A URL whose host is, or resolves to, an address of this machine or of a private
/// network would let anyone with an API key make Tidings call into the network it runs in
/// (server-side request forgery), so such targets are refused when they are saved and again,
/// after a fresh DNS lookup, before every request (a name may be rebound to an inner address
/// after it was checked). Development and staging instances may call anything, so a receiver
/// on the developer's machine works.
extension OutboundURLPolicy {
    /// Whether user-chosen targets must resolve to public addresses only.
    public var requiresPublicTargets: Bool { environment == .production }

    /// Address ranges that hold no public service, each with the name a refusal gives it.
    /// IPv4 ranges also cover their IPv4-mapped IPv6 form (`::ffff:10.0.0.1`).
    public static let nonPublicRanges: [(network: IPNetwork, name: String)] = {
        let ranges: [(String, String)] = [
            ("0.0.0.0/8", "unspecified"),
            ("10.0.0.0/8", "private"),
            ("100.64.0.0/10", "carrier-grade NAT"),
            ("127.0.0.0/8", "loopback"),
            ("169.254.0.0/16", "link-local"),
            ("172.16.0.0/12", "private"),
            ("192.0.0.0/24", "IETF protocol assignment"),
            ("192.168.0.0/16", "private"),
            ("198.18.0.0/15", "benchmarking"),
            ("224.0.0.0/4", "multicast"),
            ("240.0.0.0/4", "reserved"),
            ("::/128", "unspecified"),
            ("::1/128", "loopback"),
            // The deprecated IPv4-compatible form reaches IPv4 hosts in ways no check here follows.
            ("::/96", "IPv4-compatible"),
            ("64:ff9b:1::/48", "local NAT64"),
            ("100::/64", "discard-only"),
            ("2001::/32", "Teredo"),
            ("fc00::/7", "unique-local"),
            ("fe80::/10", "link-local"),
            ("fec0::/10", "site-local"),
            ("ff00::/8", "multicast"),
        ]
        return ranges.map { (IPNetwork($0.0)!, $0.1) }
    }()

    /// Why `address` is not a public address — its range, e.g. `private (10.0.0.0/8)` — or
    /// `nil` when it is public. Addresses that carry an IPv4 address (NAT64 `64:ff9b::/96`,
    /// 6to4 `2002::/16`) are judged by it. Text that is no IP address is refused as such.
    public static func nonPublicRange(of address: String) -> String? {
        guard let (bytes, _) = IPNetwork.address(address) else { return "not an IP address" }
        let embedded: [UInt8]?
        if bytes[0..<12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] {
            embedded = Array(bytes[12..<16])
        } else if bytes[0] == 0x20, bytes[1] == 0x02 {
            embedded = Array(bytes[2..<6])
        } else {
            embedded = nil
        }
        if let embedded, let inner = nonPublicRange(of: embedded.map(String.init).joined(separator: ".")) {
            return "\(inner), inside \(address)"
        }
        for (network, name) in nonPublicRanges where network.contains(address) {
            return "\(name) (\(network))"
        }
        return nil
    }

    /// Checks a URL a user gives for a target: `check(_:)`'s scheme rules, a host that is a DNS
    /// name or an IP address written plainly (never the octal, hexadecimal or shortened forms
    /// some resolvers read as addresses), no credentials and no fragment. In production an
    /// address or `localhost` that is not public is refused here; names are resolved and
    /// judged by `checkResolved(host:addresses:)`.
    public func checkTarget(_ text: String, maxLength: Int = 2048) throws(Refused) -> Endpoint {
        guard text.utf8.count <= maxLength else {
            throw Refused(description: "The URL is longer than \(maxLength) bytes.")
        }
        guard !text.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) else {
            throw Refused(description: "The URL must be ASCII without spaces or control characters (write an international host name in its xn-- form).")
        }
        let endpoint = try check(text)
        guard endpoint.components.user == nil, endpoint.components.password == nil else {
            throw Refused(description: "The URL must not carry a user name or password; put a token in its path or query instead.")
        }
        guard endpoint.components.fragment == nil else {
            throw Refused(description: "The URL must not have a fragment (#…): it is never sent.")
        }
        let host = endpoint.host.lowercased()
        if host.contains(":") {
            guard !host.contains("%"), IPAddressTruncation.ipv6(host) != nil else {
                throw Refused(description: "'\(host.prefix(100))' is not an IPv6 address.")
            }
        } else if !Self.isPlainIPv4(host) {
            guard Self.isHostName(host) else {
                throw Refused(description: "'\(host.prefix(100))' is neither a host name nor an IP address written as four decimal numbers.")
            }
        }
        if requiresPublicTargets {
            if host == "localhost" || host.hasSuffix(".localhost") || host == "localhost." {
                throw Refused(description: "'\(host)' is this machine; production refuses targets on loopback, private or link-local networks.")
            }
            if Self.isAddressLiteral(host), let range = Self.nonPublicRange(of: host) {
                throw Refused(description: "\(host) is a \(range) address; production refuses targets that are not public.")
            }
        }
        return endpoint
    }

    /// Refuses a host whose DNS addresses include one that is not public (in production; any
    /// address passes elsewhere). One inner address is enough: a client may connect to any.
    public func checkResolved(host: String, addresses: [String]) throws(Refused) {
        guard !addresses.isEmpty else {
            throw Refused(description: "\(host.prefix(100)) has no A or AAAA record.")
        }
        guard requiresPublicTargets else { return }
        for address in addresses {
            if let range = Self.nonPublicRange(of: address) {
                throw Refused(description: "\(host.prefix(100)) resolves to \(address), a \(range) address; production refuses targets that are not public.")
            }
        }
    }

    /// Whether `host` is an IP address (IPv6 without brackets) rather than a name.
    public static func isAddressLiteral(_ host: String) -> Bool {
        host.contains(":") ? IPAddressTruncation.ipv6(host) != nil : isPlainIPv4(host)
    }

    /// Four decimal numbers 0–255 without leading zeros: the only IPv4 form every parser reads alike.
    static func isPlainIPv4(_ host: String) -> Bool {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            (1...3).contains(part.count) && part.allSatisfy { $0.isASCII && $0.isNumber } && (part.count == 1 || part.first != "0")
                && Int(part)! <= 255
        }
    }

    /// Letters, digits and hyphens in labels of 1–63, at most 253 in all, an optional final
    /// dot, and a last label that is not all digits (`127.1` and `0x7f.1` are not names).
    static func isHostName(_ host: String) -> Bool {
        var name = Substring(host)
        if name.hasSuffix(".") { name = name.dropLast() }
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy({ label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { $0 == UInt8(ascii: "-") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        }) else { return false }
        let last = labels.last!
        return !last.allSatisfy(\.isNumber) && !(last.hasPrefix("0x") && labels.count > 1 && last.dropFirst(2).allSatisfy(\.isHexDigit))
    }
}
