import Foundation
import SQLKit
import TidingsDomain

extension ContactRepository {
    /// The address of the contact with this id (an unsubscribe link knows the contact by id only).
    public func email(contactId: String) async throws -> EmailAddress? {
        guard let row = try await db.raw("""
            SELECT email_sealed FROM contacts WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).first() else { return nil }
        guard let sealed = try row.decode(column: "email_sealed", as: String?.self) else {
            throw StorageError.corruptValue(column: "contacts.email_sealed")
        }
        return try EmailAddress(try await vault.open(sealed, table: "contacts", column: "email", row: contactId))
    }
}

extension WorkspaceRepository {
    /// The workspace's name, which the preference page shows (no sealed value is opened).
    public static func name(id: String, in db: any SQLDatabase) async throws -> String? {
        try await db.raw("SELECT name FROM workspaces WHERE id = \(bind: id)").first()?.decode(column: "name", as: String.self)
    }
}
