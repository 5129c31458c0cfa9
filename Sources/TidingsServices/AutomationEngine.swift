import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Runs automations, one queued job at a time:
///
/// - an `automation.trigger` job (an event of a contact) ends the contact's enrolments whose
///   automation exits on that event, moves on the ones waiting for it, and enrols the contact
///   in the enabled automations it triggers;
/// - an `automation.step` job (subject `enrolmentId:stepIndex`) runs the step an enrolment
///   is at when it falls due: a wait ends, a wait for an event times out, a message is
///   queued, a condition is judged. Then the enrolment enters its next step, whose job is
///   queued for when it falls due.
///
/// Each job is one transaction that also removes the job, and every change in it is
/// conditional on the state it started from (the enrolment still at this step, the trigger
/// not yet enrolled, the contact not yet enrolled in a `once` automation, the step not yet
/// run). A job run twice — retried after a crash, claimed again after its lease ran out, or
/// handled by two instances at once — therefore changes nothing the second time: no second
/// enrolment and no second message.
public struct AutomationEngine: Sendable {
    let env: ServiceEnvironment
    let messages: MessageService
    /// Wakes the delivery workers once a step queued a message.
    let deliverySignal: JobSignal

    public static let triggerKind = "automation.trigger"
    public static let stepKind = "automation.step"
    public static let kinds = [triggerKind, stepKind]
    /// Who the audit log names for the messages automations queue.
    static let actor = AuditActor.system("automations")

    public init(_ env: ServiceEnvironment, messages: MessageService, deliverySignal: JobSignal) {
        self.env = env
        self.messages = messages
        self.deliverySignal = deliverySignal
    }

    /// Handles one claimed job; it is removed when done. Throws for faults of our own (the
    /// database), after which the caller retries the job later.
    public func run(_ job: Job) async throws {
        try await TenantScope.with(.workspace(job.workspaceId)) {
            let vault: Vault
            do {
                vault = try await env.keyring.vault(for: job.workspaceId)
            } catch is WorkspaceKeysDestroyed {
                // The workspace was deleted: its rows (this job's included) are going or gone.
                return try await complete(job)
            }
            switch job.kind {
            case Self.triggerKind: try await trigger(job, vault: vault)
            case Self.stepKind: try await step(job, vault: vault)
            default: try await complete(job)
            }
        }
    }

    static func stepSubject(enrolmentId: String, index: Int) -> String { "\(enrolmentId):\(index)" }

