import Foundation
import TidingsDNS
import TidingsDomain

/// Checks what a sending domain publishes in DNS against what Tidings and the workspace's
/// email servers need: a DKIM key record per selector, an SPF record that authorises the
/// servers within RFC 7208's limits, and a DMARC policy. Each check says what it found and,
/// when something is wrong, what to publish instead.
public struct DomainChecker: Sendable {
    /// An email server of the workspace, as the SPF check sees it.
    public struct Server: Sendable, Equatable {
        public var name: String
        public var host: String
        /// The include its preset documents (`EmailServerPreset.spfInclude`), if any.
        public var spfInclude: String?

        public init(name: String, host: String, spfInclude: String?) {
            self.name = name
            self.host = host
            self.spfInclude = spfInclude
        }
    }

    let lookup: any DNSLookup
    /// The name Tidings gives in EHLO (`%{h}` in SPF macros).
    let helo: String

    public init(lookup: any DNSLookup, helo: String) {
        self.lookup = lookup
        self.helo = helo
    }

    /// Runs every check of `domain` (concurrently; each DNS name is asked once) and returns
    /// them in the order DKIM (per key), SPF, DMARC.
    public func check(domain: String, keys: [DKIMKey], servers: [Server], recommendedDMARC: String) async -> [DomainCheck] {
        let lookup = DNSLookupCache(self.lookup)
        let checker = DomainChecker(lookup: lookup, helo: helo)
        return await withTaskGroup(of: (Int, DomainCheck).self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask { (index, await checker.dkim(key)) }
            }
            group.addTask { (keys.count, await checker.spf(domain: domain, servers: servers)) }
            group.addTask { (keys.count + 1, await checker.dmarc(domain: domain, recommended: recommendedDMARC)) }
            var checks: [(Int, DomainCheck)] = []
            for await check in group { checks.append(check) }
            return checks.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }

    // MARK: DKIM

    /// The record at `<selector>._domainkey.<domain>` holds this key, of this type.
    public func dkim(_ key: DKIMKey) async -> DomainCheck {
        var check = DomainCheck(kind: .dkim, selector: key.selector, name: key.dnsName, status: .fail, records: [], summary: "")
        let texts: [String]
        do {
            texts = try await lookup.texts(at: DNSName(key.dnsName))
        } catch let error as DNSLookupError {
            return Self.unreachable(check, error)
        } catch {
            check.summary = "\(key.dnsName) is not a name DNS can hold: \(error)."
            return check
        }
        check.records = texts
        let candidates = texts.filter { $0.contains("p=") }
        guard !texts.isEmpty else {
            check.summary = "No TXT record is published at \(key.dnsName), so receivers cannot verify the \(key.keyType) signature."
            check.fix = "Publish a TXT record at \(key.dnsName) with the value \(key.dnsRecord)."
            return check
        }
        guard candidates.count <= 1 else {
            check.summary = "\(candidates.count) key records are published at \(key.dnsName); receivers may pick either."
            check.fix = "Keep one TXT record at \(key.dnsName), with the value \(key.dnsRecord)."
            return check
        }
        let record: DKIMKeyRecord
        do {
            guard let text = candidates.first else { throw DKIMKeyRecordError("The TXT record has no public key (p=).") }
            record = try DKIMKeyRecord(parsing: text)
        } catch {
            check.summary = "The TXT record at \(key.dnsName) is not a DKIM key record: \(error)"
            check.fix = "Replace it with a TXT record at \(key.dnsName) with the value \(key.dnsRecord)."
            return check
        }
        if record.isRevoked {
            check.summary = "The key at \(key.dnsName) is revoked (p= is empty): signatures with this selector fail."
            check.fix = "Replace the record at \(key.dnsName) with the value \(key.dnsRecord)."
        } else if record.keyType != key.keyType {
            check.summary = "The record at \(key.dnsName) is for a k=\(record.keyType) key, but this selector signs with \(key.keyType)."
            check.fix = "Replace the record at \(key.dnsName) with the value \(key.dnsRecord)."
        } else if record.publicKey != key.publicKey {
            check.summary = "The record at \(key.dnsName) holds a different \(key.keyType) public key than the one Tidings signs with."
            check.fix = "Replace the record at \(key.dnsName) with the value \(key.dnsRecord)."
        } else if record.isTesting {
            check.status = .warning
            check.summary = "The record at \(key.dnsName) holds the right \(key.keyType) key, in testing mode (t=y): receivers treat failures as unsigned mail."
            check.fix = "Once signed mail verifies, remove t=y: publish \(key.dnsRecord)."
        } else {
            check.status = .pass
            check.summary = "The record at \(key.dnsName) holds the \(key.keyType) public key Tidings signs with."
        }
        return check
    }

