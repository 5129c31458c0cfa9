import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Seals personal data that was stored before sealing existed (rows from before
/// migration 7): contact addresses, attribute values and workspace owner addresses.
/// Runs after every migration; when there is nothing left in the clear it costs three
/// indexed queries. Each workspace is converted in its own transaction.
public struct SealingRetrofit: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    /// Returns how many values were sealed.
    @discardableResult
    public func run() async throws -> Int {
        var sealed = 0
        let legacyOwners = try await env.database.read { db in
            try await db.raw("SELECT id, owner_email_sealed FROM workspaces WHERE owner_email_sealed LIKE '%@%'").all().map {
                (try $0.decode(column: "id", as: String.self), try $0.decode(column: "owner_email_sealed", as: String.self))
            }
        }
        if !legacyOwners.isEmpty {
            let instance = try await env.keyring.vault(for: Vault.instanceScope)
            try await env.database.transaction { db in
                for (id, email) in legacyOwners {
                    let value = try instance.seal(email, table: "workspaces", column: "owner_email", row: id)
                    try await db.raw("UPDATE workspaces SET owner_email_sealed = \(bind: value) WHERE id = \(bind: id)").run()
                }
            }
            sealed += legacyOwners.count
        }
        let workspaces = try await env.database.read { db in
            try await db.raw("""
                SELECT DISTINCT workspace_id FROM contacts WHERE email_sealed IS NULL
                UNION SELECT DISTINCT workspace_id FROM contact_attributes WHERE value_sealed IS NULL
                """).all().map { try $0.decode(column: "workspace_id", as: String.self) }
        }
        for workspaceId in workspaces {
            sealed += try await retrofit(workspaceId: workspaceId)
        }
        if sealed > 0 {
            try await env.database.discardReplacedContent(of: ["workspaces", "contacts", "contact_attributes"])
            env.logger.notice("Sealed personal data stored before sealing existed", metadata: ["values": "\(sealed)"])
        }
        return sealed
    }

    private func retrofit(workspaceId: String) async throws -> Int {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.transaction { db in
            let repository = ContactRepository(db, vault: vault)
            var count = 0
            let contacts = try await db.raw("""
                SELECT id, email_index FROM contacts WHERE workspace_id = \(bind: workspaceId) AND email_sealed IS NULL
                """).all()
            for row in contacts {
                let id = try row.decode(column: "id", as: String.self)
                // Before sealing, this column held the address itself.
                let email = try EmailAddress(try row.decode(column: "email_index", as: String.self))
                try await repository.sealLegacy(contactId: id, email: email)
                count += 1
            }
            let attributes = try await db.raw("""
                SELECT contact_id, name, value_index FROM contact_attributes
                WHERE workspace_id = \(bind: workspaceId) AND value_sealed IS NULL
                """).all()
            for row in attributes {
                try await repository.sealLegacyAttribute(
                    contactId: try row.decode(column: "contact_id", as: String.self),
                    name: try row.decode(column: "name", as: String.self),
                    text: try row.decode(column: "value_index", as: String.self)
                )
                count += 1
            }
            return count
        }
    }
}
