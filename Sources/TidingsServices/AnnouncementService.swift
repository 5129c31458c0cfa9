import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Announcements (`/v1/announcements`): one template to everyone or to a segment, now or at a
/// time, through the same queue, suppression rules and sealing as every message.
///
/// An announcement is created as a draft and started with `send`. The fan-out
/// (``AnnouncementWorker``) reads contacts in batches and queues their messages; `pause`,
/// `resume` and `cancel` act on both the fan-out and the deliveries still waiting.
public struct AnnouncementService: Sendable {
    let env: ServiceEnvironment
    let messages: MessageService
    /// Wakes the fan-out workers.
    let signal: JobSignal

    public init(_ env: ServiceEnvironment, messages: MessageService, fanOut signal: JobSignal) {
        self.env = env
        self.messages = messages
        self.signal = signal
    }

    public static let jobKind = "announcement.fanout"
    public static let maxPageSize = 100
    public static let defaultPageSize = 50
    /// How far ahead `sendAt` may lie.
    public static let maxSchedule: TimeInterval = 365 * 86400

    static let notFound = DomainError.notFound("announcement_not_found", "No announcement with this id exists in this workspace.")

    /// An announcement with where its messages stand.
    public struct Detail: Sendable {
        public var announcement: Announcement
        public var messages: [MessageStatus: Int]
    }

