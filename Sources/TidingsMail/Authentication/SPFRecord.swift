import Foundation
import TidingsDNS

/// An SPF record (RFC 7208 §4.6, §12) as its terms. Parsing checks the syntax only;
/// `SPFAnalysis` follows the record's lookups and `SPFEvaluator` evaluates it for an address.
public struct SPFRecord: Sendable, Equatable {
    public enum Qualifier: String, Sendable, Equatable {
        case pass = "+", fail = "-", softfail = "~", neutral = "?"
    }

    public enum Mechanism: Sendable, Equatable {
        case all
        case include(String)
        case a(domain: String?, v4Prefix: Int?, v6Prefix: Int?)
        case mx(domain: String?, v4Prefix: Int?, v6Prefix: Int?)
        case ptr(String?)
        case ip4(IPAddress, prefix: Int)
        case ip6(IPAddress, prefix: Int)
        case exists(String)

        /// Whether evaluating the mechanism is one of the ten DNS lookups a record may
        /// cause (RFC 7208 §4.6.4).
        public var isLookup: Bool {
            switch self {
            case .include, .a, .mx, .ptr, .exists: true
            case .all, .ip4, .ip6: false
            }
        }
    }

    public struct Directive: Sendable, Equatable {
        public var qualifier: Qualifier
        public var mechanism: Mechanism
        /// The term as written.
        public var text: String
    }

    /// The mechanisms up to and including the first `all` (later ones are never evaluated).
    public var directives: [Directive]
    /// `redirect=`; ignored when the record has an `all` (RFC 7208 §6.1).
    public var redirect: String?
    public var explanation: String?
    /// Things a receiver ignores but the domain's owner may want to know about.
    public var warnings: [String]

    public var hasAll: Bool {
        directives.contains { $0.mechanism == .all }
    }

    /// The redirect a receiver follows: none when the record has an `all`.
    public var effectiveRedirect: String? {
        hasAll ? nil : redirect
    }

    /// Whether a TXT record is an SPF record: `v=spf1` alone or followed by a space.
    public static func isSPF(_ text: String) -> Bool {
        let lowered = text.lowercased()
        return lowered == "v=spf1" || lowered.hasPrefix("v=spf1 ")
    }

    public init(parsing text: String) throws(SPFSyntaxError) {
        guard Self.isSPF(text) else { throw SPFSyntaxError("The record does not start with v=spf1.") }
        directives = []
        redirect = nil
        explanation = nil
        warnings = []
        guard text.unicodeScalars.allSatisfy({ $0.isASCII && ($0.value >= 0x20 || $0 == "\t") && $0.value != 0x7F }) else {
            throw SPFSyntaxError("The record holds characters outside printable ASCII.")
        }
        var seenAll = false
        var ignoredAfterAll: [String] = []
        for term in text.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().map(String.init) {
            if let (name, value) = Self.modifier(term) {
                switch name {
                case "redirect":
                    guard redirect == nil else { throw SPFSyntaxError("The record has more than one redirect modifier.", term: term) }
                    try SPFMacro.validateDomainSpec(value, term: term, warnings: &warnings)
                    redirect = value
                case "exp":
                    guard explanation == nil else { throw SPFSyntaxError("The record has more than one exp modifier.", term: term) }
                    try SPFMacro.validateDomainSpec(value, term: term, warnings: &warnings)
                    explanation = value
                default:
                    try SPFMacro.validate(value, term: term, allowExplanationLetters: false)
                    warnings.append("The unknown modifier \(name)= is ignored.")
                }
                continue
            }
            if seenAll {
                // Never evaluated: a receiver stops at `all`. Not an error, but not what the owner meant.
                ignoredAfterAll.append(term)
                continue
            }
            let directive = try Self.directive(term, warnings: &warnings)
            directives.append(directive)
            if directive.mechanism == .all { seenAll = true }
        }
        if !ignoredAfterAll.isEmpty {
            warnings.append("The terms after all are never evaluated: \(ignoredAfterAll.joined(separator: " ")).")
        }
        if redirect != nil, seenAll {
            warnings.append("The redirect modifier is ignored because the record has an all mechanism.")
        }
    }

    /// `name=value` when `term` is a modifier (RFC 7208 §12: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )).
    static func modifier(_ term: String) -> (String, String)? {
        guard let equals = term.firstIndex(of: "=") else { return nil }
        let name = term[..<equals]
        guard let first = name.first, first.isASCII, first.isLetter,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else { return nil }
        return (name.lowercased(), String(term[term.index(after: equals)...]))
    }

