import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// A workspace's webhook endpoints (`/v1/webhooks`): creating, changing, rotating secrets,
/// enabling again after they were disabled, and their delivery log. Secrets are shown once,
/// when made; URLs and secrets are sealed at rest; the audit log names an endpoint by id and
/// host, never by its URL (which may hold a token).
public struct WebhookService: Sendable {
    let env: ServiceEnvironment
    let settings: WebhookSettings
    let targets: WebhookTargets
    /// Wakes the local webhook worker when deliveries are queued again.
    let signal: JobSignal?

    public init(_ env: ServiceEnvironment, settings: WebhookSettings, targets: WebhookTargets, signal: JobSignal? = nil) {
        self.env = env
        self.settings = settings
        self.targets = targets
        self.signal = signal
    }

    static let notFound = DomainError.notFound("webhook_not_found", "No webhook with this id exists in this workspace.")

    static func checkId(_ id: String) throws(DomainError) {
        guard id.hasPrefix("wh_"), id.utf8.count < 100 else { throw notFound }
    }

    // MARK: Endpoints

    /// `POST /v1/webhooks {"url", "events", "description"?}`. The answer is the only time the
    /// secret is shown.
    public func create(workspaceId: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Webhook {
        var reader = BodyReader(body)
        let rawURL = try reader.string("url", required: true)!
        guard let names = try reader.stringArray("events") else {
            throw DomainError.invalid("missing_field", "The field 'events' is required: the event types to deliver.", field: "events")
        }
        let events = try WebhookEventType.parseList(names)
        let description = try reader.string("description").flatMap { text throws(DomainError) in try Webhook.validateDescription(text) }
        try reader.rejectUnknownFields()
        let target = try await targets.checkForSaving(rawURL)
        let now = env.now()
        let webhook = Webhook(
            id: Identifier.make("wh", at: now), workspaceId: workspaceId, url: target.url, host: target.host, description: description,
            events: events, status: .enabled, secret: WebhookSignature.makeSecret(), createdAt: now, updatedAt: now
        )
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let webhooks = WebhookRepository(db, vault: vault)
            guard try await webhooks.count() < Webhook.maxPerWorkspace else {
                throw DomainError(.conflict, code: "too_many_webhooks", message: "A workspace has at most \(Webhook.maxPerWorkspace) webhooks; delete one first.")
            }
            try await webhooks.insert(webhook)
            try await audit.record(AuditChange("webhook.created", target: ("webhook", webhook.id), summary: [
                "host": .string(webhook.host), "events": .array(webhook.events.map { .string($0.rawValue) }),
            ]), in: workspaceId, by: actor, db: db)
        }
        return webhook
    }

