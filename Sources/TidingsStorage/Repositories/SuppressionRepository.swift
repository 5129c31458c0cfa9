import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// A workspace's contacts that no longer receive mail because their mailbox does not exist.
public struct SuppressionRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    public struct Entry: Sendable, Equatable {
        public var contactId: String
        public var email: String
        public var reason: String
        /// The server's reply that caused it.
        public var reply: String?
        public var messageId: String?
        public var createdAt: Date
    }

    /// Suppresses the contact (again: the latest bounce is kept).
    public func add(contactId: String, reason: String, reply: String?, messageId: String?, at now: Date) async throws {
        let sealed = try reply.map { try vault.seal($0, table: "suppressions", column: "reply", row: contactId) }
        try await db.raw("""
            INSERT INTO suppressions (workspace_id, contact_id, reason, reply_sealed, message_id, created_at)
            VALUES (\(bind: workspaceId), \(bind: contactId), \(bind: reason), \(bind: sealed), \(bind: messageId), \(bind: Timestamp.format(now)))
            ON CONFLICT (workspace_id, contact_id) DO UPDATE SET reason = excluded.reason, reply_sealed = excluded.reply_sealed,
                message_id = excluded.message_id, created_at = excluded.created_at
            """).run()
    }

    public func remove(contactId: String) async throws -> Bool {
        try await db.raw("""
            DELETE FROM suppressions WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId) RETURNING contact_id
            """).first() != nil
    }

    public func contains(contactId: String) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM suppressions WHERE workspace_id = \(bind: workspaceId) AND contact_id = \(bind: contactId)
            """).first() != nil
    }

    /// By contact id, after the cursor.
    public func list(afterContactId: String?, limit: Int) async throws -> [Entry] {
        var query = SQLQueryString("""
            SELECT s.contact_id, s.reason, s.reply_sealed, s.message_id, s.created_at, c.email_sealed
            FROM suppressions s JOIN contacts c ON c.id = s.contact_id AND c.workspace_id = s.workspace_id
            WHERE s.workspace_id = \(bind: workspaceId)
            """)
        if let afterContactId { query.appendInterpolation(" AND s.contact_id > \(bind: afterContactId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY s.contact_id LIMIT \(bind: limit)" as SQLQueryString)
        var entries: [Entry] = []
        for row in try await db.raw(query).all() {
            let contactId = try row.decode(column: "contact_id", as: String.self)
            let email = try await vault.open(try row.decode(column: "email_sealed", as: String.self), table: "contacts", column: "email", row: contactId)
            var reply: String?
            if let sealed = try row.decode(column: "reply_sealed", as: String?.self) {
                reply = try await vault.open(sealed, table: "suppressions", column: "reply", row: contactId)
            }
            entries.append(Entry(
                contactId: contactId, email: email, reason: try row.decode(column: "reason", as: String.self), reply: reply,
                messageId: try row.decode(column: "message_id", as: String?.self), createdAt: try row.decodeTimestamp("created_at")
            ))
        }
        return entries
    }
}

/// Answers already given to requests that carried an `Idempotency-Key`.
public struct IdempotencyRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    public struct Stored: Sendable, Equatable {
        public var requestDigest: String
        public var status: Int
        public var response: String
        public var createdAt: Date

        public init(requestDigest: String, status: Int, response: String, createdAt: Date) {
            self.requestDigest = requestDigest
            self.status = status
            self.response = response
            self.createdAt = createdAt
        }
    }

    public func find(key: String) async throws -> Stored? {
        guard let row = try await db.raw("""
            SELECT request_digest, status, response, created_at FROM idempotency_keys
            WHERE workspace_id = \(bind: workspaceId) AND key = \(bind: key)
            """).first() else { return nil }
        return Stored(
            requestDigest: try row.decode(column: "request_digest", as: String.self), status: try row.decode(column: "status", as: Int.self),
            response: try row.decode(column: "response", as: String.self), createdAt: try row.decodeTimestamp("created_at")
        )
    }

    /// Stores the answer; a key older than `expiredBefore` is taken over. Returns false when
    /// a live entry for the key exists (a concurrent request with the same key won).
    public func save(key: String, _ stored: Stored, expiredBefore: Date) async throws -> Bool {
        try await db.raw("""
            INSERT INTO idempotency_keys (workspace_id, key, request_digest, status, response, created_at)
            VALUES (\(bind: workspaceId), \(bind: key), \(bind: stored.requestDigest), \(bind: stored.status), \(bind: stored.response),
                    \(bind: Timestamp.format(stored.createdAt)))
            ON CONFLICT (workspace_id, key) DO UPDATE SET request_digest = excluded.request_digest, status = excluded.status,
                response = excluded.response, created_at = excluded.created_at
            WHERE idempotency_keys.created_at < \(bind: Timestamp.format(expiredBefore))
            RETURNING key
            """).first() != nil
    }

    /// Forgets answers older than `before`, in every workspace (instance scope).
    public static func purge(before: Date, db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM idempotency_keys WHERE created_at < \(bind: Timestamp.format(before))").run()
    }
}
