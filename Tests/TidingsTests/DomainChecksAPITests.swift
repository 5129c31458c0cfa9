import Foundation
import SQLKit
import Testing
import TidingsApp
import TidingsDomain

/// `POST /v1/domains/{domain}/verify` against a real DNS server: dnsmasq publishes the
/// records a test chooses, and Tidings (configured with TIDINGS_DNS_SERVER) asks it.
@Suite("Domain checks (dnsmasq)")
struct DomainChecksAPITests {
    /// A workspace with two email servers (its own relay at mail.acme.test and Postmark's
    /// preset), and the domain it sends from, as the API gave it out.
    struct Setup {
        var workspace: TestWorkspace
        var domain: String
        /// The DKIM records to publish, RSA first: (name, value).
        var dkim: [(name: String, value: String)]
        var dmarcRecommendation: String
    }

    static func setUp(_ api: TestClient, _ tidings: Tidings, domains: [String] = ["acme.test"]) async throws -> [Setup] {
        let workspace = try await tidings.makeWorkspace()
        let relay = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "Relay", "host": "mail.acme.test", "security": "starttls"])
        #expect(relay.status == .created, "\(relay.body)")
        let postmark = try await api.post("/v1/email-servers", key: workspace.key, json: ["name": "Postmark", "preset": "postmark"])
        #expect(postmark.status == .created, "\(postmark.body)")
        var setups: [Setup] = []
        for domain in domains {
            let created = try await api.post("/v1/domains", key: workspace.key, json: ["domain": domain])
            #expect(created.status == .created, "\(created.body)")
            let records = try #require(created.json["dnsRecords"] as? [[String: String]])
            let dkim = records.filter { $0["purpose"]?.hasPrefix("dkim") == true }.map { ($0["name"]!, $0["value"]!) }
            let dmarc = try #require(records.first { $0["purpose"] == "dmarc" }?["value"])
            setups.append(Setup(workspace: workspace, domain: domain, dkim: dkim, dmarcRecommendation: dmarc))
        }
        return setups
    }

    /// What a careful owner publishes for `setup`: the DKIM keys as given, an SPF record for
    /// both servers, a DMARC policy of reject, and (as many domains have) verification
    /// tokens that make the domain's TXT answer too long for UDP.
    static func goodZone(_ setups: [Setup]) -> DNSZone {
        var zone = DNSZone()
        zone.zones = ["test", "mtasv.net"]
        zone.host("mail.acme.test", "192.0.2.25")
        zone.txt("spf.mtasv.net", "v=spf1 ip4:198.51.100.0/24 ~all")
        for setup in setups {
            for (name, value) in setup.dkim { zone.txt(name, value) }
            zone.txt(setup.domain, "v=spf1 a:mail.acme.test include:spf.mtasv.net -all")
            for index in 0..<6 { zone.txt(setup.domain, "site-verification-\(index)=" + String(repeating: "k", count: 230)) }
            zone.txt("_dmarc.\(setup.domain)", "v=DMARC1; p=reject; rua=mailto:dmarc-reports@\(setup.domain)")
        }
        return zone
    }

    static func flags(_ server: DNSServer) -> [String: String] {
        [TidingsConfiguration.Key.dnsServer: server.address, TidingsConfiguration.Key.dnsTimeout: "5"]
    }

    static func checks(_ reply: TestClient.Reply) -> [[String: Any]] {
        ((reply.json["verification"] as? [String: Any])?["checks"] as? [[String: Any]]) ?? []
    }

    static func check(_ reply: TestClient.Reply, _ kind: String, index: Int = 0) -> [String: Any] {
        let matching = checks(reply).filter { $0["kind"] as? String == kind }
        return index < matching.count ? matching[index] : [:]
    }

    static func statuses(_ reply: TestClient.Reply) -> [String] {
        checks(reply).map { $0["status"] as? String ?? "?" }
    }

    @Test("A domain that publishes what Tidings gives out passes every check; results are stored, listed and audited", arguments: TestBackend.all)
    func everythingPublished(backend: TestBackend) async throws {
        try await DNSServer.with { server in
            try await withAPI(backend, flags: Self.flags(server)) { api, tidings in
                let setup = try await Self.setUp(api, tidings)[0]
                #expect(try await api.get("/v1/domains/acme.test", key: setup.workspace.key).json["verification"] is NSNull, "null before the first check")
                try await server.serve(Self.goodZone([setup]))

                let verified = try await api.request(.post, "/v1/domains/acme.test/verify", key: setup.workspace.key)
                #expect(verified.status == .ok, "\(verified.body)")
                let verification = try #require(verified.json["verification"] as? [String: Any])
                #expect(verification["status"] as? String == "pass", "\(verified.body)")
                #expect(Self.checks(verified).map { $0["kind"] as? String ?? "" } == ["dkim", "dkim", "spf", "dmarc"])
                #expect(Self.statuses(verified) == ["pass", "pass", "pass", "pass"], "\(verified.body)")
                for check in Self.checks(verified) { #expect(check["fix"] is NSNull, "\(check)") }
                let rsa = Self.check(verified, "dkim")
                #expect(rsa["name"] as? String == setup.dkim[0].name && rsa["records"] as? [String] == [setup.dkim[0].value])
                #expect(rsa["selector"] as? String == setup.dkim[0].name.components(separatedBy: ".")[0])
                let spf = Self.check(verified, "spf")
                // The answer held seven TXT records, more than fits in UDP: it was fetched over TCP.
                #expect(spf["records"] as? [String] == ["v=spf1 a:mail.acme.test include:spf.mtasv.net -all"])
                #expect(spf["lookups"] as? Int == 2 && spf["voidLookups"] as? Int == 0)
                #expect((spf["summary"] as? String)?.contains("It authorises Relay (mail.acme.test), Postmark (include:spf.mtasv.net)") == true, "\(spf)")
                let dmarc = Self.check(verified, "dmarc")
                #expect(dmarc["policy"] as? String == "reject" && dmarc["name"] as? String == "_dmarc.acme.test")

                // Stored: the same checks come back, and the list carries their outcome.
                let fetched = try await api.get("/v1/domains/acme.test", key: setup.workspace.key)
                #expect(NSDictionary(dictionary: fetched.json["verification"] as? [String: Any] ?? [:]).isEqual(to: verification))
                let listed = try #require(try await api.get("/v1/domains", key: setup.workspace.key).data.first?["verification"] as? [String: Any])
                #expect(listed["status"] as? String == "pass" && listed["checkedAt"] as? String == verification["checkedAt"] as? String)
                #expect(listed["checks"] == nil, "lists carry the outcome only")

                // What was found is sealed at rest: the report address in the DMARC record is not in the clear.
                let sealed = try await tidings.database.read { db in
                    try await db.raw("SELECT status, result_sealed FROM domain_checks ORDER BY position").all()
                }
                #expect(try sealed.map { try $0.decode(column: "status", as: String.self) } == ["pass", "pass", "pass", "pass"])
                #expect(try sealed.allSatisfy { !(try $0.decode(column: "result_sealed", as: String.self)).contains("DMARC1") })

                // The first results are audited as a change from unchecked; the same results again are not.
                _ = try await api.request(.post, "/v1/domains/acme.test/verify", key: setup.workspace.key)
                let audited = try await tidings.audit.list(workspaceId: setup.workspace.id, filter: .init(action: "domain.checks_changed"), cursor: nil, limit: 10)
                #expect(audited.items.count == 1)
                let changes = audited.items.first?.change.summary["changes"]
                #expect(changes == .array(["dkim:" + setup.dkim[0].name.components(separatedBy: ".")[0], "dkim:" + setup.dkim[1].name.components(separatedBy: ".")[0], "spf", "dmarc"].map {
                    .object(["check": .string($0), "from": .string("unchecked"), "to": .string("pass")])
                }))
                #expect(audited.items.first?.actor.kind == .apiKey)
            }
        }
    }

    enum Broken: String, CaseIterable, CustomStringConvertible {
        case missingDKIM, wrongDKIMKey, spfOverTenLookups, spfNotAuthorising, missingDMARC, dmarcMonitorOnly
        var description: String { rawValue }
    }

    @Test("Each broken record fails its check (or warns) with a fix naming what to publish; the repair is audited", arguments: TestBackend.all, Broken.allCases)
    func brokenRecords(backend: TestBackend, broken: Broken) async throws {
        try await DNSServer.with { server in
            try await withAPI(backend, flags: Self.flags(server)) { api, tidings in
                let setups = try await Self.setUp(api, tidings, domains: ["acme.test", "other.test"])
                let setup = setups[0]
                let good = Self.goodZone([setup])
                var zone = good
                var expected = ["pass", "pass", "pass", "pass"]
                switch broken {
                case .missingDKIM:
                    zone.txt.removeAll { $0.name == setup.dkim[0].name }
                    expected[0] = "fail"
                case .wrongDKIMKey:
                    // Another domain's RSA key, published at this selector.
                    zone.txt.removeAll { $0.name == setup.dkim[0].name }
                    zone.txt(setup.dkim[0].name, setups[1].dkim[0].value)
                    expected[0] = "fail"
                case .spfOverTenLookups:
                    zone.txt.removeAll { $0.name == "acme.test" && $0.value.hasPrefix("v=spf1") }
                    zone.txt("acme.test", "v=spf1 a:mail.acme.test mx include:spf.mtasv.net include:bulk.provider.test -all")
                    zone.mx.append(("acme.test", "mail.acme.test", 10))
                    zone.txt("bulk.provider.test", "v=spf1 " + (1...4).map { "include:p\($0).provider.test" }.joined(separator: " ") + " ~all")
                    for index in 1...4 { zone.txt("p\(index).provider.test", "v=spf1 a:out\(index).provider.test -all") }
                    for index in 1...4 { zone.host("out\(index).provider.test", "203.0.113.\(index)") }
                    expected[2] = "fail"
                case .spfNotAuthorising:
                    zone.txt.removeAll { $0.name == "acme.test" && $0.value.hasPrefix("v=spf1") }
                    zone.txt("acme.test", "v=spf1 ip4:192.0.2.99 -all")
                    expected[2] = "fail"
                case .missingDMARC:
                    zone.txt.removeAll { $0.name == "_dmarc.acme.test" }
                    expected[3] = "fail"
                case .dmarcMonitorOnly:
                    zone.txt.removeAll { $0.name == "_dmarc.acme.test" }
                    zone.txt("_dmarc.acme.test", "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test")
                    expected[3] = "warning"
                }
                try await server.serve(zone)
                let verified = try await api.request(.post, "/v1/domains/acme.test/verify", key: setup.workspace.key)
                #expect(verified.status == .ok, "\(verified.body)")
                #expect(Self.statuses(verified) == expected, "\(verified.body)")
                let overall = (verified.json["verification"] as? [String: Any])?["status"] as? String
                #expect(overall == (broken == .dmarcMonitorOnly ? "warning" : "fail"))

                let index = expected.firstIndex { $0 != "pass" }!
                let failed = Self.checks(verified)[index]
                let summary = failed["summary"] as? String ?? ""
                let fix = failed["fix"] as? String ?? ""
                switch broken {
                case .missingDKIM:
                    #expect(summary.contains("No TXT record is published at \(setup.dkim[0].name)"))
                    #expect(fix == "Publish a TXT record at \(setup.dkim[0].name) with the value \(setup.dkim[0].value).")
                case .wrongDKIMKey:
                    #expect(summary.contains("holds a different rsa public key"), "\(summary)")
                    #expect(fix == "Replace the record at \(setup.dkim[0].name) with the value \(setup.dkim[0].value).")
                case .spfOverTenLookups:
                    #expect(failed["lookups"] as? Int == 12, "\(failed)")
                    #expect(summary.contains("Your SPF record needs 12 DNS lookups; the limit is 10"), "\(summary)")
                    #expect(fix.contains("flatten include:bulk.provider.test (9)"), "\(fix)")
                case .spfNotAuthorising:
                    #expect(summary.contains("does not authorise Relay (mail.acme.test): 192.0.2.25: fail by -all"), "\(summary)")
                    #expect(summary.contains("does not authorise Postmark: it has no include:spf.mtasv.net"), "\(summary)")
                    #expect(fix == "Add ip4:192.0.2.25 include:spf.mtasv.net to the record at acme.test, before its all mechanism.", "\(fix)")
                case .missingDMARC:
                    #expect(failed["records"] as? [String] == [])
                    #expect(fix == "Publish a TXT record at _dmarc.acme.test with the value \(setup.dmarcRecommendation).")
                case .dmarcMonitorOnly:
                    #expect(failed["policy"] as? String == "none")
                    #expect(summary.contains("p=none only monitors"), "\(summary)")
                    #expect(fix.contains("p=quarantine, then p=reject"))
                }

                // The owner repairs the record: the check passes, and both changes are in the audit log.
                try await server.serve(good)
                let repaired = try await api.request(.post, "/v1/domains/acme.test/verify", key: setup.workspace.key)
                #expect(Self.statuses(repaired) == ["pass", "pass", "pass", "pass"], "\(repaired.body)")
                let audited = try await tidings.audit.list(
                    workspaceId: setup.workspace.id, filter: .init(action: "domain.checks_changed"), cursor: nil, limit: 10, oldestFirst: true
                )
                #expect(audited.items.count == 2)
                let keys = setup.dkim.map { "dkim:" + $0.name.components(separatedBy: ".")[0] } + ["spf", "dmarc"]
                let key = keys[index]
                #expect(audited.items.last?.change.summary["changes"] == .array([
                    .object(["check": .string(key), "from": .string(expected[index]), "to": .string("pass")]),
                ]))
            }
        }
    }

    @Test("checkdmarc, asked through the same dnsmasq, agrees on SPF validity, lookup counts and DMARC presence", arguments: TestBackend.all)
    func checkdmarcAgrees(backend: TestBackend) async throws {
        try await DNSServer.with { server in
            try await withAPI(backend, flags: Self.flags(server)) { api, tidings in
                let setups = try await Self.setUp(api, tidings, domains: ["acme.test", "over.test", "plain.test"])
                var zone = Self.goodZone([setups[0]])
                // over.test: twelve lookups. plain.test: a, mx and a nested include, and no DMARC record.
                zone.txt("over.test", "v=spf1 " + (1...6).map { "include:p\($0).provider.test" }.joined(separator: " ") + " -all")
                for index in 1...6 {
                    zone.txt("p\(index).provider.test", "v=spf1 a:out\(index).provider.test -all")
                    zone.host("out\(index).provider.test", "203.0.113.\(index)")
                }
                zone.txt("_dmarc.over.test", "v=DMARC1; p=quarantine")
                zone.txt("plain.test", "v=spf1 a mx include:spf.mtasv.net ~all")
                zone.host("plain.test", "192.0.2.40")
                zone.mx.append(("plain.test", "mail.acme.test", 10))
                try await server.serve(zone)

                let report = try await checkdmarc(["acme.test", "over.test", "plain.test"], server: server)
                for domain in ["acme.test", "over.test", "plain.test"] {
                    let verified = try await api.request(.post, "/v1/domains/\(domain)/verify", key: setups[0].workspace.key)
                    let spf = Self.check(verified, "spf")
                    let dmarc = Self.check(verified, "dmarc")
                    let theirs = try #require(report[domain])
                    let theirSPF = try #require(theirs["spf"]), theirDMARC = try #require(theirs["dmarc"])
                    let ourLookups = try #require(spf["lookups"] as? Int, "\(verified.body)")
                    if ourLookups <= 10 {
                        #expect(theirSPF["valid"] as? Bool == true, "\(domain): \(theirSPF)")
                        #expect(theirSPF["lookups"] as? Int == ourLookups, "\(domain): checkdmarc \(theirSPF["lookups"] ?? "-"), Tidings \(ourLookups)")
                        #expect(theirSPF["voidLookups"] as? Int == spf["voidLookups"] as? Int, "\(domain)")
                    } else {
                        #expect(theirSPF["valid"] as? Bool == false, "\(domain): \(theirSPF)")
                        #expect((theirSPF["error"] as? String)?.contains("maximum DNS lookups") == true, "\(domain): \(theirSPF)")
                        #expect(spf["status"] as? String == "fail")
                    }
                    #expect(theirSPF["record"] as? String == (spf["records"] as? [String])?.first, "\(domain)")
                    let ourDMARC = !(dmarc["records"] as? [String] ?? []).isEmpty
                    #expect(theirDMARC["present"] as? Bool == ourDMARC, "\(domain): \(theirDMARC)")
                    #expect(theirDMARC["valid"] as? Bool == (dmarc["status"] as? String != "fail"), "\(domain): \(theirDMARC)")
                }
                #expect(Self.check(try await api.get("/v1/domains/over.test", key: setups[0].workspace.key), "spf")["lookups"] as? Int == 12)
                #expect(Self.check(try await api.get("/v1/domains/plain.test", key: setups[0].workspace.key), "spf")["lookups"] as? Int == 3)
            }
        }
    }

    @Test("A DNS server that does not answer, or refuses, makes every check an error, not a verdict", arguments: TestBackend.all)
    func dnsUnreachable(backend: TestBackend) async throws {
        let silent = try SilentUDPServer()
        let flags = [TidingsConfiguration.Key.dnsServer: "127.0.0.1:\(silent.port)", TidingsConfiguration.Key.dnsTimeout: "1"]
        try await withAPI(backend, flags: flags) { api, tidings in
            let setup = try await Self.setUp(api, tidings)[0]
            let started = ContinuousClock.now
            let verified = try await api.request(.post, "/v1/domains/acme.test/verify", key: setup.workspace.key)
            #expect(verified.status == .ok)
            #expect(Self.statuses(verified) == ["error", "error", "error", "error"], "\(verified.body)")
            #expect((verified.json["verification"] as? [String: Any])?["status"] as? String == "error")
            let dmarc = Self.check(verified, "dmarc")
            #expect((dmarc["summary"] as? String)?.contains("did not answer within 1 s") == true, "\(dmarc)")
            #expect((dmarc["fix"] as? String)?.contains("TIDINGS_DNS_SERVER") == true)
            // About 2 × 1 s, as the checks ask concurrently; the bound only says none waits without end.
            #expect(ContinuousClock.now - started < .seconds(60), "the checks end with their timeouts")
        }
        try await DNSServer.with { server in
            try await withAPI(backend, flags: Self.flags(server)) { api, tidings in
                let workspace = try await tidings.makeWorkspace()
                #expect(try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.example"]).status == .created)
                try await server.serve(DNSZone())
                let verified = try await api.request(.post, "/v1/domains/acme.example/verify", key: workspace.key)
                #expect(Self.statuses(verified) == ["error", "error", "error", "error"], "\(verified.body)")
                #expect((Self.check(verified, "spf")["summary"] as? String)?.contains("answered REFUSED") == true)
            }
        }
    }

    @Test("Verifying is admin-only and per workspace; unknown domains and wrong methods are clear 4xx", arguments: TestBackend.all)
    func badRequests(backend: TestBackend) async throws {
        try await withAPI(backend, flags: [TidingsConfiguration.Key.dnsServer: "127.0.0.1:9", TidingsConfiguration.Key.dnsTimeout: "1"]) { api, tidings in
            let workspace = try await tidings.makeWorkspace(name: "One")
            let other = try await tidings.makeWorkspace(name: "Two")
            #expect(try await api.post("/v1/domains", key: workspace.key, json: ["domain": "acme.test"]).status == .created)
            for path in ["/v1/domains/nowhere.test/verify", "/v1/domains/not%20a%20domain/verify", "/v1/domains/localhost/verify"] {
                let reply = try await api.request(.post, path, key: workspace.key)
                #expect(reply.status == .notFound && reply.errorCode == "domain_not_found", "\(path): \(reply.body)")
            }
            #expect(try await api.request(.post, "/v1/domains/acme.test/verify", key: other.key).errorCode == "domain_not_found")
            #expect(try await api.request(.post, "/v1/domains/acme.test/verify", key: nil).status == .unauthorized)
            let writer = try await api.post("/v1/api-keys", key: workspace.key, json: ["name": "w", "scopes": ["templates:write"]])
            let writerKey = try #require(writer.json["secret"] as? String)
            #expect(try await api.request(.post, "/v1/domains/acme.test/verify", key: writerKey).errorCode == "insufficient_scope")
            let wrongMethod = try await api.get("/v1/domains/acme.test/verify", key: workspace.key)
            #expect(wrongMethod.status == .methodNotAllowed && wrongMethod.errorCode == "method_not_allowed")
        }
    }

    @Test("The daily run checks each domain once a day, in its own workspace, as the system", arguments: TestBackend.all)
    func dailyRun(backend: TestBackend) async throws {
        let clock = TestClock()
        try await DNSServer.with { server in
            try await withAPI(backend, clock: clock, flags: Self.flags(server)) { api, tidings in
                let first = try await Self.setUp(api, tidings)[0]
                let second = try await tidings.makeWorkspace(name: "Second")
                #expect(try await api.post("/v1/domains", key: second.key, json: ["domain": "second.test"]).status == .created)
                try await server.serve(Self.goodZone([first]))

                #expect(try await tidings.domains.verifyDue() == 2, "never-checked domains are due")
                #expect(try await tidings.domains.verifyDue() == 0)
                let checked = try await api.get("/v1/domains/acme.test", key: first.workspace.key)
                #expect(Self.statuses(checked) == ["pass", "pass", "pass", "pass"], "\(checked.body)")
                let other = try await api.get("/v1/domains/second.test", key: second.key)
                #expect(Self.check(other, "dmarc")["status"] as? String == "fail")

                clock.advance(by: 23 * 3600)
                #expect(try await tidings.domains.verifyDue() == 0)
                // A check on request moves the domain's next daily check a day on.
                _ = try await api.request(.post, "/v1/domains/second.test/verify", key: second.key)
                clock.advance(by: 2 * 3600)
                #expect(try await tidings.domains.verifyDue() == 1, "only acme.test is due again")

                let audited = try await tidings.audit.list(workspaceId: first.workspace.id, filter: .init(action: "domain.checks_changed"), cursor: nil, limit: 10)
                #expect(audited.items.map { "\($0.actor.kind.rawValue):\($0.actor.id)" } == ["system:domain-checks"])
            }
        }
    }
}
