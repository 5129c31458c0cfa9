import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Who receives which marketing mail: a contact is subscribed, unsubscribed from all, or has
/// left some topics. Changed through the API (`/v1/contacts/{email}/subscriptions`), the
/// hosted preference page (`/u/{token}`) and RFC 8058 one-click POSTs; every change is written
/// to the contact's history and the audit log in the same transaction (`apply`).
///
/// Transactional mail (`POST /v1/messages`) ignores all of this; announcements and marketing
/// automations skip contacts `SubscriptionRepository.excluded` names, and the delivery worker
/// checks again just before sending.
public struct SubscriptionService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    public static let maxPageSize = 500
    public static let defaultPageSize = 50

    /// One topic and whether the contact still receives it (its own choice: while the contact
    /// is unsubscribed from all, no topic is sent whatever this says).
    public struct TopicState: Sendable, Equatable {
        public var topic: Topic
        public var subscribed: Bool
    }

    /// A contact's subscriptions: the overall state and every topic of the workspace, by slug.
    public struct Subscriptions: Sendable, Equatable {
        public var contactId: String
        public var status: SubscriptionStatus
        public var topics: [TopicState]
    }

    /// A change to make; what is left out stays as it is.
    public struct Update: Sendable {
        /// `true`: no marketing mail at all; `false`: marketing mail again (topics as chosen).
        public var unsubscribedFromAll: Bool?
        /// Topics by id, with whether the contact receives them.
        public var topics: [(topicId: String, subscribed: Bool)]
        /// Subscribe again to every topic the contact left.
        public var rejoinEveryTopic: Bool

        public init(unsubscribedFromAll: Bool? = nil, topics: [(topicId: String, subscribed: Bool)] = [], rejoinEveryTopic: Bool = false) {
            self.unsubscribedFromAll = unsubscribedFromAll
            self.topics = topics
            self.rejoinEveryTopic = rejoinEveryTopic
        }
    }

    /// How a change was made, and the message whose link was used (for statistics).
    public struct Source: Sendable {
        public var via: SubscriptionChange.Channel
        public var messageId: String?
        public var origin: MessageOrigin?

        public init(via: SubscriptionChange.Channel, messageId: String? = nil, origin: MessageOrigin? = nil) {
            self.via = via
            self.messageId = messageId
            self.origin = origin
        }

        public static let api = Source(via: .api)
    }

    // MARK: Changing subscriptions

    /// Changes one contact's subscriptions inside the caller's transaction: topic rows, the
    /// contact's status (a bounced contact stays `bounced`; its choice shows again once the
    /// bounce is cleared), the history, and the audit events `contact.unsubscribed`,
    /// `contact.resubscribed` and `contact.topics_changed` (the address as a pseudonym).
    /// Changing nothing records nothing. Returns `nil` when the contact does not exist.
    public static func apply(
        _ update: Update, contactId: String, vault: Vault, source: Source, actor: AuditActor, audit: AuditRecorder,
        db: any SQLDatabase, now: Date
    ) async throws -> Subscriptions? {
        let workspaceId = vault.scope
        let repository = SubscriptionRepository(db, workspaceId: workspaceId)
        // The contact's row is locked first: concurrent changes of one contact take turns.
        guard let status = try await repository.lockContact(contactId) else { return nil }
        let topics = try await TopicRepository(db, workspaceId: workspaceId).list()
        let byId = Dictionary(uniqueKeysWithValues: topics.map { ($0.id, $0) })
        let wasUnsubscribed = try await unsubscribedFromAll(status: status, contactId: contactId, repository: repository)
        let left = try await repository.unsubscribedTopicIds(contactId: contactId)

        var leave: [Topic] = []
        var rejoin: [Topic] = update.rejoinEveryTopic ? topics.filter { left.contains($0.id) } : []
        for choice in update.topics {
            guard let topic = byId[choice.topicId] else { continue }
            if choice.subscribed, left.contains(topic.id), !rejoin.contains(topic) { rejoin.append(topic) }
            if !choice.subscribed, !left.contains(topic.id), !leave.contains(topic) { leave.append(topic) }
        }
        leave.removeAll { topic in rejoin.contains(topic) }
        let unsubscribed = update.unsubscribedFromAll ?? wasUnsubscribed

        var changes: [SubscriptionChange] = []
        // The history is read in id order: ids made in one millisecond still follow each other,
        // and the ones before (the contact's row is locked, so no one else adds any now).
        var last = unsubscribed != wasUnsubscribed || !leave.isEmpty || !rejoin.isEmpty
            ? try await repository.lastChangeId(contactId: contactId) : nil
        func change(_ kind: SubscriptionChange.Kind, _ topic: Topic? = nil) -> SubscriptionChange {
            var id = Identifier.make("sc", at: now)
            if let previous = last, id <= previous, let next = Identifier.successor(of: previous, prefix: "sc") { id = next }
            last = id
            return SubscriptionChange(
                id: id, contactId: contactId, kind: kind, topicId: topic?.id, via: source.via,
                messageId: source.messageId, originKind: source.origin?.kind, originId: source.origin?.id, at: now
            )
        }
        if unsubscribed != wasUnsubscribed { changes.append(change(unsubscribed ? .unsubscribedAll : .resubscribedAll)) }
        changes += leave.map { change(.unsubscribedTopic, $0) } + rejoin.map { change(.resubscribedTopic, $0) }
        try await repository.unsubscribe(contactId: contactId, topicIds: leave.map(\.id), at: now)
        try await repository.resubscribe(contactId: contactId, topicIds: rejoin.map(\.id))
        try await repository.record(changes)

        let nowLeft = left.subtracting(rejoin.map(\.id)).union(leave.map(\.id))
        let state = SubscriptionStatus(unsubscribedFromAll: unsubscribed, topicsLeft: nowLeft.count)
        let contacts = ContactRepository(db, vault: vault)
        let newStatus = status == .bounced ? .bounced : state.contactStatus
        if !changes.isEmpty || newStatus != status {
            try await contacts.setStatus(contactId: contactId, newStatus, at: now)
        }
        if !changes.isEmpty {
            let pseudonym = try await contacts.email(contactId: contactId).map { vault.pseudonym($0.value) } ?? contactId
            var summary: [String: JSONValue] = ["email": .string(pseudonym), "via": .string(source.via.rawValue)]
            if let messageId = source.messageId { summary["message"] = .string(messageId) }
            if let origin = source.origin, origin.kind != .api {
                summary["origin"] = .string(origin.kind.rawValue)
                if let id = origin.id { summary["originId"] = .string(id) }
            }
            var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
            if unsubscribed != wasUnsubscribed {
                records.append((workspaceId, actor, AuditChange(unsubscribed ? "contact.unsubscribed" : "contact.resubscribed", target: ("contact", contactId), summary: summary)))
            }
            if !leave.isEmpty || !rejoin.isEmpty {
                var topicSummary = summary
                if !leave.isEmpty { topicSummary["unsubscribed"] = .array(leave.map { .string($0.slug) }) }
                if !rejoin.isEmpty { topicSummary["resubscribed"] = .array(rejoin.map { .string($0.slug) }) }
                records.append((workspaceId, actor, AuditChange("contact.topics_changed", target: ("contact", contactId), summary: topicSummary)))
            }
            try await audit.record(records, db: db)
            if (unsubscribed && !wasUnsubscribed) || !leave.isEmpty {
                var data: [String: JSONValue] = [
                    "contactId": .string(contactId), "all": .bool(unsubscribed && !wasUnsubscribed),
                    "topics": .array(leave.map { .string($0.slug) }), "via": .string(source.via.rawValue),
                ]
                if let email = try await contacts.email(contactId: contactId) { data["email"] = .string(email.value) }
                if let messageId = source.messageId { data["messageId"] = .string(messageId) }
                _ = try await WebhookOutbox.emit([WebhookEvent(.contactUnsubscribed, data: data, at: now)], workspaceId: workspaceId, vault: vault, db: db, now: now)
            }
        }
        return Subscriptions(contactId: contactId, status: state, topics: topics.map { TopicState(topic: $0, subscribed: !nowLeft.contains($0.id)) })
    }

    /// Whether the contact is unsubscribed from all: its status says so, except while a bounce
    /// hides it, when the history does.
    static func unsubscribedFromAll(status: ContactStatus, contactId: String, repository: SubscriptionRepository) async throws -> Bool {
        switch status {
        case .unsubscribed: true
        case .bounced: try await repository.unsubscribedFromAllInHistory(contactId: contactId)
        case .active, .partiallyUnsubscribed: false
        }
    }

    /// The contact's subscriptions as they are.
    static func read(contactId: String, status: ContactStatus, workspaceId: String, db: any SQLDatabase) async throws -> Subscriptions {
        let repository = SubscriptionRepository(db, workspaceId: workspaceId)
        let topics = try await TopicRepository(db, workspaceId: workspaceId).list()
        let left = try await repository.unsubscribedTopicIds(contactId: contactId)
        let unsubscribed = try await unsubscribedFromAll(status: status, contactId: contactId, repository: repository)
        return Subscriptions(
            contactId: contactId, status: SubscriptionStatus(unsubscribedFromAll: unsubscribed, topicsLeft: left.count),
            topics: topics.map { TopicState(topic: $0, subscribed: !left.contains($0.id)) }
        )
    }

    // MARK: API

    static let contactNotFound = DomainError.notFound("contact_not_found", "No contact with this email address exists in this workspace.")

    /// `GET /v1/contacts/{email}/subscriptions`.
    public func get(workspaceId: String, email raw: String) async throws -> Subscriptions {
        let email = try EmailAddress(raw)
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let contacts = ContactRepository(db, vault: vault)
            guard let contactId = try await contacts.findId(email: email), let status = try await contacts.status(contactId: contactId) else {
                throw Self.contactNotFound
            }
            return try await Self.read(contactId: contactId, status: status, workspaceId: workspaceId, db: db)
        }
    }

    /// `PATCH /v1/contacts/{email}/subscriptions`: `{"status"?, "topics"?: [{"slug" | "id", "subscribed"}]}`.
    ///
    /// - `status: "unsubscribed"`: no marketing mail at all; listed topics are set too (they
    ///   apply if the contact subscribes again).
    /// - `status: "subscribed"`: everything again, every topic included; listing a topic as
    ///   not subscribed contradicts it (422 `conflicting_topics`).
    /// - `status: "partially_unsubscribed"`: marketing mail again, the topics as listed; at
    ///   least one topic must end up left (422 `no_topic_left`).
    /// - no `status`: only the listed topics change.
    /// Topics not listed keep their state, so a client that does not know a newer topic never
    /// subscribes anyone to it by accident.
    public func update(workspaceId: String, email raw: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Subscriptions {
        let email = try EmailAddress(raw)
        var reader = BodyReader(body)
        let status = try reader.string("status").map { text throws(DomainError) in
            guard let status = SubscriptionStatus(rawValue: text) else {
                throw .invalid("invalid_status", "status must be one of \(SubscriptionStatus.allCases.map(\.rawValue).joined(separator: ", ")).", field: "status")
            }
            return status
        }
        let items = try reader.array("topics") ?? []
        try reader.rejectUnknownFields()
        guard items.count <= TopicService.maxTopics else {
            throw DomainError.invalid("too_many_topics", "At most \(TopicService.maxTopics) topics can be listed.", field: "topics")
        }
        var choices: [(field: String, slug: String?, id: String?, subscribed: Bool)] = []
        for (index, item) in items.enumerated() {
            let field = "topics[\(index)]"
            guard case .object(let object) = item else { throw DomainError.invalid("invalid_type", "Each topic must be an object.", field: field) }
            var topic = BodyReader(object)
            let slug = try topic.string("slug")
            let id = try topic.string("id")
            // The name as GET answers it may be sent back; it changes nothing.
            _ = try topic.string("name")
            guard let subscribed = try topic.bool("subscribed") else {
                throw DomainError.invalid("missing_field", "The field 'subscribed' is required.", field: "\(field).subscribed")
            }
            do {
                try topic.rejectUnknownFields()
            } catch {
                throw DomainError.invalid(error.code, error.message, field: "\(field).\(error.field ?? "")")
            }
            guard slug != nil || id != nil else {
                throw DomainError.invalid("missing_field", "Name the topic with 'slug' (or 'id').", field: "\(field).slug")
            }
            if status == .subscribed, !subscribed {
                throw DomainError.invalid(
                    "conflicting_topics", "status 'subscribed' means every topic; use 'partially_unsubscribed' to leave some.", field: "\(field).subscribed"
                )
            }
            choices.append((field, slug, id, subscribed))
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        let listed = choices
        return try await env.database.transaction { db in
            guard let contactId = try await ContactRepository(db, vault: vault).findId(email: email) else { throw Self.contactNotFound }
            let topics = try await TopicRepository(db, workspaceId: workspaceId).list()
            var seen = Set<String>()
            var update = Update(unsubscribedFromAll: status.map { $0 == .unsubscribed }, rejoinEveryTopic: status == .subscribed)
            for choice in listed {
                let found = topics.first { topic in
                    (choice.slug == nil || topic.slug == choice.slug) && (choice.id == nil || topic.id == choice.id)
                }
                guard let topic = found else {
                    throw DomainError.invalid(
                        "unknown_topic", "No topic with this \(choice.slug != nil ? "slug" : "id") exists in this workspace.",
                        field: "\(choice.field).\(choice.slug != nil ? "slug" : "id")"
                    )
                }
                guard seen.insert(topic.id).inserted else {
                    throw DomainError.invalid("duplicate_topic", "The topic '\(topic.slug)' is listed twice.", field: choice.field)
                }
                update.topics.append((topic.id, choice.subscribed))
            }
            guard let result = try await Self.apply(update, contactId: contactId, vault: vault, source: .api, actor: actor, audit: audit, db: db, now: now) else {
                throw Self.contactNotFound
            }
            if status == .partiallyUnsubscribed, result.status != .partiallyUnsubscribed {
                throw DomainError.invalid(
                    "no_topic_left", "status 'partially_unsubscribed' needs at least one topic with subscribed: false.", field: "topics"
                )
            }
            return result
        }
    }

    /// One entry of a contact's history, with the topic's slug while the topic exists.
    public struct HistoryEntry: Sendable {
        public var change: SubscriptionChange
        public var topicSlug: String?
    }

    /// `GET /v1/contacts/{email}/subscriptions/changes`: oldest first.
    public func history(workspaceId: String, email raw: String, cursor: String?, limit: Int?) async throws -> Page<HistoryEntry> {
        let email = try EmailAddress(raw)
        let limit = limit ?? Self.defaultPageSize
        guard (1...Self.maxPageSize).contains(limit) else {
            throw DomainError.invalid("invalid_limit", "The limit must be between 1 and \(Self.maxPageSize).", field: "limit")
        }
        let after = try cursor.map { cursor throws(DomainError) in try Cursor.decode(cursor) }
        let vault = try await env.keyring.vault(for: workspaceId)
        let entries = try await env.database.read { db in
            guard let contactId = try await ContactRepository(db, vault: vault).findId(email: email) else { throw Self.contactNotFound }
            let changes = try await SubscriptionRepository(db, workspaceId: workspaceId).changes(contactId: contactId, afterId: after, limit: limit + 1)
            let slugs = Dictionary(uniqueKeysWithValues: try await TopicRepository(db, workspaceId: workspaceId).list().map { ($0.id, $0.slug) })
            return changes.map { HistoryEntry(change: $0, topicSlug: $0.topicId.flatMap { slugs[$0] }) }
        }
        return Page.slice(entries, limit: limit, id: \.change.id)
    }

    // MARK: Unsubscribe links

    /// What the preference page shows to whoever holds a valid link.
    public struct Preferences: Sendable {
        public var workspaceName: String
        /// `j***@example.com`: enough to recognise one's address, not to learn someone else's.
        public var maskedEmail: String
        public var subscriptions: Subscriptions
        /// The topic of the message the link came in, if it had one.
        public var messageTopic: Topic?
    }

    /// What a valid link resolves to.
    struct Holder: Sendable {
        var token: UnsubscribeToken
        var vault: Vault
    }

    /// The token's workspace, contact and message, when the token is genuine and the workspace
    /// exists. Runs in the token's workspace scope. Everything else is `nil`, alike.
    private func resolve<T: Sendable>(_ token: String, _ body: @Sendable (Holder) async throws -> T?) async throws -> T? {
        guard let workspaceId = UnsubscribeToken.claimedWorkspace(token) else { return nil }
        return try await TenantScope.with(.workspace(workspaceId)) {
            guard try await env.database.read({ db in try await WorkspaceRepository.exists(id: workspaceId, in: db) }) else { return nil }
            let vault: Vault
            do {
                vault = try await env.keyring.vault(for: workspaceId)
            } catch is WorkspaceKeysDestroyed {
                return nil
            }
            guard let verified = UnsubscribeToken.verify(token, with: vault) else { return nil }
            return try await body(Holder(token: verified, vault: vault))
        }
    }

    /// The page behind `GET /u/{token}`; `nil` for a link that is not genuine or whose contact
    /// is gone.
    public func preferences(token: String) async throws -> Preferences? {
        try await resolve(token) { holder in
            try await env.database.read { db in try await Self.preferences(holder, db: db) }
        }
    }

    private static func preferences(_ holder: Holder, db: any SQLDatabase) async throws -> Preferences? {
        let workspaceId = holder.vault.scope
        let contactId = holder.token.contactId
        guard let email = try await ContactRepository(db, vault: holder.vault).email(contactId: contactId),
              let status = try await ContactRepository(db, vault: holder.vault).status(contactId: contactId) else { return nil }
        let subscriptions = try await read(contactId: contactId, status: status, workspaceId: workspaceId, db: db)
        var topic: Topic?
        if let messageId = holder.token.messageId,
           let topicId = try await SubscriptionRepository(db, workspaceId: workspaceId).messageOrigin(messageId: messageId, contactId: contactId)?.topicId {
            topic = subscriptions.topics.first { $0.topic.id == topicId }?.topic
        }
        return Preferences(
            workspaceName: try await WorkspaceRepository.name(id: workspaceId, in: db) ?? "", maskedEmail: email.masked,
            subscriptions: subscriptions, messageTopic: topic
        )
    }

    /// `POST /u/{token}`: the page's form. `shownTopics` are the slugs the page listed (a topic
    /// added since is left alone); of those, `subscribedTopics` were ticked.
    public func savePreferences(
        token: String, unsubscribeFromAll: Bool, shownTopics: Set<String>, subscribedTopics: Set<String>, actor: AuditActor
    ) async throws -> Preferences? {
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await resolve(token) { holder in
            try await env.database.transaction { db in
                let source = try await Self.source(.preferencePage, holder, db: db)
                let topics = try await TopicRepository(db, workspaceId: holder.vault.scope).list()
                let update = Update(
                    unsubscribedFromAll: unsubscribeFromAll,
                    topics: topics.filter { shownTopics.contains($0.slug) }.map { ($0.id, subscribedTopics.contains($0.slug)) }
                )
                guard try await Self.apply(
                    update, contactId: holder.token.contactId, vault: holder.vault, source: source, actor: actor, audit: audit, db: db, now: now
                ) != nil else { return nil }
                return try await Self.preferences(holder, db: db)
            }
        }
    }

    /// What a one-click POST did.
    public enum OneClickResult: Sendable, Equatable {
        /// The message had a topic: the contact left that topic.
        case leftTopic(Topic)
        /// The message had none (or its topic is gone): no marketing mail any more.
        case unsubscribedFromAll
    }

    /// `POST /u/{token}/one-click` (RFC 8058). The list a message belongs to is its topic when
    /// it had one, so the contact leaves that topic; a message without a topic belongs to all
    /// the workspace's marketing mail, so the contact leaves all of it. Repeating it changes
    /// nothing more.
    public func oneClick(token: String, actor: AuditActor) async throws -> OneClickResult? {
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await resolve(token) { holder in
            try await env.database.transaction { db in
                let source = try await Self.source(.oneClick, holder, db: db)
                var topic: Topic?
                if let topicId = source.origin?.topicId {
                    topic = try await TopicRepository(db, workspaceId: holder.vault.scope).find(id: topicId)
                }
                let update = topic.map { Update(topics: [($0.id, false)]) } ?? Update(unsubscribedFromAll: true)
                guard try await Self.apply(
                    update, contactId: holder.token.contactId, vault: holder.vault, source: source, actor: actor, audit: audit, db: db, now: now
                ) != nil else { return nil }
                return topic.map(OneClickResult.leftTopic) ?? .unsubscribedFromAll
            }
        }
    }

    /// The source of a change made through a link: the link's message and where it came from.
    private static func source(_ via: SubscriptionChange.Channel, _ holder: Holder, db: any SQLDatabase) async throws -> Source {
        guard let messageId = holder.token.messageId else { return Source(via: via) }
        let origin = try await SubscriptionRepository(db, workspaceId: holder.vault.scope).messageOrigin(messageId: messageId, contactId: holder.token.contactId)
        return Source(via: via, messageId: messageId, origin: origin)
    }

    // MARK: Links and headers in messages

    /// `publicURL` without a trailing slash.
    static func base(_ publicURL: String) -> String {
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    /// The preference page of `token` (`{{ unsubscribe_link }}`).
    public static func preferenceURL(publicURL: String, token: String) -> String {
        base(publicURL) + "/u/" + token
    }

    /// Where RFC 8058 one-click POSTs go; a GET there shows the preference page.
    public static func oneClickURL(publicURL: String, token: String) -> String {
        base(publicURL) + "/u/" + token + "/one-click"
    }

    /// `List-Unsubscribe` (one-click HTTPS, then mailto) and `List-Unsubscribe-Post` for a
    /// marketing message from `fromDomain`. The mailto goes to `unsubscribe@` the sender's
    /// domain with the token in the subject (a local part holds at most 64 octets and is not
    /// always kept case-sensitive, so the token does not fit there); Tidings does not read that
    /// mailbox. It is left out for a domain that is not ASCII.
    public static func listUnsubscribeHeaders(publicURL: String, token: String, fromDomain: String) -> [(name: String, value: String)] {
        var targets = ["<\(oneClickURL(publicURL: publicURL, token: token))>"]
        if !fromDomain.isEmpty, fromDomain.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ">") && $0 != UInt8(ascii: "?") }) {
            targets.append("<mailto:unsubscribe@\(fromDomain)?subject=unsubscribe-\(token)>")
        }
        return [("List-Unsubscribe", targets.joined(separator: ", ")), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    }
}
