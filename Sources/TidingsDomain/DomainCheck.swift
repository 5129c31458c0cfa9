import Foundation

/// What one check of a sending domain's DNS found: a DKIM key per selector, the SPF
/// record, the DMARC policy.
public struct DomainCheck: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case dkim, spf, dmarc
    }

    /// Ordered by severity: a domain is as good as its worst check.
    public enum Status: String, Sendable, Codable, CaseIterable, Comparable {
        /// Published and correct.
        case pass
        /// Works, but should be improved (a DMARC policy of `none`, a key in testing mode, …).
        case warning
        /// DNS could not be asked (timeout, server failure): nothing is known.
        case error
        /// Missing or wrong: receivers will not authenticate the domain's mail.
        case fail

        var rank: Int {
            switch self {
            case .pass: 0
            case .warning: 1
            case .error: 2
            case .fail: 3
            }
        }

        public static func < (lhs: Status, rhs: Status) -> Bool { lhs.rank < rhs.rank }
    }

    public var kind: Kind
    /// The DKIM selector (DKIM checks only).
    public var selector: String?
    /// The DNS name that was asked.
    public var name: String
    public var status: Status
    /// The TXT records found at `name` that the check read (SPF: the `v=spf1` ones).
    public var records: [String]
    /// What was found, in a sentence or two.
    public var summary: String
    /// What to change in DNS; `nil` when nothing needs changing.
    public var fix: String?
    /// SPF: the DNS lookups evaluating the record takes, and how many of them found nothing.
    public var lookups: Int?
    public var voidLookups: Int?
    /// DMARC: the policy receivers apply (`none`, `quarantine`, `reject`).
    public var policy: String?

    public init(
        kind: Kind, selector: String? = nil, name: String, status: Status, records: [String], summary: String, fix: String? = nil,
        lookups: Int? = nil, voidLookups: Int? = nil, policy: String? = nil
    ) {
        self.kind = kind
        self.selector = selector
        self.name = name
        self.status = status
        self.records = records
        self.summary = summary
        self.fix = fix
        self.lookups = lookups
        self.voidLookups = voidLookups
        self.policy = policy
    }

    /// Names the check among a domain's: `spf`, `dmarc`, or `dkim:<selector>`.
    public var key: String {
        if kind == .dkim, let selector { return "dkim:\(selector)" }
        return kind.rawValue
    }
}

/// The latest checks of a sending domain, or (in lists) just their outcome.
public struct DomainVerification: Sendable, Equatable {
    /// The worst status of the checks.
    public var status: DomainCheck.Status
    public var checkedAt: Date
    /// `nil` in a summary.
    public var checks: [DomainCheck]?

    public init(checkedAt: Date, checks: [DomainCheck]) {
        self.status = Self.worst(checks.map(\.status))
        self.checkedAt = checkedAt
        self.checks = checks
    }

    public init(summary status: DomainCheck.Status, checkedAt: Date) {
        self.status = status
        self.checkedAt = checkedAt
        self.checks = nil
    }

    public static func worst(_ statuses: [DomainCheck.Status]) -> DomainCheck.Status {
        statuses.max() ?? .pass
    }
}
