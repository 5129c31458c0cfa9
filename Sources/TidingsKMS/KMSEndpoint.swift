import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where KMS requests go: an `https://` URL, or `http://` on this machine's loopback only
/// (a local KMS-compatible service in development and tests). Keys and their wrapped forms
/// never cross a network in the clear.
public struct KMSEndpoint: Sendable, Equatable, CustomStringConvertible {
    public let url: URL
    public let scheme: String
    public let host: String
    public let port: Int
    /// The path requests are posted to, as sent (`/` unless the URL names one).
    public let path: String

    public struct Refused: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// AWS's regional endpoint: `https://kms.REGION.amazonaws.com` (`.amazonaws.com.cn` in China).
    public static func aws(region: String) throws -> KMSEndpoint {
        try KMSEndpoint(parsing: "https://kms.\(region).amazonaws.com\(region.hasPrefix("cn-") ? ".cn" : "")")
    }

    public init(parsing text: String) throws {
        guard let components = URLComponents(string: text), let url = components.url,
              let scheme = components.scheme?.lowercased(), let rawHost = components.host, !rawHost.isEmpty
        else {
            throw Refused(description: "The KMS endpoint '\(text)' is not an absolute URL such as https://kms.eu-west-1.amazonaws.com.")
        }
        guard components.user == nil, components.password == nil, components.query == nil, components.fragment == nil else {
            throw Refused(description: "The KMS endpoint '\(text)' must not carry a user, a password, a query or a fragment.")
        }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        switch scheme {
        case "https":
            break
        case "http":
            guard Self.isLoopback(host) else {
                throw Refused(description: """
                    The KMS endpoint '\(text)' uses plain http:// to a host that is not loopback; \
                    use https://, or http:// only for 127.0.0.0/8, ::1 or localhost.
                    """)
            }
        default:
            throw Refused(description: "The KMS endpoint '\(text)' must be an https:// URL.")
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw Refused(description: "The KMS endpoint '\(text)' has no valid port.")
        }
        self.url = url
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
    }

    /// The `Host` header: the port is named only when it is not the scheme's default.
    public var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        return port == defaultPort ? name : "\(name):\(port)"
    }

    /// The URL requests are sent to.
    public var requestURL: String { "\(scheme)://\(hostHeader)\(path)" }

    public var description: String { requestURL }

    /// `localhost`, or an address literal in 127.0.0.0/8 or `::1` (also as an IPv4-mapped address).
    /// Host names other than `localhost` are not resolved: only what is loopback by its form counts.
    public static func isLoopback(_ host: String) -> Bool {
        let name = host.lowercased()
        if name == "localhost" || name == "localhost." { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            let bytes = withUnsafeBytes(of: &v6) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            // ::ffff:127.x.y.z
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff { return bytes[12] == 127 }
        }
        return false
    }
}
