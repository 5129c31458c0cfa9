import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Automations of one workspace, their enrolments and step runs. Every query is scoped by
/// the vault's workspace; the definitions are sealed.
///
/// The changes that make an automation exactly-once are conditional: an enrolment is inserted
/// unless its trigger (or, for `once`, its contact) already enrolled; it moves on only from
/// the step it is at. Two workers, a retry or a restart that try the same thing find the
/// work done and change nothing.
public struct AutomationRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    static let columns: SQLQueryString = """
        a.id, a.name, a.status, a.trigger_event, a.frequency, a.marketing, a.topic, a.definition_sealed, a.created_at, a.updated_at
        """

    // MARK: Automations

    public func insert(_ automation: Automation) async throws {
        precondition(automation.workspaceId == workspaceId)
        try await db.raw("""
            INSERT INTO automations (id, workspace_id, name, status, trigger_event, frequency, marketing, topic, definition_sealed, created_at, updated_at)
            VALUES (\(bind: automation.id), \(bind: workspaceId), \(bind: automation.name), \(bind: automation.status.rawValue),
                    \(bind: automation.triggerEvent), \(bind: automation.frequency.rawValue), \(bind: automation.marketing), \(bind: automation.topic),
                    \(bind: try seal(automation)), \(bind: Timestamp.format(automation.createdAt)), \(bind: Timestamp.format(automation.updatedAt)))
            """).run()
        try await replaceSlugs(automation)
    }

    public func update(_ automation: Automation) async throws {
        try await db.raw("""
            UPDATE automations SET name = \(bind: automation.name), status = \(bind: automation.status.rawValue),
                trigger_event = \(bind: automation.triggerEvent), frequency = \(bind: automation.frequency.rawValue),
                marketing = \(bind: automation.marketing), topic = \(bind: automation.topic), definition_sealed = \(bind: try seal(automation)),
                updated_at = \(bind: Timestamp.format(automation.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: automation.id)
            """).run()
        try await replaceSlugs(automation)
    }

    /// Deletes the automation with its enrolments and step runs; whether it existed.
    public func delete(id: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM automations WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) RETURNING id
            """).first() != nil
    }

    /// How a read locks the automation's row until the transaction ends (PostgreSQL; SQLite
    /// has one writer at a time anyway).
    public enum RowLock: Sendable {
        case none
        /// Steps read the status this way: a status change waits for them, and they for it.
        case share
        /// Changes read the automation this way.
        case update
    }

    public func find(id: String, lock: RowLock = .none) async throws -> Automation? {
        var suffix: SQLQueryString = ""
        if !db.isSQLite {
            switch lock {
            case .none: break
            case .share: suffix = " FOR SHARE"
            case .update: suffix = " FOR UPDATE"
            }
        }
        guard let row = try await db.raw("""
            SELECT \(Self.columns) FROM automations a WHERE a.workspace_id = \(bind: workspaceId) AND a.id = \(bind: id)\(suffix)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// Oldest first, after `afterId`.
    public func list(afterId: String?, limit: Int) async throws -> [Automation] {
        var query = SQLQueryString("SELECT \(Self.columns) FROM automations a WHERE a.workspace_id = \(bind: workspaceId)")
        if let afterId { query.appendInterpolation(" AND a.id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY a.id LIMIT \(literal: limit)" as SQLQueryString)
        var automations: [Automation] = []
        for row in try await db.raw(query).all() { automations.append(try await decode(row)) }
        return automations
    }

    /// Enabled and paused automations that listen to `slug` (as trigger, awaited event or exit
    /// event), locked for share (PostgreSQL) until the transaction ends.
    public func listening(to slug: String) async throws -> [Automation] {
        let suffix: SQLQueryString = db.isSQLite ? "" : " FOR SHARE OF a"
        var automations: [Automation] = []
        for row in try await db.raw("""
            SELECT \(Self.columns) FROM automations a JOIN automation_slugs s ON s.automation_id = a.id
            WHERE s.workspace_id = \(bind: workspaceId) AND s.slug = \(bind: slug) AND a.workspace_id = \(bind: workspaceId)
              AND a.status IN ('enabled', 'paused')
            ORDER BY a.id\(suffix)
            """).all() {
            automations.append(try await decode(row))
        }
        return automations
    }

    /// Which of `slugs` some enabled or paused automation of the workspace listens to: the one
    /// question recording an event asks (an indexed lookup, in the event's transaction, so an
    /// automation enabled on another instance is seen at once).
    public static func listenedSlugs(among slugs: Set<String>, workspaceId: String, db: any SQLDatabase) async throws -> Set<String> {
        guard !slugs.isEmpty else { return [] }
        let rows = try await db.raw("""
            SELECT DISTINCT s.slug FROM automation_slugs s JOIN automations a ON a.id = s.automation_id
            WHERE s.workspace_id = \(bind: workspaceId) AND s.slug IN (\(binds: slugs.sorted())) AND a.status IN ('enabled', 'paused')
            """).all()
        return Set(try rows.map { try $0.decode(column: "slug", as: String.self) })
    }

    private func replaceSlugs(_ automation: Automation) async throws {
        try await db.raw("DELETE FROM automation_slugs WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automation.id)").run()
        let rows = automation.listenedSlugs.sorted().map { slug -> SQLQueryString in
            "(\(bind: automation.id), \(bind: workspaceId), \(bind: slug))"
        }
        try await db.raw("INSERT INTO automation_slugs (automation_id, workspace_id, slug) VALUES \(rows.joined(separator: ", "))").run()
    }

    private func seal(_ automation: Automation) throws -> String {
        try vault.seal(automation.definition.jsonValue.serializedString, table: "automations", column: "definition", row: automation.id)
    }

    private func decode(_ row: any SQLRow) async throws -> Automation {
        let id = try row.decode(column: "id", as: String.self)
        let json = try await vault.open(try row.decode(column: "definition_sealed", as: String.self), table: "automations", column: "definition", row: id)
        guard let stored = try? JSONValue.parse(Array(json.utf8)), let definition = try? AutomationDefinition(stored: stored),
              let status = AutomationStatus(rawValue: try row.decode(column: "status", as: String.self)),
              let frequency = AutomationFrequency(rawValue: try row.decode(column: "frequency", as: String.self)) else {
            throw StorageError.corruptValue(column: "automations.definition_sealed")
        }
        return Automation(
            id: id, workspaceId: workspaceId, name: try row.decode(column: "name", as: String.self), status: status,
            triggerEvent: try row.decode(column: "trigger_event", as: String.self), frequency: frequency,
            marketing: try row.decode(column: "marketing", as: Bool.self), topic: try row.decode(column: "topic", as: String?.self),
            definition: definition, createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }

    // MARK: Enrolments

    static let enrolmentColumns: SQLQueryString = """
        id, automation_id, contact_id, trigger_id, step_index, state, waiting_for, wake_at, reason, created_at, updated_at, finished_at
        """

    /// Inserts the enrolment unless the trigger already enrolled the contact in this automation
    /// or, with `onceKey`, the contact was ever enrolled in it; whether it was inserted.
    public func enrol(_ enrolment: AutomationEnrolment, onceKey: String?) async throws -> Bool {
        try await db.raw("""
            INSERT INTO automation_enrolments (id, workspace_id, automation_id, contact_id, trigger_id, once_key, step_index, state,
                waiting_for, wake_at, reason, created_at, updated_at, finished_at)
            VALUES (\(bind: enrolment.id), \(bind: workspaceId), \(bind: enrolment.automationId), \(bind: enrolment.contactId),
                    \(bind: enrolment.triggerId), \(bind: onceKey), \(bind: enrolment.stepIndex), \(bind: enrolment.state.rawValue),
                    \(bind: enrolment.waitingFor), \(bind: enrolment.wakeAt.map(Timestamp.format)), \(bind: enrolment.reason),
                    \(bind: Timestamp.format(enrolment.createdAt)), \(bind: Timestamp.format(enrolment.updatedAt)),
                    \(bind: enrolment.finishedAt.map(Timestamp.format)))
            ON CONFLICT DO NOTHING
            RETURNING id
            """).first() != nil
    }

    public func enrolment(id: String) async throws -> AutomationEnrolment? {
        try await db.raw("""
            SELECT \(Self.enrolmentColumns) FROM automation_enrolments WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first().map(decodeEnrolment)
    }

    /// Moves an enrolment that is in progress at step `from` to `position`; false (nothing
    /// changed) when it is no longer there. On PostgreSQL the row stays locked until the
    /// transaction ends, so a concurrent attempt at the same step waits and then finds it moved.
    public func move(id: String, from index: Int, to position: EnrolmentPosition, at now: Date) async throws -> Bool {
        let stamp = Timestamp.format(now)
        let update: SQLQueryString = switch position {
        case .step(let next, let state, let waitingFor, let dueAt):
            """
            UPDATE automation_enrolments SET step_index = \(bind: next), state = \(bind: state.rawValue), waiting_for = \(bind: waitingFor),
                wake_at = \(bind: Timestamp.format(dueAt)), updated_at = \(bind: stamp)
            """
        case .completed:
            """
            UPDATE automation_enrolments SET state = 'completed', waiting_for = NULL, wake_at = NULL, updated_at = \(bind: stamp),
                finished_at = \(bind: stamp)
            """
        }
        return try await db.raw("""
            \(update) WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND step_index = \(bind: index)
                AND state IN ('active', 'waiting') RETURNING id
            """).first() != nil
    }

    /// Ends an enrolment in progress (at step `from`, when given) as `state` with `reason`;
    /// false when it was not in progress there.
    public func end(id: String, from index: Int?, as state: EnrolmentState, reason: String, at now: Date) async throws -> Bool {
        let stamp = Timestamp.format(now)
        var query: SQLQueryString = """
            UPDATE automation_enrolments SET state = \(bind: state.rawValue), reason = \(bind: reason), waiting_for = NULL, wake_at = NULL,
                updated_at = \(bind: stamp), finished_at = \(bind: stamp)
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND state IN ('active', 'waiting')
            """
        if let index { query.appendInterpolation(" AND step_index = \(bind: index)" as SQLQueryString) }
        query.appendLiteral(" RETURNING id")
        return try await db.raw(query).first() != nil
    }

    /// Ends the enrolments in progress that `condition` picks as `state` with `reason`, and
    /// removes their queued steps (a step a worker holds right now finds the enrolment ended
    /// and does nothing); how many ended.
    private func endInProgress(
        _ condition: SQLQueryString, as state: EnrolmentState, reason: String, stepJobKind: String, at now: Date
    ) async throws -> Int {
        let stamp = Timestamp.format(now)
        let picked: SQLQueryString = "workspace_id = \(bind: workspaceId) AND state IN ('active', 'waiting') AND \(condition)"
        try await db.raw("""
            DELETE FROM jobs WHERE kind = \(bind: stepJobKind) AND subject_id IN (
                SELECT id || ':' || step_index FROM automation_enrolments WHERE \(picked))
            """).run()
        return try await db.raw("""
            UPDATE automation_enrolments SET state = \(bind: state.rawValue), reason = \(bind: reason), waiting_for = NULL, wake_at = NULL,
                updated_at = \(bind: stamp), finished_at = \(bind: stamp)
            WHERE \(picked)
            RETURNING id
            """).all().count
    }

    /// Ends the contact's enrolments in progress in these automations (an exit event); how many.
    @discardableResult
    public func endInProgress(
        contactId: String, automationIds: [String], as state: EnrolmentState, reason: String, stepJobKind: String, at now: Date
    ) async throws -> Int {
        guard !automationIds.isEmpty else { return 0 }
        return try await endInProgress(
            "contact_id = \(bind: contactId) AND automation_id IN (\(binds: automationIds))", as: state, reason: reason, stepJobKind: stepJobKind, at: now
        )
    }

    /// Cancels the contact's enrolments in progress in every automation (it is being deleted); how many.
    @discardableResult
    public func cancelInProgress(contactId: String, reason: String, stepJobKind: String, at now: Date) async throws -> Int {
        try await endInProgress("contact_id = \(bind: contactId)", as: .cancelled, reason: reason, stepJobKind: stepJobKind, at: now)
    }

    /// Cancels the automation's enrolments in progress (it is being disabled or deleted); how many.
    @discardableResult
    public func cancelInProgress(automationId: String, reason: String, stepJobKind: String, at now: Date) async throws -> Int {
        try await endInProgress("automation_id = \(bind: automationId)", as: .cancelled, reason: reason, stepJobKind: stepJobKind, at: now)
    }

    /// How many enrolments of the automation are in progress.
    public func countInProgress(automationId: String) async throws -> Int {
        try await db.raw("""
            SELECT COUNT(*) AS n FROM automation_enrolments
            WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automationId) AND state IN ('active', 'waiting')
            """).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// The contact's enrolments waiting for `slug`, in automations that keep enrolments.
    public func waiting(contactId: String, for slug: String) async throws -> [AutomationEnrolment] {
        try await db.raw("""
            SELECT \(Self.enrolmentColumns) FROM automation_enrolments
            WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) AND state = 'waiting' AND waiting_for = \(bind: slug)
            ORDER BY id
            """).all().map(decodeEnrolment)
    }

    /// Queues the due step of every enrolment in progress of the automation (after a pause:
    /// the steps that fell due meanwhile were held). A step still queued stays as it is.
    public func requeue(automationId: String, jobKind: String, at now: Date) async throws {
        let stamp = Timestamp.format(now)
        // The job id is derived from the subject, so the statement needs no id per row.
        try await db.raw("""
            INSERT INTO jobs (id, workspace_id, kind, subject_id, run_at, created_at)
            SELECT 'job_' || id || '_' || step_index, workspace_id, \(bind: jobKind), id || ':' || step_index, COALESCE(wake_at, \(bind: stamp)), \(bind: stamp)
            FROM automation_enrolments
            WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automationId) AND state IN ('active', 'waiting')
            ON CONFLICT DO NOTHING
            """).run()
    }

    // MARK: Step runs

    /// Records that the enrolment ran step `index`. Throws if it already did: the caller's
    /// transaction, and whatever else it did for this step, is then rolled back.
    public func recordRun(enrolmentId: String, automationId: String, index: Int, outcome: String, messageId: String?, at now: Date) async throws {
        try await db.raw("""
            INSERT INTO automation_step_runs (enrolment_id, workspace_id, automation_id, step_index, outcome, message_id, at)
            VALUES (\(bind: enrolmentId), \(bind: workspaceId), \(bind: automationId), \(bind: index), \(bind: outcome), \(bind: messageId),
                    \(bind: Timestamp.format(now)))
            """).run()
    }

    /// The steps each enrolment ran, in order.
    public func runs(enrolmentIds: [String]) async throws -> [String: [AutomationStepRun]] {
        guard !enrolmentIds.isEmpty else { return [:] }
        var result: [String: [AutomationStepRun]] = [:]
        for row in try await db.raw("""
            SELECT enrolment_id, step_index, outcome, message_id, at FROM automation_step_runs
            WHERE workspace_id = \(bind: workspaceId) AND enrolment_id IN (\(binds: enrolmentIds))
            ORDER BY enrolment_id, at, step_index
            """).all() {
            result[try row.decode(column: "enrolment_id", as: String.self), default: []].append(AutomationStepRun(
                stepIndex: try row.decode(column: "step_index", as: Int.self), outcome: try row.decode(column: "outcome", as: String.self),
                messageId: try row.decode(column: "message_id", as: String?.self), at: try row.decodeTimestamp("at")
            ))
        }
        return result
    }

    // MARK: Reading

    public func stats(automationId: String) async throws -> AutomationStats {
        var stats = AutomationStats()
        for row in try await db.raw("""
            SELECT state, reason, COUNT(*) AS n FROM automation_enrolments
            WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automationId)
            GROUP BY state, reason
            """).all() {
            let count = try row.decode(column: "n", as: Int.self)
            stats.enrolled += count
            switch EnrolmentState(rawValue: try row.decode(column: "state", as: String.self)) {
            case .active?, .waiting?: stats.inProgress += count
            case .completed?: stats.completed += count
            case .exited?: stats.exited += count
            case .cancelled?: stats.cancelled += count
            case nil: break
            }
            if let reason = try row.decode(column: "reason", as: String?.self) { stats.reasons[reason, default: 0] += count }
        }
        stats.sent = try await db.raw("""
            SELECT COUNT(*) AS n FROM automation_step_runs
            WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automationId) AND outcome = 'sent'
            """).first()?.decode(column: "n", as: Int.self) ?? 0
        return stats
    }

    /// Oldest first, after `afterId`.
    public func enrolments(automationId: String, state: EnrolmentState?, afterId: String?, limit: Int) async throws -> [AutomationEnrolment] {
        var query: SQLQueryString = """
            SELECT \(Self.enrolmentColumns) FROM automation_enrolments
            WHERE workspace_id = \(bind: workspaceId) AND automation_id = \(bind: automationId)
            """
        if let state { query.appendInterpolation(" AND state = \(bind: state.rawValue)" as SQLQueryString) }
        if let afterId { query.appendInterpolation(" AND id > \(bind: afterId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id LIMIT \(literal: limit)" as SQLQueryString)
        return try await db.raw(query).all().map(decodeEnrolment)
    }

    private func decodeEnrolment(_ row: any SQLRow) throws -> AutomationEnrolment {
        guard let state = EnrolmentState(rawValue: try row.decode(column: "state", as: String.self)) else {
            throw StorageError.corruptValue(column: "automation_enrolments.state")
        }
        return AutomationEnrolment(
            id: try row.decode(column: "id", as: String.self), workspaceId: workspaceId,
            automationId: try row.decode(column: "automation_id", as: String.self), contactId: try row.decode(column: "contact_id", as: String?.self),
            triggerId: try row.decode(column: "trigger_id", as: String.self), stepIndex: try row.decode(column: "step_index", as: Int.self),
            state: state, waitingFor: try row.decode(column: "waiting_for", as: String?.self), wakeAt: try row.decodeOptionalTimestamp("wake_at"),
            reason: try row.decode(column: "reason", as: String?.self), createdAt: try row.decodeTimestamp("created_at"),
            updatedAt: try row.decodeTimestamp("updated_at"), finishedAt: try row.decodeOptionalTimestamp("finished_at")
        )
    }
}