    // MARK: SPF

    /// One `v=spf1` record, valid, within the lookup limits, authorising every email server.
    public func spf(domain: String, servers: [Server]) async -> DomainCheck {
        var check = DomainCheck(kind: .spf, name: domain, status: .fail, records: [], summary: "")
        let suggestion = Self.suggestedSPF(servers)
        let name: DNSName
        do {
            name = try DNSName(domain)
        } catch {
            check.summary = "\(domain) is not a name DNS can hold: \(error)."
            return check
        }
        let published: SPFLookup
        do {
            published = try await SPFLookup.fetch(name, using: lookup)
        } catch {
            return Self.unreachable(check, error)
        }
        let text: String
        switch published {
        case .missing(let nameExists):
            check.summary = nameExists
                ? "\(domain) publishes no SPF record (a TXT record starting with v=spf1)."
                : "\(domain) does not exist in DNS, so it has no SPF record."
            check.fix = "Publish a TXT record at \(domain) with the value \(suggestion)."
            return check
        case .several(let records):
            check.records = records
            check.summary = "\(domain) publishes \(records.count) SPF records; receivers treat that as a permanent error (RFC 7208 §4.5)."
            check.fix = "Merge them into one TXT record at \(domain), e.g. \(suggestion)."
            return check
        case .one(let record):
            check.records = [record]
            text = record
        }
        let record: SPFRecord
        do {
            record = try SPFRecord(parsing: text)
        } catch {
            check.summary = "The SPF record is invalid, which receivers treat as a permanent error: \(error)"
            check.fix = "Correct the record at \(domain); for your email servers it could read \(suggestion)."
            return check
        }
        let analysis: SPFAnalysis
        do {
            analysis = try await SPFAnalysis.analyse(record, at: name, using: lookup)
        } catch {
            return Self.unreachable(check, error)
        }
        check.lookups = analysis.lookups
        check.voidLookups = analysis.voidLookups
        var findings: [String] = []
        var fixes: [String] = []
        var status = DomainCheck.Status.pass
        let lookupText = "\(analysis.lookups) of \(SPFAnalysis.lookupLimit) DNS lookups"
        if analysis.exceedsLookupLimit {
            status = .fail
            findings.append("Your SPF record needs \(analysis.lookups) DNS lookups; the limit is \(SPFAnalysis.lookupLimit), and receivers stop at it with a permanent error.")
            let costly = analysis.costs.filter { $0.lookups > 1 }.sorted { $0.lookups > $1.lookups }
            let names = (costly.isEmpty ? analysis.costs : costly).prefix(3).map { "\($0.term) (\($0.lookups))" }
            fixes.append("Cut it to \(SPFAnalysis.lookupLimit) or fewer: flatten \(names.joined(separator: ", ")) by listing the ip4:/ip6: ranges they publish instead, or remove mechanisms no server needs (each a, mx, include and exists costs a lookup).")
        }
        if analysis.exceedsVoidLookupLimit {
            status = .fail
            findings.append("\(analysis.voidLookups) of its lookups find nothing; receivers give up with a permanent error after \(SPFAnalysis.voidLookupLimit).")
            fixes.append("Remove the terms that find nothing: \(analysis.voidTerms.joined(separator: " ")).")
        }
        if !analysis.problems.isEmpty {
            status = .fail
            findings += analysis.problems
            fixes.append("Correct the record at \(domain): every include and redirect must name a domain with exactly one valid SPF record, without loops.")
        }
        if let all = record.directives.last(where: { $0.mechanism == .all }), all.qualifier == .pass {
            status = .fail
            findings.append("The record ends in \(all.text), which authorises every server on the internet to send as \(domain).")
            fixes.append("End the record with ~all or -all instead of \(all.text).")
        }
        // Which servers the record authorises.
        if servers.isEmpty {
            status = max(status, .warning)
            findings.append("The workspace has no email server yet, so it cannot be told whether the record authorises it.")
            fixes.append("Add an email server and verify again.")
        }
        let evaluator = SPFEvaluator(lookup: lookup, helo: helo)
        var authorised: [String] = []
        var missingTerms: [String] = []
        for server in servers {
            if let include = server.spfInclude {
                if analysis.includedDomains.contains(include) {
                    authorised.append("\(server.name) (include:\(include))")
                } else {
                    status = .fail
                    findings.append("The record does not authorise \(server.name): it has no include:\(include).")
                    missingTerms.append("include:\(include)")
                }
                continue
            }
            let addresses: [IPAddress]
            if let literal = IPAddress(server.host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) {
                addresses = [literal]
            } else {
                do {
                    addresses = try await lookup.addresses(of: DNSName(server.host))
                } catch let error as DNSLookupError {
                    status = max(status, .error)
                    findings.append("The addresses of \(server.name) (\(server.host)) could not be looked up: \(error).")
                    continue
                } catch {
                    status = max(status, .warning)
                    findings.append("\(server.host) is not a host name DNS can hold.")
                    continue
                }
            }
            if addresses.isEmpty {
                status = max(status, .warning)
                findings.append("\(server.name) (\(server.host)) has no A or AAAA record, so the record cannot be checked against it.")
                continue
            }
            if addresses.allSatisfy(\.isLoopback) {
                status = max(status, .warning)
                findings.append("\(server.name) runs on this machine (\(server.host)); check that the record authorises the addresses it relays from.")
                continue
            }
            var failures: [String] = []
            for address in addresses where !address.isLoopback {
                let outcome = await evaluator.checkHost(ip: address, domain: name)
                switch outcome.result {
                case .pass:
                    continue
                case .temperror:
                    status = max(status, .error)
                    failures.append("\(address): temperror (\(outcome.reason ?? "DNS failed"))")
                case .permerror:
                    // The record's own error (reported above) is what to fix, not the address.
                    status = .fail
                    failures.append("\(address): permerror (\(outcome.reason ?? "the record is invalid"))")
                default:
                    status = .fail
                    let because = outcome.decidedBy.map { " by \($0)" } ?? outcome.reason.map { " (\($0))" } ?? ""
                    failures.append("\(address): \(outcome.result.rawValue)\(because)")
                    missingTerms.append(address.bitCount == 32 ? "ip4:\(address)" : "ip6:\(address)")
                }
            }
            if failures.isEmpty {
                authorised.append("\(server.name) (\(server.host))")
            } else {
                findings.append("The record does not authorise \(server.name) (\(server.host)): \(failures.joined(separator: "; ")).")
            }
        }
        if !missingTerms.isEmpty {
            var terms: [String] = []
            for term in missingTerms where !terms.contains(term) { terms.append(term) }
            fixes.append("Add \(terms.joined(separator: " ")) to the record at \(domain), before its all mechanism.")
        }
        var summary = "SPF record found: \(lookupText), \(analysis.voidLookups) of \(SPFAnalysis.voidLookupLimit) void lookups."
        if !authorised.isEmpty { summary += " It authorises \(authorised.joined(separator: ", "))." }
        if !findings.isEmpty { summary += " " + findings.joined(separator: " ") }
        check.status = status
        check.summary = summary
        check.fix = fixes.isEmpty ? nil : fixes.joined(separator: " ")
        return check
    }

