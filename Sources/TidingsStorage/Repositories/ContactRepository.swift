import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Contacts of one workspace and their attributes. Every query is scoped by the vault's
/// workspace; addresses and attribute values are stored sealed, and found by blind index.
public struct ContactRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    /// Filters for listing contacts; attribute values compare against their canonical text.
    public struct Filter: Sendable {
        public var status: ContactStatus?
        public var attributes: [String: String]

        public init(status: ContactStatus? = nil, attributes: [String: String] = [:]) {
            self.status = status
            self.attributes = attributes
        }
    }

    /// The blind index of an address: the only form of it that is compared or kept unique.
    func emailIndex(_ email: EmailAddress) -> String {
        vault.blindIndex(email.value, column: "contacts.email")
    }

    func sealEmail(_ email: EmailAddress, contactId: String) throws -> String {
        try vault.seal(email.value, table: "contacts", column: "email", row: contactId)
    }

    /// An attribute's index covers its name too, so `plan=pro` and `tier=pro` index differently.
    func valueIndex(name: String, text: String) -> String {
        vault.blindIndex("\(name)\u{0}\(text)", column: "contact_attributes.value")
    }

    public func find(email: EmailAddress) async throws -> Contact? {
        // One round trip: the contact and its attributes (one row per attribute, or one row with NULLs).
        let rows = try await db.raw("""
            SELECT c.id, c.email_sealed, c.status, c.created_at, c.updated_at, a.name, a.kind, a.value_sealed,
                   a.workspace_id AS attribute_workspace_id
            FROM contacts c LEFT JOIN contact_attributes a ON a.contact_id = c.id
            WHERE c.workspace_id = \(bind: workspaceId) AND c.email_index = \(bind: emailIndex(email))
            """).all()
        // The join is on the contact's id alone: with the workspace in it too, SQLite's planner
        // (which has no statistics) walked every attribute of the workspace instead of using
        // the primary key. Attributes always share their contact's workspace; that is checked here.
        guard let first = rows.first else { return nil }
        var contact = try await decode(first)
        for row in rows {
            guard let name = try row.decode(column: "name", as: String?.self) else { continue }
            try checkWorkspace(row, column: "attribute_workspace_id")
            contact.attributes[name] = try await decodeAttribute(row, contactId: contact.id, name: name)
        }
        return contact
    }

    /// The contact with this id, with its attributes.
    public func find(id: String) async throws -> Contact? {
        guard let row = try await db.raw("""
            SELECT id, email_sealed, status, created_at, updated_at FROM contacts WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        var contact = try await decode(row)
        contact.attributes = try await attributes(of: [id])[id] ?? [:]
        return contact
    }

    /// The addresses of the contacts with these ids that exist.
    public func emails(ids: [String]) async throws -> [String: EmailAddress] {
        guard !ids.isEmpty else { return [:] }
        var result: [String: EmailAddress] = [:]
        for row in try await db.raw("""
            SELECT id, email_sealed, status, created_at, updated_at FROM contacts WHERE workspace_id = \(bind: workspaceId) AND id IN (\(binds: ids))
            """).all() {
            let contact = try await decode(row)
            result[contact.id] = contact.email
        }
        return result
    }

    /// The id of the contact with this address, if any (no attributes loaded).
    public func findId(email: EmailAddress) async throws -> String? {
        try await db.raw("""
            SELECT id FROM contacts WHERE workspace_id = \(bind: workspaceId) AND email_index = \(bind: emailIndex(email))
            """).first()?.decode(column: "id", as: String.self)
    }

    /// Inserts a new contact with its attributes. Returns `false`, writing nothing,
    /// when a contact with the same address already exists (e.g. created concurrently).
    public func insert(_ contact: Contact) async throws -> Bool {
        precondition(contact.workspaceId == workspaceId)
        let inserted = try await db.raw("""
            INSERT INTO contacts (id, workspace_id, email_index, email_sealed, status, created_at, updated_at)
            VALUES (\(bind: contact.id), \(bind: workspaceId), \(bind: emailIndex(contact.email)),
                    \(bind: try sealEmail(contact.email, contactId: contact.id)), \(bind: contact.status.rawValue),
                    \(bind: Timestamp.format(contact.createdAt)), \(bind: Timestamp.format(contact.updatedAt)))
            ON CONFLICT (workspace_id, email_index) DO NOTHING
            RETURNING id
            """).first()
        guard inserted != nil else { return false }
        try await setAttributes(contactId: contact.id, contact.attributes)
        return true
    }

    /// The ids of the contacts with these addresses, creating bare contacts (no attributes)
    /// for the addresses that have none yet. Existing contacts are left unchanged.
    /// - Parameter contacts: each address with the id it gets if it is created.
    /// - Returns: ids by address, and the addresses that were created.
    public func ensure(_ contacts: [(id: String, email: EmailAddress)], at now: Date) async throws -> (ids: [String: String], created: Set<String>) {
        guard !contacts.isEmpty else { return ([:], []) }
        let stamp = Timestamp.format(now)
        var emailByIndex: [String: String] = [:]
        var insert = db.insert(into: "contacts").columns("id", "workspace_id", "email_index", "email_sealed", "status", "created_at", "updated_at")
        for contact in contacts {
            let index = emailIndex(contact.email)
            emailByIndex[index] = contact.email.value
            insert = insert.values([
                contact.id, workspaceId, index, try sealEmail(contact.email, contactId: contact.id),
                ContactStatus.active.rawValue, stamp, stamp,
            ])
        }
        let proposed = Dictionary(contacts.map { ($0.email.value, $0.id) }, uniquingKeysWith: { first, _ in first })
        var ids: [String: String] = [:]
        func record(_ rows: [any SQLRow]) throws -> [String] {
            var emails: [String] = []
            for row in rows {
                guard let email = emailByIndex[try row.decode(column: "email_index", as: String.self)] else { continue }
                ids[email] = try row.decode(column: "id", as: String.self)
                emails.append(email)
            }
            return emails
        }
        if db.isSQLite {
            // See Dialect.swift: the no-op update makes RETURNING include existing rows.
            let rows = try await insert.onConflict(with: ["workspace_id", "email_index"]) { $0.set("email_index", to: SQLColumn("email_index")) }
                .returning("id", "email_index").all()
            _ = try record(rows)
            return (ids, Set(ids.filter { proposed[$0.key] == $0.value }.keys))
        }
        let inserted = try await insert.ignoringConflicts(with: ["workspace_id", "email_index"]).returning("id", "email_index").all()
        let created = Set(try record(inserted))
        let existing = contacts.filter { ids[$0.email.value] == nil }.map { emailIndex($0.email) }
        if !existing.isEmpty {
            _ = try record(try await db.raw("""
                SELECT id, email_index FROM contacts
                WHERE workspace_id = \(bind: workspaceId) AND email_index IN (\(binds: existing))
                """).all())
        }
        return (ids, created)
    }

    /// The contact's status, if it exists.
    public func status(contactId: String) async throws -> ContactStatus? {
        try await db.raw("""
            SELECT status FROM contacts WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).first().map { ContactStatus(rawValue: try $0.decode(column: "status", as: String.self)) ?? .active }
    }

    public func setStatus(contactId: String, _ status: ContactStatus, at now: Date) async throws {
        try await db.raw("""
            UPDATE contacts SET status = \(bind: status.rawValue), updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).run()
    }

    /// Writes attribute values and removals for an existing contact and bumps `updated_at`.
    public func update(contactId: String, set: [String: AttributeValue], remove: [String], at now: Date) async throws {
        try await setAttributes(contactId: contactId, set)
        if !remove.isEmpty {
            try await db.raw("""
                DELETE FROM contact_attributes
                WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND name IN (\(binds: remove))
                """).run()
        }
        try await db.raw("""
            UPDATE contacts SET updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).run()
    }

    /// Deletes the contact and, through foreign keys, its attributes and events. Returns its id if it existed.
    public func delete(email: EmailAddress) async throws -> String? {
        try await db.raw("""
            DELETE FROM contacts WHERE workspace_id = \(bind: workspaceId) AND email_index = \(bind: emailIndex(email)) RETURNING id
            """).first()?.decode(column: "id", as: String.self)
    }

    /// Contacts in id (creation) order after `afterId`, at most `limit`.
    public func list(filter: Filter, afterId: String?, limit: Int) async throws -> [Contact] {
        var query = SQLQueryString("""
            SELECT id, email_sealed, status, created_at, updated_at FROM contacts c WHERE workspace_id = \(bind: workspaceId)
            """)
        if let status = filter.status {
            query.appendInterpolation(" AND status = \(bind: status.rawValue)" as SQLQueryString)
        }
        for (name, value) in filter.attributes.sorted(by: { $0.key < $1.key }) {
            query.appendInterpolation("""
                 AND EXISTS (SELECT 1 FROM contact_attributes a WHERE a.workspace_id = \(bind: workspaceId)
                 AND a.contact_id = c.id AND a.name = \(bind: name) AND a.value_index = \(bind: valueIndex(name: name, text: value)))
                """ as SQLQueryString)
        }
        if let afterId {
            query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString)
        }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        var contacts: [Contact] = []
        for row in try await db.raw(query).all() { contacts.append(try await decode(row)) }
        let attributes = try await attributes(of: contacts.map(\.id))
        for index in contacts.indices {
            contacts[index].attributes = attributes[contacts[index].id] ?? [:]
        }
        return contacts
    }

    private func setAttributes(contactId: String, _ attributes: [String: AttributeValue]) async throws {
        guard !attributes.isEmpty else { return }
        // One statement for all values (at most 100 attributes, 500 binds).
        var query = SQLQueryString("INSERT INTO contact_attributes (contact_id, workspace_id, name, kind, value_index, value_sealed) VALUES ")
        for (index, (name, value)) in attributes.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            let sealed = try vault.seal(value.storageText, table: "contact_attributes", column: "value", row: Self.attributeRow(contactId, name))
            query.appendInterpolation("""
                (\(bind: contactId), \(bind: workspaceId), \(bind: name), \(bind: value.kind.rawValue),
                 \(bind: valueIndex(name: name, text: value.storageText)), \(bind: sealed))
                """ as SQLQueryString)
        }
        query.appendLiteral(" ON CONFLICT (contact_id, name) DO UPDATE SET kind = excluded.kind, value_index = excluded.value_index, value_sealed = excluded.value_sealed")
        try await db.raw(query).run()
    }

    private func attributes(of contactIds: [String]) async throws -> [String: [String: AttributeValue]] {
        guard !contactIds.isEmpty else { return [:] }
        // By primary key (see `find(email:)`); the workspace is checked on each row.
        let rows = try await db.raw("""
            SELECT contact_id, workspace_id, name, kind, value_sealed FROM contact_attributes
            WHERE contact_id IN (\(binds: contactIds))
            """).all()
        var result: [String: [String: AttributeValue]] = [:]
        for row in rows {
            try checkWorkspace(row, column: "workspace_id")
            let contactId = try row.decode(column: "contact_id", as: String.self)
            let name = try row.decode(column: "name", as: String.self)
            result[contactId, default: [:]][name] = try await decodeAttribute(row, contactId: contactId, name: name)
        }
        return result
    }

    /// A row read by primary key must still belong to this repository's workspace.
    private func checkWorkspace(_ row: any SQLRow, column: String) throws {
        guard try row.decode(column: column, as: String.self) == workspaceId else {
            throw StorageError.corruptValue(column: "contact_attributes.workspace_id")
        }
    }

    /// The row part of an attribute's seal context: one contact, one name.
    static func attributeRow(_ contactId: String, _ name: String) -> String { "\(contactId)/\(name)" }

    private func decodeAttribute(_ row: any SQLRow, contactId: String, name: String) async throws -> AttributeValue {
        let kind = AttributeValue.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .string
        guard let sealed = try row.decode(column: "value_sealed", as: String?.self) else {
            throw StorageError.corruptValue(column: "contact_attributes.value_sealed")
        }
        let text = try await vault.open(sealed, table: "contact_attributes", column: "value", row: Self.attributeRow(contactId, name))
        return AttributeValue(kind: kind, storageText: text)
    }

    private func decode(_ row: any SQLRow) async throws -> Contact {
        let id = try row.decode(column: "id", as: String.self)
        guard let sealed = try row.decode(column: "email_sealed", as: String?.self) else {
            throw StorageError.corruptValue(column: "contacts.email_sealed")
        }
        return Contact(
            id: id,
            workspaceId: workspaceId,
            email: try EmailAddress(try await vault.open(sealed, table: "contacts", column: "email", row: id)),
            status: ContactStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .active,
            attributes: [:],
            createdAt: try row.decodeTimestamp("created_at"),
            updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}

extension ContactRepository {
    /// Seals the address of a contact stored before sealing existed, replacing the plaintext.
    public func sealLegacy(contactId: String, email: EmailAddress) async throws {
        try await db.raw("""
            UPDATE contacts SET email_index = \(bind: emailIndex(email)), email_sealed = \(bind: try sealEmail(email, contactId: contactId))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).run()
    }

    /// Seals an attribute value stored before sealing existed, replacing the plaintext.
    public func sealLegacyAttribute(contactId: String, name: String, text: String) async throws {
        let sealed = try vault.seal(text, table: "contact_attributes", column: "value", row: Self.attributeRow(contactId, name))
        try await db.raw("""
            UPDATE contact_attributes SET value_index = \(bind: valueIndex(name: name, text: text)), value_sealed = \(bind: sealed)
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND name = \(bind: name)
            """).run()
    }
}
