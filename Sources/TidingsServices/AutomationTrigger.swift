import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Something a contact did, or that happened to a contact, that automations may react to:
/// an event recorded through the API, or a built-in `contact.created` / `contact.updated`.
///
/// Whoever stores the event queues its trigger in the same transaction (one
/// `automation.trigger` job per event, and only when some automation listens to the slug),
/// so an event is never lost between being stored and being seen by automations, and the
/// trigger's id makes enrolling from it exactly-once.
public struct AutomationTrigger: Sendable, Equatable {
    /// The event's id; for a built-in event, an id made for it.
    public var id: String
    public var slug: String
    public var contactId: String

    public init(id: String, slug: String, contactId: String) {
        self.id = id
        self.slug = slug
        self.contactId = contactId
    }

    /// A built-in event about a contact, with an id of its own.
    static func builtIn(_ slug: String, contactId: String, at now: Date) -> AutomationTrigger {
        AutomationTrigger(id: Identifier.make("trg", at: now), slug: slug, contactId: contactId)
    }

    /// The job's subject: everything the trigger needs, so handling it reads nothing back.
    /// Ids and slugs hold no spaces.
    var subject: String { "\(id) \(slug) \(contactId)" }

    init?(subject: String) {
        let parts = subject.split(separator: " ")
        guard parts.count == 3 else { return nil }
        self.init(id: String(parts[0]), slug: String(parts[1]), contactId: String(parts[2]))
    }

    /// Queues, in the caller's transaction, a trigger job for each trigger whose slug an
    /// enabled or paused automation of the workspace listens to. Returns whether any was
    /// queued (so the caller wakes the automation workers after committing).
    static func enqueue(_ triggers: [AutomationTrigger], workspaceId: String, db: any SQLDatabase, now: Date) async throws -> Bool {
        guard !triggers.isEmpty else { return false }
        let listened = try await AutomationRepository.listenedSlugs(among: Set(triggers.map(\.slug)), workspaceId: workspaceId, db: db)
        let jobs = triggers.filter { listened.contains($0.slug) }.map { trigger in
            (id: Identifier.make("job", at: now), workspaceId: workspaceId, kind: AutomationEngine.triggerKind, subjectId: trigger.subject, runAt: now)
        }
        try await JobRepository(db).enqueue(jobs, at: now)
        return !jobs.isEmpty
    }
}
