import Foundation

/// The deployment stage an instance or a key belongs to (T1.3: environments are kept apart).
public enum DeploymentEnvironment: String, Sendable, CaseIterable, Codable {
    case production, staging, development
}

/// A customer's separate space: every tenant row belongs to exactly one workspace.
public struct Workspace: Sendable, Equatable {
    public var id: String
    public var name: String
    public var ownerEmail: EmailAddress
    public var environment: DeploymentEnvironment
    public var createdAt: Date

    public init(id: String, name: String, ownerEmail: EmailAddress, environment: DeploymentEnvironment, createdAt: Date) {
        self.id = id
        self.name = name
        self.ownerEmail = ownerEmail
        self.environment = environment
        self.createdAt = createdAt
    }

    public static let maxNameLength = 100

    /// Trims and checks a workspace name.
    public static func validateName(_ raw: String) throws(DomainError) -> String {
        try DisplayName.validate(raw, field: "name", maxLength: maxNameLength)
    }
}

/// Names people give things (workspaces, API keys): trimmed, not empty, bounded, and
/// free of control characters, which would corrupt listings, logs and terminals.
public enum DisplayName {
    public static func validate(_ raw: String, field: String, maxLength: Int) throws(DomainError) -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw .invalid("invalid_name", "The \(field) must not be empty.", field: field) }
        guard name.count <= maxLength else {
            throw .invalid("invalid_name", "The \(field) must be at most \(maxLength) characters.", field: field)
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("invalid_name", "The \(field) must not contain control characters.", field: field)
        }
        return name
    }
}
