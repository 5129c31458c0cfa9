/// A DNS server to ask: a host (usually an IP address) and a port.
public struct DNSServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int = 53) {
        self.host = host
        self.port = port
    }

    /// Why text is not a server address.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// `host`, `host:port`, an IPv6 address, or `[IPv6]:port`. The host is an IP address or
    /// a host name (letters, digits, hyphens and dots).
    public init(parsing raw: String) throws(Invalid) {
        let text = raw.trimmingWhitespace
        guard !text.isEmpty else { throw Invalid(description: "the server address is empty") }
        var host = text
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw Invalid(description: "'\(text)' opens '[' without closing it") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw Invalid(description: "'\(text)' has text after ']' that is not ':port'") }
                portText = rest.dropFirst()
            }
            guard case .v6? = IPAddress(host) else { throw Invalid(description: "'\(host)' in brackets is not an IPv6 address") }
        } else if text.filter({ $0 == ":" }).count == 1, let colon = text.firstIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        var port = 53
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.allSatisfy(\.isNumber) else {
                throw Invalid(description: "'\(portText)' is not a port number from 1 to 65535")
            }
            port = value
        }
        guard IPAddress(host) != nil || Self.isHostName(host) else {
            throw Invalid(description: "'\(host)' is neither an IP address nor a host name")
        }
        self.init(host: host.lowercased(), port: port)
    }

    static func isHostName(_ text: Substring) -> Bool {
        let name = text.hasSuffix(".") ? text.dropLast() : text
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.count) && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    /// `host:port`, with IPv6 addresses in brackets.
    public var description: String {
        if case .v6? = IPAddress(host) { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }

    /// The `nameserver` lines of a resolv.conf (at most three are used, as the C library
    /// does). A scope suffix (`fe80::1%eth0`) is dropped; lines that are not addresses are
    /// skipped. With none, the C library's default: 127.0.0.1.
    public static func system(resolvConf contents: String?) -> [DNSServerAddress] {
        var servers: [DNSServerAddress] = []
        for line in (contents ?? "").split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { continue }
            let address = fields[1].split(separator: "%").first ?? fields[1]
            guard IPAddress(address) != nil else { continue }
            servers.append(DNSServerAddress(host: String(address).lowercased()))
            if servers.count == 3 { break }
        }
        return servers.isEmpty ? [DNSServerAddress(host: "127.0.0.1")] : servers
    }
}

extension StringProtocol {
    var trimmingWhitespace: Substring {
        let scalars = Substring(self)
        guard let first = scalars.firstIndex(where: { !$0.isWhitespace }), let last = scalars.lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return scalars[first...last]
    }
}
