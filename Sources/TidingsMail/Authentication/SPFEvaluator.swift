import TidingsDNS

/// What a receiver's SPF check concludes for a message from an address (RFC 7208 §2.6).
public enum SPFResult: String, Sendable, Equatable {
    case pass, fail, softfail, neutral, none, permerror, temperror
}

/// RFC 7208's `check_host()`: evaluates a domain's SPF record for one sending address, as
/// a receiver would, within the limits of §4.6.4.
public struct SPFEvaluator: Sendable {
    let lookup: any DNSLookup
    /// `%{h}`: the name the sending server gives in EHLO.
    let helo: String

    public init(lookup: any DNSLookup, helo: String) {
        self.lookup = lookup
        self.helo = helo
    }

    public struct Outcome: Sendable, Equatable {
        public var result: SPFResult
        /// The term that decided: `ip4:192.0.2.0/24`, `include:_spf.example.com`, `~all`, …
        public var decidedBy: String?
        /// Why, for permerror and temperror.
        public var reason: String?
    }

    /// Evaluates the record of `domain` for mail from `ip` with the envelope sender
    /// `local@domain` (RFC 7208 §4).
    public func checkHost(ip: IPAddress, domain: DNSName, senderLocal: String = "postmaster") async -> Outcome {
        var state = State()
        let context = SPFMacro.Context(senderLocal: senderLocal, senderDomain: domain.description, domain: domain.description, ip: ip, helo: helo)
        do {
            return try await evaluate(domain, context: context, state: &state)
        } catch let failure as Failure {
            return Outcome(result: failure.result, decidedBy: nil, reason: failure.reason)
        } catch let error as DNSLookupError {
            return Outcome(result: .temperror, decidedBy: nil, reason: error.description)
        } catch {
            return Outcome(result: .temperror, decidedBy: nil, reason: "\(error)")
        }
    }

    /// A result that ends the evaluation wherever it is found.
    struct Failure: Error {
        var result: SPFResult
        var reason: String
    }

    struct State {
        var lookups = 0
        var voidLookups = 0

        mutating func countLookup(_ term: String) throws {
            lookups += 1
            if lookups > SPFAnalysis.lookupLimit {
                throw Failure(result: .permerror, reason: "\(term) is lookup \(lookups); the limit is \(SPFAnalysis.lookupLimit).")
            }
        }

        mutating func countVoid(_ term: String) throws {
            voidLookups += 1
            if voidLookups > SPFAnalysis.voidLookupLimit {
                throw Failure(result: .permerror, reason: "\(term) is void lookup \(voidLookups); the limit is \(SPFAnalysis.voidLookupLimit).")
            }
        }
    }

    private func evaluate(_ domain: DNSName, context: SPFMacro.Context, state: inout State) async throws -> Outcome {
        let record: SPFRecord
        switch try await SPFLookup.fetch(domain, using: lookup) {
        case .missing:
            return Outcome(result: .none, decidedBy: nil, reason: "\(domain) publishes no SPF record.")
        case .several:
            throw Failure(result: .permerror, reason: "\(domain) publishes more than one SPF record.")
        case .one(let text):
            do {
                record = try SPFRecord(parsing: text)
            } catch {
                throw Failure(result: .permerror, reason: "The SPF record of \(domain) is invalid: \(error)")
            }
        }
        var context = context
        context.domain = domain.description
        for directive in record.directives {
            if directive.mechanism.isLookup { try state.countLookup(directive.text) }
            if try await matches(directive, domain: domain, context: context, state: &state) {
                let result: SPFResult = switch directive.qualifier {
                case .pass: .pass
                case .fail: .fail
                case .softfail: .softfail
                case .neutral: .neutral
                }
                return Outcome(result: result, decidedBy: directive.text, reason: nil)
            }
        }
        if let redirect = record.effectiveRedirect {
            try state.countLookup("redirect=\(redirect)")
            let target = try name(redirect, context: context)
            let outcome = try await evaluate(target, context: context, state: &state)
            // §6.1: a redirect to a domain without a record is a permanent error.
            if outcome.result == .none { throw Failure(result: .permerror, reason: "redirect=\(redirect): \(target) publishes no SPF record.") }
            return outcome
        }
        return Outcome(result: .neutral, decidedBy: nil, reason: nil)
    }

