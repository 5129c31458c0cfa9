import Foundation
import TidingsDomain
import TidingsServices

// The JSON shapes of the API: camelCase fields, opaque string ids, RFC 3339 UTC times.

struct ContactDTO: Encodable {
    var id: String
    var email: String
    var status: String
    var attributes: [String: JSONValue]
    /// The stored type of each attribute (`string`, `number`, `boolean`, `date`).
    var attributeTypes: [String: String]
    var createdAt: String
    var updatedAt: String

    var json: JSONValue {
        .object([
            "id": .string(id), "email": .string(email), "status": .string(status),
            "attributes": .object(attributes), "attributeTypes": .object(attributeTypes.mapValues(JSONValue.string)),
            "createdAt": .string(createdAt), "updatedAt": .string(updatedAt),
        ])
    }

    init(_ contact: Contact) {
        id = contact.id
        email = contact.email.value
        status = contact.status.rawValue
        attributes = contact.attributes.mapValues(\.json)
        attributeTypes = contact.attributes.mapValues(\.kind.rawValue)
        createdAt = Timestamp.format(contact.createdAt)
        updatedAt = Timestamp.format(contact.updatedAt)
    }
}

struct EventDTO: Encodable {
    var id: String
    var contactId: String
    var slug: String
    var properties: [String: JSONValue]
    var occurredAt: String
    var createdAt: String
    /// Only in the answer to `POST /v1/events`.
    var email: String?
    /// Only in the answer to `POST /v1/events`: whether the event created its contact.
    var contactCreated: Bool?

    init(_ event: ContactEvent) {
        id = event.id
        contactId = event.contactId
        slug = event.slug
        properties = event.properties.mapValues(\.json)
        occurredAt = Timestamp.format(event.occurredAt)
        createdAt = Timestamp.format(event.createdAt)
    }

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "contactId": .string(contactId), "slug": .string(slug),
            "properties": .object(properties), "occurredAt": .string(occurredAt), "createdAt": .string(createdAt),
        ]
        if let email { object["email"] = .string(email) }
        if let contactCreated { object["contactCreated"] = .bool(contactCreated) }
        return .object(object)
    }

    init(_ recorded: EventService.Recorded) {
        self.init(recorded.event)
        email = recorded.email.value
        contactCreated = recorded.contactCreated
    }
}

struct ListDTO<Item: Encodable>: Encodable {
    var data: [Item]
    var nextCursor: String?

    enum CodingKeys: String, CodingKey { case data, nextCursor }

    // `nextCursor` is always present, `null` on the last page.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(data, forKey: .data)
        try container.encode(nextCursor, forKey: .nextCursor)
    }
}

struct ExportDTO: Encodable {
    var format = "tidings.contact-export.v1"
    var generatedAt: String
    var contact: ContactDTO
    var events: [EventDTO]
    var subscriptions: SubscriptionsDTO
    var subscriptionChanges: [SubscriptionChangeDTO]

    init(_ export: ContactService.Export) {
        generatedAt = Timestamp.format(export.generatedAt)
        contact = ContactDTO(export.contact)
        events = export.events.map(EventDTO.init)
        subscriptions = SubscriptionsDTO(export.subscriptions)
        subscriptionChanges = export.subscriptionChanges.map(SubscriptionChangeDTO.init)
    }
}

struct APIKeyDTO: Encodable {
    var id: String
    var name: String
    var scopes: [String]
    var hint: String
    var status: String
    var createdAt: String
    var expiresAt: String?
    var revokedAt: String?
    var lastUsedAt: String?
    var exposedAt: String?
    /// What the key's holder should do something about, in words (e.g. it travelled over plain HTTP).
    var warnings: [String]
    /// Present only in the response that created or rotated the key.
    var secret: String?

    enum CodingKeys: String, CodingKey {
        case id, name, scopes, hint, status, createdAt, expiresAt, revokedAt, lastUsedAt, exposedAt, warnings, secret
    }

    init(_ key: APIKey, now: Date, secret: String? = nil) {
        id = key.id
        name = key.name
        scopes = key.scopes.map(\.rawValue)
        hint = key.hint
        status = key.status(at: now)
        createdAt = Timestamp.format(key.createdAt)
        expiresAt = key.expiresAt.map(Timestamp.format)
        revokedAt = key.revokedAt.map(Timestamp.format)
        lastUsedAt = key.lastUsedAt.map(Timestamp.format)
        exposedAt = key.exposedAt.map(Timestamp.format)
        warnings = key.exposedAt.map { at in
            let done = key.revokedAt != nil ? "It was revoked; create a new key" : "Rotate or revoke it now"
            return ["This key was sent over plain HTTP at \(Timestamp.format(at)), so anyone on the network path may have it. \(done), and call the API over HTTPS only."]
        } ?? []
        self.secret = secret
    }

    // Optional times are always present (as null) so clients see the full shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(name, forKey: .name)
        try container.encode(scopes, forKey: .scopes)
        try container.encode(hint, forKey: .hint)
        try container.encode(status, forKey: .status)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(expiresAt, forKey: .expiresAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encode(lastUsedAt, forKey: .lastUsedAt)
        try container.encode(exposedAt, forKey: .exposedAt)
        try container.encode(warnings, forKey: .warnings)
        try container.encodeIfPresent(secret, forKey: .secret)
    }
}

struct ImportResultDTO: Encodable {
    var created: Int
    var updated: Int
    var rejected: Int
    var errors: [RowError]
    /// True when more rows were rejected than `errors` lists.
    var errorsTruncated: Bool

    struct RowError: Encodable {
        var line: Int
        var code: String
        var message: String
        var field: String?
    }
}
