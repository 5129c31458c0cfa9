import Foundation
import Testing
import TidingsDomain
@testable import TidingsMail

/// Signatures are checked by dkimpy, an independent DKIM implementation, against the DNS
/// records the keys publish.
@Suite("DKIM signing")
struct DKIMSignerTests {
    static let verify = #"""
        import json, sys, dkim
        records = json.loads(open(sys.argv[2]).read())
        def dns(name, timeout=5):
            return records.get(name.decode().rstrip("."), "").encode()
        message = open(sys.argv[1], "rb").read()
        results = []
        d = dkim.DKIM(message)
        for index in range(message.count(b"DKIM-Signature:")):
            try:
                results.append(bool(d.verify(idx=index, dnsfunc=dns)))
            except dkim.ValidationError:
                results.append(False)
        print(json.dumps(results))
        """#

    /// dkimpy's verdict on each signature of `message`, newest first.
    func verdicts(_ message: [UInt8], keys: [DKIMKey]) async throws -> [Bool] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dkim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let messageFile = directory.appendingPathComponent("message.eml"), dnsFile = directory.appendingPathComponent("dns.json")
        try Data(message).write(to: messageFile)
        let records = Dictionary(uniqueKeysWithValues: keys.map { ($0.dnsName, $0.dnsRecord) })
        try JSONSerialization.data(withJSONObject: records).write(to: dnsFile)
        let result = try await run("/usr/bin/env", ["python3", "-c", Self.verify, messageFile.path, dnsFile.path])
        try #require(result.status == 0, "dkimpy (scripts/requirements-test.txt) failed: \(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [Bool])
    }

    func message() throws -> [UInt8] {
        let message = OutgoingMessage(
            from: Mailbox("Acme", try EmailAddress("hello@acme.test")), to: [Mailbox("Åsa", try EmailAddress("asa@example.com"))],
            replyTo: Mailbox("", try EmailAddress("help@acme.test")), subject: "Grüße from Acme", messageId: "<m1@acme.test>",
            date: Date(timeIntervalSince1970: 1_796_055_600), text: "Hello   Åsa,\n\nwelcome.  \n\n\n",
            html: "<p>Hello <b>Åsa</b></p>", attachments: [Attachment(filename: "a.bin", contentType: "application/octet-stream", content: [1, 2, 3])]
        )
        return MIMEBuilder.build(message, boundarySeed: "dkim")
    }

    @Test("RSA-SHA256 and Ed25519 signatures verify with dkimpy against the published records")
    func signaturesVerify() async throws {
        let rsa = try DKIMKey.generateRSA(domain: "acme.test", selector: "t1")
        let ed = DKIMKey.generateEd25519(domain: "acme.test", selector: "t1e")
        #expect(rsa.dnsName == "t1._domainkey.acme.test")
        #expect(rsa.dnsRecord.hasPrefix("v=DKIM1; k=rsa; p=MIIBIjAN"), "an RSA-2048 SubjectPublicKeyInfo")
        #expect(ed.dnsRecord.hasPrefix("v=DKIM1; k=ed25519; p="))
        let signed = try DKIMSigner.sign(try message(), with: [rsa, ed], at: Date())
        #expect(try await verdicts(signed, keys: [rsa, ed]) == [true, true])

        let header = String(decoding: signed.prefix(400), as: UTF8.self)
        #expect(header.contains("c=relaxed/relaxed") && !header.contains("l="))
        #expect(header.contains("h=from:to:reply-to:subject:date:message-id:mime-version:content-type:from;"))

        // Stored and loaded again, the keys sign the same way.
        let reloaded = try [rsa, ed].map { try DKIMKey(domain: $0.domain, selector: $0.selector, algorithm: $0.algorithm, privateKey: $0.privateKey) }
        #expect(try await verdicts(try DKIMSigner.sign(try message(), with: reloaded, at: Date()), keys: [rsa, ed]) == [true, true])
    }

    @Test("A changed subject or body, or an added From, breaks the signatures")
    func tamperingIsDetected() async throws {
        let rsa = try DKIMKey.generateRSA(domain: "acme.test", selector: "t2")
        let ed = DKIMKey.generateEd25519(domain: "acme.test", selector: "t2e")
        let signed = String(decoding: try DKIMSigner.sign(try message(), with: [rsa, ed], at: Date()), as: UTF8.self)
        let subject = signed.replacingOccurrences(of: "Subject: =?UTF-8?B?", with: "Subject: =?UTF-8?b?X")
        #expect(try await verdicts(Array(subject.utf8), keys: [rsa, ed]) == [false, false])
        let body = signed.replacingOccurrences(of: "welcome.", with: "welcome!")
        #expect(try await verdicts(Array(body.utf8), keys: [rsa, ed]) == [false, false])
        let addedFrom = signed.replacingOccurrences(of: "\r\nTo: ", with: "\r\nFrom: evil@attacker.test\r\nTo: ")
        #expect(try await verdicts(Array(addedFrom.utf8), keys: [rsa, ed]) == [false, false])
        // Relaxed canonicalization tolerates what relays commonly do: re-folding and trailing blanks.
        let refolded = signed.replacingOccurrences(of: "\r\nMIME-Version: 1.0", with: "\r\nMIME-Version:   1.0  ")
        #expect(try await verdicts(Array(refolded.utf8), keys: [rsa, ed]) == [true, true])
    }

    @Test("Relaxed canonicalization of headers and bodies follows RFC 6376")
    func canonicalization() {
        #expect(DKIMSigner.canonicalHeader(Array("SubJect :  Hello \r\n\t World  ".utf8)) == Array("subject:Hello World".utf8))
        #expect(DKIMSigner.canonicalBody(Array("a  b \t\r\n\r\n c\r\n\r\n\r\n".utf8)) == Array("a b\r\n\r\n c\r\n".utf8))
        #expect(DKIMSigner.canonicalBody(Array("x".utf8)) == Array("x\r\n".utf8))
    }
}
