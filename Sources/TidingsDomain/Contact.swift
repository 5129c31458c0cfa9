import Foundation

public enum ContactStatus: String, Sendable, CaseIterable, Codable {
    case active
    case bounced
    case unsubscribed
    case partiallyUnsubscribed = "partially_unsubscribed"
}

/// A person in a workspace's audience, identified by a normalised email address.
public struct Contact: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var email: EmailAddress
    public var status: ContactStatus
    public var attributes: [String: AttributeValue]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, email: EmailAddress, status: ContactStatus,
        attributes: [String: AttributeValue], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.email = email
        self.status = status
        self.attributes = attributes
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Applies an upsert's changes: a `nil` value removes the attribute.
    /// Throws when the result would exceed the attribute limit.
    public mutating func apply(_ changes: [String: AttributeValue?]) throws(DomainError) {
        for (name, value) in changes {
            attributes[name] = value
        }
        guard attributes.count <= AttributeLimits.maxAttributes else {
            throw .invalid(
                "too_many_attributes",
                "A contact may have at most \(AttributeLimits.maxAttributes) attributes; this change would leave \(attributes.count)."
            )
        }
    }
}

/// Something a contact did, as reported by the customer's backend.
public struct ContactEvent: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var contactId: String
    public var slug: String
    public var properties: [String: AttributeValue]
    public var occurredAt: Date
    public var createdAt: Date

    public init(
        id: String, workspaceId: String, contactId: String, slug: String,
        properties: [String: AttributeValue], occurredAt: Date, createdAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.contactId = contactId
        self.slug = slug
        self.properties = properties
        self.occurredAt = occurredAt
        self.createdAt = createdAt
    }
}

/// A page of results and the cursor for the next one (`nil` on the last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}
