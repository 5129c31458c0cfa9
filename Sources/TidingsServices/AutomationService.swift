import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// `/v1/automations`: writing automations, switching them on and off, and reading how they do.
///
/// - Creating and changing: see ``AutomationInput`` for the bodies. A draft may name
///   templates that do not exist yet; an automation enabled or paused must name existing
///   templates, and the workspace needs an email server.
/// - Status: pausing holds the steps that fall due (they run when the automation is enabled
///   again); moving to `draft` or `disabled` cancels the enrolments in progress (reason
///   `automation_disabled`).
/// - Steps of an automation with enrolments in progress may change, but not in number or
///   kind: an enrolment is at a step index, which must keep its meaning (409 `steps_in_use`).
public struct AutomationService: Sendable {
    let env: ServiceEnvironment
    let messages: MessageService

    public init(_ env: ServiceEnvironment, messages: MessageService) {
        self.env = env
        self.messages = messages
    }

    public static let maxPageSize = 500
    public static let defaultPageSize = 50

    static let notFound = DomainError.notFound("automation_not_found", "No automation with this id exists in this workspace.")

    public struct Detail: Sendable {
        public var automation: Automation
        public var stats: AutomationStats
    }

    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Automation {
        let input = try AutomationInput(body: body, base: nil)
        if input.status.keepsEnrolments { try await checkTemplates(input.definition, workspaceId: workspaceId) }
        let now = env.now()
        let automation = Automation(
            id: Identifier.make("aut", at: now), workspaceId: workspaceId, name: input.name, status: input.status, triggerEvent: input.triggerEvent,
            frequency: input.frequency, marketing: input.marketing, topic: input.topic, definition: input.definition, createdAt: now, updatedAt: now
        )
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            try await AutomationRepository(db, vault: vault).insert(automation)
            try await audit.record(
                AuditChange("automation.created", target: ("automation", automation.id), summary: Self.summary(automation)),
                in: workspaceId, by: actor, db: db
            )
        }
        return automation
    }

    public func get(workspaceId: String, id: String) async throws -> Detail {
        try Self.checkId(id)
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let repository = AutomationRepository(db, vault: vault)
            guard let automation = try await repository.find(id: id) else { throw Self.notFound }
            return Detail(automation: automation, stats: try await repository.stats(automationId: id))
        }
    }

    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<Automation> {
        let limit = try Self.pageSize(limit)
        let afterId = try cursor.map(Cursor.decode)
        let vault = try await env.keyring.vault(for: workspaceId)
        let automations = try await env.database.read { db in
            try await AutomationRepository(db, vault: vault).list(afterId: afterId, limit: limit + 1)
        }
        return Page.slice(automations, limit: limit, id: \.id)
    }

    /// Changes the fields the body names (see ``AutomationInput``).
    public func update(workspaceId: String, id: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Automation {
        try Self.checkId(id)
        let vault = try await env.keyring.vault(for: workspaceId)
        // Validated against the current state before the transaction, and again inside it.
        guard let before = try await env.database.read({ db in try await AutomationRepository(db, vault: vault).find(id: id) }) else {
            throw Self.notFound
        }
        let input = try AutomationInput(body: body, base: before)
        if input.status.keepsEnrolments { try await checkTemplates(input.definition, workspaceId: workspaceId) }
        let now = env.now()
        let audit = try await env.auditRecorder()
        return try await env.database.transaction { db in
            let repository = AutomationRepository(db, vault: vault)
            guard let current = try await repository.find(id: id, lock: .update) else { throw Self.notFound }
            let input = try AutomationInput(body: body, base: current)
            var changed = current
            changed.name = input.name
            changed.status = input.status
            changed.triggerEvent = input.triggerEvent
            changed.frequency = input.frequency
            changed.marketing = input.marketing
            changed.topic = input.topic
            changed.definition = input.definition
            guard changed != current else { return current }
            changed.updatedAt = now
            if !changed.definition.hasSameShape(as: current.definition), try await repository.countInProgress(automationId: id) > 0 {
                throw DomainError(
                    .conflict, code: "steps_in_use",
                    message: "Contacts are going through this automation: its steps may change, but not in number or kind. Disable it first (which cancels the enrolments in progress), or create a new automation.",
                    field: "steps"
                )
            }
            try await repository.update(changed)
            var cancelled = 0
            if current.status.keepsEnrolments, !changed.status.keepsEnrolments {
                cancelled = try await repository.cancelInProgress(
                    automationId: id, reason: "automation_disabled", stepJobKind: AutomationEngine.stepKind, at: now
                )
            } else if current.status == .paused, changed.status == .enabled {
                try await repository.requeue(automationId: id, jobKind: AutomationEngine.stepKind, at: now)
            }
            var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
            let fields = Self.changedFields(current, changed)
            if !fields.isEmpty {
                var summary = Self.summary(changed)
                summary["changed"] = .array(fields.map(JSONValue.string))
                records.append((workspaceId, actor, AuditChange("automation.updated", target: ("automation", id), summary: summary)))
            }
            if current.status != changed.status {
                records.append((workspaceId, actor, AuditChange("automation.status_changed", target: ("automation", id), summary: [
                    "name": .string(changed.name), "from": .string(current.status.rawValue), "to": .string(changed.status.rawValue),
                    "enrolmentsCancelled": .number(Double(cancelled)),
                ])))
            }
            try await audit.record(records, db: db)
            return changed
        }
    }

    /// Deletes the automation, its enrolments (their queued steps with them) and its statistics.
    /// Messages it queued stay, and are still sent.
    public func delete(workspaceId: String, id: String, by actor: AuditActor) async throws {
        try Self.checkId(id)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            let repository = AutomationRepository(db, vault: vault)
            guard let automation = try await repository.find(id: id, lock: .update) else { throw Self.notFound }
            let cancelled = try await repository.cancelInProgress(automationId: id, reason: "automation_deleted", stepJobKind: AutomationEngine.stepKind, at: now)
            _ = try await repository.delete(id: id)
            try await audit.record(
                AuditChange("automation.deleted", target: ("automation", id), summary: [
                    "name": .string(automation.name), "enrolmentsCancelled": .number(Double(cancelled)),
                ]),
                in: workspaceId, by: actor, db: db
            )
        }
    }

    // MARK: Enrolments

    /// An enrolment as the API shows it: with its contact's address (while the contact exists)
    /// and the steps it ran.
    public struct EnrolmentView: Sendable {
        public var enrolment: AutomationEnrolment
        public var email: String?
        public var runs: [AutomationStepRun]
    }

    public func enrolments(workspaceId: String, id: String, state: String?, cursor: String?, limit: Int?) async throws -> Page<EnrolmentView> {
        try Self.checkId(id)
        let limit = try Self.pageSize(limit)
        let afterId = try cursor.map(Cursor.decode)
        let filter = try state.map { text throws(DomainError) in
            guard let value = EnrolmentState(rawValue: text) else {
                throw .invalid("invalid_state", "state must be one of \(EnrolmentState.allCases.map(\.rawValue).joined(separator: ", ")).", field: "state")
            }
            return value
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        let views = try await env.database.read { db in
            let repository = AutomationRepository(db, vault: vault)
            guard try await repository.find(id: id) != nil else { throw Self.notFound }
            let enrolments = try await repository.enrolments(automationId: id, state: filter, afterId: afterId, limit: limit + 1)
            let emails = try await ContactRepository(db, vault: vault).emails(ids: Array(Set(enrolments.compactMap(\.contactId))))
            let runs = try await repository.runs(enrolmentIds: enrolments.map(\.id))
            return enrolments.map { enrolment in
                EnrolmentView(enrolment: enrolment, email: enrolment.contactId.flatMap { emails[$0]?.value }, runs: runs[enrolment.id] ?? [])
            }
        }
        return Page.slice(views, limit: limit, id: \.enrolment.id)
    }

    // MARK: Checks

    /// Every template the steps send exists, and the workspace can send (an email server).
    private func checkTemplates(_ definition: AutomationDefinition, workspaceId: String) async throws {
        var targets: [String: TemplateRepository.SendTarget] = [:]
        for (slug, field) in definition.templateReferences {
            do {
                _ = try await messages.sendTarget(workspaceId: workspaceId, slug: slug, targets: &targets)
            } catch let error as DomainError where error.code == "unknown_template" {
                throw DomainError.invalid(
                    "unknown_template", "No template with the slug '\(slug)' exists; create it, or keep the automation a draft until it does.", field: field
                )
            }
        }
    }

    static func checkId(_ id: String) throws(DomainError) {
        guard id.hasPrefix("aut_"), id.count < 100 else { throw notFound }
    }

    static func pageSize(_ limit: Int?) throws(DomainError) -> Int {
        guard let limit else { return defaultPageSize }
        guard (1...maxPageSize).contains(limit) else {
            throw .invalid("invalid_limit", "The limit must be between 1 and \(maxPageSize).", field: "limit")
        }
        return limit
    }

    /// What the audit log keeps of an automation: its shape, not its conditions' values.
    static func summary(_ automation: Automation) -> [String: JSONValue] {
        [
            "name": .string(automation.name), "status": .string(automation.status.rawValue), "triggerEvent": .string(automation.triggerEvent),
            "frequency": .string(automation.frequency.rawValue), "marketing": .bool(automation.marketing),
            "steps": .array(automation.definition.steps.map { .string($0.type) }),
        ]
    }

    static func changedFields(_ old: Automation, _ new: Automation) -> [String] {
        var fields: [String] = []
        if old.name != new.name { fields.append("name") }
        if old.triggerEvent != new.triggerEvent { fields.append("triggerEvent") }
        if old.frequency != new.frequency { fields.append("frequency") }
        if old.marketing != new.marketing { fields.append("marketing") }
        if old.topic != new.topic { fields.append("topic") }
        if old.definition.form != new.definition.form { fields.append("steps") }
        if old.definition.exitEvents != new.definition.exitEvents { fields.append("exitEvents") }
        return fields
    }
}
