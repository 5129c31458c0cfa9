import Foundation

/// What a segment filter judges: one contact's attributes and a summary of its events.
///
/// The event summary is, per slug, the times of the most recent occurrences. A caller
/// need not load every event: for each slug in ``SegmentFilter/eventRequirements`` it
/// loads the newest `n` occurrence times (or all, when there are fewer), e.g. with
/// `ORDER BY occurred_at DESC LIMIT n`. That is enough because "at least `n` within
/// the window" holds exactly when the `n`-th newest occurrence lies within it. Slugs the
/// filter does not name may be left out.
public struct SegmentSubject: Sendable, Equatable {
    /// Attributes by normalised name, as on ``Contact/attributes``.
    public var attributes: [String: AttributeValue]
    /// Occurrence times by normalised slug, newest first.
    public private(set) var eventTimes: [String: [Date]]

    /// - Parameter eventTimes: occurrence times by slug, in any order; they are sorted here.
    public init(attributes: [String: AttributeValue], eventTimes: [String: [Date]] = [:]) {
        self.attributes = attributes
        self.eventTimes = eventTimes.mapValues { $0.sorted(by: >) }
    }

    /// A contact's attributes with the occurrence times loaded for it.
    public init(contact: Contact, eventTimes: [String: [Date]] = [:]) {
        self.init(attributes: contact.attributes, eventTimes: eventTimes)
    }
}

extension SegmentFilter {
    /// For each event slug the filter names, how many of the newest occurrence times a
    /// ``SegmentSubject`` must carry for an exact answer: the highest `atLeast` used with
    /// that slug.
    public var eventRequirements: [String: Int] {
        var result: [String: Int] = [:]
        func collect(_ filter: SegmentFilter) {
            for condition in filter.conditions {
                switch condition {
                case .attribute: break
                case .event(let slug, let test): result[slug] = max(result[slug] ?? 0, test.atLeast)
                case .group(let inner): collect(inner)
                }
            }
        }
        collect(self)
        return result
    }

    /// The attribute names the filter looks at: a caller need load (and open) only these.
    public var attributeNames: Set<String> {
        var result = Set<String>()
        func collect(_ filter: SegmentFilter) {
            for condition in filter.conditions {
                switch condition {
                case .attribute(let name, _): result.insert(name)
                case .event: break
                case .group(let inner): collect(inner)
                }
            }
        }
        collect(self)
        return result
    }

    /// Whether the contact belongs to the segment at the instant `now`.
    ///
    /// `all` holds when every condition holds, `any` when at least one does; nested
    /// groups are judged the same way. The meaning of each condition is documented on
    /// ``SegmentAttributeTest/matches(_:)`` and ``SegmentEventTest/matches(_:now:)``.
    public func matches(_ subject: SegmentSubject, now: Date) -> Bool {
        switch match {
        case .all: conditions.allSatisfy { $0.matches(subject, now: now) }
        case .any: conditions.contains { $0.matches(subject, now: now) }
        }
    }
}

extension SegmentCondition {
    public func matches(_ subject: SegmentSubject, now: Date) -> Bool {
        switch self {
        case .attribute(let name, let test): test.matches(subject.attributes[name])
        case .event(let slug, let test): test.matches(subject.eventTimes[slug] ?? [], now: now)
        case .group(let filter): filter.matches(subject, now: now)
        }
    }
}

