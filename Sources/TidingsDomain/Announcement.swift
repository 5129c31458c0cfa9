import Foundation

/// A saved audience: a name and a filter over contacts' attributes and events.
public struct Segment: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var name: String
    public var filter: SegmentFilter
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, workspaceId: String, name: String, filter: SegmentFilter, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.workspaceId = workspaceId
        self.name = name
        self.filter = filter
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    /// Names are shown in lists; they are not personal data.
    public static let maxNameLength = 200

    public static func validateName(_ raw: String, field: String = "name") throws(DomainError) -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw .invalid("invalid_name", "The field '\(field)' must not be empty.", field: field) }
        guard name.count <= maxNameLength, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw .invalid("invalid_name", "The field '\(field)' must be at most \(maxNameLength) characters, without control characters.", field: field)
        }
        return name
    }
}

/// Where an announcement stands.
///
/// `draft` → (`send`) → `scheduled` until its `sendAt`, then `sending` while contacts are
/// read and their messages queued → `sent` once every contact was considered (delivery goes
/// on; `finishedAt` is set when every message is final). `paused` stops both the queueing and
/// the delivery of messages not yet sent; `cancelled` ends it, cancelling what was not sent.
public enum AnnouncementStatus: String, Sendable, CaseIterable, Codable {
    case draft, scheduled, sending, paused, sent, cancelled

    /// States from which nothing more happens on its own.
    public var isFinal: Bool { self == .sent || self == .cancelled }
}

/// Mail to many contacts at once: a template, an audience (everyone or a segment), an
/// optional topic, and a time.
public struct Announcement: Sendable, Equatable {
    public var id: String
    public var workspaceId: String
    public var name: String
    public var templateSlug: String
    /// `nil`: every contact.
    public var segmentId: String?
    /// The topic it is sent under: contacts unsubscribed from it are skipped.
    public var topic: String?
    /// A security or outage notice: reaches contacts who unsubscribed too (never bounced ones).
    public var critical: Bool
    /// Open and click tracking for its messages, over the workspace's settings; `nil`: as the
    /// workspace says.
    public var tracking: TrackingOverride?
    public var status: AnnouncementStatus
    /// When `send` was asked for a later time.
    public var sendAt: Date?
    /// Progress of the fan-out, kept with it so a restart continues where it stopped.
    public var progress: Progress
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    /// When the last contact was considered.
    public var queuedAt: Date?
    /// When every message reached a final state (or the announcement was cancelled).
    public var finishedAt: Date?

    /// What the fan-out has done so far.
    public struct Progress: Sendable, Equatable {
        /// The last contact id considered (contacts are read in id order).
        public var cursor: String?
        /// Contacts read.
        public var considered: Int
        /// Messages created (queued, or suppressed for a bounced mailbox).
        public var messages: Int
        /// Contacts left out because they are not in the segment.
        public var notInSegment: Int
        /// Contacts left out because they unsubscribed (from everything, or from the topic).
        public var unsubscribed: Int

        public init(cursor: String? = nil, considered: Int = 0, messages: Int = 0, notInSegment: Int = 0, unsubscribed: Int = 0) {
            self.cursor = cursor
            self.considered = considered
            self.messages = messages
            self.notInSegment = notInSegment
            self.unsubscribed = unsubscribed
        }
    }

    public init(
        id: String, workspaceId: String, name: String, templateSlug: String, segmentId: String?, topic: String?, critical: Bool,
        status: AnnouncementStatus, sendAt: Date?, tracking: TrackingOverride? = nil, progress: Progress = Progress(), createdAt: Date, updatedAt: Date,
        startedAt: Date? = nil, queuedAt: Date? = nil, finishedAt: Date? = nil
    ) {
        self.id = id
        self.workspaceId = workspaceId
        self.name = name
        self.templateSlug = templateSlug
        self.segmentId = segmentId
        self.topic = topic
        self.critical = critical
        self.tracking = tracking
        self.status = status
        self.sendAt = sendAt
        self.progress = progress
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.startedAt = startedAt
        self.queuedAt = queuedAt
        self.finishedAt = finishedAt
    }
}
