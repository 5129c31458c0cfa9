import Testing
import TidingsDomain

/// The rule for targets users choose (webhooks): in production only public addresses.
@Suite("Public target policy")
struct PublicTargetPolicyTests {
    @Test("Inner ranges are named; public addresses pass; embedded IPv4 is judged by the address it carries")
    func ranges() {
        let inner = [
            ("127.0.0.1", "loopback"), ("10.9.8.7", "private"), ("172.31.255.255", "private"), ("192.168.0.1", "private"),
            ("169.254.169.254", "link-local"), ("100.64.0.1", "carrier-grade NAT"), ("0.0.0.0", "unspecified"), ("224.0.0.251", "multicast"),
            ("255.255.255.255", "reserved"), ("::1", "loopback"), ("::", "unspecified"), ("fd12:3456::1", "unique-local"),
            ("fe80::1", "link-local"), ("ff02::1", "multicast"), ("::ffff:10.0.0.1", "private"), ("64:ff9b::7f00:1", "loopback"),
            ("2002:c0a8:0101::1", "private"), ("::10.0.0.1", "IPv4-compatible"),
        ]
        for (address, range) in inner {
            #expect(OutboundURLPolicy.nonPublicRange(of: address)?.contains(range) == true, "\(address)")
        }
        for address in ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"] {
            #expect(OutboundURLPolicy.nonPublicRange(of: address) == nil, "\(address)")
        }
    }

    @Test("URLs: hosts are names or plainly written addresses; credentials and fragments are refused; production refuses inner literals")
    func urls() throws {
        let production = OutboundURLPolicy(environment: .production)
        let development = OutboundURLPolicy(environment: .development)
        #expect(try production.checkTarget("https://hooks.example.com/in?token=1").host == "hooks.example.com")
        #expect(try production.checkTarget("https://93.184.215.14:8443/in").port == 8443)
        for url in ["https://2130706433/", "https://0x7f.0.0.1/", "https://127.1/", "https://010.0.0.1/", "https://a..b/", "https://-x.example/",
                    "https://user:pw@hooks.example.com/", "https://hooks.example.com/#frag", "https://hooks.example.com/a b", "https://bücher.example/"] {
            #expect(throws: OutboundURLPolicy.Refused.self, "\(url)") { try development.checkTarget(url) }
        }
        for url in ["https://127.0.0.1/", "https://localhost/", "https://api.localhost/", "https://[::1]/", "https://10.0.0.1/", "https://[fc00::1]/"] {
            #expect(throws: OutboundURLPolicy.Refused.self, "\(url)") { try production.checkTarget(url) }
            #expect(throws: Never.self, "\(url)") { try development.checkTarget(url) }
        }
        #expect(throws: OutboundURLPolicy.Refused.self) { try production.checkResolved(host: "h.example", addresses: ["93.184.215.14", "10.0.0.1"]) }
        #expect(throws: OutboundURLPolicy.Refused.self) { try production.checkResolved(host: "h.example", addresses: []) }
        try production.checkResolved(host: "h.example", addresses: ["93.184.215.14", "2606:4700::1111"])
        try development.checkResolved(host: "h.example", addresses: ["10.0.0.1"])
    }
}
