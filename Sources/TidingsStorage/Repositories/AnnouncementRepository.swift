import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Announcements of one workspace and the progress of their fan-out. Names, template slugs
/// and topics are not personal data; the recipients live in `messages`.
public struct AnnouncementRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    private static let columns = """
        id, name, template_slug, segment_id, topic, critical, track_opens, track_clicks, status, send_at, cursor, considered, messages, not_in_segment,
        unsubscribed, created_at, updated_at, started_at, queued_at, finished_at
        """

    public func insert(_ announcement: Announcement) async throws {
        precondition(announcement.workspaceId == workspaceId)
        try await db.raw("""
            INSERT INTO announcements (
                id, workspace_id, name, template_slug, segment_id, topic, critical, track_opens, track_clicks, status, send_at, created_at, updated_at
            )
            VALUES (\(bind: announcement.id), \(bind: workspaceId), \(bind: announcement.name), \(bind: announcement.templateSlug),
                    \(bind: announcement.segmentId), \(bind: announcement.topic), \(bind: announcement.critical),
                    \(bind: announcement.tracking?.opens), \(bind: announcement.tracking?.clicks),
                    \(bind: announcement.status.rawValue), \(bind: announcement.sendAt.map(Timestamp.format)),
                    \(bind: Timestamp.format(announcement.createdAt)), \(bind: Timestamp.format(announcement.updatedAt)))
            """).run()
    }

    /// Writes the fields a user may change on a draft.
    public func updateDraft(_ announcement: Announcement) async throws {
        try await db.raw("""
            UPDATE announcements SET name = \(bind: announcement.name), template_slug = \(bind: announcement.templateSlug),
                segment_id = \(bind: announcement.segmentId), topic = \(bind: announcement.topic), critical = \(bind: announcement.critical),
                track_opens = \(bind: announcement.tracking?.opens), track_clicks = \(bind: announcement.tracking?.clicks),
                updated_at = \(bind: Timestamp.format(announcement.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: announcement.id) AND status = 'draft'
            """).run()
    }

    /// Moves the announcement from one of `from` to `to`; `false` when it was in none of them
    /// (someone else moved it first). `pausedFrom` remembers what a pause interrupted.
    public func transition(
        id: String, from: [AnnouncementStatus], to: AnnouncementStatus, at now: Date, sendAt: Date? = nil,
        started: Bool = false, finished: Bool = false
    ) async throws -> Bool {
        var query = SQLQueryString("UPDATE announcements SET status = \(bind: to.rawValue), updated_at = \(bind: Timestamp.format(now))")
        if to == .paused { query.appendInterpolation(", paused_from = status" as SQLQueryString) }
        if let sendAt { query.appendInterpolation(", send_at = \(bind: Timestamp.format(sendAt))" as SQLQueryString) }
        if started { query.appendInterpolation(", started_at = COALESCE(started_at, \(bind: Timestamp.format(now)))" as SQLQueryString) }
        if finished { query.appendInterpolation(", finished_at = COALESCE(finished_at, \(bind: Timestamp.format(now)))" as SQLQueryString) }
        query.appendInterpolation("""
             WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status IN (\(binds: from.map(\.rawValue))) RETURNING id
            """ as SQLQueryString)
        return try await db.raw(query).first() != nil
    }

    /// What a pause interrupted (`scheduled`, `sending` or `sent`).
    public func pausedFrom(id: String) async throws -> AnnouncementStatus? {
        try await db.raw("SELECT paused_from FROM announcements WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)")
            .first()?.decode(column: "paused_from", as: String?.self).flatMap(AnnouncementStatus.init(rawValue:))
    }

    /// Records a batch of the fan-out; the cursor moves only while the announcement is still
    /// `sending`. Returns `false` (and writes nothing) otherwise.
    public func advance(id: String, to progress: Announcement.Progress, at now: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE announcements SET cursor = \(bind: progress.cursor), considered = \(bind: progress.considered),
                messages = \(bind: progress.messages), not_in_segment = \(bind: progress.notInSegment),
                unsubscribed = \(bind: progress.unsubscribed), updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status = 'sending' RETURNING id
            """).first() != nil
    }

    /// The fan-out considered every contact.
    public func markQueued(id: String, at now: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE announcements SET status = 'sent', queued_at = \(bind: Timestamp.format(now)), updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status = 'sending' RETURNING id
            """).first() != nil
    }

    public func find(id: String) async throws -> Announcement? {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM announcements WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try decode(row)
    }

    public func list(afterId: String?, limit: Int) async throws -> [Announcement] {
        var query = SQLQueryString("SELECT \(unsafeRaw: Self.columns) FROM announcements WHERE workspace_id = \(bind: workspaceId)")
        if let afterId { query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        return try await db.raw(query).all().map(decode)
    }

    public func delete(id: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM announcements WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status = 'draft' RETURNING id
            """).first() != nil
    }

    /// Whether any announcement uses the segment.
    public func usesSegment(_ segmentId: String) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS used FROM announcements WHERE workspace_id = \(bind: workspaceId) AND segment_id = \(bind: segmentId) LIMIT 1
            """).first() != nil
    }

    /// How the announcement's messages stand, by status.
    public func messageCounts(id: String) async throws -> [MessageStatus: Int] {
        var counts: [MessageStatus: Int] = [:]
        for row in try await db.raw("""
            SELECT status, COUNT(*) AS n FROM messages
            WHERE workspace_id = \(bind: workspaceId) AND origin_id = \(bind: id) GROUP BY status
            """).all() {
            if let status = MessageStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                counts[status] = try row.decode(column: "n", as: Int.self)
            }
        }
        return counts
    }

    /// Announcements (any workspace) whose fan-out is done but that are not finished yet: the
    /// instance-level pass checks whether their messages are all final.
    public static func unfinished(db: any SQLDatabase, limit: Int) async throws -> [(id: String, workspaceId: String)] {
        try await db.raw("""
            SELECT id, workspace_id FROM announcements WHERE status = 'sent' AND finished_at IS NULL ORDER BY id LIMIT \(literal: limit)
            """).all().map { (try $0.decode(column: "id", as: String.self), try $0.decode(column: "workspace_id", as: String.self)) }
    }

    /// Whether every message of the announcement is final.
    public func allMessagesFinal(id: String) async throws -> Bool {
        let open = MessageStatus.allCases.filter { !$0.isFinal }.map(\.rawValue)
        return try await db.raw("""
            SELECT 1 AS pending FROM messages WHERE workspace_id = \(bind: workspaceId) AND origin_id = \(bind: id)
            AND status IN (\(binds: open)) LIMIT 1
            """).first() == nil
    }

    // MARK: The announcement's messages

    /// The announcement's messages that wait for delivery.
    private func waitingMessages(_ id: String) -> SQLQueryString {
        """
        SELECT m.id FROM messages m WHERE m.workspace_id = \(bind: workspaceId) AND m.origin_id = \(bind: id)
        AND m.status IN ('queued', 'scheduled', 'deferred')
        """
    }

    /// A pause: deliveries of the announcement's waiting messages (not leased by a worker right
    /// now) are held until `releaseDeliveries`, and so is the handing out of its queued ones.
    public func holdDeliveries(id: String, now: Date) async throws {
        try await db.raw("""
            UPDATE jobs SET run_at = \(bind: Timestamp.format(Self.held)) WHERE workspace_id = \(bind: workspaceId)
            AND (lease_until IS NULL OR lease_until < \(bind: Timestamp.format(now)))
            AND ((kind = 'message.deliver' AND subject_id IN (\(waitingMessages(id)))) OR (kind = \(bind: Self.handOutKind) AND subject_id = \(bind: id)))
            """).run()
    }

    /// A resume: held deliveries are due again, and queued messages are handed out again.
    public func releaseDeliveries(id: String, now: Date) async throws {
        try await db.raw("""
            UPDATE jobs SET run_at = \(bind: Timestamp.format(now)) WHERE workspace_id = \(bind: workspaceId) AND kind = 'message.deliver'
            AND run_at = \(bind: Timestamp.format(Self.held)) AND subject_id IN (\(waitingMessages(id)))
            """).run()
        try await wakeHandOut(id: id, now: now)
    }

    // MARK: Handing queued messages to the delivery queue

    /// The job that hands an announcement's queued messages to the delivery queue. The fan-out
    /// writes messages without delivery jobs (a million of them would be a million job rows
    /// written while it runs, and mail sent afterwards, a password reset say, would wait
    /// behind all of them); delivery workers turn a few of them into jobs whenever they have
    /// free slots that other mail does not fill (`handOut`).
    public static let handOutKind = "announcement.deliveries"

    /// Locks the announcement's hand-out job, if there is one (PostgreSQL; SQLite has one
    /// writer). A pause, resume or cancellation takes this lock before it changes the
    /// announcement: a delivery worker handing out its messages either finishes first (and the
    /// change sees the new jobs) or skips the announcement. Locks are taken in that order
    /// everywhere (hand-out job, then announcement), so the two never wait on each other.
    public func lockHandOut(id: String) async throws {
        guard !db.isSQLite else { return }
        _ = try await db.raw("""
            SELECT id FROM jobs WHERE kind = \(bind: Self.handOutKind) AND subject_id = \(bind: id) FOR UPDATE
            """).all()
    }

    /// Makes the announcement's hand-out job due now, creating it if need be (after each
    /// batch of the fan-out, and on resume).
    public func wakeHandOut(id: String, now: Date) async throws {
        let stamp = Timestamp.format(now)
        try await db.raw("""
            INSERT INTO jobs (id, workspace_id, kind, subject_id, run_at, created_at)
            VALUES (\(bind: Identifier.make("job", at: now)), \(bind: workspaceId), \(bind: Self.handOutKind), \(bind: id), \(bind: stamp), \(bind: stamp))
            ON CONFLICT (kind, subject_id) DO UPDATE SET run_at = excluded.run_at WHERE jobs.run_at > excluded.run_at
            """).run()
    }

    /// Turns up to `limit` queued messages of announcements into delivery jobs of `kind`, due
    /// now; returns how many. Runs in the claiming transaction of a delivery worker (instance
    /// scope). Each announcement's hand-out job is claimed first (skipping locked ones), so two
    /// workers never hand out the same announcement at once, and a pause or cancellation,
    /// which locks that job first (`lockHandOut`), either comes before (nothing is handed out)
    /// or after (and holds or removes the new jobs).
    public static func handOut(limit: Int, kind: String, owner: String, now: Date, lease: TimeInterval, db: any SQLDatabase) async throws -> Int {
        var handedOut = 0
        // A few announcements at most per claim; each job is finished in this transaction.
        for _ in 0..<4 where handedOut < limit {
            guard let job = try await JobRepository(db).claim(
                kinds: [handOutKind], owner: owner, now: now, leaseUntil: now.addingTimeInterval(lease), limit: 1
            ).first else { break }
            let stored = try await db.raw("""
                SELECT status FROM announcements WHERE workspace_id = \(bind: job.workspaceId) AND id = \(bind: job.subjectId)
                """).first()?.decode(column: "status", as: String.self)
            let status = stored.flatMap { AnnouncementStatus(rawValue: $0) }
            switch status {
            case .paused:
                try await JobRepository(db).reschedule(id: job.id, runAt: held)
                continue
            case .sending, .sent, .scheduled:
                break
            case .draft, .cancelled, nil:
                // Cancelled (its queued messages were cancelled with it) or gone.
                try await JobRepository(db).complete(ids: [job.id])
                continue
            }
            let wanted = limit - handedOut
            // Queued messages of the announcement without a job: the origin index, in the order
            // the fan-out wrote them. Those handed out but not claimed yet are skipped.
            let ids = try await db.raw("""
                SELECT m.id FROM messages m WHERE m.workspace_id = \(bind: job.workspaceId) AND m.origin_id = \(bind: job.subjectId) AND m.status = 'queued'
                AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = \(bind: kind) AND j.subject_id = m.id)
                LIMIT \(literal: wanted)
                """).all().map { try $0.decode(column: "id", as: String.self) }
            try await JobRepository(db).enqueue(ids.map { (Identifier.make("job", at: now), job.workspaceId, kind, $0, now) }, at: now)
            handedOut += ids.count
            if ids.count == wanted {
                // More may be waiting: due again at once.
                try await JobRepository(db).reschedule(id: job.id, runAt: now)
            } else if status == .sent {
                // Every message is queued and now handed out.
                try await JobRepository(db).complete(ids: [job.id])
            } else {
                // The fan-out goes on and wakes the job with its next batch; the delay is a backstop.
                try await JobRepository(db).reschedule(id: job.id, runAt: now.addingTimeInterval(5))
            }
        }
        return handedOut
    }

    /// Where held jobs wait: far enough that no worker claims them (9999-01-01).
    public static let held = Date(timeIntervalSince1970: 253_370_764_800)

    /// A cancellation: waiting messages not being sent right now become `cancelled` and their
    /// jobs go; returns their ids (the caller adds the timeline steps).
    public func cancelWaiting(id: String, now: Date) async throws -> [String] {
        let stamp = Timestamp.format(now)
        let ids = try await db.raw("""
            UPDATE messages SET status = 'cancelled', next_attempt_at = NULL, updated_at = \(bind: stamp)
            WHERE workspace_id = \(bind: workspaceId) AND origin_id = \(bind: id) AND status IN ('queued', 'scheduled', 'deferred')
            AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'message.deliver' AND j.subject_id = messages.id
                            AND j.lease_until IS NOT NULL AND j.lease_until >= \(bind: stamp))
            RETURNING id
            """).all().map { try $0.decode(column: "id", as: String.self) }
        var start = ids.startIndex
        while start < ids.endIndex {
            let chunk = Array(ids[start..<min(start + 1000, ids.endIndex)])
            try await db.raw("""
                DELETE FROM jobs WHERE workspace_id = \(bind: workspaceId) AND kind = 'message.deliver' AND subject_id IN (\(binds: chunk))
                """).run()
            start += chunk.count
        }
        return ids
    }

    private func decode(_ row: any SQLRow) throws -> Announcement {
        let opens = try row.decode(column: "track_opens", as: Bool?.self), clicks = try row.decode(column: "track_clicks", as: Bool?.self)
        let tracking = opens == nil && clicks == nil ? nil : TrackingOverride(opens: opens, clicks: clicks)
        guard let status = AnnouncementStatus(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw StorageError.corruptValue(column: "announcements.status")
        }
        return Announcement(
            id: try row.decode(column: "id", as: String.self), workspaceId: workspaceId, name: try row.decode(column: "name", as: String.self),
            templateSlug: try row.decode(column: "template_slug", as: String.self), segmentId: try row.decode(column: "segment_id", as: String?.self),
            topic: try row.decode(column: "topic", as: String?.self), critical: try row.decode(column: "critical", as: Bool.self), status: status,
            sendAt: try row.decode(column: "send_at", as: String?.self).flatMap(Timestamp.parse), tracking: tracking,
            progress: Announcement.Progress(
                cursor: try row.decode(column: "cursor", as: String?.self), considered: try row.decode(column: "considered", as: Int.self),
                messages: try row.decode(column: "messages", as: Int.self), notInSegment: try row.decode(column: "not_in_segment", as: Int.self),
                unsubscribed: try row.decode(column: "unsubscribed", as: Int.self)
            ),
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at"),
            startedAt: try row.decode(column: "started_at", as: String?.self).flatMap(Timestamp.parse),
            queuedAt: try row.decode(column: "queued_at", as: String?.self).flatMap(Timestamp.parse),
            finishedAt: try row.decode(column: "finished_at", as: String?.self).flatMap(Timestamp.parse)
        )
    }
}
