import Foundation
import SQLKit
import TidingsDomain

/// Contacts of one workspace and their attributes. Every query is scoped by `workspaceId`.
public struct ContactRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
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

    public func find(email: EmailAddress) async throws -> Contact? {
        guard let row = try await db.raw("""
            SELECT id, email, status, created_at, updated_at FROM contacts
            WHERE workspace_id = \(bind: workspaceId) AND email = \(bind: email.value)
            """).first()
        else { return nil }
        var contact = try decode(row)
        contact.attributes = try await attributes(of: [contact.id])[contact.id] ?? [:]
        return contact
    }

    /// The id of the contact with this address, if any (no attributes loaded).
    public func findId(email: EmailAddress) async throws -> String? {
        try await db.raw("""
            SELECT id FROM contacts WHERE workspace_id = \(bind: workspaceId) AND email = \(bind: email.value)
            """).first()?.decode(column: "id", as: String.self)
    }

    /// Inserts a new contact with its attributes. Returns `false`, writing nothing,
    /// when a contact with the same address already exists (e.g. created concurrently).
    public func insert(_ contact: Contact) async throws -> Bool {
        precondition(contact.workspaceId == workspaceId)
        let inserted = try await db.raw("""
            INSERT INTO contacts (id, workspace_id, email, status, created_at, updated_at)
            VALUES (\(bind: contact.id), \(bind: workspaceId), \(bind: contact.email.value), \(bind: contact.status.rawValue),
                    \(bind: Timestamp.format(contact.createdAt)), \(bind: Timestamp.format(contact.updatedAt)))
            ON CONFLICT (workspace_id, email) DO NOTHING
            RETURNING id
            """).first()
        guard inserted != nil else { return false }
        try await setAttributes(contactId: contact.id, contact.attributes)
        return true
    }

    /// Writes attribute values and removals for an existing contact and bumps `updated_at`.
    public func update(contactId: String, set: [String: AttributeValue], remove: [String], at now: Date) async throws {
        try await setAttributes(contactId: contactId, set)
        for name in remove {
            try await db.raw("""
                DELETE FROM contact_attributes
                WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND name = \(bind: name)
                """).run()
        }
        try await db.raw("""
            UPDATE contacts SET updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: contactId)
            """).run()
    }

    /// Deletes the contact and, through foreign keys, its attributes and events. Returns whether it existed.
    public func delete(email: EmailAddress) async throws -> Bool {
        try await db.raw("""
            DELETE FROM contacts WHERE workspace_id = \(bind: workspaceId) AND email = \(bind: email.value) RETURNING id
            """).first() != nil
    }

    /// Contacts in id (creation) order after `afterId`, at most `limit`.
    public func list(filter: Filter, afterId: String?, limit: Int) async throws -> [Contact] {
        var query = SQLQueryString("""
            SELECT id, email, status, created_at, updated_at FROM contacts c WHERE workspace_id = \(bind: workspaceId)
            """)
        if let status = filter.status {
            query.appendInterpolation(" AND status = \(bind: status.rawValue)" as SQLQueryString)
        }
        for (name, value) in filter.attributes.sorted(by: { $0.key < $1.key }) {
            query.appendInterpolation("""
                 AND EXISTS (SELECT 1 FROM contact_attributes a WHERE a.workspace_id = \(bind: workspaceId)
                 AND a.contact_id = c.id AND a.name = \(bind: name) AND a.value = \(bind: value))
                """ as SQLQueryString)
        }
        if let afterId {
            query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString)
        }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        var contacts = try await db.raw(query).all().map(decode)
        let attributes = try await attributes(of: contacts.map(\.id))
        for index in contacts.indices {
            contacts[index].attributes = attributes[contacts[index].id] ?? [:]
        }
        return contacts
    }

    private func setAttributes(contactId: String, _ attributes: [String: AttributeValue]) async throws {
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) {
            try await db.raw("""
                INSERT INTO contact_attributes (contact_id, workspace_id, name, kind, value)
                VALUES (\(bind: contactId), \(bind: workspaceId), \(bind: name), \(bind: value.kind.rawValue), \(bind: value.storageText))
                ON CONFLICT (contact_id, name) DO UPDATE SET kind = excluded.kind, value = excluded.value
                """).run()
        }
    }

    private func attributes(of contactIds: [String]) async throws -> [String: [String: AttributeValue]] {
        guard !contactIds.isEmpty else { return [:] }
        let rows = try await db.raw("""
            SELECT contact_id, name, kind, value FROM contact_attributes
            WHERE workspace_id = \(bind: workspaceId) AND contact_id IN (\(binds: contactIds))
            """).all()
        var result: [String: [String: AttributeValue]] = [:]
        for row in rows {
            let kind = AttributeValue.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .string
            let value = AttributeValue(kind: kind, storageText: try row.decode(column: "value", as: String.self))
            result[try row.decode(column: "contact_id", as: String.self), default: [:]][try row.decode(column: "name", as: String.self)] = value
        }
        return result
    }

    private func decode(_ row: any SQLRow) throws -> Contact {
        Contact(
            id: try row.decode(column: "id", as: String.self),
            workspaceId: workspaceId,
            email: try EmailAddress(row.decode(column: "email", as: String.self)),
            status: ContactStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .active,
            attributes: [:],
            createdAt: try row.decodeTimestamp("created_at"),
            updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
