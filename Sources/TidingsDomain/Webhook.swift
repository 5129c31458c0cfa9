import Foundation

/// What a webhook endpoint can subscribe to. The one list of event types: a feature that emits
/// a new kind of event adds its case here, and the API, its validation and the OpenAPI
/// document's enum follow it.
public enum WebhookEventType: String, Sendable, CaseIterable, Codable, Comparable {
    case messageDelivered = "message.delivered"
    case messageDeferred = "message.deferred"
    case messageBounced = "message.bounced"
    case messageFailed = "message.failed"
    case messageOpened = "message.opened"
    case messageClicked = "message.clicked"
    case contactUnsubscribed = "contact.unsubscribed"
    case automationFinished = "automation.finished"
    case announcementFinished = "announcement.finished"

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Reads a list of event type names: at least one, each known (an unknown one is a 422
    /// naming it), duplicates folded. Sorted, so equal subscriptions compare equal.
    public static func parseList(_ names: [String], field: String = "events") throws(DomainError) -> [WebhookEventType] {
        guard !names.isEmpty else {
            throw .invalid("invalid_events", "Subscribe to at least one event type; known types: \(known).", field: field)
        }
        guard names.count <= 100 else { throw .invalid("invalid_events", "At most 100 event types may be listed.", field: field) }
        var types = Set<WebhookEventType>()
        for (index, name) in names.enumerated() {
            guard let type = WebhookEventType(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw .invalid("unknown_event_type", "Unknown event type '\(name.prefix(60))'; known types: \(known).", field: "\(field)[\(index)]")
            }
            types.insert(type)
        }
        return types.sorted()
    }

    static var known: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// Something that happened, to be told to the endpoints subscribed to its type. `data` is the
/// event's own object; the payload wraps it as Standard Webhooks describes.
public struct WebhookEvent: Sendable, Equatable {
    public var type: WebhookEventType
    public var data: [String: JSONValue]
    /// When it happened.
    public var occurredAt: Date

    public init(_ type: WebhookEventType, data: [String: JSONValue], at occurredAt: Date) {
        self.type = type
        self.data = data
        self.occurredAt = occurredAt
    }

    /// The request body: `{"type", "timestamp", "data"}`, compact, keys sorted.
    public var payload: String {
        JSONValue.object([
            "type": .string(type.rawValue), "timestamp": .string(Timestamp.format(occurredAt)), "data": .object(data),
        ]).serializedString
    }
}

/// An endpoint that receives signed event deliveries.
public struct Webhook: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// Events are delivered.
        case enabled
        /// Deliveries failed for too long: new events are not queued for it and pending ones wait
        /// until it is enabled again.
        case disabled
    }

    public var id: String
    public var workspaceId: String
    /// May carry a token in its path or query: sealed at rest, never logged or audited.
    public var url: String
    /// The URL's host, for listings, logs and the audit log.
    public var host: String
    public var description: String?
    public var events: [WebhookEventType]
    public var status: Status
    /// `whsec_` and base64 of the key (Standard Webhooks).
    public var secret: String
    /// The secret before the last rotation, still signing until `previousSecretExpiresAt`.
    public var previousSecret: String?
    public var previousSecretExpiresAt: Date?
    /// Since when every attempt has failed (`nil` once one succeeds).
    public var failingSince: Date?
    public var disabledAt: Date?
    public var disabledReason: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, url: String, host: String, description: String?, events: [WebhookEventType], status: Status,
        secret: String, previousSecret: String? = nil, previousSecretExpiresAt: Date? = nil, failingSince: Date? = nil,
        disabledAt: Date? = nil, disabledReason: String? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.url = url
        self.host = host
        self.description = description
        self.events = events
        self.status = status
        self.secret = secret
        self.previousSecret = previousSecret
        self.previousSecretExpiresAt = previousSecretExpiresAt
        self.failingSince = failingSince
        self.disabledAt = disabledAt
        self.disabledReason = disabledReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public static let maxDescriptionLength = 500
    /// Endpoints per workspace.
    public static let maxPerWorkspace = 50

    /// The secrets a delivery at `now` is signed with: the current one, and during the overlap
    /// after a rotation the previous one too.
    public func signingSecrets(at now: Date) -> [String] {
        guard let previousSecret, let until = previousSecretExpiresAt, now < until else { return [secret] }
        return [secret, previousSecret]
    }

    /// Trims a description; empty is none. Control characters other than line breaks are refused.
    public static func validateDescription(_ raw: String, field: String = "description") throws(DomainError) -> String? {
        // Counted in code points, as JSON Schema's maxLength counts, and before trimming.
        guard raw.unicodeScalars.count <= maxDescriptionLength else {
            throw .invalid("invalid_description", "The description must be at most \(maxDescriptionLength) characters.", field: field)
        }
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return nil }
        guard text.count <= maxDescriptionLength else {
            throw .invalid("invalid_description", "The description must be at most \(maxDescriptionLength) characters.", field: field)
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" && $0 != "\t" }) else {
            throw .invalid("invalid_description", "The description must not contain control characters.", field: field)
        }
        return text
    }
}

/// One event on its way to one endpoint, and how its attempts went (the delivery log).
public struct WebhookDelivery: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// Waiting for its first or next attempt (or for its endpoint to be enabled again).
        case pending
        /// The endpoint answered 2xx.
        case succeeded
        /// No attempt succeeded within the retry window.
        case failed
    }

    /// Also the `webhook-id` header: the same on every attempt, so receivers can drop repeats.
    public var id: String
    public var workspaceId: String
    public var webhookId: String
    /// Kept as text: a type a later version no longer knows still shows in the log.
    public var eventType: String
    public var status: Status
    public var attempts: Int
    /// The HTTP status of the last attempt that got an answer.
    public var responseStatus: Int?
    /// The first bytes of the last answer's body (sealed at rest: receivers may echo anything).
    public var responseSnippet: String?
    /// Why the last attempt failed, when it got no answer or a non-2xx one.
    public var error: String?
    /// How long the last attempt took, in milliseconds.
    public var durationMs: Int?
    /// When the retry window began: the first attempt, or the first after the endpoint was enabled again.
    public var firstAttemptAt: Date?
    public var lastAttemptAt: Date?
    public var nextAttemptAt: Date?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, webhookId: String, eventType: String, status: Status, attempts: Int = 0,
        responseStatus: Int? = nil, responseSnippet: String? = nil, error: String? = nil, durationMs: Int? = nil,
        firstAttemptAt: Date? = nil, lastAttemptAt: Date? = nil, nextAttemptAt: Date? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.webhookId = webhookId
        self.eventType = eventType
        self.status = status
        self.attempts = attempts
        self.responseStatus = responseStatus
        self.responseSnippet = responseSnippet
        self.error = error
        self.durationMs = durationMs
        self.firstAttemptAt = firstAttemptAt
        self.lastAttemptAt = lastAttemptAt
        self.nextAttemptAt = nextAttemptAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
