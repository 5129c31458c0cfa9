import Foundation
import SQLKit
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Delivers queued webhook events: claims `webhook.deliver` jobs with a lease (a dead
/// worker's claims are taken over once the lease runs out), signs each request with the
/// endpoint's secrets, sends it, and records the attempt in the delivery log.
///
/// A 2xx answer delivers. Anything else — another status, a redirect (never followed), no
/// answer within the time limit, a target that is refused now — is retried on
/// `WebhookSettings.retryDelays` (±20 %) until `giveUpAfter` past the first attempt; the last
/// attempt falls on that moment, and if it fails too the delivery has failed. An endpoint whose
/// every attempt has failed for `disableAfter` is disabled (audited as `webhook.disabled`): its
/// pending deliveries stay in the log, unscheduled, until it is enabled again.
public final class WebhookWorker: Sendable {
    let env: ServiceEnvironment
    let settings: WebhookSettings
    let targets: WebhookTargets
    let sender: WebhookSender
    /// Wakes the loop early (e.g. after enabling an endpoint); polling is the fallback.
    public let signal = JobSignal()
    /// This process's name on the leases it holds.
    let owner = Identifier.make("webhooks")
    private let inFlight = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let slotFreed = JobSignal()

    public init(_ env: ServiceEnvironment, settings: WebhookSettings, targets: WebhookTargets) {
        self.env = env
        self.settings = settings
        self.targets = targets
        self.sender = WebhookSender(settings: settings)
    }

    static let kinds = [WebhookOutbox.jobKind]

    // MARK: Running

    /// Delivers until `stop()`; then lets the requests in flight finish (each is bounded by
    /// the time limit) and returns.
    public func run() async {
        await withDiscardingTaskGroup { group in
            while !stopping.load(ordering: .relaxed) {
                let free = settings.concurrency - inFlight.load(ordering: .relaxed)
                guard free > 0 else {
                    await slotFreed.wait(timeout: settings.pollInterval)
                    continue
                }
                var jobs: [Job] = []
                do {
                    jobs = try await claim(limit: free)
                } catch {
                    env.logger.error("Claiming webhook deliveries failed", metadata: ["error_type": "\(type(of: error))"])
                }
                for job in jobs {
                    group.addTask { [self] in
                        await process(job)
                        inFlight.subtract(1, ordering: .relaxed)
                        slotFreed.wake()
                    }
                }
                if jobs.isEmpty { await signal.wait(timeout: settings.pollInterval) }
            }
        }
    }

    /// Asks `run()` to stop claiming and return once the requests in flight are done.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        signal.wake()
        slotFreed.wake()
    }

    /// Delivers every delivery due now, batch after batch, until none is left; returns how
    /// many attempts were made. For tests and one-off runs (`run()` is the service loop).
    @discardableResult
    public func drain() async throws -> Int {
        var processed = 0
        while true {
            let jobs = try await claim(limit: settings.concurrency)
            if jobs.isEmpty { return processed }
            await withDiscardingTaskGroup { group in
                for job in jobs {
                    group.addTask { [self] in
                        await process(job)
                        inFlight.subtract(1, ordering: .relaxed)
                    }
                }
            }
            processed += jobs.count
        }
    }

    private func claim(limit: Int) async throws -> [Job] {
        let now = env.now()
        let jobs = try await TenantScope.with(.instance) {
            try await env.database.transaction { [owner, settings] db in
                try await JobRepository(db).claim(kinds: Self.kinds, owner: owner, now: now, leaseUntil: now.addingTimeInterval(settings.lease), limit: limit)
            }
        }
        inFlight.add(jobs.count, ordering: .relaxed)
        return jobs
    }

    private func process(_ job: Job) async {
        do {
            try await TenantScope.with(.workspace(job.workspaceId)) { try await attempt(job) }
        } catch {
            // Our own fault (database, keys): the delivery is tried again later, not lost.
            env.logger.error("Recording a webhook attempt failed; it will be retried", metadata: [
                "delivery": "\(job.subjectId)", "error_type": "\(type(of: error))",
            ])
            let retry = env.now().addingTimeInterval(settings.delay(afterAttempt: job.attempts))
            try? await TenantScope.with(.instance) {
                try await env.database.transaction { db in try await JobRepository(db).reschedule(id: job.id, runAt: retry) }
            }
        }
    }

    // MARK: One attempt

    private func attempt(_ job: Job) async throws {
        let vault: Vault
        do {
            vault = try await env.keyring.vault(for: job.workspaceId)
        } catch is WorkspaceKeysDestroyed {
            // The workspace was deleted: its rows, this job's included, are going or gone.
            return try await complete(job)
        }
        let loaded = try await env.database.read { db -> (WebhookDelivery, Webhook, String)? in
            let deliveries = WebhookDeliveryRepository(db, vault: vault)
            guard let delivery = try await deliveries.find(id: job.subjectId), delivery.status == .pending,
                  let webhook = try await WebhookRepository(db, vault: vault).find(id: delivery.webhookId),
                  let payload = try await deliveries.payload(id: delivery.id) else { return nil }
            return (delivery, webhook, payload)
        }
        // Gone or already final: nothing to do. A disabled endpoint's deliveries wait unscheduled;
        // enabling it queues them again.
        guard let loaded, loaded.1.status == .enabled else { return try await complete(job) }
        let (delivery, webhook, payload) = loaded

        let started = env.now()
        let body = Array(payload.utf8)
        let timestamp = Int(started.timeIntervalSince1970)
        let headers = [
            ("Content-Type", "application/json"),
            ("User-Agent", "Tidings-Webhooks/1"),
            ("webhook-id", delivery.id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", WebhookSignature.header(secrets: webhook.signingSecrets(at: started), id: delivery.id, timestamp: timestamp, body: body)),
        ]
        let clock = ContinuousClock()
        let begin = clock.now
        let result: WebhookSender.Result
        do throws(WebhookTargets.Refused) {
            let target = try await targets.connectionAddress(url: webhook.url)
            result = await sender.send(url: webhook.url, host: target.host, address: target.address, headers: headers, body: body)
        } catch {
            result = .failed("The target was refused: \(error.description)")
        }
        let elapsed = clock.now - begin
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        try await record(job, delivery, webhook: webhook, result: result, started: started, milliseconds: milliseconds, vault: vault)
    }

    private func complete(_ job: Job) async throws {
        try await TenantScope.with(.instance) {
            try await env.database.transaction { db in try await JobRepository(db).complete(ids: [job.id]) }
        }
    }

    /// Writes the attempt, schedules the next one or ends the job, and keeps the endpoint's
    /// failure streak — disabling it, with an audit event, once the streak is too long.
    private func record(
        _ job: Job, _ delivery: WebhookDelivery, webhook: Webhook, result: WebhookSender.Result, started: Date, milliseconds: Int, vault: Vault
    ) async throws {
        let now = env.now()
        var updated = delivery
        updated.attempts += 1
        updated.firstAttemptAt = delivery.firstAttemptAt ?? started
        updated.lastAttemptAt = started
        updated.durationMs = milliseconds
        updated.updatedAt = now
        let succeeded: Bool
        switch result {
        case .answered(let status, let snippet):
            succeeded = (200..<300).contains(status)
            updated.responseStatus = status
            updated.responseSnippet = snippet.isEmpty ? nil : snippet
            updated.error = succeeded ? nil : (300..<400).contains(status)
                ? "The endpoint answered \(status); redirects are not followed."
                : "The endpoint answered \(status), not 2xx."
        case .failed(let reason):
            succeeded = false
            updated.responseStatus = nil
            updated.responseSnippet = nil
            updated.error = reason
        }
        if succeeded {
            updated.status = .succeeded
            updated.nextAttemptAt = nil
        } else {
            let windowEnd = updated.firstAttemptAt!.addingTimeInterval(settings.giveUpAfter)
            if started >= windowEnd {
                updated.status = .failed
                updated.nextAttemptAt = nil
                updated.error = (updated.error ?? "") + " No attempt succeeded within \(Int(settings.giveUpAfter / 3600)) hours; no further attempts."
            } else {
                updated.status = .pending
                updated.nextAttemptAt = min(now.addingTimeInterval(settings.delay(afterAttempt: updated.attempts)), max(windowEnd, now))
            }
        }
        let attempted = updated
        let audit = try await env.auditRecorder()
        let disableAfter = settings.disableAfter
        let (final, disabled) = try await env.database.transaction { db -> (WebhookDelivery, Bool) in
            let deliveries = WebhookDeliveryRepository(db, vault: vault)
            let webhooks = WebhookRepository(db, vault: vault)
            let jobs = JobRepository(db)
            var final = attempted
            var disable: Date?
            if succeeded {
                try await webhooks.recordSuccess(id: webhook.id)
            } else if let streak = try await webhooks.recordFailure(id: webhook.id, at: started) {
                if !streak.enabled {
                    // Disabled while this attempt ran: the delivery waits with the others.
                    final.nextAttemptAt = nil
                } else if now.timeIntervalSince(streak.failingSince) >= disableAfter {
                    disable = streak.failingSince
                }
            }
            try await deliveries.recordAttempt(final)
            if let next = final.nextAttemptAt {
                try await jobs.reschedule(id: job.id, runAt: next)
            } else {
                try await jobs.complete(ids: [job.id])
            }
            guard let failingSince = disable else { return (final, false) }
            let reason = "Every attempt failed for \(Int(disableAfter / 3600)) hours (since \(Timestamp.format(failingSince)))."
            guard try await webhooks.disable(id: webhook.id, reason: reason, at: now) else { return (final, false) }
            let held = try await Self.hold(webhookId: webhook.id, vault: vault, db: db, now: now)
            try await audit.record(AuditChange("webhook.disabled", target: ("webhook", webhook.id), summary: [
                "host": .string(webhook.host), "reason": .string(reason), "failingSince": .string(Timestamp.format(failingSince)),
                "pendingDeliveries": .number(Double(held)),
            ]), in: job.workspaceId, by: .system("webhooks"), db: db)
            if final.status == .pending { final.nextAttemptAt = nil }
            return (final, true)
        }
        env.logger.info("Webhook attempt finished", metadata: [
            "webhook": "\(webhook.id)", "delivery": "\(delivery.id)", "event": "\(delivery.eventType)", "attempt": "\(final.attempts)",
            "status": "\(final.status.rawValue)", "http_status": "\(final.responseStatus.map(String.init) ?? "-")", "duration_ms": "\(milliseconds)",
        ])
        if disabled {
            env.logger.warning("Webhook endpoint disabled after failing too long", metadata: ["webhook": "\(webhook.id)"])
        }
    }

    /// Unschedules a disabled endpoint's pending deliveries (they stay in the log); returns how many.
    static func hold(webhookId: String, vault: Vault, db: any SQLDatabase, now: Date) async throws -> Int {
        let deliveries = WebhookDeliveryRepository(db, vault: vault)
        let pending = try await deliveries.pendingIds(webhookId: webhookId)
        try await deliveries.hold(webhookId: webhookId, at: now)
        try await deliveries.deleteJobs(webhookId: webhookId, kind: WebhookOutbox.jobKind)
        return pending.count
    }
}
