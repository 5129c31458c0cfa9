import Foundation
import SQLKit
import TidingsDomain
import TidingsStorage

/// `GET /v1/stats`: a workspace's mail per day (UTC), for all of it or for one template,
/// announcement or automation.
///
/// Each number counts messages on the day their event happened:
/// - `delivered`: the receiving server accepted the message for the contact;
/// - `bounced`: it refused it for good;
/// - `sent`: `delivered` + `bounced`, the messages a receiving server gave a final answer
///   for (the base of bounce and open rates);
/// - `failed`: Tidings gave up (no answer in time, or the message could not be built);
/// - `suppressed`: not sent because the contact's mailbox had bounced before;
/// - `opened` / `clicked`: messages a person opened or clicked for the first time that day
///   (a click counts as an open too: the message was read with its images blocked);
///   requests by proxies, scanners and prefetchers are left out (`TrackingBotPolicy`) and
///   counted as `botOpens` / `botClicks` instead;
/// - `unsubscribed`: contacts who unsubscribed that day through these messages.
///
/// A day's numbers are counted from the messages while it goes on; an hour after it ended
/// they are counted once more, per template and origin, and kept (`daily_stats`): later
/// reports read those, and erasing a contact later leaves past days' numbers as they were.
public struct StatsService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    /// The numbers of each row and of the totals, in the order the API lists them.
    public static let metrics = ["sent", "delivered", "opened", "clicked", "bounced", "failed", "suppressed", "unsubscribed", "botOpens", "botClicks"]
    /// The longest range one request may ask for.
    public static let maxDays = 366
    /// Without `from`, the 30 days up to `to`.
    public static let defaultDays = 30

    public struct Query: Sendable {
        public var from: String?
        public var to: String?
        public var groupBy: String?
        public var templateSlug: String?
        public var announcementId: String?
        public var automationId: String?

        public init(
            from: String? = nil, to: String? = nil, groupBy: String? = nil, templateSlug: String? = nil, announcementId: String? = nil,
            automationId: String? = nil
        ) {
            self.from = from
            self.to = to
            self.groupBy = groupBy
            self.templateSlug = templateSlug
            self.announcementId = announcementId
            self.automationId = automationId
        }
    }

    public struct Day: Sendable, Equatable {
        /// `YYYY-MM-DD`.
        public var date: String
        /// One number per name in `metrics`.
        public var counts: [String: Int]
    }

    public struct Report: Sendable, Equatable {
        public var from: String
        public var to: String
        public var groupBy: String
        /// Every day of the range, oldest first, days without mail included.
        public var days: [Day]
        public var totals: [String: Int]
    }

    public func report(workspaceId: String, query: Query) async throws -> Report {
        let today = String(Timestamp.format(env.now()).prefix(10))
        let to = try query.to.map { text throws(DomainError) in try Self.day(text, field: "to") } ?? Self.day(today, field: "to")
        let from = try query.from.map { text throws(DomainError) in try Self.day(text, field: "from") }
            ?? to.addingTimeInterval(-Double(Self.defaultDays - 1) * 86400)
        guard from <= to else {
            throw DomainError.invalid("invalid_range", "'from' must not be after 'to'.", field: "from")
        }
        let count = Int((to.timeIntervalSince(from) / 86400).rounded()) + 1
        guard count <= Self.maxDays else {
            throw DomainError.invalid("range_too_long", "A report covers at most \(Self.maxDays) days; this range has \(count).", field: "to")
        }
        let groupBy = query.groupBy ?? "day"
        guard groupBy == "day" else {
            throw DomainError.invalid("invalid_group_by", "groupBy must be 'day'.", field: "groupBy")
        }
        var filter = StatsRepository.Filter()
        if let slug = query.templateSlug {
            filter.templateSlug = try Template.validateSlug(slug, field: "templateSlug")
        }
        switch (query.announcementId, query.automationId) {
        case (let announcement?, nil):
            filter.originKind = .announcement
            filter.originId = try Self.originId(announcement, field: "announcementId")
        case (nil, let automation?):
            filter.originKind = .automation
            filter.originId = try Self.originId(automation, field: "automationId")
        case (_?, _?):
            throw DomainError.invalid("conflicting_filters", "Give announcementId or automationId, not both.", field: "automationId")
        case (nil, nil):
            break
        }
        let until = to.addingTimeInterval(86400)
        var counts: [String: [String: Int]] = [:]
        for row in try await rows(workspaceId: workspaceId, from: from, until: until, filter: filter) {
            counts[row.day, default: [:]][row.metric, default: 0] += row.count
        }
        var days: [Day] = []
        var totals = Dictionary(uniqueKeysWithValues: Self.metrics.map { ($0, 0) })
        for index in 0..<count {
            let date = String(Timestamp.format(from.addingTimeInterval(Double(index) * 86400)).prefix(10))
            let found = counts[date] ?? [:]
            var row = Dictionary(uniqueKeysWithValues: Self.metrics.map { ($0, found[$0] ?? 0) })
            row["sent"] = row["delivered"]! + row["bounced"]!
            for metric in Self.metrics { totals[metric]! += row[metric]! }
            days.append(Day(date: date, counts: row))
        }
        return Report(
            from: String(Timestamp.format(from).prefix(10)), to: String(Timestamp.format(to).prefix(10)), groupBy: groupBy, days: days, totals: totals
        )
    }

    /// A day is over, and its counts are kept, an hour after it ended (UTC): late
    /// writes of other instances have long landed by then.
    static let settleTime: TimeInterval = 3600

    /// The counts of `[from, until)` (whole days) for the filter: kept counts for the days
    /// that are over (counting and keeping those not kept yet), counted ones for the others.
    func rows(workspaceId: String, from: Date, until: Date, filter: StatsRepository.Filter) async throws -> [StatsRepository.Row] {
        let now = env.now()
        let firstOpenDay = try Self.day(Self.text(now.addingTimeInterval(-Self.settleTime)), field: "to")
        let openFrom = min(max(from, firstOpenDay), until)
        // Days before the workspace existed hold nothing: they are neither counted nor kept.
        let created = try await env.database.read { db in try await StatsRepository(db, workspaceId: workspaceId).workspaceCreatedAt() }
        let born = try Self.day(Self.text(created ?? now), field: "from")
        let keptFrom = max(from, born)
        var rows: [StatsRepository.Row] = []
        if keptFrom < openFrom {
            let first = Self.text(keptFrom), last = Self.text(openFrom.addingTimeInterval(-86400))
            let kept = try await env.database.read { db in try await StatsRepository(db, workspaceId: workspaceId).keptDays(first: first, last: last) }
            let missing = stride(from: keptFrom, to: openFrom, by: 86400).map(Self.text).filter { !kept.contains($0) }
            if let firstMissing = missing.first, let lastMissing = missing.last {
                let spanFrom = try Self.day(firstMissing, field: "from"), spanUntil = try Self.day(lastMissing, field: "to").addingTimeInterval(86400)
                let fresh = try await env.database.read { db in
                    try await StatsRepository(db, workspaceId: workspaceId).count(from: spanFrom, until: spanUntil, filter: .init())
                        + Self.unsubscribed(db: db, workspaceId: workspaceId, from: spanFrom, until: spanUntil, filter: .init())
                }
                try await env.database.transaction { db in
                    try await StatsRepository(db, workspaceId: workspaceId).keep(days: missing, rows: fresh, at: now)
                }
            }
            rows += try await env.database.read { db in
                try await StatsRepository(db, workspaceId: workspaceId).kept(first: first, last: last, filter: filter)
            }
        }
        let countFrom = max(openFrom, keptFrom)
        if countFrom < until {
            rows += try await env.database.read { db in
                try await StatsRepository(db, workspaceId: workspaceId).count(from: countFrom, until: until, filter: filter)
                    + Self.unsubscribed(db: db, workspaceId: workspaceId, from: countFrom, until: until, filter: filter)
            }
        }
        return rows
    }

    static func text(_ day: Date) -> String {
        String(Timestamp.format(day).prefix(10))
    }

    /// Contacts who unsubscribed, by day (metric `unsubscribed`), template and origin of the
    /// message whose link they used (see `StatsRepository.unsubscribed`).
    static func unsubscribed(
        db: any SQLDatabase, workspaceId: String, from: Date, until: Date, filter: StatsRepository.Filter
    ) async throws -> [StatsRepository.Row] {
        try await StatsRepository(db, workspaceId: workspaceId).unsubscribed(from: from, until: until, filter: filter)
    }

    /// Midnight (UTC) of a `YYYY-MM-DD` date; anything else is a 422 naming `field`.
    static func day(_ text: String, field: String) throws(DomainError) -> Date {
        let bytes = Array(text.utf8)
        let shaped = bytes.count == 10 && bytes[4] == UInt8(ascii: "-") && bytes[7] == UInt8(ascii: "-")
            && bytes.enumerated().allSatisfy { index, byte in index == 4 || index == 7 || (48...57).contains(byte) }
        // A date that does not exist (2027-02-30) comes back as another day.
        guard shaped, let date = Timestamp.parse(text + "T00:00:00Z"), Timestamp.format(date).hasPrefix(text) else {
            throw .invalid("invalid_date", "The parameter '\(field)' must be a date such as 2027-01-31.", field: field)
        }
        return date
    }

    static func originId(_ text: String, field: String) throws(DomainError) -> String {
        guard (1...100).contains(text.utf8.count), text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
            throw .invalid("invalid_id", "The parameter '\(field)' is not an id this API gave out.", field: field)
        }
        return text
    }
}
