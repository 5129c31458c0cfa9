import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Addresses Tidings no longer sends to because their mailbox does not exist (a 5.1.x
/// bounce). Clearing one sends to the contact again.
public struct SuppressionService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    static let notFound = DomainError.notFound("suppression_not_found", "This address is not suppressed in this workspace.")

    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<SuppressionRepository.Entry> {
        let limit = limit ?? 100
        guard (1...500).contains(limit) else { throw DomainError.invalid("invalid_limit", "limit must be from 1 to 500.", field: "limit") }
        if let cursor, !cursor.hasPrefix("ct_") {
            throw DomainError.invalid("invalid_cursor", "The cursor is not one this API gave out.", field: "cursor")
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        let entries = try await env.database.read { db in
            try await SuppressionRepository(db, vault: vault).list(afterContactId: cursor, limit: limit + 1)
        }
        return Page(items: Array(entries.prefix(limit)), nextCursor: entries.count > limit ? entries[limit - 1].contactId : nil)
    }

    /// Clears the bounce: the contact receives messages again (marketing mail as its
    /// subscriptions say).
    public func delete(workspaceId: String, email raw: String, by actor: AuditActor) async throws {
        guard let email = try? EmailAddress(raw) else { throw Self.notFound }
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            let contacts = ContactRepository(db, vault: vault)
            guard let contactId = try await contacts.findId(email: email) else { throw Self.notFound }
            let removed = try await SuppressionRepository(db, vault: vault).remove(contactId: contactId)
            let wasBounced = try await contacts.status(contactId: contactId) == .bounced
            guard removed || wasBounced else { throw Self.notFound }
            if wasBounced {
                // The contact's subscriptions, hidden by the bounce, hold again.
                let status = try await SubscriptionRepository(db, workspaceId: workspaceId).statusAfterBounce(contactId: contactId)
                try await contacts.setStatus(contactId: contactId, status, at: now)
            }
            try await audit.record(AuditChange("contact.unsuppressed", target: ("contact", contactId), summary: [
                "email": .string(vault.pseudonym(email.value)),
            ]), in: workspaceId, by: actor, db: db)
        }
    }
}
