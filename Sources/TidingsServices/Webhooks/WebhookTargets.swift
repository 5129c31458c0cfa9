import Foundation
import TidingsDNS
import TidingsDomain

/// Where webhook requests may go. A URL is checked when it is saved (its form, and in
/// production the addresses its host resolves to), and again before every request: the host
/// is resolved afresh, every address judged, and the request connects to the address that
/// was judged, so a name rebound to an inner address between the check and the connection
/// (DNS rebinding) gains nothing.
public struct WebhookTargets: Sendable {
    public let policy: OutboundURLPolicy
    let dns: any DNSLookup

    public init(policy: OutboundURLPolicy, dns: any DNSLookup) {
        self.policy = policy
        self.dns = dns
    }

    /// A URL that passed the checks: as stored (host lowercased), and its host.
    public struct Checked: Sendable, Equatable {
        public var url: String
        public var host: String
    }

    /// The checks when a URL is saved; a refusal is a 422 naming `url`.
    public func checkForSaving(_ text: String, field: String = "url") async throws(DomainError) -> Checked {
        let endpoint: OutboundURLPolicy.Endpoint
        do throws(OutboundURLPolicy.Refused) {
            endpoint = try policy.checkTarget(text)
        } catch {
            throw .invalid("invalid_url", error.description, field: field)
        }
        var components = endpoint.components
        let host = endpoint.host.lowercased()
        // An IPv6 literal keeps its brackets as written (hex digits compare without case anyway).
        if !host.contains(":") { components.host = host }
        components.scheme = endpoint.scheme
        guard let url = components.string else {
            throw .invalid("invalid_url", "'\(text.prefix(200))' is not an absolute https:// URL.", field: field)
        }
        if policy.requiresPublicTargets {
            do throws(Refused) {
                _ = try await connectionAddress(host: host)
            } catch {
                throw .invalid("invalid_url", error.description, field: field)
            }
        }
        return Checked(url: url, host: host)
    }

    /// Why a target may not be called now.
    public struct Refused: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The address a request to `url` connects to, after resolving its host and judging every
    /// address (in production). `nil` when the host is an address itself.
    public func connectionAddress(url: String) async throws(Refused) -> (host: String, address: String?) {
        let endpoint: OutboundURLPolicy.Endpoint
        do throws(OutboundURLPolicy.Refused) {
            endpoint = try policy.checkTarget(url)
        } catch {
            throw Refused(description: error.description)
        }
        let host = endpoint.host.lowercased()
        return (host, try await connectionAddress(host: host))
    }

    func connectionAddress(host: String) async throws(Refused) -> String? {
        if OutboundURLPolicy.isAddressLiteral(host) {
            if policy.requiresPublicTargets, let range = OutboundURLPolicy.nonPublicRange(of: host) {
                throw Refused(description: "\(host) is a \(range) address; production refuses targets that are not public.")
            }
            return nil
        }
        let addresses: [String]
        if host == "localhost" || host == "localhost." || host.hasSuffix(".localhost") {
            // RFC 6761: always this machine, whatever a DNS server says.
            addresses = ["127.0.0.1"]
        } else {
            let name: DNSName
            do {
                name = try DNSName(host)
            } catch {
                throw Refused(description: "'\(host.prefix(100))' is not a valid host name.")
            }
            do throws(DNSLookupError) {
                addresses = try await dns.addresses(of: name).map(\.description)
            } catch .nameNotFound {
                throw Refused(description: "\(host.prefix(100)) does not exist in DNS.")
            } catch {
                throw Refused(description: "\(host.prefix(100)) could not be resolved: \(error.description).")
            }
        }
        do throws(OutboundURLPolicy.Refused) {
            try policy.checkResolved(host: host, addresses: addresses)
        } catch {
            throw Refused(description: error.description)
        }
        // IPv4 first: more hosts answer on it than on IPv6 from a server.
        return addresses.first { !$0.contains(":") } ?? addresses[0]
    }
}
