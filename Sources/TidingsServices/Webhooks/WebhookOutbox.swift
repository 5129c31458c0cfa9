import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Where events for webhooks are written: inside the transaction of the change they tell of,
/// so an event is queued exactly when its change commits (a rolled-back change sends nothing,
/// a committed one is never lost). The webhook worker delivers what is queued.
///
/// ```swift
/// try await env.database.transaction { db in
///     // … the change …
///     try await WebhookOutbox.emit([WebhookEvent(.contactUnsubscribed, data: [...], at: now)],
///                                  workspaceId: workspaceId, vault: vault, db: db, now: now)
/// }
/// ```
public enum WebhookOutbox {
    public static let jobKind = "webhook.deliver"

    /// Queues one delivery (a log row and a job) per event and enabled endpoint subscribed to
    /// its type; nothing when no endpoint subscribes. The body is sealed with `vault` (the
    /// workspace's), as events name contacts. Returns how many deliveries were queued.
    @discardableResult
    public static func emit(_ events: [WebhookEvent], workspaceId: String, vault: Vault, db: any SQLDatabase, now: Date) async throws -> Int {
        precondition(vault.scope == workspaceId, "the workspace's own vault seals its events")
        guard !events.isEmpty else { return 0 }
        let endpoints = try await WebhookRepository(db, vault: vault).subscriptions()
        guard !endpoints.isEmpty else { return 0 }
        var deliveries: [WebhookDeliveryRepository.New] = []
        var jobs: [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)] = []
        for event in events {
            let subscribers = endpoints.filter { $0.events.contains(event.type.rawValue) }
            guard !subscribers.isEmpty else { continue }
            let payload = event.payload
            for endpoint in subscribers {
                let id = Identifier.make("whd", at: now)
                deliveries.append(.init(id: id, webhookId: endpoint.id, eventType: event.type.rawValue, payload: payload))
                jobs.append((Identifier.make("job", at: now), workspaceId, jobKind, id, now))
            }
        }
        guard !deliveries.isEmpty else { return 0 }
        try await WebhookDeliveryRepository(db, vault: vault).insert(deliveries, at: now)
        // In slices, to stay well under the bound values one statement may carry.
        for start in stride(from: 0, to: jobs.count, by: 500) {
            try await JobRepository(db).enqueue(Array(jobs[start..<min(start + 500, jobs.count)]), at: now)
        }
        return deliveries.count
    }
}
