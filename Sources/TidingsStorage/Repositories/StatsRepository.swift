import Foundation
import SQLKit
import TidingsDomain

/// Daily counts of a workspace's mail: counted from the messages and tracking tables for
/// the days still going on, and kept in `daily_stats` once a day is over.
///
/// Each count is dated by the day (UTC) its event happened: a final status by the time the
/// message reached it (`messages_final`), an open or click by the first one made by a
/// person (`message_engagement`), machine requests by their time (`tracking_events`). The
/// counting queries read an index range of `[from, until)` only. A day that is over never
/// changes again, so it is counted once, grouped by template and origin, and later reports
/// add up those rows: their cost follows the number of days and senders, not of messages.
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

        /// ` AND …` on a table with `template_slug`, `origin_kind` and `origin_id` under `alias`.
        func conditions(_ alias: String) -> SQLQueryString {
            var sql: SQLQueryString = ""
            if let templateSlug { sql.appendInterpolation(" AND \(ident: alias).template_slug = \(bind: templateSlug)" as SQLQueryString) }
            if let originKind { sql.appendInterpolation(" AND \(ident: alias).origin_kind = \(bind: originKind.rawValue)" as SQLQueryString) }
            if let originId { sql.appendInterpolation(" AND \(ident: alias).origin_id = \(bind: originId)" as SQLQueryString) }
            return sql
        }
    }

    /// One count: of `metric`, on `day` (`YYYY-MM-DD`), for the messages of one template and origin.
    public struct Row: Sendable, Equatable {
        public var day: String
        public var templateSlug: String
        public var originKind: String
        /// `""` for mail of no announcement or automation.
        public var originId: String
        public var metric: String
        public var count: Int

        public init(day: String, templateSlug: String, originKind: String, originId: String, metric: String, count: Int) {
            self.day = day
            self.templateSlug = templateSlug
            self.originKind = originKind
            self.originId = originId
            self.metric = metric
            self.count = count
        }
    }

    // MARK: Counting

    /// Everything counted from the source tables for `[from, until)`, narrowed by `filter`:
    /// final statuses (`delivered`, `bounced`, `failed`, `suppressed`), first opens and clicks by
    /// people (`opened`, `clicked`), and machine requests (`botOpens`, `botClicks`).
    public func count(from: Date, until: Date, filter: Filter) async throws -> [Row] {
        let start = Timestamp.format(from), end = Timestamp.format(until)
        var rows = try await Self.rows(try await db.raw("""
            SELECT substr(m.updated_at, 1, 10) AS day, m.template_slug, m.origin_kind, COALESCE(m.origin_id, '') AS origin_id,
                m.status AS metric, COUNT(*) AS n
            FROM messages m
            WHERE m.workspace_id = \(bind: workspaceId) AND m.status IN ('delivered', 'bounced', 'failed', 'suppressed')
              AND m.updated_at >= \(bind: start) AND m.updated_at < \(bind: end)\(filter.conditions("m"))
            GROUP BY substr(m.updated_at, 1, 10), m.template_slug, m.origin_kind, COALESCE(m.origin_id, ''), m.status
            """).all())
        for (column, metric) in [("first_opened_at", "opened"), ("first_clicked_at", "clicked")] {
            rows += try Self.rows(try await db.raw("""
                SELECT substr(e.\(unsafeRaw: column), 1, 10) AS day, m.template_slug, m.origin_kind, COALESCE(m.origin_id, '') AS origin_id,
                    '\(unsafeRaw: metric)' AS metric, COUNT(*) AS n
                FROM message_engagement e JOIN messages m ON m.id = e.message_id AND m.workspace_id = e.workspace_id
                WHERE e.workspace_id = \(bind: workspaceId) AND e.\(unsafeRaw: column) >= \(bind: start)
                  AND e.\(unsafeRaw: column) < \(bind: end)\(filter.conditions("m"))
                GROUP BY substr(e.\(unsafeRaw: column), 1, 10), m.template_slug, m.origin_kind, COALESCE(m.origin_id, '')
                """).all())
        }
        rows += try Self.rows(try await db.raw("""
            SELECT substr(t.at, 1, 10) AS day, m.template_slug, m.origin_kind, COALESCE(m.origin_id, '') AS origin_id,
                CASE WHEN t.kind = 'open' THEN 'botOpens' ELSE 'botClicks' END AS metric, COUNT(*) AS n
            FROM tracking_events t JOIN messages m ON m.id = t.message_id AND m.workspace_id = t.workspace_id
            WHERE t.workspace_id = \(bind: workspaceId) AND t.at >= \(bind: start) AND t.at < \(bind: end)
              AND t.is_bot = TRUE\(filter.conditions("m"))
            GROUP BY substr(t.at, 1, 10), m.template_slug, m.origin_kind, COALESCE(m.origin_id, ''), t.kind
            """).all())
        return rows
    }

    /// Contacts who unsubscribed (from everything or from a topic) in `[from, until)`, by the
    /// template and origin of the message whose link they used; changes made without a message
    /// (the API, a preference page reached otherwise) count for the workspace only.
    public func unsubscribed(from: Date, until: Date, filter: Filter) async throws -> [Row] {
        try Self.rows(try await db.raw("""
            SELECT substr(c.at, 1, 10) AS day, COALESCE(m.template_slug, '') AS template_slug, COALESCE(m.origin_kind, 'api') AS origin_kind,
                COALESCE(m.origin_id, '') AS origin_id, 'unsubscribed' AS metric, COUNT(DISTINCT c.contact_id) AS n
            FROM subscription_changes c LEFT JOIN messages m ON m.id = c.message_id AND m.workspace_id = c.workspace_id
            WHERE c.workspace_id = \(bind: workspaceId) AND c.change IN ('unsubscribed_all', 'unsubscribed_topic')
              AND c.at >= \(bind: Timestamp.format(from)) AND c.at < \(bind: Timestamp.format(until))\(filter.conditions("m"))
            GROUP BY substr(c.at, 1, 10), COALESCE(m.template_slug, ''), COALESCE(m.origin_kind, 'api'), COALESCE(m.origin_id, '')
            """).all())
    }

    static func rows(_ found: [any SQLRow]) throws -> [Row] {
        try found.map { row in
            Row(
                day: try row.decode(column: "day", as: String.self), templateSlug: try row.decode(column: "template_slug", as: String.self),
                originKind: try row.decode(column: "origin_kind", as: String.self), originId: try row.decode(column: "origin_id", as: String.self),
                metric: try row.decode(column: "metric", as: String.self), count: try row.decode(column: "n", as: Int.self)
            )
        }
    }

    // MARK: Days that are over

    /// When the workspace was created: no day before holds any of its mail.
    public func workspaceCreatedAt() async throws -> Date? {
        try await db.raw("SELECT created_at FROM workspaces WHERE id = \(bind: workspaceId)").first()?.decodeTimestamp("created_at")
    }

    /// The days of `[first, last]` whose counts are kept.
    public func keptDays(first: String, last: String) async throws -> Set<String> {
        Set(try await db.raw("""
            SELECT day FROM daily_stats_days WHERE workspace_id = \(bind: workspaceId) AND day >= \(bind: first) AND day <= \(bind: last)
            """).all().map { try $0.decode(column: "day", as: String.self) })
    }

    /// Keeps the counts of days that are over (`rows` holds only those days'). A day kept
    /// already (by another request at the same moment) stays as it was.
    public func keep(days: [String], rows: [Row], at now: Date) async throws {
        guard !days.isEmpty else { return }
        let stamp = Timestamp.format(now)
        let kept = Set(try await db.raw("""
            INSERT INTO daily_stats_days (workspace_id, day, counted_at)
            VALUES \(days.map { "(\(bind: workspaceId), \(bind: $0), \(bind: stamp))" as SQLQueryString }.joined(separator: ", "))
            ON CONFLICT (workspace_id, day) DO NOTHING RETURNING day
            """).all().map { try $0.decode(column: "day", as: String.self) })
        // Summed per key first: one source query may give a key twice (never, today; cheap to be sure).
        var sums: [[String]: Int] = [:]
        for row in rows where kept.contains(row.day) {
            sums[[row.day, row.templateSlug, row.originKind, row.originId, row.metric], default: 0] += row.count
        }
        for chunk in Array(sums.keys.sorted { $0.lexicographicallyPrecedes($1) }).chunked(500) {
            let values: [SQLQueryString] = chunk.map { key in
                "(\(bind: workspaceId), \(bind: key[0]), \(bind: key[1]), \(bind: key[2]), \(bind: key[3]), \(bind: key[4]), \(bind: sums[key]!))"
            }
            try await db.raw("""
                INSERT INTO daily_stats (workspace_id, day, template_slug, origin_kind, origin_id, metric, count)
                VALUES \(values.joined(separator: ", "))
                """).run()
        }
    }

    /// The kept counts of `[first, last]`, narrowed by `filter`, by day and metric.
    public func kept(first: String, last: String, filter: Filter) async throws -> [Row] {
        try Self.rows(try await db.raw("""
            SELECT s.day, '' AS template_slug, '' AS origin_kind, '' AS origin_id, s.metric, SUM(s.count) AS n FROM daily_stats s
            WHERE s.workspace_id = \(bind: workspaceId) AND s.day >= \(bind: first) AND s.day <= \(bind: last)\(filter.conditions("s"))
            GROUP BY s.day, s.metric
            """).all())
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
