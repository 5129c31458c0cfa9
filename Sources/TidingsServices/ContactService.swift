import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Contacts: the SendStreak-compatible upsert and delete, and the reads SendStreak lacks.
///
/// Upserts are written by group commit, like events: concurrent requests share a
/// transaction, and each answers only after its own change has committed.
public struct ContactService: Sendable {
    let env: ServiceEnvironment
    private let committer: GroupCommitter<PendingUpsert, Result<Upserted, DomainError>>
    /// Woken when a change was queued for automations.
    let automationSignal: JobSignal

    public init(_ env: ServiceEnvironment, automationSignal: JobSignal = JobSignal()) {
        self.env = env
        self.automationSignal = automationSignal
        self.committer = GroupCommitter(maxBatch: 64) { [env] pending in
            let audit = try await env.auditRecorder()
            return try await env.database.transaction { db in try await Self.upsertEach(pending, db: db, audit: audit) }
        }
    }

    /// One contact's change, validated and waiting to be written.
    struct PendingUpsert: Sendable {
        var vault: Vault
        var actor: AuditActor
        var email: EmailAddress
        var changes: [String: AttributeValue?]
        var now: Date
    }

    public static let maxPageSize = 500
    public static let defaultPageSize = 50
    public static let maxAttributeFilters = 10

    public struct Upserted: Sendable {
        public var contact: Contact
        public var created: Bool
        /// Whether the change was queued for automations (`contact.created` / `contact.updated`).
        var triggered = false
    }

