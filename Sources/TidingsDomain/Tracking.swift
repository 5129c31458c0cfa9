import Foundation

/// A workspace's choice about open and click tracking.
///
/// Everything is off until someone turns it on: an open pixel and rewritten links tell the
/// sender when and where a person read and clicked, which recipients did not agree to by
/// receiving mail. `opens` and `clicks` apply to announcements and automations;
/// transactional mail (`POST /v1/messages`, origin `api`) is tracked only when
/// `transactional` is on as well. A message's own `TrackingOverride` wins over all three.
public struct TrackingSettings: Sendable, Equatable {
    public var opens: Bool
    public var clicks: Bool
    /// Whether `opens` and `clicks` also apply to transactional mail.
    public var transactional: Bool
    /// When the settings last changed; `nil` while they are the defaults.
    public var updatedAt: Date?

    public init(opens: Bool = false, clicks: Bool = false, transactional: Bool = false, updatedAt: Date? = nil) {
        self.opens = opens
        self.clicks = clicks
        self.transactional = transactional
        self.updatedAt = updatedAt
    }

    /// A workspace that never changed its settings: nothing is tracked.
    public static let off = TrackingSettings()

    /// What a message gets: its own override where it has one, else the workspace's
    /// settings for its kind of mail.
    public func decide(origin: MessageOrigin, override: TrackingOverride?) -> TrackingDecision {
        let applies = origin.kind != .api || transactional
        return TrackingDecision(
            opens: override?.opens ?? (applies && opens),
            clicks: override?.clicks ?? (applies && clicks)
        )
    }
}

/// A message's own tracking choice, set by its sender (`"tracking"` in `POST /v1/messages`)
/// or by the announcement or automation that made it. A field left out follows the
/// workspace's settings.
public struct TrackingOverride: Sendable, Equatable, Codable {
    public var opens: Bool?
    public var clicks: Bool?

    public init(opens: Bool? = nil, clicks: Bool? = nil) {
        self.opens = opens
        self.clicks = clicks
    }

    /// Reads `{"opens": bool, "clicks": bool}` (either may be left out); other fields are refused.
    public init(json object: [String: JSONValue], field: String) throws(DomainError) {
        var reader = BodyReader(object)
        do throws(DomainError) {
            opens = try reader.bool("opens")
            clicks = try reader.bool("clicks")
            try reader.rejectUnknownFields()
        } catch {
            var error = error
            error.field = field + (error.field.map { ".\($0)" } ?? "")
            throw error
        }
    }
}

/// Whether one message carries an open pixel and tracked links.
public struct TrackingDecision: Sendable, Equatable {
    public var opens: Bool
    public var clicks: Bool

    public init(opens: Bool, clicks: Bool) {
        self.opens = opens
        self.clicks = clicks
    }

    public var any: Bool { opens || clicks }
}

/// What a tracking request recorded.
public enum TrackingEventKind: String, Sendable, CaseIterable {
    case open, click
}

/// How a message was read and clicked, as its detail shows it. Counts and first times are
/// of people only; requests flagged as machines (`TrackingBotPolicy`) are counted apart.
public struct MessageEngagement: Sendable, Equatable {
    public var opens: Int
    public var clicks: Int
    /// Opens and clicks made by proxies, scanners and prefetchers.
    public var botEvents: Int
    /// The first open by a person; a click counts as an open when the pixel was not loaded
    /// (images blocked), since the message must have been read.
    public var firstOpenedAt: Date?
    public var firstClickedAt: Date?

    public init(opens: Int, clicks: Int, botEvents: Int, firstOpenedAt: Date?, firstClickedAt: Date?) {
        self.opens = opens
        self.clicks = clicks
        self.botEvents = botEvents
        self.firstOpenedAt = firstOpenedAt
        self.firstClickedAt = firstClickedAt
    }
}
