import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Recording what contacts did.
public struct EventService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    /// How far in the future a reported `occurredAt` may lie (clock skew between systems).
    public static let maxFutureSkew: TimeInterval = 24 * 3600

    public struct Recorded: Sendable {
        public var event: ContactEvent
        public var email: EmailAddress
        public var contactCreated: Bool
    }

    /// `{email, slug, properties?, occurredAt?}`; creates the contact when missing, as SendStreak does.
    public func record(workspaceId: String, body: [String: JSONValue]) async throws -> Recorded {
        let email = try EmailAddress(try Self.requiredString(body, "email"))
        let slug = try EventSlug.normalise(try Self.requiredString(body, "slug"))
        var properties: [String: AttributeValue] = [:]
        switch body["properties"] {
        case nil, .null?: break
        case .object(let object)?:
            properties = try AttributeMap.parse(object, fieldPrefix: "properties.").compactMapValues { $0 }
        case let other?:
            throw DomainError.invalid("invalid_type", "The field 'properties' must be an object, not \(other.typeName).", field: "properties")
        }
        let now = env.now()
        var occurredAt = now
        switch body["occurredAt"] {
        case nil, .null?: break
        case .string(let text)?:
            guard let date = Timestamp.parse(text) else {
                throw DomainError.invalid("invalid_timestamp", "The field 'occurredAt' must be an RFC 3339 date-time.", field: "occurredAt")
            }
            guard date <= now.addingTimeInterval(Self.maxFutureSkew) else {
                throw DomainError.invalid("invalid_timestamp", "The field 'occurredAt' lies more than 24 hours in the future.", field: "occurredAt")
            }
            occurredAt = date
        case let other?:
            throw DomainError.invalid("invalid_type", "The field 'occurredAt' must be a string, not \(other.typeName).", field: "occurredAt")
        }
        let known: Set<String> = ["email", "slug", "properties", "occurredAt"]
        if let unknown = body.keys.sorted().first(where: { !known.contains($0) }) {
            throw DomainError.invalid("unknown_field", "Unknown field '\(unknown.prefix(64))'; an event has email, slug, properties and occurredAt.", field: unknown)
        }
        let eventProperties = properties
        return try await env.database.transaction { [occurredAt] db in
            let contacts = ContactRepository(db, workspaceId: workspaceId)
            var contactCreated = false
            var contactId = try await contacts.findId(email: email)
            if contactId == nil {
                let upserted = try await ContactService.upsert(db: db, workspaceId: workspaceId, email: email, changes: [:], now: now)
                contactId = upserted.contact.id
                contactCreated = upserted.created
            }
            let event = ContactEvent(
                id: Identifier.make("ev", at: now), workspaceId: workspaceId, contactId: contactId!, slug: slug,
                properties: eventProperties, occurredAt: occurredAt, createdAt: now
            )
            try await EventRepository(db, workspaceId: workspaceId).insert(event)
            return Recorded(event: event, email: email, contactCreated: contactCreated)
        }
    }

    static func requiredString(_ body: [String: JSONValue], _ field: String) throws(DomainError) -> String {
        switch body[field] {
        case .string(let value)?: return value
        case nil, .null?: throw .invalid("missing_field", "The field '\(field)' is required.", field: field)
        case let other?: throw .invalid("invalid_type", "The field '\(field)' must be a string, not \(other.typeName).", field: field)
        }
    }
}
