import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Recording what contacts did.
///
/// Events arrive at high rates, so they are written by group commit: concurrent
/// requests share one transaction (see `GroupCommitter`); each answers only after
/// its event has committed.
public struct EventService: Sendable {
    let env: ServiceEnvironment
    private let committer: GroupCommitter<PendingEvent, Recorded>
    /// Woken when an event was queued for automations.
    let automationSignal: JobSignal

    public init(_ env: ServiceEnvironment, automationSignal: JobSignal = JobSignal()) {
        self.env = env
        self.automationSignal = automationSignal
        self.committer = GroupCommitter(maxBatch: Self.maxBatch) { [env] pending in
            let audit = try await env.auditRecorder()
            return try await env.database.transaction { db in try await Self.write(pending, db: db, audit: audit) }
        }
    }

    /// Events per transaction; keeps every statement well under the backends' bind limits.
    static let maxBatch = 256

    /// How far in the future a reported `occurredAt` may lie (clock skew between systems).
    public static let maxFutureSkew: TimeInterval = 24 * 3600

    public struct Recorded: Sendable {
        public var event: ContactEvent
        public var email: EmailAddress
        public var contactCreated: Bool
        /// Whether the event (or the contact's creation) was queued for automations.
        var triggered = false
    }

    /// `{email, slug, properties?, occurredAt?}`; creates the contact when missing, as SendStreak does.
    public func record(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Recorded {
        var reader = BodyReader(body)
        let email = try EmailAddress(try reader.string("email", required: true)!)
        let slug = try EventSlug.normalise(try reader.string("slug", required: true)!)
        guard !Automation.builtInEvents.contains(slug) else {
            throw DomainError.invalid("reserved_slug", "The slug '\(slug)' is raised by Tidings itself when a contact changes; choose another.", field: "slug")
        }
        let properties = try reader.object("properties").map { object throws(DomainError) in
            try AttributeMap.parse(object, fieldPrefix: "properties.").compactMapValues { $0 }
        } ?? [:]
        let now = env.now()
        let occurredAt = try reader.timestamp("occurredAt") ?? now
        guard occurredAt <= now.addingTimeInterval(Self.maxFutureSkew) else {
            throw DomainError.invalid("invalid_timestamp", "The field 'occurredAt' lies more than 24 hours in the future.", field: "occurredAt")
        }
        try reader.rejectUnknownFields()
        let event = ContactEvent(
            id: Identifier.make("ev", at: now), workspaceId: workspaceId, contactId: "", slug: slug,
            properties: properties, occurredAt: occurredAt, createdAt: now
        )
        let vault = try await env.keyring.vault(for: workspaceId)
        let storable = StorableEvent(event, storedProperties: try vault.sealProperties(of: event))
        let recorded = try await committer.submit(PendingEvent(vault: vault, actor: actor, storable: storable, email: email, newContactId: Identifier.make("ct", at: now)))
        if recorded.triggered { automationSignal.wake() }
        return recorded
    }

    /// A validated event whose contact may still have to be created.
    struct PendingEvent: Sendable {
        var vault: Vault
        var actor: AuditActor
        var storable: StorableEvent
        var email: EmailAddress
        /// The id the contact gets if this event creates it.
        var newContactId: String
    }

    /// Writes a batch: the missing contacts in one statement, then the events in one, per workspace.
    /// Each event, and each contact it creates, is audited in the same transaction.
    static func write(_ pending: [PendingEvent], db: any SQLDatabase, audit: AuditRecorder) async throws -> [Recorded] {
        var recorded = [Recorded?](repeating: nil, count: pending.count)
        var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
        let byWorkspace = Dictionary(grouping: pending.indices, by: { pending[$0].storable.event.workspaceId })
        for (workspaceId, indices) in byWorkspace {
            // A batch may hold several workspaces' events: each group is fenced to its own.
            try await db.enter(.workspace(workspaceId))
            let contacts = ContactRepository(db, vault: pending[indices[0]].vault)
            var proposed: [String: String] = [:]
            var addresses: [EmailAddress] = []
            for index in indices where proposed[pending[index].email.value] == nil {
                proposed[pending[index].email.value] = pending[index].newContactId
                addresses.append(pending[index].email)
            }
            let (ids, created) = try await contacts.ensure(
                addresses.map { (proposed[$0.value]!, $0) }, at: pending[indices[0]].storable.event.createdAt
            )
            var events: [StorableEvent] = []
            var creationReported = Set<String>()
            for index in indices {
                let email = pending[index].email
                guard let contactId = ids[email.value] else {
                    throw StorageError.corruptValue(column: "contacts.id")
                }
                var storable = pending[index].storable
                storable.event.contactId = contactId
                events.append(storable)
                // Only the first event of a newly created contact reports the creation.
                let contactCreated = created.contains(email.value) && creationReported.insert(email.value).inserted
                recorded[index] = Recorded(event: storable.event, email: email, contactCreated: contactCreated)
                let vault = pending[index].vault
                let pseudonym = JSONValue.string(vault.pseudonym(email.value))
                if contactCreated {
                    records.append((workspaceId, pending[index].actor, AuditChange(
                        "contact.created", target: ("contact", contactId), summary: ["email": pseudonym, "via": .string("event")]
                    )))
                }
                records.append((workspaceId, pending[index].actor, AuditChange(
                    "event.recorded", target: ("event", storable.event.id),
                    summary: ["email": pseudonym, "slug": .string(storable.event.slug), "properties": .array(
                        storable.event.properties.keys.sorted().map(JSONValue.string)
                    )]
                )))
            }
            try await EventRepository(db, workspaceId: workspaceId).insert(events)
            // Automations see the events, and the contacts they created, exactly once: queued with them.
            let now = pending[indices[0]].storable.event.createdAt
            var triggers = events.map { AutomationTrigger(id: $0.event.id, slug: $0.event.slug, contactId: $0.event.contactId) }
            for index in indices where recorded[index]!.contactCreated {
                triggers.insert(.builtIn("contact.created", contactId: recorded[index]!.event.contactId, at: now), at: 0)
            }
            if try await AutomationTrigger.enqueue(triggers, workspaceId: workspaceId, db: db, now: now) {
                for index in indices { recorded[index]!.triggered = true }
            }
        }
        try await audit.record(records, db: db)
        try await db.enter(TenantScope.current)
        return recorded.map { $0! }
    }
}
