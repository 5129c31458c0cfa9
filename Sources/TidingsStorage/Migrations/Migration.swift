import SQLKit

/// One append-only change to the schema. A migration that has shipped is never edited;
/// a new change is a new migration with the next number.
public protocol Migration: Sendable {
    /// Position in the sequence, increasing from 1. Changes developed side by side agree on
    /// their numbers up front, so a number may be missing until its change lands; the
    /// migrator applies every pending migration, whatever its number.
    var number: Int { get }
    /// What the change does, e.g. `CreateContacts`.
    var name: String { get }
    /// Applies the change inside the migrator's transaction.
    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws
}

extension Migration {
    /// Runs each statement in order; the statements use the subset of SQL both backends share.
    func execute(_ statements: [String], on db: any SQLDatabase) async throws {
        for statement in statements {
            try await db.raw(SQLQueryString(statement)).run()
        }
    }
}

/// Every migration Tidings knows, in order.
public enum Migrations {
    public static let all: [any Migration] = [
        CreateWorkspaces(),
        CreateAPIKeys(),
        CreateContacts(),
        CreateEvents(),
        IndexEventsByContact(),
        CreateWorkspaceKeys(),
        SealPersonalData(),
        CreateAuditLog(),
        CreateAccounts(),
        EnableRowLevelSecurity(),
        CreateTemplates(),
        CreateSendingDomains(),
        CreateEmailServers(),
        TemplateEmailServer(),
        CreateMessages(),
        APIKeyExposure(),
        CreateDomainChecks(),
        AddTLSPinsAndVerification(),
        AddMessageOrigins(),
        CreateTopics(),
        CreateWebhooks(),
        CreateTracking(),
        CreateAutomations(),
        CreateSegmentsAndAnnouncements(),
        IndexJobsByKind(),
        IndexUnsealedRows(),
    ]
}