    public func list(workspaceId: String) async throws -> [Webhook] {
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in try await WebhookRepository(db, vault: vault).list() }
    }

    public func get(workspaceId: String, id: String) async throws -> Webhook {
        try Self.checkId(id)
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let webhook = try await env.database.read({ db in try await WebhookRepository(db, vault: vault).find(id: id) }) else {
            throw Self.notFound
        }
        return webhook
    }

    /// `PATCH`: changes the fields given (`description: null` removes it). A new URL passes the
    /// same checks as at creation; the secret stays.
    public func update(workspaceId: String, id: String, body: [String: JSONValue], by actor: AuditActor) async throws -> Webhook {
        try Self.checkId(id)
        var reader = BodyReader(body)
        let rawURL = try reader.string("url")
        let events = try reader.stringArray("events").map { names throws(DomainError) in try WebhookEventType.parseList(names) }
        let description = try reader.string("description").flatMap { text throws(DomainError) in try Webhook.validateDescription(text) }
        try reader.rejectUnknownFields()
        let target = try await rawURL.asyncMap { try await targets.checkForSaving($0) }
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        return try await env.database.transaction { db in
            let webhooks = WebhookRepository(db, vault: vault)
            guard var webhook = try await webhooks.find(id: id) else { throw Self.notFound }
            if let target {
                webhook.url = target.url
                webhook.host = target.host
            }
            if let events { webhook.events = events }
            // null or an empty text removes the description.
            if body["description"] != nil { webhook.description = description }
            webhook.updatedAt = now
            try await webhooks.update(webhook)
            try await audit.record(AuditChange("webhook.updated", target: ("webhook", webhook.id), summary: [
                "host": .string(webhook.host), "fields": .array(body.keys.sorted().map(JSONValue.string)),
                "events": .array(webhook.events.map { .string($0.rawValue) }),
            ]), in: workspaceId, by: actor, db: db)
            return webhook
        }
    }

    /// Deletes the endpoint with its delivery log; what was still queued for it is not sent.
    public func delete(workspaceId: String, id: String, by actor: AuditActor) async throws {
        try Self.checkId(id)
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            let webhooks = WebhookRepository(db, vault: vault)
            guard let webhook = try await webhooks.find(id: id) else { throw Self.notFound }
            try await WebhookDeliveryRepository(db, vault: vault).deleteJobs(webhookId: id, kind: WebhookOutbox.jobKind)
            guard try await webhooks.delete(id: id) else { throw Self.notFound }
            try await audit.record(AuditChange("webhook.deleted", target: ("webhook", id), summary: ["host": .string(webhook.host)]),
                                   in: workspaceId, by: actor, db: db)
        }
    }

    /// A new secret, shown once in the answer. The one it replaces keeps signing next to it
    /// for `rotationOverlap` (both signatures in `webhook-signature`), so receivers can switch
    /// without losing a delivery; a secret older than that is dropped at once.
    public func rotateSecret(workspaceId: String, id: String, by actor: AuditActor) async throws -> Webhook {
        try Self.checkId(id)
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let overlap = settings.rotationOverlap
        return try await env.database.transaction { db in
            let webhooks = WebhookRepository(db, vault: vault)
            guard var webhook = try await webhooks.find(id: id) else { throw Self.notFound }
            webhook.previousSecret = webhook.secret
            webhook.previousSecretExpiresAt = now.addingTimeInterval(overlap)
            webhook.secret = WebhookSignature.makeSecret()
            webhook.updatedAt = now
            try await webhooks.update(webhook)
            try await audit.record(AuditChange("webhook.secret_rotated", target: ("webhook", id), summary: [
                "host": .string(webhook.host), "previousSecretExpiresAt": .string(Timestamp.format(webhook.previousSecretExpiresAt!)),
            ]), in: workspaceId, by: actor, db: db)
            return webhook
        }
    }

    /// Enables a disabled endpoint: its pending deliveries are due at once, each with a fresh
    /// retry window, and new events reach it again. An enabled endpoint is answered as it is.
    public func enable(workspaceId: String, id: String, by actor: AuditActor) async throws -> Webhook {
        try Self.checkId(id)
        let now = env.now()
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let (webhook, resumed) = try await env.database.transaction { db -> (Webhook, Int) in
            let webhooks = WebhookRepository(db, vault: vault)
            guard let existing = try await webhooks.find(id: id) else { throw Self.notFound }
            guard try await webhooks.enable(id: id, at: now) else { return (existing, 0) }
            let deliveries = WebhookDeliveryRepository(db, vault: vault)
            let pending = try await deliveries.pendingIds(webhookId: id)
            try await deliveries.resume(webhookId: id, at: now)
            // Any job left from before is replaced, so each pending delivery has exactly one.
            try await deliveries.deleteJobs(webhookId: id, kind: WebhookOutbox.jobKind)
            for start in stride(from: 0, to: pending.count, by: 500) {
                try await JobRepository(db).enqueue(pending[start..<min(start + 500, pending.count)].map {
                    (Identifier.make("job", at: now), workspaceId, WebhookOutbox.jobKind, $0, now)
                }, at: now)
            }
            try await audit.record(AuditChange("webhook.enabled", target: ("webhook", id), summary: [
                "host": .string(existing.host), "pendingDeliveries": .number(Double(pending.count)),
            ]), in: workspaceId, by: actor, db: db)
            guard let enabled = try await webhooks.find(id: id) else { throw Self.notFound }
            return (enabled, pending.count)
        }
        if resumed > 0 { signal?.wake() }
        return webhook
    }

    // MARK: Delivery log

    public struct DeliveryQuery: Sendable {
        public var status: String?
        public var cursor: String?
        public var limit: Int?

        public init(status: String? = nil, cursor: String? = nil, limit: Int? = nil) {
            self.status = status
            self.cursor = cursor
            self.limit = limit
        }
    }

    /// An endpoint's deliveries, newest first; `nextCursor` continues the list.
    public func deliveries(workspaceId: String, webhookId: String, query: DeliveryQuery) async throws -> Page<WebhookDelivery> {
        try Self.checkId(webhookId)
        let status = try query.status.map { text throws(DomainError) -> WebhookDelivery.Status in
            guard let status = WebhookDelivery.Status(rawValue: text) else {
                throw .invalid("invalid_status", "status must be one of \(WebhookDelivery.Status.allCases.map(\.rawValue).joined(separator: ", ")).", field: "status")
            }
            return status
        }
        let limit = query.limit ?? 50
        guard (1...200).contains(limit) else { throw DomainError.invalid("invalid_limit", "limit must be from 1 to 200.", field: "limit") }
        let before = try query.cursor.map { cursor throws(DomainError) -> String in
            let id = try Cursor.decode(cursor)
            guard id.hasPrefix("whd_") else { throw .invalid("invalid_cursor", "The cursor is not one this API returned.", field: "cursor") }
            return id
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            guard try await WebhookRepository(db, vault: vault).find(id: webhookId) != nil else { throw Self.notFound }
            let items = try await WebhookDeliveryRepository(db, vault: vault).list(webhookId: webhookId, status: status, beforeId: before, limit: limit + 1)
            guard items.count > limit else { return Page(items: items, nextCursor: nil) }
            let page = Array(items.prefix(limit))
            return Page(items: page, nextCursor: page.last.map { Cursor.encode($0.id) })
        }
    }

    /// Deletes finished deliveries older than the log's retention, in every workspace; returns
    /// how many. Run hourly by the server; pending deliveries stay whatever their age.
    @discardableResult
    public func purgeDeliveryLog() async throws -> Int {
        let cutoff = env.now().addingTimeInterval(-settings.logRetention)
        var purged = 0
        while true {
            let batch = try await TenantScope.with(.instance) {
                try await env.database.transaction { db in try await WebhookDeliveryRepository.purge(finishedBefore: cutoff, limit: 1000, db: db) }
            }
            purged += batch
            if batch < 1000 { return purged }
        }
    }
}

extension Optional {
    fileprivate func asyncMap<U>(_ transform: (Wrapped) async throws -> U) async rethrows -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