    private func matches(_ directive: SPFRecord.Directive, domain: DNSName, context: SPFMacro.Context, state: inout State) async throws -> Bool {
        let ip = context.ip
        switch directive.mechanism {
        case .all:
            return true
        case .ip4(let network, let prefix), .ip6(let network, let prefix):
            return ip.matches(network, prefixLength: prefix)
        case .include(let spec):
            let target = try name(spec, context: context)
            let outcome = try await evaluate(target, context: context, state: &state)
            switch outcome.result {
            case .pass: return true
            case .fail, .softfail, .neutral: return false
            case .temperror: throw Failure(result: .temperror, reason: outcome.reason ?? "include:\(target) could not be evaluated.")
            case .permerror, .none:
                throw Failure(result: .permerror, reason: outcome.reason ?? "include:\(target) has no usable SPF record.")
            }
        case .a(let spec, let v4, let v6):
            let target = try spec.map { try name($0, context: context) } ?? domain
            let addresses = try await self.addresses(target, family: ip)
            if addresses.isEmpty { try state.countVoid(directive.text) }
            return addresses.contains { ip.matches($0, prefixLength: Self.prefix(for: ip, v4: v4, v6: v6)) }
        case .mx(let spec, let v4, let v6):
            let target = try spec.map { try name($0, context: context) } ?? domain
            let exchanges = try await lookup.recordsOrNone(.mx, at: target)
            if exchanges.isEmpty { try state.countVoid(directive.text) }
            guard exchanges.count <= 10 else {
                throw Failure(result: .permerror, reason: "\(directive.text): \(target) has more than 10 MX records.")
            }
            for case .mx(_, let exchange) in exchanges {
                let addresses = try await self.addresses(exchange, family: ip)
                if addresses.contains(where: { ip.matches($0, prefixLength: Self.prefix(for: ip, v4: v4, v6: v6)) }) { return true }
            }
            return false
        case .ptr(let spec):
            let target = try spec.map { try name($0, context: context) } ?? domain
            let reverse = try DNSName(labels: ip.reversedLabels.map { Array($0.utf8) } + (ip.bitCount == 32 ? ["in-addr", "arpa"] : ["ip6", "arpa"]).map { Array($0.utf8) })
            let names = try await lookup.recordsOrNone(.ptr, at: reverse)
            if names.isEmpty { try state.countVoid(directive.text) }
            // §5.5: only names that resolve back to the address count; at most 10 are tried.
            for case .ptr(let candidate) in names.prefix(10) where candidate.isWithin(target) {
                if try await addresses(candidate, family: ip).contains(ip) { return true }
            }
            return false
        case .exists(let spec):
            let target = try name(spec, context: context)
            let found = try await lookup.recordsOrNone(.a, at: target)
            if found.isEmpty { try state.countVoid(directive.text) }
            return !found.isEmpty
        }
    }

    /// A or AAAA records, whichever family `ip` is.
    private func addresses(_ name: DNSName, family ip: IPAddress) async throws -> [IPAddress] {
        try await lookup.recordsOrNone(ip.bitCount == 32 ? .a : .aaaa, at: name).compactMap(\.address)
    }

    private func name(_ spec: String, context: SPFMacro.Context) throws -> DNSName {
        let expanded = try SPFMacro.expandDomain(spec, context)
        do {
            return try DNSName(expanded)
        } catch {
            throw Failure(result: .permerror, reason: "'\(expanded)' is not a domain name.")
        }
    }

    static func prefix(for ip: IPAddress, v4: Int?, v6: Int?) -> Int {
        ip.bitCount == 32 ? (v4 ?? 32) : (v6 ?? 128)
    }
}
