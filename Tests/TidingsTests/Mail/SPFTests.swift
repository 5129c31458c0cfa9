import Testing
import TidingsDNS
@testable import TidingsMail

@Suite("SPF records")
struct SPFTests {
    @Test("A record is read into its directives and modifiers")
    func parsing() throws {
        let record = try SPFRecord(parsing: "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a a:mail.acme.test/28//64 mx//48 -include:_spf.acme.test exists:%{i}.bl.acme.test ~all")
        #expect(record.directives.map(\.text) == [
            "ip4:192.0.2.0/24", "ip6:2001:db8::/32", "a", "a:mail.acme.test/28//64", "mx//48", "-include:_spf.acme.test", "exists:%{i}.bl.acme.test", "~all",
        ])
        #expect(record.directives[0].mechanism == .ip4(IPAddress("192.0.2.0")!, prefix: 24))
        #expect(record.directives[1].mechanism == .ip6(IPAddress("2001:db8::")!, prefix: 32))
        #expect(record.directives[2].mechanism == .a(domain: nil, v4Prefix: nil, v6Prefix: nil))
        #expect(record.directives[3].mechanism == .a(domain: "mail.acme.test", v4Prefix: 28, v6Prefix: 64))
        #expect(record.directives[4].mechanism == .mx(domain: nil, v4Prefix: nil, v6Prefix: 48))
        #expect(record.directives[5].qualifier == .fail && record.directives[5].mechanism == .include("_spf.acme.test"))
        #expect(record.directives[7].qualifier == .softfail && record.directives[7].mechanism == .all)
        #expect(record.warnings.isEmpty)

        let redirecting = try SPFRecord(parsing: "V=SPF1 redirect=_spf.acme.test exp=explain.acme.test unknown-mod=%{d}")
        #expect(redirecting.effectiveRedirect == "_spf.acme.test" && redirecting.explanation == "explain.acme.test")
        #expect(redirecting.warnings == ["The unknown modifier unknown-mod= is ignored."])
        #expect(try SPFRecord(parsing: "v=spf1 -all redirect=x.acme.test").effectiveRedirect == nil, "all wins over redirect")
        #expect(try SPFRecord(parsing: "v=spf1 -all a mx").warnings == ["The terms after all are never evaluated: a mx."])
        #expect(SPFRecord.isSPF("v=spf1") && SPFRecord.isSPF("v=spf1 -all") && !SPFRecord.isSPF("v=spf10 -all") && !SPFRecord.isSPF("spf1"))
    }

    @Test("Syntax errors name the term and the rule (RFC 7208 §12)", arguments: [
        ("v=spf1 ip4:192.0.2.300 -all", "ip4:192.0.2.300"),
        ("v=spf1 ip4:192.0.2.0/33 -all", "ip4:192.0.2.0/33"),
        ("v=spf1 ip4:192.0.2.0/024 -all", "ip4:192.0.2.0/024"),
        ("v=spf1 ip6:2001:db8::/129 -all", "ip6:2001:db8::/129"),
        ("v=spf1 ip6:192.0.2.1 -all", "ip6:192.0.2.1"),
        ("v=spf1 include -all", "include"),
        ("v=spf1 include: -all", "include:"),
        ("v=spf1 foo:bar -all", "foo:bar"),
        ("v=spf1 all:x", "all:x"),
        ("v=spf1 a:acme.test/33", "a:acme.test/33"),
        ("v=spf1 exists:%{x}.acme.test -all", "exists:%{x}.acme.test"),
        ("v=spf1 include:%{d.acme.test -all", "include:%{d.acme.test"),
        ("v=spf1 include:100%.acme.test -all", "include:100%.acme.test"),
        ("v=spf1 redirect=a.acme.test redirect=b.acme.test", "redirect=b.acme.test"),
        ("v=spf1 ptr/24 -all", "ptr/24"),
    ])
    func syntaxErrors(text: String, term: String) {
        #expect(throws: SPFSyntaxError.self) { try SPFRecord(parsing: text) }
        do {
            _ = try SPFRecord(parsing: text)
        } catch {
            #expect(error.term == term, "\(error)")
        }
    }

    @Test("Macros expand as RFC 7208 §7.4's examples show")
    func macros() throws {
        let context = SPFMacro.Context(senderLocal: "strong-bad", senderDomain: "email.example.com", domain: "email.example.com", ip: IPAddress("192.0.2.3")!, helo: "mx.example.org")
        #expect(try SPFMacro.expandDomain("%{s}", context) == "strong-bad@email.example.com")
        #expect(try SPFMacro.expandDomain("%{d4}", context) == "email.example.com")
        #expect(try SPFMacro.expandDomain("%{d2}", context) == "example.com")
        #expect(try SPFMacro.expandDomain("%{dr}", context) == "com.example.email")
        #expect(try SPFMacro.expandDomain("%{d2r}", context) == "example.email")
        #expect(try SPFMacro.expandDomain("%{l-}", context) == "strong.bad")
        #expect(try SPFMacro.expandDomain("%{lr-}", context) == "bad.strong")
        #expect(try SPFMacro.expandDomain("%{ir}.%{v}._spf.%{d2}", context) == "3.2.0.192.in-addr._spf.example.com")
        var v6 = context
        v6.ip = IPAddress("2001:db8::cb01")!
        #expect(try SPFMacro.expandDomain("%{ir}.%{v}._spf.%{d2}", v6) == "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")
    }

    // MARK: Lookup counting

    static let acme = try! DNSName("acme.test")

    func analyse(_ text: String, _ dns: StaticDNS) async throws -> SPFAnalysis {
        try await SPFAnalysis.analyse(SPFRecord(parsing: text), at: Self.acme, using: dns)
    }

    @Test("Every include, a, mx, ptr, exists and redirect counts, nested ones too; ip4, ip6 and all do not")
    func lookupCounting() async throws {
        let dns = StaticDNS(
            txt: [
                "_spf.provider.test": ["v=spf1 include:_a.provider.test include:_b.provider.test ~all"],
                "_a.provider.test": ["v=spf1 ip4:198.51.100.0/24 -all"],
                "_b.provider.test": ["v=spf1 a mx -all"],
                "redirected.test": ["v=spf1 ip4:203.0.113.1 -all"],
            ],
            a: ["acme.test": ["192.0.2.1"], "_b.provider.test": ["198.51.100.7"], "mail.acme.test": ["192.0.2.25"]],
            mx: ["acme.test": ["mail.acme.test"], "_b.provider.test": ["mail.acme.test"]]
        )
        let analysis = try await analyse("v=spf1 ip4:192.0.2.0/24 a mx include:_spf.provider.test exists:%{i}.acme.test -all", dns)
        #expect(analysis.lookups == 8)
        #expect(analysis.voidLookups == 0)
        #expect(analysis.includedDomains == ["_spf.provider.test", "_a.provider.test", "_b.provider.test"])
        #expect(analysis.costs.map(\.term) == ["a", "mx", "include:_spf.provider.test", "exists:%{i}.acme.test"])
        #expect(analysis.costs.map(\.lookups) == [1, 1, 5, 1])
        #expect(analysis.problems.isEmpty)

        let redirect = try await analyse("v=spf1 a redirect=redirected.test", dns)
        #expect(redirect.lookups == 2 && redirect.includedDomains == ["redirected.test"])
    }

    @Test("Over ten lookups is a problem that names the count; the total is counted past ten")
    func tooManyLookups() async throws {
        var txt: [String: [String]] = [:]
        for index in 0..<6 { txt["p\(index).test"] = ["v=spf1 a:h.p\(index).test ip4:198.51.100.\(index) -all"] }
        let dns = StaticDNS(txt: txt, a: Dictionary(uniqueKeysWithValues: (0..<6).map { ("h.p\($0).test", ["198.51.100.\($0)"]) }))
        let analysis = try await analyse("v=spf1 " + (0..<6).map { "include:p\($0).test" }.joined(separator: " ") + " -all", dns)
        #expect(analysis.lookups == 12)
        #expect(analysis.exceedsLookupLimit && analysis.problems.isEmpty)
        #expect(analysis.allProblems == ["Evaluating the record takes 12 DNS lookups; the limit is 10 (RFC 7208 §4.6.4)."])
        #expect(analysis.costs.allSatisfy { $0.lookups == 2 })
    }

    @Test("Lookups that find nothing are void; a third is a problem; includes without a record are permanent errors")
    func voidLookupsAndBrokenIncludes() async throws {
        let dns = StaticDNS(txt: ["empty.test": ["not spf"], "bad.test": ["v=spf1 ip4:300.1.1.1"], "twice.test": ["v=spf1 -all", "v=spf1 ~all"]], a: ["empty.test": ["192.0.2.9"]])
        let voids = try await analyse("v=spf1 a:none1.test a:none2.test mx:empty.test -all", dns)
        #expect(voids.voidLookups == 3 && voids.lookups == 3)
        #expect(voids.voidTerms == ["a:none1.test", "a:none2.test", "mx:empty.test"])
        #expect(voids.allProblems == ["3 of the record's lookups find nothing; receivers give up after 2 (RFC 7208 §4.6.4)."])

        let broken = try await analyse("v=spf1 include:missing.test include:empty.test include:bad.test include:twice.test -all", dns)
        #expect(broken.problems.count == 4, "\(broken.problems)")
        #expect(broken.problems[0].contains("missing.test does not exist"))
        #expect(broken.problems[1].contains("empty.test publishes no SPF record"))
        #expect(broken.problems[2].contains("the SPF record of bad.test is invalid"))
        #expect(broken.problems[3].contains("twice.test publishes more than one SPF record"))
    }

    @Test("An include loop is found, however long")
    func loops() async throws {
        let dns = StaticDNS(txt: ["a.test": ["v=spf1 include:b.test -all"], "b.test": ["v=spf1 include:acme.test -all"]])
        let analysis = try await analyse("v=spf1 include:a.test -all", dns)
        #expect(analysis.problems.first?.contains("a loop (acme.test → a.test → b.test → acme.test)") == true, "\(analysis.problems)")
    }

    @Test("A name that cannot be looked up is a DNS error, not a verdict")
    func dnsFailure() async throws {
        let dns = StaticDNS(failing: ["slow.test"])
        await #expect(throws: DNSLookupError.timeout(server: "static", after: .seconds(1))) {
            try await analyse("v=spf1 include:slow.test -all", dns)
        }
    }

    // MARK: Evaluation

    @Test("check_host finds the term that matches an address, through includes, a, mx and redirects")
    func evaluation() async throws {
        let dns = StaticDNS(
            txt: [
                "acme.test": ["v=spf1 ip4:192.0.2.0/28 a:relay.acme.test mx include:_spf.provider.test ~all"],
                "_spf.provider.test": ["v=spf1 ip6:2001:db8:5::/48 -all"],
                "sub.acme.test": ["v=spf1 redirect=acme.test"],
                "broken.test": ["v=spf1 include:nowhere.test -all"],
            ],
            a: ["relay.acme.test": ["198.51.100.20"], "mx1.acme.test": ["203.0.113.5", "2001:db8:9::5"]],
            mx: ["acme.test": ["mx1.acme.test"]]
        )
        let evaluator = SPFEvaluator(lookup: dns, helo: "tidings.test")
        func check(_ ip: String, _ domain: String = "acme.test") async throws -> SPFEvaluator.Outcome {
            await evaluator.checkHost(ip: IPAddress(ip)!, domain: try DNSName(domain))
        }
        #expect(try await check("192.0.2.14") == .init(result: .pass, decidedBy: "ip4:192.0.2.0/28", reason: nil))
        #expect(try await check("198.51.100.20").decidedBy == "a:relay.acme.test")
        #expect(try await check("203.0.113.5").decidedBy == "mx")
        #expect(try await check("2001:db8:9::5").decidedBy == "mx")
        #expect(try await check("2001:db8:5::1").decidedBy == "include:_spf.provider.test")
        #expect(try await check("192.0.2.16") == .init(result: .softfail, decidedBy: "~all", reason: nil))
        #expect(try await check("192.0.2.1", "sub.acme.test").result == .pass, "redirect")
        #expect(try await check("192.0.2.1", "nothing.test").result == .none)
        #expect(try await check("192.0.2.1", "broken.test").result == .permerror)
    }

    @Test("check_host stops with permerror past ten lookups or two void lookups")
    func evaluationLimits() async throws {
        var txt: [String: [String]] = [:]
        for index in 0..<11 { txt["i\(index).test"] = ["v=spf1 -all"] }
        txt["acme.test"] = ["v=spf1 " + (0..<11).map { "include:i\($0).test" }.joined(separator: " ") + " ip4:192.0.2.1 -all"]
        txt["void.test"] = ["v=spf1 a:n1.test a:n2.test a:n3.test ip4:192.0.2.1 -all"]
        let evaluator = SPFEvaluator(lookup: StaticDNS(txt: txt), helo: "tidings.test")
        let many = await evaluator.checkHost(ip: IPAddress("192.0.2.1")!, domain: try DNSName("acme.test"))
        #expect(many.result == .permerror && many.reason?.contains("lookup 11") == true, "\(many)")
        let voids = await evaluator.checkHost(ip: IPAddress("192.0.2.1")!, domain: try DNSName("void.test"))
        #expect(voids.result == .permerror && voids.reason?.contains("void lookup 3") == true, "\(voids)")
        let failing = SPFEvaluator(lookup: StaticDNS(txt: ["acme.test": ["v=spf1 include:slow.test -all"]], failing: ["slow.test"]), helo: "x.test")
        #expect(await failing.checkHost(ip: IPAddress("192.0.2.1")!, domain: try DNSName("acme.test")).result == .temperror)
    }
}

