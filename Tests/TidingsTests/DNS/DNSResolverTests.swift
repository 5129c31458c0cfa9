import Foundation
import Testing
import TidingsDNS

/// The resolver against a real DNS server: dnsmasq on loopback.
@Suite("DNS resolver (dnsmasq)")
struct DNSResolverTests {
    /// Generous limits: the suite runs hundreds of tests at once on a small machine.
    func resolver(_ server: DNSServer) -> DNSResolver {
        DNSResolver(servers: [DNSServerAddress(host: "127.0.0.1", port: server.port)], timeout: .seconds(5), attempts: 2)
    }

    @Test("TXT, A, AAAA, MX and CNAME answers are read; a long TXT value arrives as one record")
    func answers() async throws {
        try await DNSServer.with { server in
            var zone = DNSZone()
            let long = "v=DKIM1; k=rsa; p=" + String(repeating: "A", count: 380)
            zone.txt("acme.test", "v=spf1 mx -all")
            zone.txt("key._domainkey.acme.test", long)
            zone.host("mail.acme.test", "192.0.2.25", "2001:db8::25")
            zone.mx.append(("acme.test", "mail.acme.test", 10))
            zone.cnames.append(("alias._domainkey.acme.test", "mail.acme.test"))
            try await server.serve(zone)
            let dns = resolver(server)
            #expect(try await dns.texts(at: DNSName("ACME.test")) == ["v=spf1 mx -all"])
            #expect(try await dns.texts(at: DNSName("key._domainkey.acme.test")) == [long])
            #expect(try await dns.addresses(of: DNSName("mail.acme.test")).map(\.description) == ["192.0.2.25", "2001:db8::25"])
            #expect(try await dns.records(.mx, at: DNSName("acme.test")) == [.mx(preference: 10, exchange: try DNSName("mail.acme.test"))])
            // dnsmasq answers a CNAME with the chain and its target's records.
            #expect(try await dns.records(.a, at: DNSName("alias._domainkey.acme.test")).compactMap(\.address).map(\.description) == ["192.0.2.25"])
        }
    }

    @Test("An answer too long for UDP is truncated by the server and fetched again over TCP")
    func truncatedAnswersFallBackToTCP() async throws {
        try await DNSServer.with { server in
            var zone = DNSZone()
            // Six 250-byte records: about 1,600 bytes of answer, more than the 1,232 bytes the query announces.
            let values = (0..<6).map { "verification-\($0)=" + String(repeating: Character(String($0)), count: 235) }
            for value in values { zone.txt("big.acme.test", value) }
            try await server.serve(zone)
            // Over UDP alone the answer is cut, and the server says so with TC.
            let query = DNSMessage.query(id: 0x5A5A, name: try DNSName("big.acme.test"), type: .txt)
            let overUDP = try DNSMessage(decoding: try udpExchange(query.encoded(), port: server.port))
            #expect(overUDP.header.isTruncated && overUDP.answers.count < values.count)
            // The resolver asks again over TCP and gets every record.
            let dns = resolver(server)
            let answer = try await dns.query(DNSName("big.acme.test"), .txt)
            #expect(!answer.header.isTruncated)
            #expect(Set(try await dns.texts(at: DNSName("big.acme.test"))) == Set(values))
        }
    }

    @Test("NXDOMAIN, no records, a refusal, silence and a closed port are told apart")
    func failures() async throws {
        try await DNSServer.with { server in
            var zone = DNSZone()
            zone.host("mail.acme.test", "192.0.2.25")
            try await server.serve(zone)
            let dns = resolver(server)
            await #expect(throws: DNSLookupError.nameNotFound(try DNSName("nowhere.acme.test"))) {
                try await dns.records(.txt, at: DNSName("nowhere.acme.test"))
            }
            #expect(try await dns.records(.txt, at: DNSName("mail.acme.test")).isEmpty, "the name exists without TXT records")
            #expect(try await dns.texts(at: DNSName("nowhere.acme.test")).isEmpty)
            // Outside the zones it serves, dnsmasq (with no upstream) refuses.
            await #expect(throws: DNSLookupError.serverFailure(server: server.address, code: .refused)) {
                try await dns.records(.txt, at: DNSName("acme.example"))
            }
        }
        let silent = try SilentUDPServer()
        let hung = DNSResolver(servers: [DNSServerAddress(host: "127.0.0.1", port: silent.port)], timeout: .milliseconds(300), attempts: 2)
        let started = ContinuousClock.now
        await #expect(throws: DNSLookupError.timeout(server: "127.0.0.1:\(silent.port)", after: .milliseconds(300))) {
            try await hung.records(.txt, at: DNSName("acme.test"))
        }
        #expect(ContinuousClock.now - started < .seconds(10), "two tries of 0.3 s, not the default 2 × 5 s")

        let closed = DNSResolver(servers: [DNSServerAddress(host: "127.0.0.1", port: try DNSServer.freePort())], timeout: .seconds(1), attempts: 1)
        do {
            _ = try await closed.records(.txt, at: DNSName("acme.test"))
            Issue.record("a closed port answered")
        } catch let error as DNSLookupError {
            switch error {
            case .unreachable, .timeout: break
            default: Issue.record("unexpected \(error)")
            }
        }
    }

    @Test("A dead server is skipped for the next one")
    func failover() async throws {
        try await DNSServer.with { server in
            var zone = DNSZone()
            zone.txt("acme.test", "v=spf1 -all")
            try await server.serve(zone)
            let silent = try SilentUDPServer()
            let dns = DNSResolver(
                servers: [DNSServerAddress(host: "127.0.0.1", port: silent.port), DNSServerAddress(host: "127.0.0.1", port: server.port)],
                timeout: .seconds(5), attempts: 1
            )
            #expect(try await dns.texts(at: DNSName("acme.test")) == ["v=spf1 -all"])
        }
    }
}