extension SegmentAttributeTest {
    /// Judges one attribute value; `nil` when the contact does not have the attribute.
    ///
    /// - `eq`: the attribute is set and equal to the value. Values of different kinds are
    ///   never equal: the string `"42"` is not the number `42`, and the string `"true"` is
    ///   not the boolean `true`, because the client chose the kind when it stored the
    ///   attribute (and a string such as `"007"` is an identifier, not a number). Strings
    ///   are compared case-insensitively (`Pro` equals `pro`, `Ann@Example.com` equals
    ///   `ann@example.com`); numbers as numbers (`3` equals `3.0`); dates as described below.
    /// - `neq`: exactly the negation of `eq`, so a contact without the attribute, or with a
    ///   value of another kind, is "not equal".
    /// - `contains`: the attribute is a string holding the value, case-insensitively.
    ///   Numbers, booleans and dates never contain anything.
    /// - `gt` / `lt`: the attribute is a number greater / less than a number bound, or a
    ///   date later / earlier than a date bound. Any other kind, or a missing attribute,
    ///   never matches (neither `gt` nor `lt`).
    /// - `exists`: the attribute is set (`true`) or not (`false`).
    ///
    /// Dates: two date-times compare as instants (`2024-03-01T10:00:00+02:00` equals
    /// `2024-03-01T08:00:00Z`). When either side is a date without a time, both are
    /// compared by their UTC calendar day: `eq 2024-03-01` matches any instant of that
    /// day, `gt 2024-03-01` means from 2024-03-02 on, `lt 2024-03-01` means before it.
    public func matches(_ stored: AttributeValue?) -> Bool {
        switch self {
        case .exists(let expected):
            return (stored != nil) == expected
        case .equals(let value):
            guard let stored else { return false }
            return Self.equal(stored, value)
        case .notEquals(let value):
            guard let stored else { return true }
            return !Self.equal(stored, value)
        case .contains(let needle):
            guard case .string(let text)? = stored else { return false }
            return text.lowercased().contains(needle.lowercased())
        case .greaterThan(let bound):
            guard let stored else { return false }
            return Self.order(stored, bound) == .orderedDescending
        case .lessThan(let bound):
            guard let stored else { return false }
            return Self.order(stored, bound) == .orderedAscending
        }
    }

    static func equal(_ left: AttributeValue, _ right: AttributeValue) -> Bool {
        switch (left, right) {
        case (.string(let a), .string(let b)): a.lowercased() == b.lowercased()
        case (.number(let a), .number(let b)): a == b
        case (.boolean(let a), .boolean(let b)): a == b
        case (.date(let a), .date(let b)): compareDates(a, b) == .orderedSame
        default: false
        }
    }

    /// Nil when the two cannot be ordered (different kinds, or strings and booleans).
    static func order(_ left: AttributeValue, _ right: AttributeValue) -> ComparisonResult? {
        switch (left, right) {
        case (.number(let a), .number(let b)):
            a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
        case (.date(let a), .date(let b)):
            compareDates(a, b)
        default:
            nil
        }
    }

    /// Compares canonical dates (see ``AttributeValue``): by UTC day when either has no
    /// time, otherwise as instants. Canonical date-times cannot be compared as text,
    /// because `…:00Z` and `…:00.000Z` are the same instant.
    static func compareDates(_ a: String, _ b: String) -> ComparisonResult {
        if a.utf8.count == 10 || b.utf8.count == 10 {
            return compare(a.prefix(10), b.prefix(10))
        }
        guard let first = Timestamp.parse(a), let second = Timestamp.parse(b) else {
            // Canonical values always parse; text order is the safe fallback.
            return compare(a[...], b[...])
        }
        return first < second ? .orderedAscending : (first > second ? .orderedDescending : .orderedSame)
    }

    private static func compare(_ a: Substring, _ b: Substring) -> ComparisonResult {
        a < b ? .orderedAscending : (a > b ? .orderedDescending : .orderedSame)
    }
}

extension SegmentEventTest {
    /// Judges the occurrence times of one slug, newest first.
    ///
    /// `did` holds when at least ``atLeast`` occurrences lie in the window: the last
    /// ``withinDays`` days of 24 hours, `now - withinDays × 86 400 s` included, or all
    /// time when there is no window. Occurrences later than `now` count as within it, so
    /// a client clock running slightly ahead does not hide an event. `didNot` is exactly
    /// the negation: fewer than `atLeast` occurrences in the window (none, by default).
    public func matches(_ newestFirst: [Date], now: Date) -> Bool {
        let cutoff = withinDays.map { now.addingTimeInterval(-Double($0) * 86_400) }
        var count = 0
        for time in newestFirst {
            if let cutoff, time < cutoff { break }
            count += 1
            if count >= atLeast { break }
        }
        return (count >= atLeast) == did
    }
}
