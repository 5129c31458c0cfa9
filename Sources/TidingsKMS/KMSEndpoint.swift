import Foundation
import TidingsDomain

/// Where KMS requests go: an `https://` URL, or `http://` to this machine's loopback outside
/// production only (a local KMS-compatible service in development and tests), as
/// `OutboundURLPolicy` has it. Keys and their wrapped forms never cross a network in the clear.
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
        try KMSEndpoint(
            parsing: "https://kms.\(region).amazonaws.com\(region.hasPrefix("cn-") ? ".cn" : "")",
            policy: OutboundURLPolicy(environment: .production)
        )
    }

    /// `text` as an endpoint, if `policy` allows it.
    public init(parsing text: String, policy: OutboundURLPolicy) throws {
        let checked: OutboundURLPolicy.Endpoint
        do throws(OutboundURLPolicy.Refused) {
            checked = try policy.check(text)
        } catch {
            throw Refused(description: "The KMS endpoint \(error.description)")
        }
        let components = checked.components
        guard components.user == nil, components.password == nil, components.query == nil, components.fragment == nil else {
            throw Refused(description: "The KMS endpoint '\(text)' must not carry a user, a password, a query or a fragment.")
        }
        guard let url = components.url else {
            throw Refused(description: "The KMS endpoint '\(text)' is not an absolute URL such as https://kms.eu-west-1.amazonaws.com.")
        }
        self.url = url
        self.scheme = checked.scheme
        self.host = checked.host
        self.port = checked.port
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
}
