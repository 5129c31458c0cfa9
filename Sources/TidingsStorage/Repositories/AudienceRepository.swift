import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Reads a workspace's contacts in id order, one batch at a time, with just what a segment
/// filter needs: the attributes it names and the newest occurrence times of the events it
/// names. Addresses are opened only for the contacts a caller keeps (`email(of:)`).
public struct AudienceRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    /// One contact of a batch.
    public struct Member: Sendable {
        public var id: String
        public var status: ContactStatus
        public var emailSealed: String
        public var subject: SegmentSubject
    }

    /// Up to `limit` contacts after `afterId`, with the attributes in `attributes` and, per
    /// slug in `events`, that many newest occurrence times.
    public func batch(afterId: String?, limit: Int, attributes: Set<String>, events: [String: Int]) async throws -> [Member] {
        var query = SQLQueryString("SELECT id, email_sealed, status FROM contacts WHERE workspace_id = \(bind: workspaceId)")
        if let afterId { query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        let rows = try await db.raw(query).all()
        guard !rows.isEmpty else { return [] }
        var ids: [String] = []
        var members: [(id: String, status: ContactStatus, emailSealed: String)] = []
        for row in rows {
            let id = try row.decode(column: "id", as: String.self)
            guard let sealed = try row.decode(column: "email_sealed", as: String?.self) else {
                throw StorageError.corruptValue(column: "contacts.email_sealed")
            }
            ids.append(id)
            members.append((id, ContactStatus(rawValue: try row.decode(column: "status", as: String.self)) ?? .active, sealed))
        }
        // The batch holds every contact of the workspace from its first id to its last, so their
        // attributes and events are read by that range (one index range, two bound ids).
        let range = (first: ids[0], last: ids[ids.count - 1])
        let values = attributes.isEmpty ? [:] : try await attributeValues(of: range, names: attributes)
        let times = events.isEmpty ? [:] : try await eventTimes(of: range, events: events)
        return members.map { member in
            Member(
                id: member.id, status: member.status, emailSealed: member.emailSealed,
                subject: SegmentSubject(attributes: values[member.id] ?? [:], eventTimes: times[member.id] ?? [:])
            )
        }
    }

    /// Opens a member's address (checked when it was stored, so not parsed again here).
    public static func email(of member: Member, vault: Vault) async throws -> String {
        try await vault.open(member.emailSealed, table: "contacts", column: "email", row: member.id)
    }

    private func attributeValues(of range: (first: String, last: String), names: Set<String>) async throws -> [String: [String: AttributeValue]] {
        // A range of the primary key (contact_id, name): with the workspace in the WHERE clause
        // a planner may pick the (workspace, name) index and read every contact's value per
        // batch. Contacts of other workspaces whose ids fall in the range are skipped here.
        let rows = try await db.raw("""
            SELECT contact_id, workspace_id, name, kind, value_sealed FROM contact_attributes
            WHERE contact_id >= \(bind: range.first) AND contact_id <= \(bind: range.last) AND name IN (\(binds: names.sorted()))
            """).all()
        var result: [String: [String: AttributeValue]] = [:]
        for row in rows {
            guard try row.decode(column: "workspace_id", as: String.self) == workspaceId else { continue }
            let contactId = try row.decode(column: "contact_id", as: String.self)
            let name = try row.decode(column: "name", as: String.self)
            guard let sealed = try row.decode(column: "value_sealed", as: String?.self) else {
                throw StorageError.corruptValue(column: "contact_attributes.value_sealed")
            }
            let text = try await vault.open(sealed, table: "contact_attributes", column: "value", row: ContactRepository.attributeRow(contactId, name))
            let kind = AttributeValue.Kind(rawValue: try row.decode(column: "kind", as: String.self)) ?? .string
            result[contactId, default: [:]][name] = AttributeValue(kind: kind, storageText: text)
        }
        return result
    }

    /// Per contact and slug, the newest `events[slug]` occurrence times.
    private func eventTimes(of range: (first: String, last: String), events: [String: Int]) async throws -> [String: [String: [Date]]] {
        let rows = try await db.raw("""
            SELECT contact_id, slug, occurred_at FROM events
            WHERE workspace_id = \(bind: workspaceId) AND contact_id >= \(bind: range.first) AND contact_id <= \(bind: range.last)
            AND slug IN (\(binds: events.keys.sorted()))
            ORDER BY contact_id, slug, occurred_at DESC
            """).all()
        var result: [String: [String: [Date]]] = [:]
        for row in rows {
            let contactId = try row.decode(column: "contact_id", as: String.self)
            let slug = try row.decode(column: "slug", as: String.self)
            guard (result[contactId]?[slug]?.count ?? 0) < events[slug] ?? 0 else { continue }
            result[contactId, default: [:]][slug, default: []].append(try row.decodeTimestamp("occurred_at"))
        }
        return result
    }
}
