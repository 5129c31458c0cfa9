import Foundation

/// What an API key may do. Least privilege: give a key only the scopes its caller needs.
///
/// | scope | grants |
/// |---|---|
/// | `contacts:read` | read contacts, their events and their export |
/// | `contacts:write` | create, update, import and delete contacts (implies `contacts:read`) |
/// | `events:write` | record events (creates the contact when missing) |
/// | `messages:read` | read messages and their timelines |
/// | `messages:send` | send messages (implies `messages:read`) |
/// | `templates:read` | read templates |
/// | `templates:write` | create, change and delete templates (implies `templates:read`) |
/// | `automations:read` | read automations, their statistics and enrolments |
/// | `automations:write` | create, change, switch on and off, and delete automations (implies `automations:read`) |
/// | `admin` | everything, including managing API keys |
public enum Scope: String, Sendable, CaseIterable, Codable, Comparable {
    case contactsRead = "contacts:read"
    case contactsWrite = "contacts:write"
    case eventsWrite = "events:write"
    case messagesRead = "messages:read"
    case messagesSend = "messages:send"
    case templatesRead = "templates:read"
    case templatesWrite = "templates:write"
    case automationsRead = "automations:read"
    case automationsWrite = "automations:write"
    case admin

    /// The scopes a key created without an explicit list gets: everything but key management.
    public static let defaultForNewKeys: [Scope] = [.contactsWrite, .eventsWrite, .messagesSend, .templatesWrite, .automationsWrite]

    /// Whether holding `self` permits an operation that requires `required`.
    public func permits(_ required: Scope) -> Bool {
        if self == .admin || self == required { return true }
        switch (self, required) {
        case (.contactsWrite, .contactsRead), (.messagesSend, .messagesRead), (.templatesWrite, .templatesRead),
             (.automationsWrite, .automationsRead):
            return true
        default:
            return false
        }
    }

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// Parses a list of scope names, rejecting unknown ones by name.
    public static func parseList(_ names: [String], field: String = "scopes") throws(DomainError) -> [Scope] {
        guard !names.isEmpty else { throw .invalid("invalid_scopes", "At least one scope is required.", field: field) }
        var scopes = Set<Scope>()
        for name in names {
            guard let scope = Scope(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else {
                let known = allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalid("invalid_scopes", "Unknown scope '\(name.prefix(40))'; known scopes: \(known).", field: field)
            }
            scopes.insert(scope)
        }
        return scopes.sorted()
    }
}

extension Collection<Scope> {
    public func permits(_ required: Scope) -> Bool { contains { $0.permits(required) } }
}

/// An API key's metadata; its secret is never stored, only a keyed hash of it.
public struct APIKey: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var name: String
    public var scopes: [Scope]
    /// The first characters of the current secret, to tell keys apart in listings.
    public var hint: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revokedAt: Date?
    public var lastUsedAt: Date?
    /// When the key was seen in a request sent over plain HTTP: anyone on the path may have it.
    public var exposedAt: Date?

    public init(
        id: String, workspaceId: String, name: String, scopes: [Scope], hint: String,
        createdAt: Date, expiresAt: Date?, revokedAt: Date?, lastUsedAt: Date?, exposedAt: Date? = nil
    ) {
        self.exposedAt = exposedAt
        self.id = id
        self.workspaceId = workspaceId
        self.name = name
        self.scopes = scopes
        self.hint = hint
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.lastUsedAt = lastUsedAt
    }

    public static let maxNameLength = 100

    public func isUsable(at now: Date) -> Bool {
        revokedAt == nil && (expiresAt.map { $0 > now } ?? true)
    }

    /// `active`, `revoked` or `expired`, as listings show it.
    public func status(at now: Date) -> String {
        revokedAt != nil ? "revoked" : (isUsable(at: now) ? "active" : "expired")
    }
}

/// Who is calling: set by authentication, read by every handler.
public struct Principal: Sendable, Equatable {
    public var workspaceId: String
    public var apiKeyId: String
    public var scopes: [Scope]

    public init(workspaceId: String, apiKeyId: String, scopes: [Scope]) {
        self.workspaceId = workspaceId
        self.apiKeyId = apiKeyId
        self.scopes = scopes
    }

    public func require(_ scope: Scope) throws(DomainError) {
        guard scopes.permits(scope) else {
            throw DomainError(.forbidden, code: "insufficient_scope", message: "This API key lacks the '\(scope.rawValue)' scope.")
        }
    }
}
