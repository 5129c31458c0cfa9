import Foundation
import SQLKit
import TidingsDomain

/// Daily counts of a workspace's mail, read from indexes over a bounded time range.
///
/// Each count is dated by the day (UTC) its event happened: a final status by the time the
/// message reached it (`messages_final`), an open or click by the first one made by a
/// person (`message_engagement`), machine requests by their time (`tracking_events`).
/// Every query reads an index range of `[from, until)` only, so its cost follows the
/// messages of the days asked for, not the size of the workspace.
public struct StatsRepository: Sendable {
    let db: any SQLDatabase
    let workspaceId: String

    public init(_ db: any SQLDatabase, workspaceId: String) {
        self.db = db
        self.workspaceId = workspaceId
    }

    /// Which messages count.
    public struct Filter: Sendable, Equatable {
        public var templateSlug: String?
        public var originKind: MessageOrigin.Kind?
        public var originId: String?

        public init(templateSlug: String? = nil, originKind: MessageOrigin.Kind? = nil, originId: String? = nil) {
            self.templateSlug = templateSlug
            self.originKind = originKind
            self.originId = originId
        }

        var isEmpty: Bool { templateSlug == nil && originKind == nil && originId == nil }

        /// ` AND …` on the messages table under `alias`.
        func conditions(_ alias: String) -> SQLQueryString {
            var sql: SQLQueryString = ""
            if let templateSlug { sql.appendInterpolation(" AND \(ident: alias).template_slug = \(bind: templateSlug)" as SQLQueryString) }
            if let originKind { sql.appendInterpolation(" AND \(ident: alias).origin_kind = \(bind: originKind.rawValue)" as SQLQueryString) }
            if let originId { sql.appendInterpolation(" AND \(ident: alias).origin_id = \(bind: originId)" as SQLQueryString) }
            return sql
        }
    }

    /// Counts by day (`YYYY-MM-DD`) and name.
    public typealias Counts = [String: [String: Int]]

    /// Messages that reached `delivered`, `bounced`, `failed` or `suppressed`, by day and status.
    public func finalStatuses(from: Date, until: Date, filter: Filter) async throws -> Counts {
        let rows = try await db.raw("""
            SELECT substr(m.updated_at, 1, 10) AS day, m.status AS name, COUNT(*) AS n FROM messages m
            WHERE m.workspace_id = \(bind: workspaceId) AND m.status IN ('delivered', 'bounced', 'failed', 'suppressed')
              AND m.updated_at >= \(bind: Timestamp.format(from)) AND m.updated_at < \(bind: Timestamp.format(until))\(filter.conditions("m"))
            GROUP BY substr(m.updated_at, 1, 10), m.status
            """).all()
        return try Self.counts(rows)
    }

    /// Messages first opened (`opened`) and first clicked (`clicked`) by a person, by day.
    public func engagement(from: Date, until: Date, filter: Filter) async throws -> Counts {
        var counts: Counts = [:]
        for (column, name) in [("first_opened_at", "opened"), ("first_clicked_at", "clicked")] {
            var query = SQLQueryString("SELECT substr(e.\(unsafeRaw: column), 1, 10) AS day, '\(unsafeRaw: name)' AS name, COUNT(*) AS n FROM message_engagement e")
            if !filter.isEmpty {
                query.appendInterpolation(" JOIN messages m ON m.id = e.message_id AND m.workspace_id = e.workspace_id" as SQLQueryString)
            }
            query.appendInterpolation("""
                 WHERE e.workspace_id = \(bind: workspaceId) AND e.\(unsafeRaw: column) >= \(bind: Timestamp.format(from))
                  AND e.\(unsafeRaw: column) < \(bind: Timestamp.format(until))
                """ as SQLQueryString)
            if !filter.isEmpty { query.appendInterpolation(filter.conditions("m")) }
            query.appendInterpolation(" GROUP BY substr(e.\(unsafeRaw: column), 1, 10)" as SQLQueryString)
            counts.merge(try Self.counts(try await db.raw(query).all())) { $0.merging($1) { $1 } }
        }
        return counts
    }

    /// Requests taken for machines', by day: `botOpens` and `botClicks`.
    public func machineEvents(from: Date, until: Date, filter: Filter) async throws -> Counts {
        var query = SQLQueryString("""
            SELECT substr(t.at, 1, 10) AS day, CASE WHEN t.kind = 'open' THEN 'botOpens' ELSE 'botClicks' END AS name, COUNT(*) AS n
            FROM tracking_events t
            """)
        if !filter.isEmpty {
            query.appendInterpolation(" JOIN messages m ON m.id = t.message_id AND m.workspace_id = t.workspace_id" as SQLQueryString)
        }
        query.appendInterpolation("""
             WHERE t.workspace_id = \(bind: workspaceId) AND t.at >= \(bind: Timestamp.format(from)) AND t.at < \(bind: Timestamp.format(until))
              AND t.is_bot = TRUE
            """ as SQLQueryString)
        if !filter.isEmpty { query.appendInterpolation(filter.conditions("m")) }
        query.appendInterpolation(" GROUP BY substr(t.at, 1, 10), t.kind" as SQLQueryString)
        return try Self.counts(try await db.raw(query).all())
    }

    static func counts(_ rows: [any SQLRow]) throws -> Counts {
        var counts: Counts = [:]
        for row in rows {
            let day = try row.decode(column: "day", as: String.self)
            counts[day, default: [:]][try row.decode(column: "name", as: String.self), default: 0] += try row.decode(column: "n", as: Int.self)
        }
        return counts
    }
}
