import Crypto
import Foundation
import Testing
import TidingsDomain
@testable import TidingsMail

/// Built messages are read back by Python's standard `email` package, an independent MIME
/// parser, and must say exactly what was put in.
@Suite("MIME messages")
struct MIMEBuilderTests {
    static let parse = #"""
        import hashlib, json, sys
        from email import policy
        from email.parser import BytesParser
        raw = open(sys.argv[1], 'rb').read()
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        out = {
            "subject": str(msg["subject"]),
            "from": [(a.display_name, a.addr_spec) for a in msg["from"].addresses],
            "to": [(a.display_name, a.addr_spec) for a in msg["to"].addresses],
            "cc": [(a.display_name, a.addr_spec) for a in msg["cc"].addresses] if msg["cc"] else [],
            "replyTo": [(a.display_name, a.addr_spec) for a in msg["reply-to"].addresses] if msg["reply-to"] else [],
            "messageId": str(msg["message-id"]),
            "date": str(msg["date"]),
            "headers": [k for k in msg.keys()],
            "structure": [p.get_content_type() for p in msg.walk()],
            "defects": [str(d) for p in msg.walk() for d in p.defects],
        }
        body = msg.get_body(preferencelist=("plain",))
        out["text"] = body.get_content() if body else None
        html = msg.get_body(preferencelist=("html",))
        out["html"] = html.get_content() if html else None
        out["attachments"] = [(a.get_filename(), a.get_content_type(), hashlib.sha256(a.get_payload(decode=True)).hexdigest())
                              for a in msg.iter_attachments()]
        print(json.dumps(out))
        """#

    func parsed(_ bytes: [UInt8]) async throws -> [String: Any] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mime-\(UUID().uuidString).eml")
        try Data(bytes).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await run("/usr/bin/env", ["python3", "-c", Self.parse, file.path])
        try #require(result.status == 0, "\(result.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
    }

    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for index in bytes.indices where index > 0 && bytes[index - 1] == 0x0D && bytes[index] == 0x0A {
            lines.append(bytes[start..<(index - 1)])
            start = index + 1
        }
        if start < bytes.count { lines.append(bytes[start...]) }
        return lines
    }

    @Test("Text, HTML and attachments come back exactly, with non-ASCII headers encoded")
    func roundTrip() async throws {
        let binary = (0..<3000).map { UInt8($0 % 256) }
        let longLine = String(repeating: "Lorem ipsum dolor sit amet — ", count: 60)
        let text = "Grüße, Åsa!\nA line with trailing blanks   \n--looks like a boundary\n\(longLine)\n.\nend"
        let html = "<p>Grüße, <b>Åsa</b></p>\r\n<p>\(longLine)</p>"
        let message = OutgoingMessage(
            from: Mailbox("Acme \"Support\" Team", try EmailAddress("hello@acme.test")),
            to: [Mailbox("Åsa Öberg", try EmailAddress("asa@example.com")), Mailbox("", try EmailAddress("bob@example.com"))],
            cc: [Mailbox("Carol, CFO", try EmailAddress("carol@example.com"))],
            replyTo: Mailbox("Help Desk", try EmailAddress("help@acme.test")),
            subject: "Willkommen, Åsa — ihr Plan: Pro (\(String(repeating: "sehr ", count: 20))gut)",
            messageId: "<msg_01ABC@acme.test>",
            date: Date(timeIntervalSince1970: 1_796_055_600),
            text: text, html: html,
            attachments: [
                Attachment(filename: "Rechnung März.pdf", contentType: "application/pdf", content: binary),
                Attachment(filename: "notes.txt", contentType: "not a type", content: Array("hello\n".utf8)),
            ],
            extraHeaders: [(name: "X-Campaign", value: "autumn-2026")]
        )
        let bytes = MIMEBuilder.build(message, boundarySeed: "seed")
        let lines = Self.lines(bytes)
        #expect(lines.allSatisfy { $0.count <= 998 }, "no line over 998 octets")
        #expect(!lines.contains { $0.contains(0x0A) || $0.contains(0x0D) }, "CRLF line ends only")
        let headerLines = lines.prefix { !$0.isEmpty }
        // Folded near 78: a longer line is a single word (an encoded word after the field name).
        let long = headerLines.map { String(decoding: $0, as: UTF8.self) }.filter { $0.utf8.count > 78 && $0.dropFirst().contains(" ") && !$0.hasPrefix(" ") && $0.split(separator: " ").count > 2 }
        #expect(long.isEmpty, "\(long)")

        let result = try await parsed(bytes)
        #expect(result["defects"] as? [String] == [], "\(result["defects"] ?? "")")
        #expect(result["subject"] as? String == message.subject)
        #expect((result["from"] as? [[String]]) == [["Acme \"Support\" Team", "hello@acme.test"]])
        #expect((result["to"] as? [[String]]) == [["Åsa Öberg", "asa@example.com"], ["", "bob@example.com"]])
        #expect((result["cc"] as? [[String]]) == [["Carol, CFO", "carol@example.com"]])
        #expect((result["replyTo"] as? [[String]]) == [["Help Desk", "help@acme.test"]])
        #expect(result["messageId"] as? String == "<msg_01ABC@acme.test>")
        #expect(result["date"] as? String == "Mon, 30 Nov 2026 16:20:00 +0000")
        #expect(result["structure"] as? [String] == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf", "application/octet-stream"])
        // Text comes back in MIME's canonical form: CRLF line ends.
        #expect(result["text"] as? String == text.replacingOccurrences(of: "\n", with: "\r\n"))
        #expect(result["html"] as? String == html)
        let attachments = result["attachments"] as? [[String]]
        #expect(attachments?.first == ["Rechnung März.pdf", "application/pdf", SHA256.hash(data: binary).map { String(format: "%02x", $0) }.joined()])
        #expect(attachments?.last?.first == "notes.txt")
        #expect((result["headers"] as? [String])?.contains("X-Campaign") == true)
    }

    @Test("No value can start a header line: CR, LF and other controls become spaces")
    func headerInjection() async throws {
        let message = OutgoingMessage(
            from: Mailbox("Evil\r\nBcc: victim@example.com", try EmailAddress("hello@acme.test")),
            to: [Mailbox("", try EmailAddress("asa@example.com"))],
            subject: "Hi\r\nBcc: victim@example.com\nX-Spam: yes\u{2028}",
            messageId: "<id@acme.test>\r\nX-Injected: 1",
            date: Date(timeIntervalSince1970: 0), text: "Hello",
            extraHeaders: [(name: "X-Tag", value: "a\r\nX-Injected: 2")]
        )
        let bytes = MIMEBuilder.build(message)
        let headerLines = Self.lines(bytes).prefix { !$0.isEmpty }.map { String(decoding: $0, as: UTF8.self) }
        for forbidden in ["Bcc:", "X-Spam:", "X-Injected:"] {
            #expect(!headerLines.contains { $0.hasPrefix(forbidden) }, "\(forbidden) started a line")
        }
        let result = try await parsed(bytes)
        #expect(result["defects"] as? [String] == [])
        #expect((result["headers"] as? [String])?.filter { ["Bcc", "X-Spam", "X-Injected"].contains($0) } == [])
        #expect(result["subject"] as? String == "Hi  Bcc: victim@example.com X-Spam: yes")
    }

    @Test("A plain ASCII message is a single 7bit part; long or non-ASCII text is quoted-printable")
    func encodings() throws {
        func build(_ text: String) throws -> String {
            String(decoding: MIMEBuilder.build(OutgoingMessage(
                from: Mailbox("", try EmailAddress("a@acme.test")), to: [Mailbox("", try EmailAddress("b@acme.test"))],
                subject: "Hi", messageId: "<1@acme.test>", date: Date(timeIntervalSince1970: 0), text: text
            )), as: UTF8.self)
        }
        let plain = try build("Hello\nWorld")
        #expect(plain.contains("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello\r\nWorld\r\n"))
        #expect(!plain.contains("multipart"))
        #expect(try build("Grüße").contains("Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n"))
        #expect(try build("x = y   ").contains("7bit\r\n\r\nx = y   \r\n"), "ASCII with short lines stays 7bit")
        #expect(try build("é = y   ").contains("=C3=A9 =3D y  =20\r\n"))
        let long = try build(String(repeating: "a", count: 200))
        #expect(long.contains("quoted-printable") && long.contains("=\r\n"))
    }
}