    /// The flat SendStreak body: `email` plus attributes; `null` removes an attribute.
    public func upsert(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Upserted {
        var reader = BodyReader(body)
        let email = try EmailAddress(try reader.string("email", required: true)!)
        var attributes = body
        attributes["email"] = nil
        let changes = try AttributeMap.parse(attributes, fieldPrefix: "")
        let vault = try await env.keyring.vault(for: workspaceId)
        // People appear in logs only as the workspace's pseudonym: stable, and meaningless without its key.
        env.logger.debug("Contact upsert", metadata: ["workspace": "\(workspaceId)", "contact": "\(vault.pseudonym(email.value))"])
        let pending = PendingUpsert(vault: vault, actor: actor, email: email, changes: changes, now: env.now())
        let upserted = try await committer.submit(pending).get()
        if upserted.triggered { automationSignal.wake() }
        return upserted
    }

    /// Upserts each item in the caller's transaction. A broken domain rule (checked before
    /// anything of that item is written) fails only its item; the others still commit.
    /// Each change is audited in the same transaction.
    static func upsertEach(
        _ items: [PendingUpsert], db: any SQLDatabase, audit: AuditRecorder
    ) async throws -> [Result<Upserted, DomainError>] {
        var results: [Result<Upserted, DomainError>] = []
        var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
        results.reserveCapacity(items.count)
        var triggers: [String: [(result: Int, trigger: AutomationTrigger)]] = [:]
        for item in items {
            // A batch may hold several workspaces' changes: each is fenced to its own.
            try await db.enter(.workspace(item.vault.scope))
            do {
                let upserted = try await upsert(db: db, vault: item.vault, email: item.email, changes: item.changes, now: item.now)
                results.append(.success(upserted))
                records.append((item.vault.scope, item.actor, Self.auditChange(upserted, changes: item.changes, vault: item.vault)))
                let slug = upserted.created ? "contact.created" : "contact.updated"
                triggers[item.vault.scope, default: []].append((results.count - 1, .builtIn(slug, contactId: upserted.contact.id, at: item.now)))
            } catch let error as DomainError {
                results.append(.failure(error))
            }
        }
        // Automations see each change exactly once: queued with it.
        for (workspaceId, entries) in triggers.sorted(by: { $0.key < $1.key }) {
            try await db.enter(.workspace(workspaceId))
            guard try await AutomationTrigger.enqueue(entries.map(\.trigger), workspaceId: workspaceId, db: db, now: items[0].now) else { continue }
            for entry in entries {
                if case .success(var upserted) = results[entry.result] {
                    upserted.triggered = true
                    results[entry.result] = .success(upserted)
                }
            }
        }
        try await audit.record(records, db: db)
        try await db.enter(TenantScope.current)
        return results
    }

    /// `contact.created` / `contact.updated`: which attributes changed, never their values;
    /// the address only as the workspace's pseudonym.
    static func auditChange(_ upserted: Upserted, changes: [String: AttributeValue?], vault: Vault) -> AuditChange {
        var summary: [String: JSONValue] = ["email": .string(vault.pseudonym(upserted.contact.email.value))]
        let set = changes.filter { $0.value != nil }.keys.sorted()
        let removed = changes.filter { $0.value == nil }.keys.sorted()
        if !set.isEmpty { summary["set"] = .array(set.map(JSONValue.string)) }
        if !removed.isEmpty { summary["removed"] = .array(removed.map(JSONValue.string)) }
        return AuditChange(
            upserted.created ? "contact.created" : "contact.updated", target: ("contact", upserted.contact.id), summary: summary
        )
    }

    /// Creates or updates one contact inside the caller's transaction.
    static func upsert(
        db: any SQLDatabase, vault: Vault, email: EmailAddress, changes: [String: AttributeValue?], now: Date
    ) async throws -> Upserted {
        let repository = ContactRepository(db, vault: vault)
        let workspaceId = vault.scope
        // Two attempts: a concurrent insert of the same address turns our insert into an update.
        for _ in 0..<2 {
            if var contact = try await repository.find(email: email) {
                try contact.apply(changes)
                let set = changes.compactMapValues { $0 }
                let remove = changes.filter { $0.value == nil }.map(\.key)
                try await repository.update(contactId: contact.id, set: set, remove: remove, at: now)
                contact.updatedAt = now
                return Upserted(contact: contact, created: false)
            }
            var contact = Contact(
                id: Identifier.make("ct", at: now), workspaceId: workspaceId, email: email, status: .active,
                attributes: [:], createdAt: now, updatedAt: now
            )
            try contact.apply(changes)
            if try await repository.insert(contact) {
                return Upserted(contact: contact, created: true)
            }
        }
        throw DomainError(.conflict, code: "concurrent_update", message: "The contact changed concurrently; retry the request.")
    }

    /// Removes the contact and everything tied to it. Returns whether it existed; deleting twice is fine.
    @discardableResult
    public func delete(workspaceId: String, email rawEmail: String, by actor: AuditActor) async throws -> Bool {
        let email = try EmailAddress(rawEmail)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let contacts = ContactRepository(db, vault: vault)
            // Its enrolments end with a reason, rather than vanish or wait for a step to notice.
            if let id = try await contacts.findId(email: email) {
                try await AutomationRepository(db, vault: vault).cancelInProgress(
                    contactId: id, reason: "contact_deleted", stepJobKind: AutomationEngine.stepKind, at: now
                )
            }
            guard let id = try await contacts.delete(email: email) else { return false }
            env.logger.debug("Contact deleted", metadata: ["workspace": "\(workspaceId)", "contact": "\(vault.pseudonym(email.value))"])
            try await audit.record(
                AuditChange("contact.deleted", target: ("contact", id), summary: ["email": .string(vault.pseudonym(email.value))]),
                in: workspaceId, by: actor, db: db
            )
            return true
        }
    }

    public func get(workspaceId: String, email rawEmail: String) async throws -> Contact {
        let email = try EmailAddress(rawEmail)
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let contact = try await env.database.read({ db in
            try await ContactRepository(db, vault: vault).find(email: email)
        }) else { throw Self.notFound }
        return contact
    }

    public func list(
        workspaceId: String, filter: ContactRepository.Filter, cursor: String?, limit: Int?
    ) async throws -> Page<Contact> {
        let limit = try Self.pageSize(limit)
        let afterId = try cursor.map(Cursor.decode)
        guard filter.attributes.count <= Self.maxAttributeFilters else {
            throw DomainError.invalid(
                "too_many_filters", "At most \(Self.maxAttributeFilters) attribute filters may be combined.", field: "attributes"
            )
        }
        var filter = filter
        var normalised: [String: String] = [:]
        for (name, value) in filter.attributes {
            normalised[try AttributeName.normalise(name, field: "attributes[\(name)]")] = value
        }
        filter.attributes = normalised
        let vault = try await env.keyring.vault(for: workspaceId)
        let contacts = try await env.database.read { [filter] db in
            try await ContactRepository(db, vault: vault).list(filter: filter, afterId: afterId, limit: limit + 1)
        }
        return Page.slice(contacts, limit: limit, id: \.id)
    }

