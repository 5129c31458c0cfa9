import Foundation
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// The fan-out of announcements: reads the audience in batches of contacts (never all at
/// once), and queues each batch's messages in one transaction with the announcement's
/// progress. A batch is either written whole, with the cursor moved past it, or not at all;
/// so a worker that dies mid-way (its lease runs out and another worker takes the job) starts
/// again after the last written batch, and nobody gets a second copy. A unique index on
/// (announcement, contact) in `messages` holds the same line in the database itself.
///
/// Messages of an announcement are not audited one by one: the announcement's start, pause,
/// resume, cancellation, end of queueing and finish are, with their counts.
public final class AnnouncementWorker: Sendable {
    let env: ServiceEnvironment
    let messages: MessageService
    /// Wakes this worker (an announcement was started or resumed).
    let signal: JobSignal
    /// Wakes the delivery workers after each batch.
    let deliveries: JobSignal
    let settings: Settings
    let owner = Identifier.make("fanout")
    private let stopping = Atomic<Bool>(false)

    public struct Settings: Sendable {
        /// Contacts per batch (and so per transaction).
        public var batchSize: Int
        /// How long a worker holds a fan-out before another may take it over.
        public var lease: TimeInterval
        public var pollInterval: Duration
        /// How long a paused fan-out waits before it looks again.
        public var pausedRecheck: TimeInterval

        public init(batchSize: Int = 4000, lease: TimeInterval = 60, pollInterval: Duration = .seconds(5), pausedRecheck: TimeInterval = 60) {
            self.batchSize = batchSize
            self.lease = lease
            self.pollInterval = pollInterval
            self.pausedRecheck = pausedRecheck
        }
    }

    public init(_ env: ServiceEnvironment, messages: MessageService, signal: JobSignal, deliveries: JobSignal, settings: Settings = Settings()) {
        self.env = env
        self.messages = messages
        self.signal = signal
        self.deliveries = deliveries
        self.settings = settings
    }

