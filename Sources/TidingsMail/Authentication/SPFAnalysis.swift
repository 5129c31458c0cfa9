import TidingsDNS

/// The SPF records published at a name.
public enum SPFLookup: Sendable, Equatable {
    /// The name does not exist (NXDOMAIN) or has no `v=spf1` record.
    case missing(nameExists: Bool)
    case one(String)
    /// More than one `v=spf1` record: a permanent error (RFC 7208 §4.5).
    case several([String])

    public static func fetch(_ name: DNSName, using lookup: any DNSLookup) async throws(DNSLookupError) -> SPFLookup {
        let texts: [String]
        do {
            texts = try await lookup.records(.txt, at: name).compactMap(\.text)
        } catch .nameNotFound {
            return .missing(nameExists: false)
        }
        let records = texts.filter(SPFRecord.isSPF)
        switch records.count {
        case 0: return .missing(nameExists: true)
        case 1: return .one(records[0])
        default: return .several(records)
        }
    }
}

/// Every DNS lookup an SPF record can cause, counted across its includes and redirects
/// without an address to evaluate (RFC 7208 §4.6.4): what a receiver evaluating it for
/// an address that matches nothing goes through. Problems that make the record a
/// permanent error are collected, not thrown, so the owner learns about all of them.
public struct SPFAnalysis: Sendable, Equatable {
    /// Terms that cost a lookup: include, a, mx, ptr, exists, redirect.
    public var lookups = 0
    /// Lookups that found nothing (NXDOMAIN or no records).
    public var voidLookups = 0
    /// The domains reached through include and redirect, lowercased.
    public var includedDomains: Set<String> = []
    /// The top-level terms that cost lookups, with what each costs including its includes.
    public var costs: [(term: String, lookups: Int)] = []
    /// The terms (at any depth) whose lookup found nothing.
    public var voidTerms: [String] = []
    /// What makes the record a permanent error for receivers, besides the two limits:
    /// includes and redirects without a usable record, loops, too many MX records.
    public var problems: [String] = []
    public var warnings: [String] = []

    public var exceedsLookupLimit: Bool { lookups > Self.lookupLimit }
    public var exceedsVoidLookupLimit: Bool { voidLookups > Self.voidLookupLimit }

    /// Every reason the record is a permanent error, the limits first.
    public var allProblems: [String] {
        var all: [String] = []
        if exceedsLookupLimit {
            all.append("Evaluating the record takes \(lookups) DNS lookups; the limit is \(Self.lookupLimit) (RFC 7208 §4.6.4).")
        }
        if exceedsVoidLookupLimit {
            all.append("\(voidLookups) of the record's lookups find nothing; receivers give up after \(Self.voidLookupLimit) (RFC 7208 §4.6.4).")
        }
        return all + problems
    }

    public static let lookupLimit = 10
    public static let voidLookupLimit = 2
    /// Past this, the walk stops counting: the verdict is clear and a deep tree costs queries.
    static let walkLimit = 40

    public static func == (lhs: SPFAnalysis, rhs: SPFAnalysis) -> Bool {
        lhs.lookups == rhs.lookups && lhs.voidLookups == rhs.voidLookups && lhs.includedDomains == rhs.includedDomains && lhs.voidTerms == rhs.voidTerms
            && lhs.costs.map(\.term) == rhs.costs.map(\.term) && lhs.costs.map(\.lookups) == rhs.costs.map(\.lookups)
            && lhs.problems == rhs.problems && lhs.warnings == rhs.warnings
    }

    /// Analyses `record`, published at `domain`.
    public static func analyse(_ record: SPFRecord, at domain: DNSName, using lookup: any DNSLookup) async throws(DNSLookupError) -> SPFAnalysis {
        var analysis = SPFAnalysis()
        analysis.warnings = record.warnings
        try await analysis.walk(record, at: domain, path: [domain], topLevel: true, lookup: lookup)
        return analysis
    }

