import Foundation

/// What a template version holds: each field is template source in Tidings' Mustache
/// dialect. `from` is `Display Name <address>` or a bare address; its display name is a
/// template, its address is not.
public struct TemplateContent: Sendable, Equatable, Codable {
    public var subject: String
    public var from: String
    public var replyTo: String?
    public var html: String
    /// When absent, the text part is derived from the rendered HTML.
    public var text: String?

    public init(subject: String, from: String, replyTo: String?, html: String, text: String?) {
        self.subject = subject
        self.from = from
        self.replyTo = replyTo
        self.html = html
        self.text = text
    }
}

/// A workspace's email template at one version. Every update makes a new version; a
/// message records the version it was rendered from.
public struct Template: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var slug: String
    public var name: String
    public var version: Int
    public var content: TemplateContent
    public var createdAt: Date
    public var updatedAt: Date
    /// The email server messages from this template leave through; `nil`: the workspace's default.
    public var emailServerId: String?

    public init(
        id: String, workspaceId: String, slug: String, name: String, version: Int, content: TemplateContent, createdAt: Date, updatedAt: Date,
        emailServerId: String? = nil
    ) {
        self.emailServerId = emailServerId
        self.id = id
        self.workspaceId = workspaceId
        self.slug = slug
        self.name = name
        self.version = version
        self.content = content
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Limits stated in the API document.
    public static let maxSlugLength = 100
    public static let maxNameLength = 200
    public static let maxSubjectLength = 998
    public static let maxBodyBytes = 512 * 1024

    /// A slug: 1–100 lowercase letters, digits, `-` and `_`, starting with a letter or digit
    /// (SendStreak's `templateSlug`).
    public static func validateSlug(_ raw: String, field: String = "slug") throws(DomainError) -> String {
        let bytes = Array(raw.utf8)
        guard !bytes.isEmpty else { throw .invalid("invalid_slug", "The slug is empty.", field: field) }
        guard bytes.count <= maxSlugLength else {
            throw .invalid("invalid_slug", "The slug is longer than \(maxSlugLength) characters.", field: field)
        }
        let allowed: (UInt8) -> Bool = { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D || $0 == 0x5F }
        guard bytes.allSatisfy(allowed), bytes[0] != 0x2D, bytes[0] != 0x5F else {
            throw .invalid(
                "invalid_slug", "The slug may hold lowercase letters, digits, '-' and '_', and starts with a letter or digit.", field: field
            )
        }
        return raw
    }
}

/// A `from` or `reply-to` field split into its display name (template source, possibly
/// empty) and its address (source too, for reply-to).
public struct MailboxSource: Sendable, Equatable {
    public var displayName: String
    public var address: String

    /// `Name <address>`, `"Name" <address>` or a bare `address`.
    public init(parsing raw: String, field: String) throws(DomainError) {
        let trimmed = raw.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .invalid("invalid_mailbox", "The field '\(field)' is empty.", field: field) }
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") { name = String(name.dropFirst().dropLast()) }
            displayName = name
            address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)]).trimmingCharacters(in: .whitespaces)
        } else {
            displayName = ""
            address = trimmed
        }
        guard !address.isEmpty else {
            throw .invalid("invalid_mailbox", "The field '\(field)' has no address between < and >.", field: field)
        }
        // By scalar: "\r\n" is one Character, equal to neither "\r" nor "\n".
        guard !raw.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else {
            throw .invalid("invalid_mailbox", "The field '\(field)' may not contain a line break.", field: field)
        }
    }
}

/// A domain a workspace sends from, with the DNS records its owner publishes.
public struct SendingDomain: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var domain: String
    public var createdAt: Date
    /// What to publish: derived from the domain's keys, never stored.
    public var records: [DNSRecord]
    /// What the latest check of the published records found; `nil` until the first check.
    public var verification: DomainVerification?

    public init(id: String, workspaceId: String, domain: String, createdAt: Date, records: [DNSRecord], verification: DomainVerification? = nil) {
        self.id = id
        self.workspaceId = workspaceId
        self.domain = domain
        self.createdAt = createdAt
        self.records = records
        self.verification = verification
    }

    /// A DNS domain name in its ASCII form: 2 to 127 labels of letters, digits and inner
    /// hyphens, at most 253 characters; lowercased. Internationalised names are given in
    /// their `xn--` form.
    public static func validate(_ raw: String, field: String = "domain") throws(DomainError) -> String {
        let domain = raw.trimmingCharacters(in: .whitespaces).lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        guard !domain.isEmpty, domain.utf8.count <= 253 else {
            throw .invalid("invalid_domain", "The domain must be 1 to 253 characters.", field: field)
        }
        guard domain.unicodeScalars.allSatisfy(\.isASCII) else {
            throw .invalid("invalid_domain", "Give an internationalised domain in its ASCII (xn--) form.", field: field)
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2 else {
            throw .invalid("invalid_domain", "The domain needs at least two labels, like acme.test.", field: field)
        }
        for label in labels where !isHostLabel(label) {
            throw .invalid("invalid_domain", "'\(label.prefix(64))' is not a valid domain label.", field: field)
        }
        guard labels.last!.contains(where: \.isLetter) else {
            throw .invalid("invalid_domain", "The last label of a domain has a letter.", field: field)
        }
        return domain
    }
}

/// An ASCII DNS label: 1 to 63 letters, digits and hyphens, no hyphen at either end.
public func isHostLabel(_ label: Substring) -> Bool {
    (1...63).contains(label.count) && label.first != "-" && label.last != "-"
        && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
}

/// A record for the domain's owner to publish.
public struct DNSRecord: Sendable, Equatable, Codable {
    public var type: String
    public var name: String
    public var value: String
    /// `dkim`, `dkim-ed25519`, `spf` or `dmarc`.
    public var purpose: String

    public init(type: String, name: String, value: String, purpose: String) {
        self.type = type
        self.name = name
        self.value = value
        self.purpose = purpose
    }
}