    public func events(workspaceId: String, email rawEmail: String, cursor: String?, limit: Int?) async throws -> Page<ContactEvent> {
        let email = try EmailAddress(rawEmail)
        let limit = try Self.pageSize(limit)
        let afterId = try cursor.map(Cursor.decode)
        let vault = try await env.keyring.vault(for: workspaceId)
        let events = try await env.database.read { db in
            guard let contactId = try await ContactRepository(db, vault: vault).findId(email: email) else {
                throw Self.notFound
            }
            return try await EventRepository(db, workspaceId: workspaceId).list(contactId: contactId, afterId: afterId, limit: limit + 1)
        }
        var opened: [ContactEvent] = []
        for stored in events { opened.append(try await vault.openProperties(of: stored)) }
        return Page.slice(opened, limit: limit, id: \.id)
    }

    /// Everything held about one person, for access and portability requests (GDPR Art. 15 and 20).
    public struct Export: Sendable {
        public var contact: Contact
        public var events: [ContactEvent]
        /// What marketing mail the person receives, and every change of it.
        public var subscriptions: SubscriptionService.Subscriptions
        public var subscriptionChanges: [SubscriptionService.HistoryEntry]
        public var generatedAt: Date
    }

    /// Reading everything about a person is itself recorded (`contact.exported`).
    public func export(workspaceId: String, email rawEmail: String, by actor: AuditActor) async throws -> Export {
        let email = try EmailAddress(rawEmail)
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let (contact, stored, subscriptions, changes) = try await env.database.transaction { db in
            guard let contact = try await ContactRepository(db, vault: vault).find(email: email) else {
                throw Self.notFound
            }
            let events = try await EventRepository(db, workspaceId: workspaceId).list(contactId: contact.id, afterId: nil, limit: nil)
            let subscriptions = try await SubscriptionService.read(contactId: contact.id, status: contact.status, workspaceId: workspaceId, db: db)
            let slugs = Dictionary(uniqueKeysWithValues: subscriptions.topics.map { ($0.topic.id, $0.topic.slug) })
            let changes = try await SubscriptionRepository(db, workspaceId: workspaceId).changes(contactId: contact.id, afterId: nil, limit: nil)
                .map { SubscriptionService.HistoryEntry(change: $0, topicSlug: $0.topicId.flatMap { slugs[$0] }) }
            try await audit.record(
                AuditChange("contact.exported", target: ("contact", contact.id), summary: [
                    "email": .string(vault.pseudonym(email.value)), "events": .number(Double(events.count)),
                ]),
                in: workspaceId, by: actor, db: db
            )
            return (contact, events, subscriptions, changes)
        }
        var events: [ContactEvent] = []
        for event in stored { events.append(try await vault.openProperties(of: event)) }
        return Export(contact: contact, events: events, subscriptions: subscriptions, subscriptionChanges: changes, generatedAt: now)
    }

    static func pageSize(_ limit: Int?) throws(DomainError) -> Int {
        guard let limit else { return defaultPageSize }
        guard (1...maxPageSize).contains(limit) else {
            throw .invalid("invalid_limit", "The limit must be between 1 and \(maxPageSize).", field: "limit")
        }
        return limit
    }

    static let notFound = DomainError.notFound("contact_not_found", "No contact with this email address exists in this workspace.")
}

extension Page {
    /// Builds a page from `limit + 1` fetched items: the extra one only tells that more exist.
    static func slice(_ fetched: [Item], limit: Int, id: KeyPath<Item, String>) -> Page {
        guard fetched.count > limit else { return Page(items: fetched, nextCursor: nil) }
        let items = Array(fetched.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { Cursor.encode($0[keyPath: id]) })
    }
}

/// Opaque pagination cursors: base64url of the last id seen, so clients don't build them.
enum Cursor {
    static func encode(_ id: String) -> String {
        Data(id.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decode(_ cursor: String) throws(DomainError) -> String {
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard cursor.count <= 100, let data = Data(base64Encoded: base64),
              let id = String(data: data, encoding: .utf8),
              id.utf8.allSatisfy({ $0 == 95 || ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) })
        else {
            throw .invalid("invalid_cursor", "The cursor is not one this API returned.", field: "cursor")
        }
        return id
    }
}
