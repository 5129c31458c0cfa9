import Testing
import TidingsDomain

/// The rule every outbound HTTP endpoint follows (KMS now; webhooks and object storage later).
@Suite("Outbound URL policy")
struct OutboundURLPolicyTests {
    @Test("https:// passes everywhere; plain http:// only to loopback outside production", arguments: DeploymentEnvironment.allCases)
    func schemes(environment: DeploymentEnvironment) throws {
        let policy = OutboundURLPolicy(environment: environment)
        let secure = try policy.check("https://hooks.acme.test/tidings")
        #expect(secure.isEncrypted && secure.port == 443 && secure.host == "hooks.acme.test")
        for loopback in ["http://127.0.0.1:9000/x", "http://localhost", "http://[::1]:8080"] {
            if environment == .production {
                #expect(throws: OutboundURLPolicy.Refused.self) { try policy.check(loopback) }
            } else {
                #expect(try policy.check(loopback).isEncrypted == false)
            }
        }
        for refused in ["http://hooks.acme.test", "http://192.168.1.5", "http://127.0.0.1.nip.io", "ftp://127.0.0.1", "//no-scheme", "https://"] {
            #expect(throws: OutboundURLPolicy.Refused.self, "\(refused)") { try policy.check(refused) }
        }
    }

    @Test("Loopback is judged by form: 127.0.0.0/8, ::1, IPv4-mapped 127.x, localhost; never a name that merely starts like one")
    func loopbackByForm() {
        for host in ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "::ffff:127.0.0.1", "localhost", "LOCALHOST", "localhost."] {
            #expect(OutboundURLPolicy.isLoopback(host), "\(host)")
        }
        for host in ["128.0.0.1", "127.example.com", "localhost.example.com", "::2", "::ffff:10.0.0.1", "0.0.0.0", ""] {
            #expect(!OutboundURLPolicy.isLoopback(host), "\(host)")
        }
    }
}
