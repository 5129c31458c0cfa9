import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// The latest checks of one workspace's sending domains; what each check found is sealed.
public struct DomainCheckRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    /// Replaces the domain's checks and schedules its next daily check. Returns the status
    /// each check had before, by `DomainCheck.key`.
    @discardableResult
    public func replace(domainId: String, with checks: [DomainCheck], at now: Date, nextCheckAt: Date) async throws -> [String: DomainCheck.Status] {
        var previous: [String: DomainCheck.Status] = [:]
        for row in try await db.raw("""
            SELECT check_key, status FROM domain_checks WHERE workspace_id = \(bind: workspaceId) AND domain_id = \(bind: domainId)
            """).all() {
            previous[try row.decode(column: "check_key", as: String.self)] = try Self.status(row)
        }
        try await db.raw("DELETE FROM domain_checks WHERE workspace_id = \(bind: workspaceId) AND domain_id = \(bind: domainId)").run()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for (position, check) in checks.enumerated() {
            let json = String(decoding: try encoder.encode(check), as: UTF8.self)
            try await db.raw("""
                INSERT INTO domain_checks (domain_id, workspace_id, check_key, position, status, result_sealed, checked_at)
                VALUES (\(bind: domainId), \(bind: workspaceId), \(bind: check.key), \(bind: position), \(bind: check.status.rawValue),
                        \(bind: try vault.seal(json, table: "domain_checks", column: "result", row: "\(domainId)/\(check.key)")),
                        \(bind: Timestamp.format(now)))
                """).run()
        }
        try await db.raw("""
            UPDATE sending_domains SET next_check_at = \(bind: Timestamp.format(nextCheckAt))
            WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: domainId)
            """).run()
        return previous
    }

    /// The domain's latest checks, in the order they were made; `nil` before the first.
    public func latest(domainId: String) async throws -> DomainVerification? {
        let rows = try await db.raw("""
            SELECT check_key, result_sealed, checked_at FROM domain_checks
            WHERE workspace_id = \(bind: workspaceId) AND domain_id = \(bind: domainId) ORDER BY position
            """).all()
        guard let first = rows.first else { return nil }
        let decoder = JSONDecoder()
        var checks: [DomainCheck] = []
        for row in rows {
            let key = try row.decode(column: "check_key", as: String.self)
            let json = try await vault.open(
                try row.decode(column: "result_sealed", as: String.self), table: "domain_checks", column: "result", row: "\(domainId)/\(key)"
            )
            checks.append(try decoder.decode(DomainCheck.self, from: Data(json.utf8)))
        }
        return DomainVerification(checkedAt: try first.decodeTimestamp("checked_at"), checks: checks)
    }

    /// The outcome of every checked domain of the workspace, by domain id (no keys needed).
    public func summaries() async throws -> [String: DomainVerification] {
        var statuses: [String: (statuses: [DomainCheck.Status], checkedAt: Date)] = [:]
        for row in try await db.raw("""
            SELECT domain_id, status, checked_at FROM domain_checks WHERE workspace_id = \(bind: workspaceId)
            """).all() {
            let id = try row.decode(column: "domain_id", as: String.self)
            let checkedAt = try row.decodeTimestamp("checked_at")
            statuses[id, default: ([], checkedAt)].statuses.append(try Self.status(row))
        }
        return statuses.mapValues { DomainVerification(summary: DomainVerification.worst($0.statuses), checkedAt: $0.checkedAt) }
    }

    private static func status(_ row: any SQLRow) throws -> DomainCheck.Status {
        guard let status = DomainCheck.Status(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw StorageError.corruptValue(column: "domain_checks.status")
        }
        return status
    }

    // MARK: The daily run (instance scope)

    /// A domain whose daily check is due.
    public struct Due: Sendable, Equatable {
        public var workspaceId: String
        public var domainId: String
        public var domain: String
    }

    /// Domains of every workspace never checked or due by `now`, longest waiting first.
    public static func due(at now: Date, limit: Int, in db: any SQLDatabase) async throws -> [Due] {
        try await db.raw("""
            SELECT workspace_id, id, domain FROM sending_domains
            WHERE next_check_at IS NULL OR next_check_at <= \(bind: Timestamp.format(now))
            ORDER BY COALESCE(next_check_at, ''), id LIMIT \(literal: limit)
            """).all().map { row in
            Due(
                workspaceId: try row.decode(column: "workspace_id", as: String.self), domainId: try row.decode(column: "id", as: String.self),
                domain: try row.decode(column: "domain", as: String.self)
            )
        }
    }

    /// Moves a due domain's next check to `next`; `false` when another instance got there
    /// first (the domain is no longer due), so each domain is checked once a day.
    public static func claim(_ due: Due, at now: Date, next: Date, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            UPDATE sending_domains SET next_check_at = \(bind: Timestamp.format(next))
            WHERE workspace_id = \(bind: due.workspaceId) AND id = \(bind: due.domainId)
              AND (next_check_at IS NULL OR next_check_at <= \(bind: Timestamp.format(now)))
            RETURNING id
            """).first() != nil
    }
}
