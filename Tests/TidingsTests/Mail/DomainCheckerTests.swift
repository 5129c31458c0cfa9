import Testing
import TidingsDNS
import TidingsDomain
@testable import TidingsMail

/// The checker's verdicts on cases the dnsmasq tests do not publish.
@Suite("Domain checker")
struct DomainCheckerTests {
    static let relay = DomainChecker.Server(name: "Relay", host: "mail.acme.test", spfInclude: nil)

    @Test("A subdomain without a DMARC record falls back to its organizational domain's, with sp= applying")
    func dmarcOrganizationalFallback() async {
        let dns = StaticDNS(txt: ["_dmarc.acme.test": ["v=DMARC1; p=reject; sp=quarantine; adkim=s; rua=mailto:d@acme.test"]])
        let check = await DomainChecker(lookup: dns, helo: "x.test").dmarc(domain: "news.acme.test", recommended: "v=DMARC1; p=none")
        #expect(check.status == .pass && check.policy == "quarantine")
        #expect(check.records == ["v=DMARC1; p=reject; sp=quarantine; adkim=s; rua=mailto:d@acme.test"])
        #expect(check.summary.contains("the organizational domain's record at _dmarc.acme.test applies"), "\(check.summary)")
        #expect(check.summary.contains("strict DKIM alignment (adkim=s)"))
        #expect(dns.questions == ["TXT _dmarc.news.acme.test", "TXT _dmarc.acme.test"])
    }

    @Test("Two DMARC records, a broken one, and pct below 100 are told apart")
    func dmarcProblems() async {
        func check(_ records: [String]) async -> DomainCheck {
            await DomainChecker(lookup: StaticDNS(txt: ["_dmarc.acme.test": records]), helo: "x.test").dmarc(domain: "acme.test", recommended: "v=DMARC1; p=none")
        }
        #expect(await check(["v=DMARC1; p=reject", "v=DMARC1; p=none"]).status == .fail)
        let broken = await check(["v=DMARC1; p=maybe"])
        #expect(broken.status == .fail && broken.summary.contains("p=maybe is not a policy"))
        let partial = await check(["v=DMARC1; p=reject; pct=25; rua=mailto:d@acme.test"])
        #expect(partial.status == .warning && partial.fix?.contains("Raise pct to 100") == true)
        #expect(await check(["some other text"]).status == .fail, "a TXT record that is not DMARC does not count")
    }

    @Test("SPF: +all fails, no email server warns, a server on this machine cannot be checked")
    func spfEdges() async {
        let dns = StaticDNS(txt: ["acme.test": ["v=spf1 a:mail.acme.test +all"], "local.test": ["v=spf1 ip4:192.0.2.1 -all"]], a: ["mail.acme.test": ["192.0.2.25"]])
        let checker = DomainChecker(lookup: dns, helo: "x.test")
        let open = await checker.spf(domain: "acme.test", servers: [Self.relay])
        #expect(open.status == .fail && open.summary.contains("authorises every server on the internet"), "\(open.summary)")
        let alone = await checker.spf(domain: "local.test", servers: [])
        #expect(alone.status == .warning && alone.fix == "Add an email server and verify again.")
        let local = await checker.spf(domain: "local.test", servers: [DomainChecker.Server(name: "Postfix", host: "127.0.0.1", spfInclude: nil)])
        #expect(local.status == .warning && local.summary.contains("runs on this machine"), "\(local.summary)")
        let voids = await DomainChecker(lookup: StaticDNS(txt: ["acme.test": ["v=spf1 a:n1.test a:n2.test mx:n3.test ip4:192.0.2.25 -all"]]), helo: "x.test")
            .spf(domain: "acme.test", servers: [DomainChecker.Server(name: "Literal", host: "192.0.2.25", spfInclude: nil)])
        #expect(voids.status == .fail && voids.voidLookups == 3, "\(voids.summary)")
        #expect(voids.fix == "Remove the terms that find nothing: a:n1.test a:n2.test mx:n3.test.")
    }

    @Test("SPF: a missing record is a fix built from the workspace's servers")
    func spfSuggestion() async {
        let servers = [Self.relay, DomainChecker.Server(name: "SES", host: "email-smtp.eu-west-1.amazonaws.com", spfInclude: "amazonses.com"),
                       DomainChecker.Server(name: "Literal", host: "2001:db8::25", spfInclude: nil)]
        let check = await DomainChecker(lookup: StaticDNS(txt: ["acme.test": ["google-site-verification=x"]]), helo: "x.test").spf(domain: "acme.test", servers: servers)
        #expect(check.status == .fail)
        #expect(check.fix == "Publish a TXT record at acme.test with the value v=spf1 a:mail.acme.test include:amazonses.com ip6:2001:db8::25 ~all.")
    }

    @Test("DKIM: a key in testing mode warns; a record of another key type fails")
    func dkimEdges() async throws {
        let key = DKIMKey.generateEd25519(domain: "acme.test", selector: "s1")
        let testing = await DomainChecker(lookup: StaticDNS(txt: [key.dnsName: [key.dnsRecord + "; t=y"]]), helo: "x.test").dkim(key)
        #expect(testing.status == .warning && testing.fix == "Once signed mail verifies, remove t=y: publish \(key.dnsRecord).")
        let rsaRecord = key.dnsRecord.replacingOccurrences(of: "k=ed25519", with: "k=rsa")
        let wrongType = await DomainChecker(lookup: StaticDNS(txt: [key.dnsName: [rsaRecord]]), helo: "x.test").dkim(key)
        #expect(wrongType.status == .fail && wrongType.summary.contains("is for a k=rsa key, but this selector signs with ed25519"))
        let failing = await DomainChecker(lookup: StaticDNS(failing: [key.dnsName]), helo: "x.test").dkim(key)
        #expect(failing.status == .error && failing.summary.contains("did not answer within 1 s"))
    }
}
