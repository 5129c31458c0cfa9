import Foundation

/// A person's role in one workspace. Least privilege: give each member the lowest role
/// that lets them do their work.
///
/// | permission | owner | admin | developer | viewer |
/// |---|:-:|:-:|:-:|:-:|
/// | view the workspace, contacts and messages | ✓ | ✓ | ✓ | ✓ |
/// | export a person's data (GDPR Art. 15/20) | ✓ | ✓ | ✓ | – |
/// | change and delete contacts | ✓ | ✓ | – | – |
/// | manage templates and email servers | ✓ | ✓ | ✓ | – |
/// | manage API keys | ✓ | ✓ | ✓ | – |
/// | read the audit log | ✓ | ✓ | – | – |
/// | add, change and remove members | ✓ | ✓ (not owners) | – | – |
/// | make someone owner, delete the workspace | ✓ | – | – | – |
public enum Role: String, Sendable, CaseIterable, Codable, Comparable {
    case viewer, developer, admin, owner

    public var permissions: Set<Permission> {
        switch self {
        case .viewer: [.viewWorkspace]
        case .developer: [.viewWorkspace, .exportPersonalData, .manageTemplates, .manageServers, .manageAPIKeys]
        case .admin:
            [.viewWorkspace, .exportPersonalData, .writeContacts, .manageTemplates, .manageServers, .manageAPIKeys,
             .readAuditLog, .manageMembers]
        case .owner: Set(Permission.allCases)
        }
    }

    public func permits(_ permission: Permission) -> Bool { permissions.contains(permission) }

    public static func < (lhs: Role, rhs: Role) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    public static func parse(_ text: String, field: String = "role") throws(DomainError) -> Role {
        guard let role = Role(rawValue: text.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw .invalid("invalid_role", "The role must be one of \(allCases.map(\.rawValue).joined(separator: ", ")).", field: field)
        }
        return role
    }
}

/// What a member may do in a workspace (see the matrix on `Role`).
public enum Permission: String, Sendable, CaseIterable {
    case viewWorkspace = "workspace.view"
    case exportPersonalData = "contacts.export"
    case writeContacts = "contacts.write"
    case manageTemplates = "templates.manage"
    case manageServers = "servers.manage"
    case manageAPIKeys = "api_keys.manage"
    case readAuditLog = "audit.read"
    case manageMembers = "members.manage"
    case manageOwners = "owners.manage"
}

/// Members belong to workspaces; operators run the instance and reach a workspace's data
/// only by recording a reason.
public enum AccountKind: String, Sendable, CaseIterable {
    case member, `operator`
}

public enum AccountStatus: String, Sendable, CaseIterable {
    /// Created; the person has not yet set a password and enrolled MFA.
    case invited
    case active
    /// Disabled by an owner or operator, or for 90 days without sign-in.
    case disabled
}

/// A person who signs in to the web dashboard.
public struct Account: Sendable, Equatable {
    public var id: String
    public var email: EmailAddress
    public var kind: AccountKind
    public var status: AccountStatus
    public var mfaEnrolled: Bool
    public var createdAt: Date
    public var lastSignInAt: Date?
    public var disabledAt: Date?

    public init(
        id: String, email: EmailAddress, kind: AccountKind, status: AccountStatus, mfaEnrolled: Bool,
        createdAt: Date, lastSignInAt: Date?, disabledAt: Date?
    ) {
        self.id = id
        self.email = email
        self.kind = kind
        self.status = status
        self.mfaEnrolled = mfaEnrolled
        self.createdAt = createdAt
        self.lastSignInAt = lastSignInAt
        self.disabledAt = disabledAt
    }
}

/// A member of a workspace with their role.
public struct Membership: Sendable, Equatable {
    public var workspaceId: String
    public var accountId: String
    public var role: Role
    public var createdAt: Date

    public init(workspaceId: String, accountId: String, role: Role, createdAt: Date) {
        self.workspaceId = workspaceId
        self.accountId = accountId
        self.role = role
        self.createdAt = createdAt
    }
}
