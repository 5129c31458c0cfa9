import Hummingbird
import Logging
import TidingsDomain

/// Per-request state set by middleware and read by handlers: request id and caller.
public struct TidingsRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Echoed in `X-Request-Id` and present in every log line of the request.
    public var requestId: String
    /// Set by authentication on `/v1` routes.
    public var principal: Principal?
    /// The peer's address already truncated (/24, /48): the full address is never kept.
    public var clientNetwork: String?
    /// The client's `User-Agent`, for the audit log.
    public var userAgent: String?
    /// The connection's peer address, only to decide whether it is a trusted proxy: never
    /// stored, logged or returned.
    var peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestId = ""
        self.principal = nil
        self.peerAddress = source.channel.remoteAddress?.ipAddress
        self.clientNetwork = peerAddress.flatMap(IPAddressTruncation.truncate)
    }

    /// Who the audit log names for changes made by this request.
    public var actor: AuditActor {
        AuditActor(kind: .apiKey, id: principal?.apiKeyId ?? "anonymous", network: clientNetwork, userAgent: userAgent)
    }

    /// The authenticated caller, after checking that its key carries `scope`.
    public func require(_ scope: Scope) throws -> Principal {
        guard let principal else {
            throw DomainError(.unauthenticated, code: "missing_api_key", message: "Send an API key as 'Authorization: Bearer <key>'.")
        }
        try principal.require(scope)
        return principal
    }
}
