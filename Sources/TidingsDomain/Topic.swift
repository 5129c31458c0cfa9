import Foundation

/// A kind of marketing mail a contact can leave on its own ("Product news", "Tips"), named by
/// a slug as templates are. Announcements and marketing automations may be sent under one;
/// transactional mail ignores topics. Topic names are not personal data.
public struct Topic: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var slug: String
    public var name: String
    public var description: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, workspaceId: String, slug: String, name: String, description: String?, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.workspaceId = workspaceId
        self.slug = slug
        self.name = name
        self.description = description
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public static let maxNameLength = 200
    public static let maxDescriptionLength = 1000

    /// The same rules as template slugs: lowercase letters, digits, `-` and `_`.
    public static func validateSlug(_ raw: String, field: String = "slug") throws(DomainError) -> String {
        try Template.validateSlug(raw, field: field)
    }

    public static func validateName(_ raw: String, field: String = "name") throws(DomainError) -> String {
        try DisplayName.validate(raw, field: field, maxLength: maxNameLength)
    }

    /// Free text shown on the preference page under the topic's name; line breaks allowed,
    /// other control characters not. Empty means none.
    public static func validateDescription(_ raw: String, field: String = "description") throws(DomainError) -> String? {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count <= maxDescriptionLength else {
            throw .invalid("too_long", "The \(field) must be at most \(maxDescriptionLength) characters.", field: field)
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && $0 != "\n" }) else {
            throw .invalid("invalid_description", "The \(field) must not contain control characters other than line breaks.", field: field)
        }
        return text.isEmpty ? nil : text
    }
}

/// Whether a contact receives marketing mail, as the subscriptions API tells it.
public enum SubscriptionStatus: String, Sendable, CaseIterable, Codable {
    /// Every topic, and marketing mail without a topic.
    case subscribed
    /// No marketing mail at all (the contact's status is `unsubscribed`).
    case unsubscribed
    /// Left some topics: mail under those is skipped, everything else arrives.
    case partiallyUnsubscribed = "partially_unsubscribed"

    /// The subscription state of a contact who is unsubscribed from all or not, and left `topics` topics.
    public init(unsubscribedFromAll: Bool, topicsLeft: Int) {
        self = unsubscribedFromAll ? .unsubscribed : topicsLeft > 0 ? .partiallyUnsubscribed : .subscribed
    }

    /// The contact status that records this state (a bounced contact keeps `bounced`).
    public var contactStatus: ContactStatus {
        switch self {
        case .subscribed: .active
        case .unsubscribed: .unsubscribed
        case .partiallyUnsubscribed: .partiallyUnsubscribed
        }
    }
}

/// One change of a contact's subscriptions, kept in its history.
public struct SubscriptionChange: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case unsubscribedAll = "unsubscribed_all"
        case resubscribedAll = "resubscribed_all"
        case unsubscribedTopic = "unsubscribed_topic"
        case resubscribedTopic = "resubscribed_topic"
    }

    /// How the change was made.
    public enum Channel: String, Sendable, CaseIterable, Codable {
        /// `PATCH /v1/contacts/{email}/subscriptions`.
        case api
        /// The hosted preference page (`/u/{token}`).
        case preferencePage = "preference_page"
        /// A mailbox provider's RFC 8058 one-click POST.
        case oneClick = "one_click"
        /// An unsubscribe request mailed to the `List-Unsubscribe` mailto address.
        case mailto
    }

    public var id: String
    public var contactId: String
    public var kind: Kind
    public var topicId: String?
    public var via: Channel
    /// The message whose link or header was used, if any.
    public var messageId: String?
    /// That message's origin (announcement or automation), so statistics can count unsubscribes per send.
    public var originKind: MessageOrigin.Kind?
    public var originId: String?
    public var at: Date

    public init(
        id: String, contactId: String, kind: Kind, topicId: String? = nil, via: Channel, messageId: String? = nil,
        originKind: MessageOrigin.Kind? = nil, originId: String? = nil, at: Date
    ) {
        self.id = id
        self.contactId = contactId
        self.kind = kind
        self.topicId = topicId
        self.via = via
        self.messageId = messageId
        self.originKind = originKind
        self.originId = originId
        self.at = at
    }
}

extension EmailAddress {
    /// The address as the preference page shows it to whoever holds the link: the first
    /// character of the local part and the domain (`j***@example.com`).
    public var masked: String {
        let first = localPart.first.map(String.init) ?? ""
        return "\(first)***@\(domain)"
    }
}
