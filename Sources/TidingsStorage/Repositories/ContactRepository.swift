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
        // One round trip: the contact and its attributes (one row per attribute, or one row with NULLs).
        let rows = try await db.raw("""
            SELECT c.id, c.email, c.status, c.created_at, c.updated_at, a.name, a.kind, a.value
            FROM contacts c LEFT JOIN contact_attributes a ON a.contact_id = c.id AND a.workspace_id = c.workspace_id
            WHERE c.workspace_id = \(bind: workspaceId) AND c.email = \(bind: email.value)
            """).all()
        guard let first = rows.first else { return nil }
        var contact = try decode(first)
        for row in rows {
            guard let name = try row.decode(column: "name", as: String?.self) else { continue }
            contact.attributes[name] = try Self.decodeAttribute(row)
        }
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

    /// The ids of the contacts with these addresses, creating bare contacts (no attributes)
    /// for the addresses that have none yet. Existing contacts are left unchanged.
    /// - Parameter contacts: each address with the id it gets if it is created.
    /// - Returns: ids by address, and the addresses that were created.
    public func ensure(_ contacts: [(id: String, email: EmailAddress)], at now: Date) async throws -> (ids: [String: String], created: Set<String>) {
        guard !contacts.isEmpty else { return ([:], []) }
        let stamp = Timestamp.format(now)
        var insert = db.insert(into: "contacts").columns("id", "workspace_id", "email", "status", "created_at", "updated_at")
        for contact in contacts {
            insert = insert.values([contact.id, workspaceId, contact.email.value, ContactStatus.active.rawValue, stamp, stamp])
        }
        let proposed = Dictionary(contacts.map { ($0.email.value, $0.id) }, uniquingKeysWith: { first, _ in first })
        var ids: [String: String] = [:]
        if db.isSQLite {
            // See Dialect.swift: the no-op update makes RETURNING include existing rows.
            let rows = try await insert.onConflict(with: ["workspace_id", "email"]) { $0.set("email", to: SQLColumn("email")) }
                .returning("id", "email").all()
            for row in rows {
                ids[try row.decode(column: "email", as: String.self)] = try row.decode(column: "id", as: String.self)
            }
            return (ids, Set(ids.filter { proposed[$0.key] == $0.value }.keys))
        }
        let inserted = try await insert.ignoringConflicts(with: ["workspace_id", "email"]).returning("id", "email").all()
        var created = Set<String>()
        for row in inserted {
            let email = try row.decode(column: "email", as: String.self)
            created.insert(email)
            ids[email] = try row.decode(column: "id", as: String.self)
        }
        let existing = contacts.map(\.email).filter { ids[$0.value] == nil }
        if !existing.isEmpty {
            let rows = try await db.raw("""
                SELECT id, email FROM contacts
                WHERE workspace_id = \(bind: workspaceId) AND email IN (\(binds: existing.map(\.value)))
                """).all()
            for row in rows {
                ids[try row.decode(column: "email", as: String.self)] = try row.decode(column: "id", as: String.self)
            }
        }
        return (ids, created)
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
        guard !attributes.isEmpty else { return }
        // One statement for all values (at most 100 attributes, 500 binds).
        var query = SQLQueryString("INSERT INTO contact_attributes (contact_id, workspace_id, name, kind, value) VALUES ")
        for (index, (name, value)) in attributes.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            query.appendInterpolation("(\(bind: contactId), \(bind: workspaceId), \(bind: name), \(bind: value.kind.rawValue), \(bind: value.storageText))" as SQLQueryString)
        }
        query.appendLiteral(" ON CONFLICT (contact_id, name) DO UPDATE SET kind = excluded.kind, value = excluded.value")
        try await db.raw(query).run()
    }

    private func attributes(of contactIds: [String]) async throws -> [String: [String: AttributeValue]] {
        guard !contactIds.isEmpty else { return [:] }
        let rows = try await db.raw("""
            SELECT contact_id, name, kind, value FROM contact_attributes
            WHERE workspace_id = \(bind: workspaceId) AND contact_id IN (\(binds: contactIds))
            """).all()
        var result: [String: [String: AttributeValue]] = [:]
        for row in rows {
            result[try row.decode(column: "contact_id", as: String.self), default: [:]][try row.decode(column: "name", as: String.self)] =
                try Self.decodeAttribute(row)
        }
        return result
    }

    private static func decodeAttribute(_ row: any SQLRow) throws -> AttributeValue {
        let kind = AttributeValue.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .string
        return AttributeValue(kind: kind, storageText: try row.decode(column: "value", as: String.self))
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