    /// A record for the servers: their presets' includes, the others by name or address.
    static func suggestedSPF(_ servers: [Server]) -> String {
        var terms: [String] = []
        for server in servers {
            let term: String
            if let include = server.spfInclude {
                term = "include:\(include)"
            } else if let address = IPAddress(server.host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) {
                term = address.bitCount == 32 ? "ip4:\(address)" : "ip6:\(address)"
            } else {
                term = "a:\(server.host)"
            }
            if !terms.contains(term) { terms.append(term) }
        }
        if terms.isEmpty { terms = ["a", "mx"] }
        return "v=spf1 " + terms.joined(separator: " ") + " ~all"
    }

    // MARK: DMARC

    /// A `v=DMARC1` record at `_dmarc.<domain>` (or the organizational domain's) with a policy.
    public func dmarc(domain: String, recommended: String) async -> DomainCheck {
        let name = "_dmarc.\(domain)"
        var check = DomainCheck(kind: .dmarc, name: name, status: .fail, records: [], summary: "")
        let publish = "Publish a TXT record at \(name) with the value \(recommended)"
        var found: (name: String, records: [String])
        do {
            found = (name, try await lookup.texts(at: DNSName(name)).filter(DMARCRecord.isDMARC))
            // RFC 7489 §6.6.3: without a record of its own, a subdomain falls back to its
            // organizational domain's. Without the Public Suffix List, that is taken to be
            // the last two labels.
            let labels = domain.split(separator: ".")
            if found.records.isEmpty, labels.count > 2 {
                let organizational = "_dmarc." + labels.suffix(2).joined(separator: ".")
                found = (organizational, try await lookup.texts(at: DNSName(organizational)).filter(DMARCRecord.isDMARC))
            }
        } catch let error as DNSLookupError {
            return Self.unreachable(check, error)
        } catch {
            check.summary = "\(name) is not a name DNS can hold: \(error)."
            return check
        }
        check.records = found.records
        guard !found.records.isEmpty else {
            check.summary = "No DMARC record (v=DMARC1) is published at \(name): receivers apply no policy to mail that fails authentication, and send you no reports."
            check.fix = publish + "."
            return check
        }
        guard found.records.count == 1 else {
            check.summary = "\(found.records.count) DMARC records are published at \(found.name); receivers then ignore them all (RFC 7489 §6.6.3)."
            check.fix = "Keep one TXT record at \(found.name), e.g. \(recommended)."
            return check
        }
        let record: DMARCRecord
        do {
            record = try DMARCRecord(parsing: found.records[0])
        } catch {
            check.summary = "The DMARC record at \(found.name) is invalid: \(error)"
            check.fix = "Replace it. " + publish + "."
            return check
        }
        let inherited = found.name != name
        let policy = inherited ? (record.subdomainPolicy ?? record.policy) : record.policy
        check.policy = policy.rawValue
        let alignment = record.dkimAlignment == .strict ? "strict" : "relaxed"
        var summary = inherited
            ? "No record at \(name); the organizational domain's record at \(found.name) applies, with policy \(policy.rawValue)."
            : "DMARC record found with policy p=\(policy.rawValue)."
        summary += " Tidings signs with d=\(domain), which aligns with From addresses at \(domain) under \(alignment) DKIM alignment (adkim=\(record.dkimAlignment.rawValue))."
        if record.spfAlignment == .strict {
            summary += " With aspf=s, SPF aligns only when the envelope sender's domain is exactly \(domain); DKIM alignment carries DMARC either way."
        }
        summary += record.warnings.map { " " + $0 }.joined()
        switch policy {
        case .none:
            check.status = .warning
            summary += " p=none only monitors: mail that fails authentication is still delivered."
            check.fix = "Once the aggregate reports show your mail passing, change the policy at \(found.name) to p=quarantine, then p=reject."
        case .quarantine, .reject:
            if record.percentage < 100 {
                check.status = .warning
                summary += " pct=\(record.percentage): the policy applies to \(record.percentage)% of failing mail only."
                check.fix = "Raise pct to 100 (or remove it) at \(found.name) once reports show your mail passing."
            } else {
                check.status = .pass
            }
        }
        check.summary = summary
        return check
    }

    // MARK: Helpers

    /// The check's status when DNS could not be asked: `fail` for a name that does not
    /// exist is decided by the callers; anything else here is `error`.
    static func unreachable(_ check: DomainCheck, _ error: DNSLookupError) -> DomainCheck {
        var check = check
        check.status = .error
        check.summary = "DNS could not be asked about \(check.name): \(error)."
        check.fix = "Try again later. If it persists, check that the DNS server Tidings uses (TIDINGS_DNS_SERVER) answers, and that the domain's name servers respond."
        return check
    }
}