    static func stepJob(_ enrolment: AutomationEnrolment, _ position: EnrolmentPosition, at now: Date)
        -> [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)] {
        guard case .step(let index, _, _, let dueAt) = position else { return [] }
        return [(Identifier.make("job", at: now), enrolment.workspaceId, stepKind, stepSubject(enrolmentId: enrolment.id, index: index), dueAt)]
    }

    private func complete(_ job: Job) async throws {
        try await env.database.transaction { db in try await JobRepository(db).complete(ids: [job.id]) }
    }

    // MARK: Triggers

    private func trigger(_ job: Job, vault: Vault) async throws {
        guard let trigger = AutomationTrigger(subject: job.subjectId) else { return try await complete(job) }
        let now = env.now()
        let workspaceId = job.workspaceId
        try await env.database.transaction { db in
            let jobs = JobRepository(db)
            let automations = AutomationRepository(db, vault: vault)
            // A contact deleted since: nothing to enrol (its enrolments were cancelled with it).
            guard try await ContactRepository(db, vault: vault).status(contactId: trigger.contactId) != nil else {
                return try await jobs.complete(ids: [job.id])
            }
            // Locked for share: an automation disabled at this moment is either seen disabled, or
            // disabled after this transaction (cancelling what it enrols).
            let listening = try await automations.listening(to: trigger.slug)
            var queued: [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)] = []

            // Exit events first: an enrolment this very event starts is not ended by it.
            let exiting = listening.filter { $0.definition.exitEvents.contains(trigger.slug) }.map(\.id)
            try await automations.endInProgress(
                contactId: trigger.contactId, automationIds: exiting, as: .exited, reason: "exit_event", stepJobKind: Self.stepKind, at: now
            )

            let byId = Dictionary(listening.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for enrolment in try await automations.waiting(contactId: trigger.contactId, for: trigger.slug) {
                guard let automation = byId[enrolment.automationId] else { continue }
                let next = automation.definition.position(entering: enrolment.stepIndex + 1, at: now)
                guard try await automations.move(id: enrolment.id, from: enrolment.stepIndex, to: next, at: now) else { continue }
                try await automations.recordRun(
                    enrolmentId: enrolment.id, automationId: automation.id, index: enrolment.stepIndex, outcome: "event", messageId: nil, at: now
                )
                // Its timeout is not needed any more (if a worker holds it, it finds the step done).
                _ = try await jobs.removeUnleased(
                    kind: Self.stepKind, subjectId: Self.stepSubject(enrolmentId: enrolment.id, index: enrolment.stepIndex), now: now
                )
                queued += Self.stepJob(enrolment, next, at: now)
            }

            for automation in listening where automation.status == .enabled && automation.triggerEvent == trigger.slug {
                guard case .step(let index, let state, let waitingFor, let dueAt) = automation.definition.position(entering: 0, at: now) else { continue }
                let enrolment = AutomationEnrolment(
                    id: Identifier.make("enr", at: now), workspaceId: workspaceId, automationId: automation.id, contactId: trigger.contactId,
                    triggerId: trigger.id, stepIndex: index, state: state, waitingFor: waitingFor, wakeAt: dueAt, createdAt: now, updatedAt: now
                )
                // Not twice for one trigger; for `once`, not twice for one contact, ever.
                let onceKey = automation.frequency == .once ? trigger.contactId : nil
                guard try await automations.enrol(enrolment, onceKey: onceKey) else { continue }
                queued += Self.stepJob(enrolment, .step(index: index, state: state, waitingFor: waitingFor, dueAt: dueAt), at: now)
                env.logger.debug("Contact enrolled", metadata: ["automation": "\(automation.id)", "enrolment": "\(enrolment.id)"])
            }
            try await jobs.enqueueUnlessQueued(queued, at: now)
            try await jobs.complete(ids: [job.id])
        }
    }

    // MARK: Steps

    /// What a step needs, read before its transaction.
    private struct StepContext: Sendable {
        var enrolment: AutomationEnrolment
        var automation: Automation
        var contact: Contact?
    }

    private func step(_ job: Job, vault: Vault) async throws {
        let parts = job.subjectId.split(separator: ":")
        guard parts.count == 2, let index = Int(parts[1]) else { return try await complete(job) }
        let enrolmentId = String(parts[0])
        let context = try await env.database.read { db -> StepContext? in
            let automations = AutomationRepository(db, vault: vault)
            guard let enrolment = try await automations.enrolment(id: enrolmentId), enrolment.stepIndex == index, enrolment.state.isInProgress,
                  let automation = try await automations.find(id: enrolment.automationId) else { return nil }
            let contact = try await enrolment.contactId.asyncFlatMap { try await ContactRepository(db, vault: vault).find(id: $0) }
            return StepContext(enrolment: enrolment, automation: automation, contact: contact)
        }
        // Moved on, ended, or its automation deleted: an old job with nothing left to do.
        guard let context else { return try await complete(job) }
        let enrolment = context.enrolment
        let automation = context.automation
        switch automation.status {
        case .enabled:
            break
        case .paused:
            // Held: resuming the automation queues the step again.
            return try await advance(job, context, to: nil, outcome: "")
        case .draft, .disabled:
            return try await end(job, enrolment, as: .cancelled, reason: "automation_disabled")
        }
        guard let contact = context.contact else {
            return try await end(job, enrolment, as: .cancelled, reason: "contact_deleted")
        }
        if contact.status == .bounced {
            return try await end(job, enrolment, as: .cancelled, reason: "contact_bounced")
        }
        if automation.marketing, contact.status == .unsubscribed {
            return try await end(job, enrolment, as: .cancelled, reason: "contact_unsubscribed")
        }
        let steps = automation.definition.steps
        guard index < steps.count else {
            return try await advance(job, context, to: steps.count, outcome: "skipped")
        }
        switch steps[index] {
        case .wait:
            try await advance(job, context, to: index + 1, outcome: "waited")
        case .waitFor(_, _, let onTimeout):
            // This job is the timeout: the event did not come.
            switch onTimeout {
            case .continue: try await advance(job, context, to: index + 1, outcome: "timed_out")
            case .exit: try await end(job, enrolment, as: .exited, reason: "wait_timed_out", outcome: "timed_out")
            }
        case .condition(let filter, let otherwise):
            let times = try await env.database.read { db in
                try await EventRepository(db, workspaceId: job.workspaceId).latestOccurrences(contactId: contact.id, limits: filter.eventRequirements)
            }
            if filter.matches(SegmentSubject(contact: contact, eventTimes: times), now: env.now()) {
                try await advance(job, context, to: index + 1, outcome: "condition_met")
            } else {
                switch otherwise {
                case .exit: try await end(job, enrolment, as: .exited, reason: "condition_not_met", outcome: "condition_not_met")
                case .goTo(let target): try await advance(job, context, to: target, outcome: "condition_not_met")
                }
            }
        case .send(let slug):
            var targets: [String: TemplateRepository.SendTarget] = [:]
            let draft: MessageService.Draft
            do {
                draft = try await messages.draft(
                    workspaceId: job.workspaceId, email: contact.email, templateSlug: slug,
                    origin: MessageOrigin(kind: .automation, id: automation.id, topicId: nil, marketing: automation.marketing),
                    sendAt: env.now(), targets: &targets
                )
            } catch let error as DomainError {
                // The template was deleted, or the workspace has no email server any more.
                let reason = error.code == "unknown_template" ? "template_missing" : error.code
                return try await end(job, enrolment, as: .cancelled, reason: reason)
            }
            try await advance(job, context, to: index + 1, outcome: "sent", draft: draft)
        }
    }

    /// Records the step as run and moves the enrolment to step `next` (queuing its job), in
    /// one transaction with the message a send step queues. Nothing happens if the enrolment
    /// has moved on meanwhile, or if the automation is no longer enabled: paused, the step is
    /// held (`next` nil holds it outright).
    private func advance(_ job: Job, _ context: StepContext, to next: Int?, outcome: String, draft: MessageService.Draft? = nil) async throws {
        let enrolment = context.enrolment
        let now = env.now()
        let audit = try await env.auditRecorder()
        let vault = try await env.keyring.vault(for: job.workspaceId)
        let queued = try await env.database.transaction { db -> Bool in
            let jobs = JobRepository(db)
            let automations = AutomationRepository(db, vault: vault)
            // Read under a share lock: pausing or disabling waits for this step, or this step
            // sees the new status.
            let current = try await automations.find(id: enrolment.automationId, lock: .share)
            guard let current, current.status == .enabled, let next else {
                if current?.status == .enabled {
                    // Held as paused, but resumed meanwhile (its requeue found this job still
                    // there): run it again rather than lose it.
                    try await jobs.reschedule(id: job.id, runAt: now)
                } else {
                    // Paused: the job goes, and resuming queues the step again. Otherwise the
                    // enrolment was ended with its automation.
                    try await jobs.complete(ids: [job.id])
                }
                return false
            }
            let position = current.definition.position(entering: next, at: now)
            // Conditional on the enrolment still being at this step; first, so a concurrent
            // attempt at the same step waits here (PostgreSQL) and then finds it moved.
            guard try await automations.move(id: enrolment.id, from: enrolment.stepIndex, to: position, at: now) else {
                try await jobs.complete(ids: [job.id])
                return false
            }
            if case .completed = position {
                try await Self.finished(enrolment, as: .completed, reason: nil, vault: vault, db: db, now: now)
            }
            var messageId: String?
            if let draft {
                let accepted = try await MessageService.store([draft], workspaceId: job.workspaceId, vault: vault, actor: Self.actor, audit: audit, db: db, now: now)
                messageId = accepted.first?.id
            }
            // The step's one run; a second would fail on the key and roll all of this back.
            try await automations.recordRun(
                enrolmentId: enrolment.id, automationId: enrolment.automationId, index: enrolment.stepIndex, outcome: outcome, messageId: messageId, at: now
            )
            try await jobs.enqueueUnlessQueued(Self.stepJob(enrolment, position, at: now), at: now)
            try await jobs.complete(ids: [job.id])
            return messageId != nil
        }
        if queued {
            deliverySignal.wake()
            env.logger.info("Automation step queued a message", metadata: [
                "automation": "\(enrolment.automationId)", "enrolment": "\(enrolment.id)", "step": "\(enrolment.stepIndex)",
            ])
        }
    }

    /// Tells webhook endpoints that a contact's way through an automation ended (completed,
    /// exited or cancelled), in the transaction that ends it.
    static func finished(
        _ enrolment: AutomationEnrolment, as state: EnrolmentState, reason: String?, vault: Vault, db: any SQLDatabase, now: Date
    ) async throws {
        var data: [String: JSONValue] = [
            "automationId": .string(enrolment.automationId), "enrolmentId": .string(enrolment.id), "state": .string(state.rawValue),
        ]
        if let contactId = enrolment.contactId { data["contactId"] = .string(contactId) }
        if let reason { data["reason"] = .string(reason) }
        _ = try await WebhookOutbox.emit([WebhookEvent(.automationFinished, data: data, at: now)], workspaceId: vault.scope, vault: vault, db: db, now: now)
    }

    /// Ends the enrolment at its step (exited or cancelled, with the reason); an `outcome`
    /// records the step as run.
    private func end(_ job: Job, _ enrolment: AutomationEnrolment, as state: EnrolmentState, reason: String, outcome: String? = nil) async throws {
        let now = env.now()
        let vault = try await env.keyring.vault(for: job.workspaceId)
        try await env.database.transaction { db in
            let automations = AutomationRepository(db, vault: vault)
            if try await automations.end(id: enrolment.id, from: enrolment.stepIndex, as: state, reason: reason, at: now) {
                if let outcome {
                    try await automations.recordRun(
                        enrolmentId: enrolment.id, automationId: enrolment.automationId, index: enrolment.stepIndex, outcome: outcome, messageId: nil, at: now
                    )
                }
                try await Self.finished(enrolment, as: state, reason: reason, vault: vault, db: db, now: now)
            }
            try await JobRepository(db).complete(ids: [job.id])
        }
        env.logger.info("Automation enrolment ended", metadata: [
            "automation": "\(enrolment.automationId)", "enrolment": "\(enrolment.id)", "state": "\(state.rawValue)", "reason": "\(reason)",
        ])
    }
}
