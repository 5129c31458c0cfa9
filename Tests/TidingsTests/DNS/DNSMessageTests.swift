import Testing
import TidingsDNS

@Suite("DNS message codec")
struct DNSMessageTests {
    /// `acme.test` as labels on the wire.
    static let acmeTest: [UInt8] = [4] + Array("acme".utf8) + [4] + Array("test".utf8) + [0]

    @Test("A query is the header, one question and an EDNS0 record announcing 1232 bytes")
    func queryEncoding() throws {
        let query = DNSMessage.query(id: 0x1234, name: try DNSName("Acme.test."), type: .txt)
        let expected: [UInt8] = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
            + [4] + Array("Acme".utf8) + [4] + Array("test".utf8) + [0] + [0, 16, 0, 1]
            + [0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        #expect(query.encoded() == expected)
        #expect(DNSMessage.query(id: 1, name: .root, type: .a, edns: false).encoded() == [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
    }

    /// A response as a server writes it: the answers' names point back at the question's.
    static func compressedResponse() -> [UInt8] {
        var bytes: [UInt8] = [0xBE, 0xEF, 0x85, 0x80, 0, 1, 0, 3, 0, 0, 0, 0]
        bytes += acmeTest + [0, 16, 0, 1]  // question at offset 12
        // TXT of acme.test: two character-strings.
        bytes += [0xC0, 12, 0, 16, 0, 1, 0, 0, 0x0E, 0x10]
        let strings: [UInt8] = [6] + Array("v=spf1".utf8) + [5] + Array(" -all".utf8)
        bytes += [0, UInt8(strings.count)] + strings
        // MX of acme.test: 10 mail.<pointer to acme.test>.
        bytes += [0xC0, 12, 0, 15, 0, 1, 0, 0, 0, 60]
        let exchange: [UInt8] = [4] + Array("mail".utf8) + [0xC0, 12]
        bytes += [0, UInt8(2 + exchange.count), 0, 10] + exchange
        // A of mail.acme.test, its name a pointer into the MX record's data.
        let mailOffset = bytes.count - exchange.count
        bytes += [0xC0, UInt8(mailOffset), 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 25]
        return bytes
    }

    @Test("Answers are read with their compressed names, TXT strings in order, MX exchanges and addresses")
    func decodingWithCompression() throws {
        let message = try DNSMessage(decoding: Self.compressedResponse())
        #expect(message.id == 0xBEEF)
        #expect(message.header.isResponse && message.header.isAuthoritative && message.header.recursionDesired && message.header.recursionAvailable)
        #expect(!message.header.isTruncated && message.header.responseCode == .noError)
        #expect(message.questions == [DNSQuestion(name: try DNSName("acme.test"), type: .txt)])
        #expect(message.answers.count == 3)
        #expect(message.answers[0].name == (try DNSName("ACME.test")) && message.answers[0].ttl == 3600)
        #expect(message.answers[0].data == .txt([Array("v=spf1".utf8), Array(" -all".utf8)]))
        #expect(message.answers[0].data.text == "v=spf1 -all")
        #expect(message.answers[1].data == .mx(preference: 10, exchange: try DNSName("mail.acme.test")))
        #expect(message.answers[2].name == (try DNSName("mail.acme.test")))
        #expect(message.answers[2].data.address?.description == "192.0.2.25")
    }

    @Test("Every cut of a message is an error, never a crash or a partial message")
    func truncatedMessages() {
        let bytes = Self.compressedResponse()
        for length in 0..<bytes.count {
            #expect(throws: DNSMessageError.self, "cut at \(length)") { try DNSMessage(decoding: Array(bytes.prefix(length))) }
        }
    }

    @Test("Compression pointers that point at themselves or forward are refused, so no loop can be built")
    func pointerLoops() {
        var selfPointer: [UInt8] = [0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        selfPointer += [0xC0, 12, 0, 16, 0, 1]
        #expect(throws: DNSMessageError.badPointer(at: 12)) { try DNSMessage(decoding: selfPointer) }

        var forward: [UInt8] = [0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        forward += [0xC0, 14] + Self.acmeTest + [0, 16, 0, 1]
        #expect(throws: DNSMessageError.badPointer(at: 12)) { try DNSMessage(decoding: forward) }

        // Two names pointing at each other: the second points back, the first forward.
        var pair: [UInt8] = [0, 1, 0x80, 0, 0, 2, 0, 0, 0, 0, 0, 0]
        pair += [1, UInt8(ascii: "a"), 0xC0, 20, 0, 16, 0, 1]  // offset 12, points to 20
        pair += [1, UInt8(ascii: "b"), 0xC0, 12, 0, 16, 0, 1]  // offset 20, points to 12
        #expect(throws: DNSMessageError.badPointer(at: 14)) { try DNSMessage(decoding: pair) }

        var extended: [UInt8] = [0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        extended += [0x41, 0, 0, 16, 0, 1]
        #expect(throws: DNSMessageError.unsupportedLabel(at: 12)) { try DNSMessage(decoding: extended) }
    }

    @Test("Record data of the wrong size is refused")
    func badRecordData() {
        var header: [UInt8] = [0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        header += Self.acmeTest + [0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]
        #expect(throws: DNSMessageError.self) { try DNSMessage(decoding: header) }
        var txt: [UInt8] = [0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        txt += Self.acmeTest + [0, 16, 0, 1, 0, 0, 0, 1, 0, 3, 9, 0x61, 0x62]  // a string longer than its record
        #expect(throws: DNSMessageError.self) { try DNSMessage(decoding: txt) }
    }

    @Test("A message survives encoding and decoding unchanged")
    func roundTrip() throws {
        var header = DNSMessage.Header()
        header.isResponse = true
        header.isTruncated = true
        header.responseCode = .nameError
        let name = try DNSName("tdg1r._domainkey.acme.test")
        let message = DNSMessage(id: 7, header: header, questions: [DNSQuestion(name: name, type: .txt)], answers: [
            DNSResourceRecord(name: name, type: .txt, ttl: 5, data: .txt([Array(repeating: 0x61, count: 255), Array("tail".utf8)])),
            DNSResourceRecord(name: name, type: .cname, ttl: 5, data: .cname(try DNSName("key.provider.test"))),
            DNSResourceRecord(name: name, type: .aaaa, ttl: 5, data: .aaaa(IPAddress("2001:db8::25")!)),
            DNSResourceRecord(name: name, type: DNSRecordType(rawValue: 99), ttl: 5, data: .other([1, 2, 3])),
        ])
        #expect(try DNSMessage(decoding: message.encoded()) == message)
    }

    @Test("The records of a name are found across the CNAME chain a server includes")
    func cnameChains() throws {
        let alias = try DNSName("tdg1r._domainkey.acme.test"), target = try DNSName("key.provider.test")
        var message = DNSMessage(id: 1, header: .init(), questions: [DNSQuestion(name: alias, type: .txt)], answers: [
            DNSResourceRecord(name: alias, type: .cname, ttl: 1, data: .cname(target)),
            DNSResourceRecord(name: target, type: .txt, ttl: 1, data: .txt([Array("v=DKIM1; p=".utf8)])),
        ])
        #expect(message.records(.txt, for: alias).records.compactMap(\.text) == ["v=DKIM1; p="])
        #expect(message.records(.txt, for: alias).next == nil)
        message.answers.removeLast()
        #expect(message.records(.txt, for: alias).records.isEmpty)
        #expect(message.records(.txt, for: alias).next == target, "the chain's end is asked for separately")
        message.answers.append(DNSResourceRecord(name: target, type: .cname, ttl: 1, data: .cname(alias)))
        #expect(message.records(.txt, for: alias) == ([], nil), "a loop ends the chain")
    }
}

@Suite("DNS names, addresses and servers")
struct DNSNameTests {
    @Test("Names compare without case and a final dot; labels and names have their RFC 1035 limits")
    func names() throws {
        #expect(try DNSName("Acme.TEST.") == DNSName("acme.test"))
        #expect(try DNSName("acme.test").hashValue == DNSName("ACME.test").hashValue)
        #expect(try DNSName(".") == .root && DNSName.root.description == ".")
        #expect(try DNSName("_dmarc.acme.test").isWithin(DNSName("acme.test")))
        #expect(try !DNSName("acme.test").isWithin(DNSName("mail.acme.test")))
        #expect(throws: DNSNameError.empty) { try DNSName("") }
        #expect(throws: DNSNameError.emptyLabel) { try DNSName("acme..test") }
        #expect(throws: DNSNameError.labelTooLong(64)) { try DNSName(String(repeating: "a", count: 64) + ".test") }
        let long = Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: ".")
        #expect(throws: DNSNameError.tooLong(257)) { try DNSName(long) }
        #expect(try DNSName(labels: [[0x61, 0x2E, 0x00], Array("test".utf8)]).description == "a\\.\\000.test")
    }

    @Test("IP addresses are read in every text form and written canonically", arguments: [
        ("192.0.2.25", "192.0.2.25"), ("2001:DB8::1", "2001:db8::1"), ("::", "::"), ("::1", "::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("fe80::", "fe80::"),
    ])
    func addresses(text: String, canonical: String) {
        #expect(IPAddress(text)?.description == canonical)
    }

    @Test("Malformed addresses are refused", arguments: ["01.2.3.4", "256.1.1.1", "1.2.3", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "12345::", "g::1", ""])
    func badAddresses(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test("Prefixes match bit by bit, never across families")
    func prefixes() throws {
        let address = try #require(IPAddress("192.0.2.130"))
        #expect(address.matches(IPAddress("192.0.2.128")!, prefixLength: 25))
        #expect(!address.matches(IPAddress("192.0.2.0")!, prefixLength: 25))
        #expect(address.matches(IPAddress("10.0.0.0")!, prefixLength: 0))
        #expect(!address.matches(IPAddress("::")!, prefixLength: 0))
        #expect(IPAddress("2001:db8:1::7")!.matches(IPAddress("2001:db8::")!, prefixLength: 32))
        #expect(IPAddress("2001:db8::1")!.spfMacroText.hasPrefix("2.0.0.1.0.d.b.8.0.0"))
        #expect(IPAddress("192.0.2.1")!.reversedLabels == ["1", "2", "0", "192"])
    }

    @Test("A DNS server is host or host:port, IPv6 in brackets; the system's come from resolv.conf")
    func servers() throws {
        #expect(try DNSServerAddress(parsing: "127.0.0.1") == DNSServerAddress(host: "127.0.0.1", port: 53))
        #expect(try DNSServerAddress(parsing: " 127.0.0.1:5353 ") == DNSServerAddress(host: "127.0.0.1", port: 5353))
        #expect(try DNSServerAddress(parsing: "[::1]:5353") == DNSServerAddress(host: "::1", port: 5353))
        #expect(try DNSServerAddress(parsing: "2001:db8::53") == DNSServerAddress(host: "2001:db8::53", port: 53))
        #expect(try DNSServerAddress(parsing: "Resolver.Internal:53").host == "resolver.internal")
        #expect(DNSServerAddress(host: "::1", port: 53).description == "[::1]:53")
        for bad in ["", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", "[::1", "[127.0.0.1]:53", "dns server", "-bad.example", "[::1]x"] {
            #expect(throws: DNSServerAddress.Invalid.self, "\(bad)") { try DNSServerAddress(parsing: bad) }
        }
        let conf = "# generated\nsearch example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n;nameserver 10.9.9.9\nnameserver bogus\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n"
        #expect(DNSServerAddress.system(resolvConf: conf).map(\.description) == ["10.0.0.2:53", "[fe80::1]:53", "10.0.0.3:53"])
        #expect(DNSServerAddress.system(resolvConf: nil) == [DNSServerAddress(host: "127.0.0.1")])
    }
}