    static func directive(_ term: String, warnings: inout [String]) throws(SPFSyntaxError) -> Directive {
        var rest = Substring(term)
        var qualifier = Qualifier.pass
        if let first = rest.first, let explicit = Qualifier(rawValue: String(first)) {
            qualifier = explicit
            rest = rest.dropFirst()
        }
        let nameEnd = rest.firstIndex(where: { $0 == ":" || $0 == "/" }) ?? rest.endIndex
        let name = rest[..<nameEnd].lowercased()
        let argument = rest[nameEnd...]
        let mechanism: Mechanism
        switch name {
        case "all":
            guard argument.isEmpty else { throw SPFSyntaxError("The all mechanism takes no value.", term: term) }
            mechanism = .all
        case "include", "exists":
            guard argument.hasPrefix(":"), argument.count > 1 else { throw SPFSyntaxError("The \(name) mechanism needs a domain: \(name):example.com.", term: term) }
            let domain = String(argument.dropFirst())
            try SPFMacro.validateDomainSpec(domain, term: term, warnings: &warnings)
            mechanism = name == "include" ? .include(domain) : .exists(domain)
        case "a", "mx":
            var domainPart = argument
            let (v4, v6) = try dualPrefix(&domainPart, term: term)
            var domain: String?
            if !domainPart.isEmpty {
                guard domainPart.hasPrefix(":"), domainPart.count > 1 else { throw SPFSyntaxError("The \(name) mechanism's domain is missing after ':'.", term: term) }
                domain = String(domainPart.dropFirst())
                try SPFMacro.validateDomainSpec(domain!, term: term, warnings: &warnings)
            }
            mechanism = name == "a" ? .a(domain: domain, v4Prefix: v4, v6Prefix: v6) : .mx(domain: domain, v4Prefix: v4, v6Prefix: v6)
        case "ptr":
            var domain: String?
            if !argument.isEmpty {
                guard argument.hasPrefix(":"), argument.count > 1 else { throw SPFSyntaxError("The ptr mechanism takes a domain after ':' and no prefix length.", term: term) }
                domain = String(argument.dropFirst())
                try SPFMacro.validateDomainSpec(domain!, term: term, warnings: &warnings)
            }
            warnings.append("The ptr mechanism is slow and unreliable; RFC 7208 §5.5 asks not to use it.")
            mechanism = .ptr(domain)
        case "ip4", "ip6":
            guard argument.hasPrefix(":"), argument.count > 1 else { throw SPFSyntaxError("The \(name) mechanism needs an address: \(name):…", term: term) }
            var network = argument.dropFirst()
            let maxPrefix = name == "ip4" ? 32 : 128
            var prefix = maxPrefix
            if let slash = network.firstIndex(of: "/") {
                prefix = try prefixLength(network[network.index(after: slash)...], max: maxPrefix, term: term)
                network = network[..<slash]
            }
            if name == "ip4" {
                guard let bytes = IPAddress.parseV4(network) else { throw SPFSyntaxError("'\(network)' is not an IPv4 address.", term: term) }
                mechanism = .ip4(.v4(bytes), prefix: prefix)
            } else {
                guard let bytes = IPAddress.parseV6(network) else { throw SPFSyntaxError("'\(network)' is not an IPv6 address.", term: term) }
                mechanism = .ip6(.v6(bytes), prefix: prefix)
            }
        default:
            throw SPFSyntaxError("'\(name)' is not an SPF mechanism (all, include, a, mx, ptr, ip4, ip6, exists) nor a modifier.", term: term)
        }
        return Directive(qualifier: qualifier, mechanism: mechanism, text: term)
    }

    /// Removes a trailing `/n`, `//n` or `/n//n` (RFC 7208 §5.6 dual-cidr-length) from `text`.
    static func dualPrefix(_ text: inout Substring, term: String) throws(SPFSyntaxError) -> (Int?, Int?) {
        var v6: Int?
        if let range = text.range(of: "//", options: .backwards), text[range.upperBound...].allSatisfy(\.isNumber) {
            v6 = try prefixLength(text[range.upperBound...], max: 128, term: term)
            text = text[..<range.lowerBound]
        }
        var v4: Int?
        if let slash = text.lastIndex(of: "/"), text[text.index(after: slash)...].allSatisfy(\.isNumber) {
            v4 = try prefixLength(text[text.index(after: slash)...], max: 32, term: term)
            text = text[..<slash]
        }
        if text.contains("/"), !text.contains("%") {
            throw SPFSyntaxError("The prefix length must be /0 to /32 for IPv4 and //0 to //128 for IPv6.", term: term)
        }
        return (v4, v6)
    }

    /// A prefix length without leading zeros (RFC 7208 §12), at most `max`.
    static func prefixLength(_ text: Substring, max: Int, term: String) throws(SPFSyntaxError) -> Int {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), text == "0" || text.first != "0",
              let value = Int(text), value <= max else {
            throw SPFSyntaxError("'/\(text)' is not a prefix length from 0 to \(max).", term: term)
        }
        return value
    }
}

/// A record that breaks RFC 7208's syntax: receivers treat it as a permanent error.
public struct SPFSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The term the problem is in.
    public var term: String?

    public init(_ message: String, term: String? = nil) {
        self.message = message
        self.term = term
    }

    public var description: String {
        guard let term else { return message }
        return "In '\(term)': \(message)"
    }
}