    public func run() async {
        while !stopping.load(ordering: .relaxed) {
            var worked = false
            do {
                worked = try await step()
                try await finishAnnouncements()
            } catch {
                env.logger.error("Announcement fan-out failed", metadata: ["error_type": "\(type(of: error))", "error": "\(error)"])
            }
            if !worked { await signal.wait(timeout: settings.pollInterval) }
        }
    }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        signal.wake()
    }

    /// Runs every fan-out that is due to its end (or pause), then marks finished announcements;
    /// returns how many jobs were taken. For tests and one-off runs. With `maxBatches`, it
    /// stops after writing that many batches, keeping its lease, as a worker that died
    /// between two batches would.
    @discardableResult
    public func drain(maxBatches: Int = .max) async throws -> Int {
        var taken = 0
        var budget = maxBatches
        while budget > 0, try await step(budget: &budget) { taken += 1 }
        try await finishAnnouncements()
        return taken
    }

    /// Takes one due fan-out job and works on it; `false` when none was due.
    func step() async throws -> Bool {
        var budget = Int.max
        return try await step(budget: &budget)
    }

    private func step(budget: inout Int) async throws -> Bool {
        guard !stopping.load(ordering: .relaxed) else { return false }
        let now = env.now()
        let claimed = try await TenantScope.with(.instance) {
            try await env.database.transaction { [owner, settings] db in
                try await JobRepository(db).claim(
                    kinds: [AnnouncementService.jobKind], owner: owner, now: now, leaseUntil: now.addingTimeInterval(settings.lease), limit: 1
                )
            }
        }
        guard let job = claimed.first else { return false }
        var remaining = budget
        try await TenantScope.with(.workspace(job.workspaceId)) {
            try await fanOut(job, budget: &remaining)
        }
        budget = remaining
        return true
    }

    private enum Stop: Error { case notSending }

    /// Works on one announcement until its audience is queued, or it is paused or cancelled.
    private func fanOut(_ job: Job, budget: inout Int) async throws {
        let workspaceId = job.workspaceId
        let id = job.subjectId
        let vault = try await env.keyring.vault(for: workspaceId)
        guard var announcement = try await env.database.read({ db in try await AnnouncementRepository(db, workspaceId: workspaceId).find(id: id) }) else {
            return try await finishJob(job)
        }
        let now = env.now()
        switch announcement.status {
        case .draft, .sent, .cancelled:
            return try await finishJob(job)
        case .paused:
            return try await park(job, until: now.addingTimeInterval(settings.pausedRecheck))
        case .scheduled:
            if let sendAt = announcement.sendAt, sendAt > now { return try await park(job, until: sendAt) }
            let started = try await env.database.transaction { db in
                try await AnnouncementRepository(db, workspaceId: workspaceId).transition(id: id, from: [.scheduled], to: .sending, at: now, started: true)
            }
            guard started else { return try await park(job, until: now) }
            announcement.status = .sending
        case .sending:
            break
        }

        var targets: [String: TemplateRepository.SendTarget] = [:]
        let resolved: (TemplateRepository.SendTarget, String, String)
        do {
            resolved = try await messages.sendTarget(workspaceId: workspaceId, slug: announcement.templateSlug, targets: &targets)
        } catch let error as DomainError {
            // The template or its server went away after `send`: stop, say why, and let a user resume.
            try await pauseForProblem(announcement, error, job: job)
            return
        }
        let (target, serverId, fromDomain) = resolved
        let filter: SegmentFilter?
        if let segmentId = announcement.segmentId {
            guard let segment = try await env.database.read({ db in try await SegmentRepository(db, vault: vault).find(id: segmentId) }) else {
                try await pauseForProblem(announcement, .invalid("unknown_segment", "The segment was deleted.", field: "segmentId"), job: job)
                return
            }
            filter = segment.filter
        } else {
            filter = nil
        }
        var topicId: String?
        if !announcement.critical, let slug = announcement.topic {
            guard let topic = try await env.database.read({ db in try await TopicRepository(db, workspaceId: workspaceId).find(slug: slug) }) else {
                try await pauseForProblem(announcement, .invalid("unknown_topic", "The topic was deleted.", field: "topic"), job: job)
                return
            }
            topicId = topic.id
        }
        // A critical notice is not marketing: no unsubscribe headers, and unsubscribes do not stop it.
        let origin = MessageOrigin(kind: .announcement, id: id, topicId: topicId, marketing: !announcement.critical)
        let plan = Plan(
            workspaceId: workspaceId, announcement: announcement, filter: filter, origin: origin, target: target, serverId: serverId,
            fromDomain: fromDomain, vault: vault,
            requests: MessageRepository.RecipientSealer(MessageRequest(rcpt: "", tracking: announcement.tracking))
        )
        // Reading and preparing the next batch overlaps writing the current one.
        var current = try await prepare(plan, after: announcement.progress)
        while !stopping.load(ordering: .relaxed) && budget > 0 {
            guard let batch = current else {
                try await markQueued(announcement, progress: announcement.progress, job: job)
                return
            }
            if batch.members == 0 {
                try await markQueued(announcement, progress: batch.progress, job: job)
                return
            }
            async let following = prepare(plan, after: batch.progress)
            do {
                try await write(batch, plan: plan, job: job)
            } catch Stop.notSending {
                // Paused or cancelled between batches: nothing of this batch was written.
                _ = try? await following
                return try await fanOut(job, budget: &budget)
            }
            budget -= 1
            if batch.queued > 0 { deliveries.wake() }
            announcement.progress = batch.progress
            current = try await following
        }
        // A graceful stop hands the fan-out back at once (the next start, or another instance,
        // continues after the last batch written) rather than after the lease runs out.
        if stopping.load(ordering: .relaxed) { try await park(job, until: env.now()) }
    }

    /// What every batch of one fan-out shares.
    private struct Plan: Sendable {
        var workspaceId: String
        var announcement: Announcement
        var filter: SegmentFilter?
        var origin: MessageOrigin
        var target: TemplateRepository.SendTarget
        var serverId: String
        var fromDomain: String
        var vault: Vault
        /// Every message's request is the same but for its recipient.
        var requests: MessageRepository.RecipientSealer?
    }

    /// One batch, ready to write: its messages (requests sealed), the timeline steps of those
    /// suppressed, how many wait for delivery, and the progress after it.
    private struct Batch: Sendable {
        var members: Int
        var messages: [Message]
        var sealedRequests: [String]
        var timeline: [(messageId: String, event: MessageEvent)]
        /// Messages queued for delivery (the others are suppressed).
        var queued: Int
        var progress: Announcement.Progress
        var at: Date
    }

    /// Reads the contacts after `progress.cursor` and prepares their messages.
    private func prepare(_ plan: Plan, after progress: Announcement.Progress) async throws -> Batch? {
        let at = env.now()
        let (members, leftTopic) = try await env.database.read { [settings] db in
            let members = try await AudienceRepository(db, vault: plan.vault).batch(
                afterId: progress.cursor, limit: settings.batchSize,
                attributes: plan.filter?.attributeNames ?? [], events: plan.filter?.eventRequirements ?? [:]
            )
            guard let topicId = plan.origin.topicId, !members.isEmpty else { return (members, Set<String>()) }
            return (members, try await SubscriptionRepository(db, workspaceId: plan.workspaceId).excluded(contactIds: members.map(\.id), topicId: topicId))
        }
        var batch = Batch(members: members.count, messages: [], sealedRequests: [], timeline: [], queued: 0, progress: progress, at: at)
        guard let last = members.last else { return batch }
        batch.progress.cursor = last.id
        batch.progress.considered += members.count
        for member in members {
            if let filter = plan.filter, !filter.matches(member.subject, now: at) {
                batch.progress.notInSegment += 1
                continue
            }
            if !plan.announcement.critical && (member.status == .unsubscribed || leftTopic.contains(member.id)) {
                batch.progress.unsubscribed += 1
                continue
            }
            let email = try await AudienceRepository.email(of: member, vault: plan.vault)
            let messageId = Identifier.make("msg", at: at)
            let request = MessageRequest(rcpt: email, tracking: plan.announcement.tracking)
            let status: MessageStatus = member.status == .bounced ? .suppressed : .queued
            let message = Message(
                id: messageId, workspaceId: plan.workspaceId, contactId: member.id, templateId: plan.target.templateId,
                templateSlug: plan.target.slug, templateVersion: plan.target.version, emailServerId: plan.serverId, status: status,
                request: request, messageIdHeader: "<\(messageId)@\(plan.fromDomain)>", sendAt: at,
                origin: plan.origin, createdAt: at, updatedAt: at
            )
            batch.messages.append(message)
            batch.sealedRequests.append(
                try plan.requests?.seal(rcpt: email, messageId: messageId, vault: plan.vault) ?? MessageRepository.sealRequest(message, vault: plan.vault)
            )
            if status == .suppressed {
                let reason = "The contact's mailbox bounced; clear it with DELETE /v1/suppressions/{email}."
                batch.timeline.append((messageId, MessageEvent(id: Identifier.make("me", at: at), kind: status, detail: ["reason": .string(reason)], at: at)))
            } else {
                // The `queued` step is implied by the message row (`MessageRepository.timeline(of:)`).
                batch.queued += 1
            }
        }
        batch.progress.messages += batch.messages.count
        return batch
    }

    /// Writes a batch with the announcement's progress, or nothing when it is no longer sending.
    private func write(_ batch: Batch, plan: Plan, job: Job) async throws {
        try await env.database.transaction { [owner, settings] db in
            let messages = MessageRepository(db, vault: plan.vault)
            try await messages.insert(batch.messages, sealedRequests: batch.sealedRequests)
            try await messages.addEvents(batch.timeline, newMessages: true)
            let announcements = AnnouncementRepository(db, workspaceId: plan.workspaceId)
            // The messages get delivery jobs from the delivery workers, a few at a time (`handOut`).
            if batch.queued > 0 { try await announcements.wakeHandOut(id: plan.announcement.id, now: batch.at) }
            guard try await announcements.advance(id: plan.announcement.id, to: batch.progress, at: batch.at) else {
                throw Stop.notSending
            }
            try await JobRepository(db).extendLeases(ids: [job.id], owner: owner, until: env.now().addingTimeInterval(settings.lease))
        }
    }

    /// Every contact was considered: the announcement is `sent` (its deliveries go on).
    private func markQueued(_ announcement: Announcement, progress: Announcement.Progress, job: Job) async throws {
        let now = env.now()
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: announcement.workspaceId)
            if try await repository.markQueued(id: announcement.id, at: now) {
                var summary = AnnouncementService.summary(announcement)
                summary["considered"] = .number(Double(progress.considered))
                summary["messages"] = .number(Double(progress.messages))
                summary["notInSegment"] = .number(Double(progress.notInSegment))
                summary["unsubscribed"] = .number(Double(progress.unsubscribed))
                try await audit.record(
                    AuditChange("announcement.queued", target: ("announcement", announcement.id), summary: summary),
                    in: announcement.workspaceId, by: Self.actor, db: db
                )
            }
            try await JobRepository(db).complete(ids: [job.id])
        }
    }

    private func pauseForProblem(_ announcement: Announcement, _ problem: DomainError, job: Job) async throws {
        let now = env.now()
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let repository = AnnouncementRepository(db, workspaceId: announcement.workspaceId)
            try await repository.lockHandOut(id: announcement.id)
            if try await repository.transition(id: announcement.id, from: [.sending, .scheduled], to: .paused, at: now) {
                try await repository.holdDeliveries(id: announcement.id, now: now)
                var summary = AnnouncementService.summary(announcement)
                summary["reason"] = .string(problem.code)
                try await audit.record(
                    AuditChange("announcement.paused", target: ("announcement", announcement.id), summary: summary),
                    in: announcement.workspaceId, by: Self.actor, db: db
                )
            }
            try await JobRepository(db).reschedule(id: job.id, runAt: now.addingTimeInterval(settings.pausedRecheck))
        }
        env.logger.warning("Announcement paused", metadata: ["announcement": "\(announcement.id)", "reason": "\(problem.code)"])
    }

    private func park(_ job: Job, until: Date) async throws {
        try await env.database.transaction { db in try await JobRepository(db).reschedule(id: job.id, runAt: until) }
    }

    private func finishJob(_ job: Job) async throws {
        try await env.database.transaction { db in try await JobRepository(db).complete(ids: [job.id]) }
    }

    /// Announcements whose every message is final are finished (audited once).
    func finishAnnouncements() async throws {
        let candidates = try await TenantScope.with(.instance) {
            try await env.database.read { db in try await AnnouncementRepository.unfinished(db: db, limit: 100) }
        }
        for candidate in candidates {
            try await TenantScope.with(.workspace(candidate.workspaceId)) {
                let now = env.now()
                let audit = try await env.auditRecorder()
                try await env.database.transaction { db in
                    let repository = AnnouncementRepository(db, workspaceId: candidate.workspaceId)
                    guard try await repository.allMessagesFinal(id: candidate.id),
                          try await repository.transition(id: candidate.id, from: [.sent], to: .sent, at: now, finished: true),
                          let announcement = try await repository.find(id: candidate.id)
                    else { return }
                    var summary = AnnouncementService.summary(announcement)
                    for (status, count) in try await repository.messageCounts(id: candidate.id) {
                        summary[status.rawValue] = .number(Double(count))
                    }
                    try await audit.record(
                        AuditChange("announcement.finished", target: ("announcement", candidate.id), summary: summary),
                        in: candidate.workspaceId, by: Self.actor, db: db
                    )
                    var data = summary
                    data["announcementId"] = .string(candidate.id)
                    _ = try await WebhookOutbox.emit(
                        [WebhookEvent(.announcementFinished, data: data, at: now)], workspaceId: candidate.workspaceId,
                        vault: try await env.keyring.vault(for: candidate.workspaceId), db: db, now: now
                    )
                }
            }
        }
    }

    static let actor = AuditActor(kind: .system, id: "announcements")
}