    private mutating func walk(_ record: SPFRecord, at domain: DNSName, path: [DNSName], topLevel: Bool, lookup: any DNSLookup) async throws(DNSLookupError) {
        for directive in record.directives where directive.mechanism.isLookup {
            guard lookups <= Self.walkLimit else { return }
            let before = lookups
            lookups += 1
            switch directive.mechanism {
            case .include(let spec):
                try await follow(spec, from: domain, term: directive.text, path: path, lookup: lookup)
            case .a(let spec, _, _):
                guard let target = literalName(spec, default: domain, term: directive.text) else { break }
                if try await lookup.addresses(of: target).isEmpty {
                    voidLookups += 1
                    voidTerms.append(directive.text)
                    warnings.append("\(directive.text): \(target) has no A or AAAA record.")
                }
            case .mx(let spec, _, _):
                guard let target = literalName(spec, default: domain, term: directive.text) else { break }
                let exchanges = try await lookup.recordsOrNone(.mx, at: target)
                if exchanges.isEmpty {
                    voidLookups += 1
                    voidTerms.append(directive.text)
                    warnings.append("\(directive.text): \(target) has no MX record.")
                } else if exchanges.count > 10 {
                    problems.append("\(directive.text): \(target) has \(exchanges.count) MX records; an mx mechanism may look up at most 10 (RFC 7208 §4.6.4).")
                }
            case .ptr(let spec):
                guard let target = literalName(spec, default: domain, term: directive.text) else { break }
                if try await lookup.addresses(of: target).isEmpty {
                    voidLookups += 1
                    voidTerms.append(directive.text)
                }
            default:
                break
            }
            if topLevel { costs.append((directive.text, lookups - before)) }
        }
        guard let redirect = record.effectiveRedirect, lookups <= Self.walkLimit else { return }
        let before = lookups
        lookups += 1
        try await follow(redirect, from: domain, term: "redirect=\(redirect)", path: path, lookup: lookup)
        if topLevel { costs.append(("redirect=\(redirect)", lookups - before)) }
    }

    /// Follows an include or redirect to the record it names.
    private mutating func follow(_ spec: String, from domain: DNSName, term: String, path: [DNSName], lookup: any DNSLookup) async throws(DNSLookupError) {
        guard let target = literalName(spec, default: domain, term: term) else { return }
        includedDomains.insert(target.description.lowercased())
        guard !path.contains(target) else {
            problems.append("\(term) leads back to \(target): a loop (\(path.map(\.description).joined(separator: " → ")) → \(target)).")
            return
        }
        switch try await SPFLookup.fetch(target, using: lookup) {
        case .missing(let nameExists):
            voidLookups += 1
            voidTerms.append(term)
            problems.append(nameExists
                ? "\(term): \(target) publishes no SPF record, which makes the whole record a permanent error."
                : "\(term): \(target) does not exist, which makes the whole record a permanent error.")
        case .several:
            problems.append("\(term): \(target) publishes more than one SPF record, which makes the whole record a permanent error.")
        case .one(let text):
            let included: SPFRecord
            do {
                included = try SPFRecord(parsing: text)
            } catch {
                problems.append("\(term): the SPF record of \(target) is invalid: \(error)")
                return
            }
            warnings += included.warnings.map { "\(target): \($0)" }
            try await walk(included, at: target, path: path + [target], topLevel: false, lookup: lookup)
        }
    }

    /// The name a domain-spec names, or `nil` with a warning when it has macros (those
    /// depend on the message: the lookup is counted, not made).
    private mutating func literalName(_ spec: String?, default domain: DNSName, term: String) -> DNSName? {
        guard let spec else { return domain }
        guard !SPFMacro.hasMacros(spec) else {
            warnings.append("\(term) uses macros; its lookups depend on each message and are counted, not followed.")
            return nil
        }
        guard let name = try? DNSName(spec) else {
            warnings.append("\(term): '\(spec)' is not a domain name.")
            return nil
        }
        return name
    }
}
