import Testing
@testable import TidingsDomain

@Suite("IP address truncation")
struct IPAddressTruncationTests {
    @Test("Addresses are cut to their /24 (IPv4) or /48 (IPv6)", arguments: [
        ("203.0.113.77", "203.0.113.0"),
        ("127.0.0.1", "127.0.0.0"),
        ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("2001:db8::1", "2001:db8:0::"),
        ("::1", "0:0:0::"),
        ("::ffff:198.51.100.23", "198.51.100.0"),
        ("fe80::1%eth0", "fe80:0:0::"),
    ])
    func truncates(address: String, expected: String) {
        #expect(IPAddressTruncation.truncate(address) == expected)
    }

    @Test("Text that is not an address is refused", arguments: [
        "", "localhost", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01234.1.1.1", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1",
    ])
    func refusesNonAddresses(text: String) {
        #expect(IPAddressTruncation.truncate(text) == nil)
    }
}
