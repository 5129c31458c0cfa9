import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// The webhook endpoints of one workspace; URLs and secrets sealed.
public struct WebhookRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    static let table = "webhooks"
    private static let columns = """
        id, url_sealed, host, description, events, status, secret_sealed, previous_secret_sealed, previous_secret_expires_at,
        failing_since, disabled_at, disabled_reason, created_at, updated_at
        """

    public func insert(_ webhook: Webhook) async throws {
        precondition(webhook.workspaceId == workspaceId)
        try await db.raw("""
            INSERT INTO webhooks (\(unsafeRaw: Self.columns), workspace_id)
            VALUES (\(bind: webhook.id), \(bind: try seal(webhook.url, "url", webhook.id)), \(bind: webhook.host), \(bind: webhook.description),
                    \(bind: Self.events(webhook.events)), \(bind: webhook.status.rawValue), \(bind: try seal(webhook.secret, "secret", webhook.id)),
                    \(bind: try webhook.previousSecret.map { try seal($0, "previous_secret", webhook.id) }),
                    \(bind: webhook.previousSecretExpiresAt.map(Timestamp.format)), \(bind: webhook.failingSince.map(Timestamp.format)),
                    \(bind: webhook.disabledAt.map(Timestamp.format)), \(bind: webhook.disabledReason),
                    \(bind: Timestamp.format(webhook.createdAt)), \(bind: Timestamp.format(webhook.updatedAt)), \(bind: workspaceId))
            """).run()
    }

    /// Writes what a person changes: URL, host, description, events, secrets, status. The
    /// failure streak (`failing_since`) is the worker's and is left alone.
    public func update(_ webhook: Webhook) async throws {
        precondition(webhook.workspaceId == workspaceId)
        try await db.raw("""
            UPDATE webhooks SET url_sealed = \(bind: try seal(webhook.url, "url", webhook.id)), host = \(bind: webhook.host),
                description = \(bind: webhook.description), events = \(bind: Self.events(webhook.events)), status = \(bind: webhook.status.rawValue),
                secret_sealed = \(bind: try seal(webhook.secret, "secret", webhook.id)),
                previous_secret_sealed = \(bind: try webhook.previousSecret.map { try seal($0, "previous_secret", webhook.id) }),
                previous_secret_expires_at = \(bind: webhook.previousSecretExpiresAt.map(Timestamp.format)),
                disabled_at = \(bind: webhook.disabledAt.map(Timestamp.format)), disabled_reason = \(bind: webhook.disabledReason),
                updated_at = \(bind: Timestamp.format(webhook.updatedAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: webhook.id)
            """).run()
    }

    public func find(id: String) async throws -> Webhook? {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM webhooks WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// Oldest first.
    public func list() async throws -> [Webhook] {
        var webhooks: [Webhook] = []
        for row in try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM webhooks WHERE workspace_id = \(bind: workspaceId) ORDER BY id
            """).all() {
            webhooks.append(try await decode(row))
        }
        return webhooks
    }

    public func count() async throws -> Int {
        try await db.raw("SELECT COUNT(*) AS n FROM webhooks WHERE workspace_id = \(bind: workspaceId)").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    public func delete(id: String) async throws -> Bool {
        try await db.raw("DELETE FROM webhooks WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) RETURNING id").first() != nil
    }

    /// The enabled endpoints and the event types each subscribes to (nothing is opened: this
    /// runs in the transaction of every change that emits events).
    public func subscriptions() async throws -> [(id: String, events: Set<String>)] {
        try await db.raw("""
            SELECT id, events FROM webhooks WHERE workspace_id = \(bind: workspaceId) AND status = 'enabled' ORDER BY id
            """).all().map { row in
            (try row.decode(column: "id", as: String.self),
             Set(try row.decode(column: "events", as: String.self).split(separator: " ").map(String.init)))
        }
    }

    /// Records a failed attempt: the streak starts at `at` unless it runs already. Returns
    /// since when the endpoint has been failing, and whether it is still enabled.
    public func recordFailure(id: String, at: Date) async throws -> (failingSince: Date, enabled: Bool)? {
        guard let row = try await db.raw("""
            UPDATE webhooks SET failing_since = COALESCE(failing_since, \(bind: Timestamp.format(at)))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            RETURNING failing_since, status
            """).first() else { return nil }
        return (try row.decodeTimestamp("failing_since"), try row.decode(column: "status", as: String.self) == Webhook.Status.enabled.rawValue)
    }

    /// Ends a failure streak.
    public func recordSuccess(id: String) async throws {
        try await db.raw("""
            UPDATE webhooks SET failing_since = NULL WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND failing_since IS NOT NULL
            """).run()
    }

    /// Disables an enabled endpoint; `false` when it was not enabled (another worker was first).
    public func disable(id: String, reason: String, at: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE webhooks SET status = 'disabled', disabled_at = \(bind: Timestamp.format(at)), disabled_reason = \(bind: reason),
                updated_at = \(bind: Timestamp.format(at))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status = 'enabled'
            RETURNING id
            """).first() != nil
    }

    /// Enables a disabled endpoint with a fresh start; `false` when it was not disabled.
    public func enable(id: String, at: Date) async throws -> Bool {
        try await db.raw("""
            UPDATE webhooks SET status = 'enabled', disabled_at = NULL, disabled_reason = NULL, failing_since = NULL,
                updated_at = \(bind: Timestamp.format(at))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id) AND status = 'disabled'
            RETURNING id
            """).first() != nil
    }

    static func events(_ types: [WebhookEventType]) -> String {
        types.map(\.rawValue).joined(separator: " ")
    }

    private func seal(_ value: String, _ column: String, _ id: String) throws -> String {
        try vault.seal(value, table: Self.table, column: column, row: id)
    }

    private func decode(_ row: any SQLRow) async throws -> Webhook {
        let id = try row.decode(column: "id", as: String.self)
        func open(_ column: String) async throws -> String? {
            guard let sealed = try row.decode(column: "\(column)_sealed", as: String?.self) else { return nil }
            return try await vault.open(sealed, table: Self.table, column: column, row: id)
        }
        guard let status = Webhook.Status(rawValue: try row.decode(column: "status", as: String.self)),
              let url = try await open("url"), let secret = try await open("secret") else {
            throw StorageError.corruptValue(column: "webhooks")
        }
        return Webhook(
            id: id, workspaceId: workspaceId, url: url, host: try row.decode(column: "host", as: String.self),
            description: try row.decode(column: "description", as: String?.self),
            // A type a later version no longer knows is dropped rather than failing the read.
            events: try row.decode(column: "events", as: String.self).split(separator: " ").compactMap { WebhookEventType(rawValue: String($0)) },
            status: status, secret: secret, previousSecret: try await open("previous_secret"),
            previousSecretExpiresAt: try row.decodeOptionalTimestamp("previous_secret_expires_at"),
            failingSince: try row.decodeOptionalTimestamp("failing_since"), disabledAt: try row.decodeOptionalTimestamp("disabled_at"),
            disabledReason: try row.decode(column: "disabled_reason", as: String?.self),
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
