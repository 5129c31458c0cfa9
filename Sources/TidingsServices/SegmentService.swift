import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Segments (`/v1/segments`): saved filters over contacts' attributes and events, and how
/// many contacts one matches now.
///
/// Attribute values are sealed, so a filter cannot run in SQL: contacts are read in batches
/// (only the attributes and event times the filter names) and judged in memory. Memory stays
/// flat however large the workspace is.
public struct SegmentService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    public static let maxPageSize = 100
    public static let defaultPageSize = 50
    /// Contacts read per batch when a segment is evaluated.
    public static let batchSize = 1000

    static let notFound = DomainError.notFound("segment_not_found", "No segment with this id exists in this workspace.")

    /// `{name, filter}`.
    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Segment {
        var reader = BodyReader(body)
        let name = try Segment.validateName(try reader.string("name", required: true)!)
        let filter = try Self.filter(&reader, required: true)!
        try reader.rejectUnknownFields()
        let now = env.now()
        let segment = Segment(id: Identifier.make("seg", at: now), workspaceId: workspaceId, name: name, filter: filter, createdAt: now, updatedAt: now)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await SegmentRepository(db, vault: vault).insert(segment)
            try await audit.record(Self.change("segment.created", segment), in: workspaceId, by: actor, db: db)
        }
        return segment
    }

    public func get(workspaceId: String, id: String) async throws -> Segment {
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let segment = try await env.database.read({ db in try await SegmentRepository(db, vault: vault).find(id: id) }) else {
            throw Self.notFound
        }
        return segment
    }

    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<Segment> {
        let limit = limit ?? Self.defaultPageSize
        guard (1...Self.maxPageSize).contains(limit) else {
            throw DomainError.invalid("invalid_limit", "The limit must be between 1 and \(Self.maxPageSize).", field: "limit")
        }
        let after = try cursor.map { cursor throws(DomainError) in try Cursor.decode(cursor) }
        let vault = try await env.keyring.vault(for: workspaceId)
        let segments = try await env.database.read { db in try await SegmentRepository(db, vault: vault).list(afterId: after, limit: limit + 1) }
        guard segments.count > limit else { return Page(items: segments, nextCursor: nil) }
        let items = Array(segments.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { Cursor.encode($0.id) })
    }

    /// `{name?, filter?}`.
    public func update(workspaceId: String, id: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Segment {
        var reader = BodyReader(body)
        let name = try reader.string("name").map { name throws(DomainError) in try Segment.validateName(name) }
        let filter = try Self.filter(&reader, required: false)
        try reader.rejectUnknownFields()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let repository = SegmentRepository(db, vault: vault)
            guard var segment = try await repository.find(id: id) else { throw Self.notFound }
            if let name { segment.name = name }
            if let filter { segment.filter = filter }
            segment.updatedAt = now
            try await repository.update(segment)
            try await audit.record(Self.change("segment.updated", segment), in: workspaceId, by: actor, db: db)
            return segment
        }
    }

    /// A segment an announcement uses cannot be deleted (409): the announcement's audience
    /// would be lost.
    public func delete(workspaceId: String, id: String, by actor: AuditActor) async throws {
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = SegmentRepository(db, vault: vault)
            guard let segment = try await repository.find(id: id) else { throw Self.notFound }
            if try await AnnouncementRepository(db, workspaceId: workspaceId).usesSegment(id) {
                throw DomainError(.conflict, code: "segment_in_use", message: "An announcement uses this segment; delete or change the announcement first.")
            }
            _ = try await repository.delete(id: id)
            try await audit.record(Self.change("segment.deleted", segment), in: workspaceId, by: actor, db: db)
        }
    }

    /// How many contacts the segment matches now, and how many of those can receive marketing
    /// mail (not unsubscribed from everything, mailbox not bounced).
    public struct Count: Sendable, Equatable {
        public var contacts: Int
        public var matching: Int
        public var reachable: Int
    }

    public func count(workspaceId: String, id: String) async throws -> Count {
        let segment = try await get(workspaceId: workspaceId, id: id)
        let vault = try await env.keyring.vault(for: workspaceId)
        let now = env.now()
        var count = Count(contacts: 0, matching: 0, reachable: 0)
        var cursor: String?
        while true {
            let after = cursor
            let batch = try await env.database.read { db in
                try await AudienceRepository(db, vault: vault).batch(
                    afterId: after, limit: Self.batchSize, attributes: segment.filter.attributeNames, events: segment.filter.eventRequirements
                )
            }
            guard let last = batch.last else { break }
            cursor = last.id
            count.contacts += batch.count
            for member in batch where segment.filter.matches(member.subject, now: now) {
                count.matching += 1
                if member.status == .active || member.status == .partiallyUnsubscribed { count.reachable += 1 }
            }
        }
        return count
    }

    /// Reads `filter` as the API gives it; errors name the path inside it.
    static func filter(_ reader: inout BodyReader, required: Bool) throws(DomainError) -> SegmentFilter? {
        guard let object = try reader.object("filter") else {
            if required { throw .invalid("missing_field", "The field 'filter' is required.", field: "filter") }
            return nil
        }
        return try SegmentFilter(json: .object(object), field: "filter")
    }

    static func change(_ action: String, _ segment: Segment) -> AuditChange {
        // The filter is not in the summary: its values may be personal data.
        AuditChange(action, target: ("segment", segment.id), summary: [
            "name": .string(segment.name), "conditions": .number(Double(segment.filter.conditions.count)),
        ])
    }
}