    /// `{name, templateSlug, segmentId?, topic?, sendAt?, critical?}`. A critical notice also
    /// reaches contacts who unsubscribed, so only owners and admins may create one
    /// (`mayMarkCritical`).
    public func create(workspaceId: String, body: [String: JSONValue], mayMarkCritical: Bool, by actor: AuditActor) async throws -> Announcement {
        var reader = BodyReader(body)
        let name = try Segment.validateName(try reader.string("name", required: true)!)
        let slug = try reader.string("templateSlug", required: true)!
        let segmentId = try reader.string("segmentId")
        let topic = try reader.string("topic").map { topic throws(DomainError) in try Self.topic(topic) }
        let critical = try reader.bool("critical") ?? false
        let sendAt = try reader.timestamp("sendAt")
        let tracking = try reader.object("tracking").map { object throws(DomainError) in try TrackingOverride(json: object, field: "tracking") }
        try reader.rejectUnknownFields()
        if critical && !mayMarkCritical {
            throw DomainError(.forbidden, code: "critical_requires_admin", message: "Only owners and admins may send a critical notice.", field: "critical")
        }
        if critical && topic != nil {
            throw DomainError.invalid("critical_with_topic", "A critical notice goes to every contact in its audience; it cannot have a topic.", field: "topic")
        }
        let now = env.now()
        try Self.checkSendAt(sendAt, now: now)
        let announcement = Announcement(
            id: Identifier.make("ann", at: now), workspaceId: workspaceId, name: name, templateSlug: slug, segmentId: segmentId,
            topic: topic, critical: critical, status: .draft, sendAt: sendAt, tracking: tracking, createdAt: now, updatedAt: now
        )
        var targets: [String: TemplateRepository.SendTarget] = [:]
        _ = try await messages.sendTarget(workspaceId: workspaceId, slug: slug, targets: &targets)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await Self.checkSegment(segmentId, db: db, vault: vault)
            _ = try await Self.checkTopic(topic, workspaceId: workspaceId, db: db)
            try await AnnouncementRepository(db, workspaceId: workspaceId).insert(announcement)
            try await audit.record(Self.change("announcement.created", announcement), in: workspaceId, by: actor, db: db)
        }
        return announcement
    }

    public func get(workspaceId: String, id: String) async throws -> Detail {
        try await env.database.read { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            guard let announcement = try await repository.find(id: id) else { throw Self.notFound }
            return Detail(announcement: announcement, messages: try await repository.messageCounts(id: id))
        }
    }

    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<Announcement> {
        let limit = limit ?? Self.defaultPageSize
        guard (1...Self.maxPageSize).contains(limit) else {
            throw DomainError.invalid("invalid_limit", "The limit must be between 1 and \(Self.maxPageSize).", field: "limit")
        }
        let after = try cursor.map { cursor throws(DomainError) in try Cursor.decode(cursor) }
        let found = try await env.database.read { db in
            try await AnnouncementRepository(db, workspaceId: workspaceId).list(afterId: after, limit: limit + 1)
        }
        guard found.count > limit else { return Page(items: found, nextCursor: nil) }
        let items = Array(found.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { Cursor.encode($0.id) })
    }

    /// Changes a draft: `{name?, templateSlug?, segmentId?, topic?, sendAt?, critical?}` (null
    /// clears `segmentId`, `topic` and `sendAt`).
    public func update(workspaceId: String, id: String, body: [String: JSONValue], mayMarkCritical: Bool, by actor: AuditActor) async throws -> Announcement {
        var reader = BodyReader(body)
        let name = try reader.string("name").map { name throws(DomainError) in try Segment.validateName(name) }
        let slug = try reader.string("templateSlug")
        let segmentId: String?? = body.keys.contains("segmentId") ? .some(try reader.string("segmentId")) : nil
        let topic: String?? = body.keys.contains("topic") ? .some(try reader.string("topic").map { topic throws(DomainError) in try Self.topic(topic) }) : nil
        let critical = try reader.bool("critical")
        let sendAt: Date?? = body.keys.contains("sendAt") ? .some(try reader.timestamp("sendAt")) : nil
        let tracking: TrackingOverride?? = body.keys.contains("tracking")
            ? .some(try reader.object("tracking").map { object throws(DomainError) in try TrackingOverride(json: object, field: "tracking") }) : nil
        try reader.rejectUnknownFields()
        let now = env.now()
        if let sendAt { try Self.checkSendAt(sendAt, now: now) }
        if let slug {
            var targets: [String: TemplateRepository.SendTarget] = [:]
            _ = try await messages.sendTarget(workspaceId: workspaceId, slug: slug, targets: &targets)
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        return try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            guard var announcement = try await repository.find(id: id) else { throw Self.notFound }
            guard announcement.status == .draft else { throw Self.notDraft(announcement) }
            if let name { announcement.name = name }
            if let slug { announcement.templateSlug = slug }
            if let segmentId {
                try await Self.checkSegment(segmentId, db: db, vault: vault)
                announcement.segmentId = segmentId
            }
            if let topic {
                _ = try await Self.checkTopic(topic, workspaceId: workspaceId, db: db)
                announcement.topic = topic
            }
            if let critical { announcement.critical = critical }
            if let tracking { announcement.tracking = tracking }
            if let sendAt { announcement.sendAt = sendAt }
            if announcement.critical && !mayMarkCritical {
                throw DomainError(.forbidden, code: "critical_requires_admin", message: "Only owners and admins may send a critical notice.", field: "critical")
            }
            if announcement.critical && announcement.topic != nil {
                throw DomainError.invalid("critical_with_topic", "A critical notice goes to every contact in its audience; it cannot have a topic.", field: "topic")
            }
            announcement.updatedAt = now
            try await repository.updateDraft(announcement)
            if sendAt != nil { try await Self.setSendAt(announcement, db: db) }
            try await audit.record(Self.change("announcement.updated", announcement), in: workspaceId, by: actor, db: db)
            return announcement
        }
    }

    /// Only drafts can be deleted; a started announcement is cancelled instead (its history stays).
    public func delete(workspaceId: String, id: String, by actor: AuditActor) async throws {
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            guard let announcement = try await repository.find(id: id) else { throw Self.notFound }
            guard try await repository.delete(id: id) else { throw Self.notDraft(announcement) }
            try await audit.record(Self.change("announcement.deleted", announcement), in: workspaceId, by: actor, db: db)
        }
    }

    /// Starts a draft: at its `sendAt` if that lies ahead, otherwise now. The template and its
    /// email server are checked again, so a send that cannot work is refused here.
    public func send(workspaceId: String, id: String, by actor: AuditActor) async throws -> Detail {
        let now = env.now()
        let current = try await get(workspaceId: workspaceId, id: id).announcement
        guard current.status == .draft else { throw Self.notDraft(current) }
        var targets: [String: TemplateRepository.SendTarget] = [:]
        _ = try await messages.sendTarget(workspaceId: workspaceId, slug: current.templateSlug, targets: &targets)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await Self.checkSegment(current.segmentId, db: db, vault: vault)
            _ = try await Self.checkTopic(current.critical ? nil : current.topic, workspaceId: workspaceId, db: db)
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            let later = current.sendAt.map { $0 > now } ?? false
            guard try await repository.transition(id: id, from: [.draft], to: later ? .scheduled : .sending, at: now, started: !later) else {
                throw Self.notDraft(try await repository.find(id: id) ?? current)
            }
            try await JobRepository(db).enqueue(
                [(Identifier.make("job", at: now), workspaceId, Self.jobKind, id, later ? current.sendAt! : now)], at: now
            )
            try await audit.record(
                AuditChange(later ? "announcement.scheduled" : "announcement.started", target: ("announcement", id), summary: Self.summary(current)),
                in: workspaceId, by: actor, db: db
            )
        }
        signal.wake()
        return try await get(workspaceId: workspaceId, id: id)
    }

    /// Stops the fan-out and holds the deliveries that have not started.
    public func pause(workspaceId: String, id: String, by actor: AuditActor) async throws -> Detail {
        let now = env.now()
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            try await repository.lockHandOut(id: id)
            guard let announcement = try await repository.find(id: id) else { throw Self.notFound }
            guard announcement.finishedAt == nil,
                  try await repository.transition(id: id, from: [.scheduled, .sending, .sent], to: .paused, at: now)
            else {
                throw DomainError(.conflict, code: "not_pausable", message: "The announcement is \(announcement.finishedAt == nil ? announcement.status.rawValue : "finished"); only a scheduled or sending announcement can be paused.")
            }
            try await repository.holdDeliveries(id: id, now: now)
            try await audit.record(AuditChange("announcement.paused", target: ("announcement", id), summary: Self.summary(announcement)), in: workspaceId, by: actor, db: db)
        }
        return try await get(workspaceId: workspaceId, id: id)
    }

    /// Continues a paused announcement where it stopped; nobody gets a second copy.
    public func resume(workspaceId: String, id: String, by actor: AuditActor) async throws -> Detail {
        let now = env.now()
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            try await repository.lockHandOut(id: id)
            guard let announcement = try await repository.find(id: id) else { throw Self.notFound }
            guard announcement.status == .paused, let from = try await repository.pausedFrom(id: id) else {
                throw DomainError(.conflict, code: "not_paused", message: "The announcement is \(announcement.status.rawValue), not paused.")
            }
            // A paused schedule whose time has come starts now.
            let next: AnnouncementStatus = from == .scheduled && (announcement.sendAt ?? now) <= now ? .sending : from
            guard try await repository.transition(id: id, from: [.paused], to: next, at: now, started: next == .sending) else {
                throw DomainError(.conflict, code: "not_paused", message: "The announcement is no longer paused.")
            }
            try await repository.releaseDeliveries(id: id, now: now)
            if next != .sent {
                try await Self.wakeFanOut(announcement, at: next == .scheduled ? announcement.sendAt ?? now : now, db: db, now: now)
            }
            try await audit.record(AuditChange("announcement.resumed", target: ("announcement", id), summary: Self.summary(announcement)), in: workspaceId, by: actor, db: db)
        }
        signal.wake()
        return try await get(workspaceId: workspaceId, id: id)
    }

    /// Ends the announcement: contacts not reached yet get nothing, waiting messages are
    /// cancelled (those being sent at this moment finish).
    public func cancel(workspaceId: String, id: String, by actor: AuditActor) async throws -> Detail {
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: workspaceId)
            try await repository.lockHandOut(id: id)
            guard let announcement = try await repository.find(id: id) else { throw Self.notFound }
            guard announcement.finishedAt == nil,
                  try await repository.transition(id: id, from: [.scheduled, .sending, .paused, .sent], to: .cancelled, at: now, finished: true)
            else {
                throw DomainError(.conflict, code: "not_cancellable", message: "The announcement is \(announcement.finishedAt == nil ? announcement.status.rawValue : "finished"); drafts are deleted, finished announcements stay as they are.")
            }
            let cancelled = try await repository.cancelWaiting(id: id, now: now)
            let messages = MessageRepository(db, vault: vault)
            var start = 0
            while start < cancelled.count {
                let chunk = cancelled[start..<min(start + 500, cancelled.count)]
                try await messages.addEvents(chunk.map { messageId in
                    (messageId, MessageEvent(id: Identifier.make("me", at: now), kind: .cancelled, detail: ["reason": .string("The announcement was cancelled.")], at: now))
                })
                start += chunk.count
            }
            var summary = Self.summary(announcement)
            summary["messagesCancelled"] = .number(Double(cancelled.count))
            try await audit.record(AuditChange("announcement.cancelled", target: ("announcement", id), summary: summary), in: workspaceId, by: actor, db: db)
        }
        return try await get(workspaceId: workspaceId, id: id)
    }

    // MARK: Helpers

    /// Makes the fan-out job due at `at` (it may still exist, parked, from before a pause).
    static func wakeFanOut(_ announcement: Announcement, at: Date, db: any SQLDatabase, now: Date) async throws {
        let jobs = JobRepository(db)
        if try await jobs.reschedule(kind: jobKind, subjectId: announcement.id, runAt: at) { return }
        try await jobs.enqueue([(Identifier.make("job", at: now), announcement.workspaceId, jobKind, announcement.id, at)], at: now)
    }

    private static func setSendAt(_ announcement: Announcement, db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE announcements SET send_at = \(bind: announcement.sendAt.map(Timestamp.format))
            WHERE workspace_id = \(bind: announcement.workspaceId) AND id = \(bind: announcement.id)
            """).run()
    }

    static func checkSendAt(_ sendAt: Date?, now: Date) throws(DomainError) {
        guard let sendAt else { return }
        guard sendAt <= now.addingTimeInterval(maxSchedule) else {
            throw .invalid("invalid_timestamp", "The field 'sendAt' lies more than 365 days ahead.", field: "sendAt")
        }
    }

    static func checkSegment(_ segmentId: String?, db: any SQLDatabase, vault: Vault) async throws {
        guard let segmentId else { return }
        guard segmentId.count < 100, try await SegmentRepository(db, vault: vault).find(id: segmentId) != nil else {
            throw DomainError.invalid("unknown_segment", "No segment with the id '\(segmentId.prefix(100))' exists.", field: "segmentId")
        }
    }

    static func topic(_ raw: String) throws(DomainError) -> String {
        guard let slug = try? Topic.validateSlug(raw, field: "topic") else {
            throw .invalid("unknown_topic", "No topic with the slug '\(raw.prefix(80))' exists; create it under /v1/topics first.", field: "topic")
        }
        return slug
    }

    /// The topic's id; a topic that does not exist is a 4xx naming `topic`.
    static func checkTopic(_ slug: String?, workspaceId: String, db: any SQLDatabase) async throws -> String? {
        guard let slug else { return nil }
        guard let topic = try await TopicRepository(db, workspaceId: workspaceId).find(slug: slug) else {
            throw DomainError.invalid("unknown_topic", "No topic with the slug '\(slug)' exists; create it under /v1/topics first.", field: "topic")
        }
        return topic.id
    }

    static func notDraft(_ announcement: Announcement) -> DomainError {
        DomainError(.conflict, code: "not_draft", message: "The announcement is \(announcement.status.rawValue); only drafts can be changed, sent or deleted.")
    }

    static func summary(_ announcement: Announcement) -> [String: JSONValue] {
        var summary: [String: JSONValue] = [
            "name": .string(announcement.name), "template": .string(announcement.templateSlug), "critical": .bool(announcement.critical),
        ]
        if let segmentId = announcement.segmentId { summary["segment"] = .string(segmentId) }
        if let topic = announcement.topic { summary["topic"] = .string(topic) }
        return summary
    }

    static func change(_ action: String, _ announcement: Announcement) -> AuditChange {
        AuditChange(action, target: ("announcement", announcement.id), summary: summary(announcement))
    }
}
