import Foundation

/// Who made a change, as the audit log records it.
public struct AuditActor: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// A person signed in to the dashboard.
        case user
        /// A program calling the API with a key.
        case apiKey = "api_key"
        /// Tidings itself: background jobs, start-up work.
        case system
        /// A person running the instance, through the CLI or the operator console.
        case `operator`
    }

    public var kind: Kind
    public var id: String
    /// The client's network, already truncated (/24, /48): the full address is never kept.
    public var network: String?
    public var userAgent: String?

    public init(kind: Kind, id: String, network: String? = nil, userAgent: String? = nil) {
        self.kind = kind
        self.id = id
        self.network = network
        self.userAgent = userAgent.map(Self.cleanUserAgent)
    }

    public static func system(_ job: String) -> AuditActor { AuditActor(kind: .system, id: job) }

    /// User agents are free text from the client: bounded, and without control characters.
    static func cleanUserAgent(_ raw: String) -> String {
        String(String.UnicodeScalarView(raw.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(256)))
    }
}

/// One change to record: what happened to which target, and a summary of the change in
/// which personal data and secrets appear only as keyed pseudonyms.
public struct AuditChange: Sendable, Equatable {
    /// `noun.verb`, e.g. `contact.deleted`, `api_key.revoked`.
    public var action: String
    public var targetKind: String?
    public var targetId: String?
    public var summary: [String: JSONValue]

    public init(_ action: String, target: (kind: String, id: String)? = nil, summary: [String: JSONValue] = [:]) {
        self.action = action
        self.targetKind = target?.kind
        self.targetId = target?.id
        self.summary = summary
    }
}

/// An audit event as stored and read back.
public struct AuditEvent: Sendable, Equatable {
    public var id: String
    /// The workspace id, or `instance` for instance-level actions.
    public var stream: String
    /// Position in its stream's hash chain, from 1.
    public var sequence: Int
    public var occurredAt: Date
    public var actor: AuditActor
    public var change: AuditChange
    /// `false` once retention has dropped the payload (actor network, user agent, summary);
    /// the hashes stay, so the chain still verifies.
    public var hasPayload: Bool
    public var hash: String

    public init(
        id: String, stream: String, sequence: Int, occurredAt: Date, actor: AuditActor,
        change: AuditChange, hasPayload: Bool, hash: String
    ) {
        self.id = id
        self.stream = stream
        self.sequence = sequence
        self.occurredAt = occurredAt
        self.actor = actor
        self.change = change
        self.hasPayload = hasPayload
        self.hash = hash
    }
}
