import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// The delivery log of one workspace's webhook endpoints; request bodies and answers sealed.
public struct WebhookDeliveryRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    static let table = "webhook_deliveries"
    private static let columns = """
        id, webhook_id, event_type, status, attempts, response_status, response_sealed, error, duration_ms,
        first_attempt_at, last_attempt_at, next_attempt_at, created_at, updated_at
        """
    /// Rows per INSERT: well under SQLite's limit of bound values.
    static let insertBatch = 200

    /// A delivery to create: the log row and the body it will send.
    public struct New: Sendable {
        public var id: String
        public var webhookId: String
        public var eventType: String
        public var payload: String

        public init(id: String, webhookId: String, eventType: String, payload: String) {
            self.id = id
            self.webhookId = webhookId
            self.eventType = eventType
            self.payload = payload
        }
    }

    public func insert(_ deliveries: [New], at now: Date) async throws {
        let created = Timestamp.format(now)
        var start = 0
        while start < deliveries.count {
            let chunk = deliveries[start..<min(start + Self.insertBatch, deliveries.count)]
            start += chunk.count
            let rows = try chunk.map { delivery -> SQLQueryString in
                let sealed = try vault.seal(delivery.payload, table: Self.table, column: "payload", row: delivery.id)
                return """
                    (\(bind: delivery.id), \(bind: workspaceId), \(bind: delivery.webhookId), \(bind: delivery.eventType), \(bind: sealed), 'pending', \
                    \(bind: created), \(bind: created), \(bind: created))
                    """
            }
            try await db.raw("""
                INSERT INTO webhook_deliveries (id, workspace_id, webhook_id, event_type, payload_sealed, status, next_attempt_at, created_at, updated_at)
                VALUES \(rows.joined(separator: ", "))
                """).run()
        }
    }

    public func find(id: String) async throws -> WebhookDelivery? {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM webhook_deliveries WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// The body a delivery sends, exactly as it was written.
    public func payload(id: String) async throws -> String? {
        guard let sealed = try await db.raw("""
            SELECT payload_sealed FROM webhook_deliveries WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first()?.decode(column: "payload_sealed", as: String.self) else { return nil }
        return try await vault.open(sealed, table: Self.table, column: "payload", row: id)
    }

    /// An endpoint's deliveries, newest first, after the cursor `beforeId`.
    public func list(webhookId: String, status: WebhookDelivery.Status?, beforeId: String?, limit: Int) async throws -> [WebhookDelivery] {
        var query: SQLQueryString = """
            SELECT \(unsafeRaw: Self.columns) FROM webhook_deliveries WHERE workspace_id = \(bind: workspaceId) AND webhook_id = \(bind: webhookId)
            """
        if let status { query.appendInterpolation(" AND status = \(bind: status.rawValue)" as SQLQueryString) }
        if let beforeId { query.appendInterpolation(" AND id < \(bind: beforeId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id DESC LIMIT \(bind: limit)" as SQLQueryString)
        var deliveries: [WebhookDelivery] = []
        for row in try await db.raw(query).all() { deliveries.append(try await decode(row)) }
        return deliveries
    }

    /// Writes the outcome of an attempt.
    public func recordAttempt(_ delivery: WebhookDelivery) async throws {
        precondition(delivery.workspaceId == workspaceId)
        let response = try delivery.responseSnippet.map { try vault.seal($0, table: Self.table, column: "response", row: delivery.id) }
        try await db.raw("""
            UPDATE webhook_deliveries SET status = \(bind: delivery.status.rawValue), attempts = \(bind: delivery.attempts),
                response_status = \(bind: delivery.responseStatus), response_sealed = \(bind: response), error = \(bind: delivery.error),
                duration_ms = \(bind: delivery.durationMs), first_attempt_at = \(bind: delivery.firstAttemptAt.map(Timestamp.format)),
                last_attempt_at = \(bind: delivery.lastAttemptAt.map(Timestamp.format)),
                next_attempt_at = \(bind: delivery.nextAttemptAt.map(Timestamp.format)), updated_at = \(bind: Timestamp.format(delivery.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: delivery.id)
            """).run()
    }

    /// The ids of an endpoint's pending deliveries, oldest first.
    public func pendingIds(webhookId: String) async throws -> [String] {
        try await db.raw("""
            SELECT id FROM webhook_deliveries WHERE workspace_id = \(bind: workspaceId) AND webhook_id = \(bind: webhookId) AND status = 'pending'
            ORDER BY id
            """).all().map { try $0.decode(column: "id", as: String.self) }
    }

    /// Pending deliveries wait, unscheduled, while their endpoint is disabled.
    public func hold(webhookId: String, at now: Date) async throws {
        try await db.raw("""
            UPDATE webhook_deliveries SET next_attempt_at = NULL, updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND webhook_id = \(bind: webhookId) AND status = 'pending'
            """).run()
    }

    /// Pending deliveries of an endpoint enabled again are due now, each with a fresh retry window.
    public func resume(webhookId: String, at now: Date) async throws {
        try await db.raw("""
            UPDATE webhook_deliveries SET next_attempt_at = \(bind: Timestamp.format(now)), first_attempt_at = NULL,
                updated_at = \(bind: Timestamp.format(now))
            WHERE workspace_id = \(bind: workspaceId) AND webhook_id = \(bind: webhookId) AND status = 'pending'
            """).run()
    }

    /// Removes the queued jobs of an endpoint's deliveries (the endpoint is disabled or deleted).
    public func deleteJobs(webhookId: String, kind: String) async throws {
        try await db.raw("""
            DELETE FROM jobs WHERE workspace_id = \(bind: workspaceId) AND kind = \(bind: kind) AND subject_id IN (
                SELECT id FROM webhook_deliveries WHERE workspace_id = \(bind: workspaceId) AND webhook_id = \(bind: webhookId)
            )
            """).run()
    }

    /// Deletes finished (succeeded or failed) deliveries last changed before `cutoff`, in every
    /// workspace (run in the instance scope), at most `limit` at a time; returns how many.
    public static func purge(finishedBefore cutoff: Date, limit: Int, db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            DELETE FROM webhook_deliveries WHERE id IN (
                SELECT id FROM webhook_deliveries WHERE status IN ('succeeded', 'failed') AND updated_at < \(bind: Timestamp.format(cutoff))
                LIMIT \(bind: limit)
            )
            RETURNING id
            """).all().count
    }

    private func decode(_ row: any SQLRow) async throws -> WebhookDelivery {
        let id = try row.decode(column: "id", as: String.self)
        guard let status = WebhookDelivery.Status(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw StorageError.corruptValue(column: "webhook_deliveries.status")
        }
        var snippet: String?
        if let sealed = try row.decode(column: "response_sealed", as: String?.self) {
            snippet = try await vault.open(sealed, table: Self.table, column: "response", row: id)
        }
        return WebhookDelivery(
            id: id, workspaceId: workspaceId, webhookId: try row.decode(column: "webhook_id", as: String.self),
            eventType: try row.decode(column: "event_type", as: String.self), status: status, attempts: try row.decode(column: "attempts", as: Int.self),
            responseStatus: try row.decode(column: "response_status", as: Int?.self), responseSnippet: snippet,
            error: try row.decode(column: "error", as: String?.self), durationMs: try row.decode(column: "duration_ms", as: Int?.self),
            firstAttemptAt: try row.decodeOptionalTimestamp("first_attempt_at"), lastAttemptAt: try row.decodeOptionalTimestamp("last_attempt_at"),
            nextAttemptAt: try row.decodeOptionalTimestamp("next_attempt_at"),
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
