import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TidingsDomain

/// How a listener's requests reached Tidings, and what that permits (T2.1).
///
/// - `https`: the API and the web pages; every response carries HSTS.
/// - `plainHTTP`: only redirects (308) to HTTPS and ACME HTTP-01 answers. A request that
///   carries an API key is refused and the key reported as exposed. A trusted proxy that
///   terminated TLS (`X-Forwarded-Proto: https`) is served as HTTPS.
/// - `developmentPlainHTTP`: everything over plain HTTP (loopback, non-production only; the
///   configuration enforces that).
public struct TransportSecurity: Sendable {
    public enum Listener: Sendable {
        case https
        case plainHTTP
        case developmentPlainHTTP
    }

    public var listener: Listener
    /// Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    public var trustedProxies: [IPNetwork]
    /// Scheme, host and port requests are redirected to, e.g. `https://mail.example.com`.
    public var httpsOrigin: @Sendable () -> String
    /// The key authorisation for an ACME HTTP-01 token, if one is being validated.
    public var challengeResponse: @Sendable (String) -> String?
    /// Called with the bearer text of an API request that arrived over plain HTTP; returns
    /// whether the key was revoked (nil when the text was no usable key).
    public var reportExposedKey: @Sendable (_ bearer: String, _ actor: AuditActor) async -> Bool?

    public init(
        listener: Listener, trustedProxies: [IPNetwork] = [], httpsOrigin: @escaping @Sendable () -> String = { "https://localhost:8443" },
        challengeResponse: @escaping @Sendable (String) -> String? = { _ in nil },
        reportExposedKey: @escaping @Sendable (String, AuditActor) async -> Bool? = { _, _ in nil }
    ) {
        self.listener = listener
        self.trustedProxies = trustedProxies
        self.httpsOrigin = httpsOrigin
        self.challengeResponse = challengeResponse
        self.reportExposedKey = reportExposedKey
    }

    /// Two years, as the HSTS preload list asks.
    public static let strictTransportSecurity = "max-age=63072000"
    static let hstsHeader = HTTPField.Name("Strict-Transport-Security")!
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let forwardedProto = HTTPField.Name("X-Forwarded-Proto")!
    public static let challengePrefix = "/.well-known/acme-challenge/"

    func isTrusted(_ address: String?) -> Bool {
        guard let address else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }

    /// The client's address: the peer's, or, from a trusted proxy, the nearest untrusted hop
    /// of `X-Forwarded-For`.
    func clientAddress(peer: String?, headers: HTTPFields) -> String? {
        guard isTrusted(peer) else { return peer }
        let hops = headers[values: Self.forwardedFor]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() where !isTrusted(hop) {
            return hop
        }
        return hops.first ?? peer
    }

    /// Whether the request reached the client's side of the connection over TLS.
    func arrivedOverTLS(peer: String?, headers: HTTPFields) -> Bool {
        switch listener {
        case .https:
            return true
        case .developmentPlainHTTP:
            return false
        case .plainHTTP:
            guard isTrusted(peer), let proto = headers[Self.forwardedProto] else { return false }
            // With several proxies the left-most value is the client's own connection.
            return proto.split(separator: ",").first?.trimmingCharacters(in: .whitespaces).lowercased() == "https"
        }
    }
}

/// The plain-HTTP port's rules: ACME answers, refusal (and reporting) of API keys, and a
/// redirect for everything else. Requests that arrived over TLS (HTTPS, or a trusted proxy's
/// `X-Forwarded-Proto: https`) and development mode pass through.
struct PlainHTTPGate: RouterMiddleware {
    typealias Context = TidingsRequestContext
    let transport: TransportSecurity

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard case .plainHTTP = transport.listener, !transport.arrivedOverTLS(peer: context.peerAddress, headers: request.headers) else {
            return try await next(request, context)
        }
        let path = request.uri.path
        if path.hasPrefix(TransportSecurity.challengePrefix) {
            let token = String(path.dropFirst(TransportSecurity.challengePrefix.count))
            guard request.method == .get, let answer = transport.challengeResponse(token) else {
                throw APIError(.notFound, code: "challenge_not_found", message: "No ACME challenge with this token is pending.")
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        if let authorization = request.headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            var consequence = "Treat the key as known to others and replace it."
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let bearer = parts[1].trimmingCharacters(in: .whitespaces)
                switch await transport.reportExposedKey(bearer, context.actor) {
                case true?: consequence = "The key was sent unencrypted and has been revoked; create a new one."
                case false?: consequence = "The key was sent unencrypted and is marked exposed; rotate it now."
                case nil: break
                }
            }
            throw APIError(
                .forbidden, code: "https_required",
                message: "The API is served over HTTPS only: use \(transport.httpsOrigin()). \(consequence)"
            )
        }
        var target = transport.httpsOrigin() + path
        if let query = request.uri.query, !query.isEmpty { target += "?" + query }
        return Response(status: .permanentRedirect, headers: [.location: target, .cacheControl: "no-store"])
    }
}
