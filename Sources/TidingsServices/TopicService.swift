import Foundation
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Topics (`/v1/topics`): the kinds of marketing mail a contact can leave one by one,
/// identified by slug like templates. Deleting a topic forgets who left it; contacts who had
/// left only that topic count as subscribed again.
public struct TopicService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    /// The preference page lists every topic, so a workspace keeps the list short.
    public static let maxTopics = 100
    public static let maxPageSize = 100
    public static let defaultPageSize = 50

    static let notFound = DomainError.notFound("topic_not_found", "No topic with this slug exists in this workspace.")

    /// `{slug, name?, description?}`; the name defaults to the slug.
    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Topic {
        var reader = BodyReader(body)
        let slug = try Topic.validateSlug(try reader.string("slug", required: true)!)
        let name = try Topic.validateName(try reader.string("name") ?? slug)
        let description = try reader.string("description").flatMap { text throws(DomainError) in try Topic.validateDescription(text) }
        try reader.rejectUnknownFields()
        let now = env.now()
        let topic = Topic(
            id: Identifier.make("top", at: now), workspaceId: workspaceId, slug: slug, name: name, description: description,
            createdAt: now, updatedAt: now
        )
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let topics = TopicRepository(db, workspaceId: workspaceId)
            guard try await topics.count() < Self.maxTopics else {
                throw DomainError(.conflict, code: "too_many_topics", message: "A workspace has at most \(Self.maxTopics) topics; delete one first.")
            }
            guard try await topics.insert(topic) else {
                throw DomainError(.conflict, code: "topic_exists", message: "A topic with this slug already exists.", field: "slug")
            }
            try await audit.record(Self.change("topic.created", topic), in: workspaceId, by: actor, db: db)
        }
        return topic
    }

    public func get(workspaceId: String, slug: String) async throws -> Topic {
        guard (try? Topic.validateSlug(slug)) != nil,
              let topic = try await env.database.read({ db in try await TopicRepository(db, workspaceId: workspaceId).find(slug: slug) }) else {
            throw Self.notFound
        }
        return topic
    }

    /// By slug; `nextCursor` continues the list.
    public func list(workspaceId: String, cursor: String?, limit: Int?) async throws -> Page<Topic> {
        let limit = limit ?? Self.defaultPageSize
        guard (1...Self.maxPageSize).contains(limit) else {
            throw DomainError.invalid("invalid_limit", "The limit must be between 1 and \(Self.maxPageSize).", field: "limit")
        }
        let after = try cursor.map { cursor throws(DomainError) in try Cursor.decode(cursor) }
        let topics = try await env.database.read { db in
            try await TopicRepository(db, workspaceId: workspaceId).list(afterSlug: after, limit: limit + 1)
        }
        return Page.slice(topics, limit: limit, id: \.slug)
    }

    /// Changes `name` and `description` (`null` removes it); the slug cannot change.
    public func update(workspaceId: String, slug: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Topic {
        var reader = BodyReader(body)
        if let newSlug = try reader.string("slug"), newSlug != slug {
            throw DomainError.invalid("slug_immutable", "A topic's slug cannot change; create a new topic instead.", field: "slug")
        }
        let name = try reader.string("name").map { name throws(DomainError) in try Topic.validateName(name) }
        let description = try reader.string("description").map { text throws(DomainError) in try Topic.validateDescription(text) }
        let removesDescription = body["description"] == .null
        try reader.rejectUnknownFields()
        guard (try? Topic.validateSlug(slug)) != nil else { throw Self.notFound }
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let topics = TopicRepository(db, workspaceId: workspaceId)
            guard var topic = try await topics.find(slug: slug) else { throw Self.notFound }
            if let name { topic.name = name }
            if let description { topic.description = description }
            if removesDescription { topic.description = nil }
            topic.updatedAt = now
            try await topics.update(topic)
            try await audit.record(Self.change("topic.updated", topic), in: workspaceId, by: actor, db: db)
            return topic
        }
    }

    /// Deletes the topic. Contacts who had left only this topic are subscribed again.
    public func delete(workspaceId: String, slug: String, by actor: AuditActor) async throws {
        guard (try? Topic.validateSlug(slug)) != nil else { throw Self.notFound }
        let audit = try await env.auditRecorder()
        let now = env.now()
        try await env.database.transaction { db in
            let topics = TopicRepository(db, workspaceId: workspaceId)
            guard let topic = try await topics.find(slug: slug) else { throw Self.notFound }
            let subscriptions = SubscriptionRepository(db, workspaceId: workspaceId)
            let left = try await subscriptions.unsubscribeCount(topicId: topic.id)
            guard try await topics.delete(id: topic.id) else { throw Self.notFound }
            let settled = try await subscriptions.settlePartialStatuses(at: now)
            var change = Self.change("topic.deleted", topic)
            change.summary["unsubscribes"] = .number(Double(left))
            change.summary["contactsSubscribedAgain"] = .number(Double(settled))
            try await audit.record(change, in: workspaceId, by: actor, db: db)
        }
    }

    static func change(_ action: String, _ topic: Topic) -> AuditChange {
        AuditChange(action, target: ("topic", topic.id), summary: ["slug": .string(topic.slug), "name": .string(topic.name)])
    }
}
