import Foundation

/// Where a message stands. `scheduled` waits for its `sendAt`; `deferred` waits for its next
/// attempt; the last five never change again.
public enum MessageStatus: String, Sendable, CaseIterable, Codable {
    case scheduled, queued, sending, delivered, deferred, bounced, failed, suppressed, cancelled

    public var isFinal: Bool {
        switch self {
        case .delivered, .bounced, .failed, .suppressed, .cancelled: true
        case .scheduled, .queued, .sending, .deferred: false
        }
    }
}

/// A file sent with a message; `content` is base64, as the API received it.
public struct MessageAttachment: Sendable, Equatable, Codable {
    public var filename: String
    public var contentType: String
    public var content: String

    public init(filename: String, contentType: String, content: String) {
        self.filename = filename
        self.contentType = contentType
        self.content = content
    }
}

/// What the caller asked for, kept sealed until the message is delivered (and then for its
/// history): everything that may hold personal data.
public struct MessageRequest: Sendable, Equatable, Codable {
    /// The normalised recipient.
    public var rcpt: String
    public var variables: [String: JSONValue]
    public var cc: [String]
    public var bcc: [String]
    public var replyTo: String?
    /// Header name and value, in the order given; names from `MessageHeaders.allowed`.
    public var headers: [[String]]
    public var metadata: [String: JSONValue]
    public var attachments: [MessageAttachment]
    /// Recipients whose delivery is settled (delivered or bounced): a retry leaves them out.
    public var settled: [String]
    /// The message's own open and click tracking, over the workspace's settings; `nil`:
    /// the settings decide. Announcements and automations set it for the mail they make.
    public var tracking: TrackingOverride?

    public init(
        rcpt: String, variables: [String: JSONValue] = [:], cc: [String] = [], bcc: [String] = [], replyTo: String? = nil,
        headers: [[String]] = [], metadata: [String: JSONValue] = [:], attachments: [MessageAttachment] = [], settled: [String] = [],
        tracking: TrackingOverride? = nil
    ) {
        self.tracking = tracking
        self.rcpt = rcpt
        self.variables = variables
        self.cc = cc
        self.bcc = bcc
        self.replyTo = replyTo
        self.headers = headers
        self.metadata = metadata
        self.attachments = attachments
        self.settled = settled
    }

    /// Every envelope recipient: the contact, then cc and bcc.
    public var recipients: [String] {
        var seen = Set<String>()
        return ([rcpt] + cc + bcc).filter { seen.insert($0).inserted }
    }

    private enum CodingKeys: String, CodingKey {
        case rcpt, variables, cc, bcc, replyTo, headers, metadata, attachments, settled, tracking
    }

    /// Fields left out are empty (or `nil`).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            rcpt: try container.decode(String.self, forKey: .rcpt),
            variables: try container.decodeIfPresent([String: JSONValue].self, forKey: .variables) ?? [:],
            cc: try container.decodeIfPresent([String].self, forKey: .cc) ?? [],
            bcc: try container.decodeIfPresent([String].self, forKey: .bcc) ?? [],
            replyTo: try container.decodeIfPresent(String.self, forKey: .replyTo),
            headers: try container.decodeIfPresent([[String]].self, forKey: .headers) ?? [],
            metadata: try container.decodeIfPresent([String: JSONValue].self, forKey: .metadata) ?? [:],
            attachments: try container.decodeIfPresent([MessageAttachment].self, forKey: .attachments) ?? [],
            settled: try container.decodeIfPresent([String].self, forKey: .settled) ?? [],
            tracking: try container.decodeIfPresent(TrackingOverride.self, forKey: .tracking)
        )
    }

    /// Empty fields are left out: a million announcement messages each store (sealed) little
    /// more than their recipient.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rcpt, forKey: .rcpt)
        if !variables.isEmpty { try container.encode(variables, forKey: .variables) }
        if !cc.isEmpty { try container.encode(cc, forKey: .cc) }
        if !bcc.isEmpty { try container.encode(bcc, forKey: .bcc) }
        try container.encodeIfPresent(replyTo, forKey: .replyTo)
        if !headers.isEmpty { try container.encode(headers, forKey: .headers) }
        if !metadata.isEmpty { try container.encode(metadata, forKey: .metadata) }
        if !attachments.isEmpty { try container.encode(attachments, forKey: .attachments) }
        if !settled.isEmpty { try container.encode(settled, forKey: .settled) }
        try container.encodeIfPresent(tracking, forKey: .tracking)
    }
}