@Suite("DMARC and DKIM key records")
struct DMARCAndDKIMRecordTests {
    @Test("A DMARC record's tags are read with their defaults")
    func dmarc() throws {
        let record = try DMARCRecord(parsing: "v=DMARC1; p=quarantine; sp=reject; adkim=s; pct=50; rua=mailto:dmarc@acme.test,mailto:x@report.test; fo=1")
        #expect(record.policy == .quarantine && record.subdomainPolicy == .reject)
        #expect(record.dkimAlignment == .strict && record.spfAlignment == .relaxed)
        #expect(record.percentage == 50 && record.aggregateReports.count == 2 && record.warnings.isEmpty)
        let minimal = try DMARCRecord(parsing: "v=DMARC1;p=none")
        #expect(minimal.policy == .none && minimal.percentage == 100 && minimal.dkimAlignment == .relaxed)
        #expect(minimal.warnings.first?.contains("rua=") == true)
        #expect(DMARCRecord.isDMARC("v=DMARC1; p=none") && DMARCRecord.isDMARC("v = DMARC1") && !DMARCRecord.isDMARC("v=spf1 -all") && !DMARCRecord.isDMARC("v=dmarc1; p=none"))
    }

    @Test("Broken DMARC records say what is wrong", arguments: [
        ("p=none; v=DMARC1", "must start with v=DMARC1"),
        ("v=DMARC1; rua=mailto:a@acme.test", "no policy"),
        ("v=DMARC1; p=block", "p=block is not a policy"),
        ("v=DMARC1; p=none; sp=maybe", "sp=maybe"),
        ("v=DMARC1; p=none; adkim=x", "adkim=x"),
        ("v=DMARC1; p=none; pct=101", "pct=101"),
        ("v=DMARC1; p=none; rua=https://acme.test", "not a mailto"),
        ("v=DMARC1; p=none; p=reject", "more than once"),
        ("v=DMARC1; p", "not a tag=value"),
    ])
    func brokenDMARC(text: String, message: String) {
        do {
            _ = try DMARCRecord(parsing: text)
            Issue.record("\(text) was accepted")
        } catch {
            #expect(error.description.contains(message), "\(error)")
        }
    }

    @Test("A DKIM key record's key is read past whitespace; v= is optional but first")
    func dkim() throws {
        let record = try DKIMKeyRecord(parsing: "v=DKIM1; k=ed25519; p=AAEC AwQF")
        #expect(record.keyType == "ed25519" && record.publicKey == [0, 1, 2, 3, 4, 5] && !record.isRevoked && !record.isTesting)
        #expect(try DKIMKeyRecord(parsing: "p=AAEC; t=y:s").keyType == "rsa")
        #expect(try DKIMKeyRecord(parsing: "p=AAEC; t=y:s").isTesting)
        #expect(try DKIMKeyRecord(parsing: "v=DKIM1; p=").isRevoked)
        #expect(throws: DKIMKeyRecordError.self) { try DKIMKeyRecord(parsing: "k=rsa; v=DKIM1; p=AAEC") }
        #expect(throws: DKIMKeyRecordError.self) { try DKIMKeyRecord(parsing: "v=DKIM1; k=rsa") }
        #expect(throws: DKIMKeyRecordError.self) { try DKIMKeyRecord(parsing: "v=DKIM1; p=!!!") }
    }
}
