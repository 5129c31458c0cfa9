import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The rule for every HTTP endpoint Tidings itself calls (the KMS today; webhooks and object
/// storage use the same rule): `https://`, or plain `http://` only to this machine's loopback
/// (127.0.0.0/8, `::1`, `localhost`) and only outside production. Whatever crosses a network
/// is encrypted, and a production instance never speaks plain HTTP at all, not even locally.
public struct OutboundURLPolicy: Sendable, Equatable {
    public var environment: DeploymentEnvironment

    public init(environment: DeploymentEnvironment) {
        self.environment = environment
    }

    /// A development or staging instance talking to a local stand-in (a KMS emulator, say).
    public var allowsPlainHTTPToLoopback: Bool { environment != .production }

    /// An endpoint that passed the policy.
    public struct Endpoint: Sendable, Equatable {
        /// `https` or `http`, lowercased.
        public var scheme: String
        /// Without the brackets of an IPv6 literal.
        public var host: String
        public var port: Int
        public var components: URLComponents
        /// Whether the connection is encrypted (`https`).
        public var isEncrypted: Bool { scheme == "https" }
    }

    public struct Refused: Error, CustomStringConvertible, Sendable, Equatable {
        public var description: String
    }

    /// Checks `text`, an absolute `http(s)://` URL; the message of a refusal says what to change.
    public func check(_ text: String) throws(Refused) -> Endpoint {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              let rawHost = components.host, !rawHost.isEmpty
        else {
            throw Refused(description: "'\(text.prefix(200))' is not an absolute https:// URL.")
        }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        switch scheme {
        case "https":
            break
        case "http":
            guard Self.isLoopback(host) else {
                throw Refused(description: """
                    '\(text.prefix(200))' uses plain http:// to a host that is not loopback; use https:// \
                    (plain http:// is allowed only to 127.0.0.0/8, ::1 or localhost, and only outside production).
                    """)
            }
            guard allowsPlainHTTPToLoopback else {
                throw Refused(description: """
                    '\(text.prefix(200))' uses plain http://, which production refuses even to loopback; use https:// \
                    (plain http:// to loopback is allowed only with TIDINGS_ENVIRONMENT=development or staging).
                    """)
            }
        default:
            throw Refused(description: "'\(text.prefix(200))' must be an https:// URL.")
        }
        let port = components.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else {
            throw Refused(description: "'\(text.prefix(200))' has no valid port.")
        }
        return Endpoint(scheme: scheme, host: host, port: port, components: components)
    }

    /// `localhost`, or an address literal in 127.0.0.0/8 or `::1` (also as an IPv4-mapped address).
    /// Names other than `localhost` are not resolved: only what is loopback by its form counts.
    public static func isLoopback(_ host: String) -> Bool {
        var name = host.lowercased()
        if name.hasPrefix("[") && name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
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