/// Where a message came from. Transactional mail (`api`) ignores topics and unsubscribes;
/// announcements and marketing automations honour them and carry `List-Unsubscribe`.
public struct MessageOrigin: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case api, announcement, automation
    }

    public var kind: Kind
    /// The announcement or automation; `nil` for `api`.
    public var id: String?
    /// The topic it is sent under, if any.
    public var topicId: String?
    /// Not transactional: unsubscribes apply and the message carries `List-Unsubscribe`.
    public var marketing: Bool

    public init(kind: Kind, id: String? = nil, topicId: String? = nil, marketing: Bool = false) {
        self.kind = kind
        self.id = id
        self.topicId = topicId
        self.marketing = marketing
    }

    /// `POST /v1/messages`.
    public static let api = MessageOrigin(kind: .api)
}

public struct Message: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var contactId: String
    public var templateId: String
    public var templateSlug: String
    public var templateVersion: Int
    public var emailServerId: String?
    public var status: MessageStatus
    public var request: MessageRequest
    /// `<id@domain>`: the same on every attempt, so a receiver can tell a repeat.
    public var messageIdHeader: String
    public var sendAt: Date
    public var attempts: Int
    public var nextAttemptAt: Date?
    /// The TLS of the last attempt that reached the server; `nil` before that or without TLS.
    public var tlsVersion: String?
    public var tlsCipher: String?
    /// Whether that attempt verified the server's certificate (chain and host name).
    public var tlsVerified: Bool?
    public var origin: MessageOrigin
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, workspaceId: String, contactId: String, templateId: String, templateSlug: String, templateVersion: Int,
        emailServerId: String?, status: MessageStatus, request: MessageRequest, messageIdHeader: String, sendAt: Date,
        attempts: Int = 0, nextAttemptAt: Date? = nil, tlsVersion: String? = nil, tlsCipher: String? = nil, tlsVerified: Bool? = nil,
        origin: MessageOrigin = .api, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.contactId = contactId
        self.templateId = templateId
        self.templateSlug = templateSlug
        self.templateVersion = templateVersion
        self.emailServerId = emailServerId
        self.status = status
        self.request = request
        self.messageIdHeader = messageIdHeader
        self.sendAt = sendAt
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.tlsVersion = tlsVersion
        self.tlsCipher = tlsCipher
        self.tlsVerified = tlsVerified
        self.origin = origin
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One step in a message's life. `detail` holds what the server answered, per recipient.
public struct MessageEvent: Sendable, Equatable {
    public var id: String
    public var kind: MessageStatus
    public var detail: [String: JSONValue]
    public var at: Date

    public init(id: String, kind: MessageStatus, detail: [String: JSONValue] = [:], at: Date) {
        self.id = id
        self.kind = kind
        self.detail = detail
        self.at = at
    }
}

/// The headers a caller may add to a message. Everything that decides where a message goes,
/// who it is from, or how it is structured is Tidings' to write.
public enum MessageHeaders {
    public static let named: Set<String> = [
        "in-reply-to", "references", "list-unsubscribe", "list-unsubscribe-post", "list-id", "auto-submitted", "precedence",
        "keywords", "comments",
    ]
    /// Prefixes no caller header may have (written by Tidings or by receiving servers).
    static let reservedPrefixes = ["x-tidings-", "x-original-", "x-forwarded-"]
    public static let maxHeaders = 20
    public static let maxValueLength = 900

    /// `X-…` headers and the named ones; the name as given (letters, digits, `-`).
    public static func validate(name: String, value: String, field: String) throws(DomainError) {
        let lower = name.lowercased()
        guard !name.isEmpty, name.count <= 76, name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-") }) else {
            throw .invalid("invalid_header", "The header name '\(name.prefix(80))' is not a valid header name.", field: field)
        }
        guard named.contains(lower) || (lower.hasPrefix("x-") && !reservedPrefixes.contains(where: lower.hasPrefix)) else {
            throw .invalid("header_not_allowed", "The header '\(name)' cannot be set; allowed are X-… headers and \(named.sorted().joined(separator: ", ")).", field: field)
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("invalid_header", "The value of the header '\(name)' contains a line break or another control character.", field: field)
        }
        guard value.utf8.count <= maxValueLength else {
            throw .invalid("invalid_header", "The value of the header '\(name)' is longer than \(maxValueLength) bytes.", field: field)
        }
    }
}
