import Foundation
import Testing
@testable import TidingsMail

@Suite("SMTP codec")
struct SMTPCodecTests {
    @Test("Replies are read across reads, multi-line ones whole, with enhanced status codes")
    func replies() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.consume(Array("220 mx.acme.test ESMTP ready\r\n250-mx.acme.test hello\r\n250-PIPE".utf8)).map(\.code) == [220])
        #expect(parser.hasPartialReply)
        let ehlo = try parser.consume(Array("LINING\r\n250-SIZE 10485760\r\n250-AUTH PLAIN LOGIN\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n".utf8))
        #expect(ehlo.count == 1 && ehlo[0].lines.count == 6)
        let capabilities = SMTPCapabilities(ehlo: ehlo[0])
        #expect(capabilities.pipelining && capabilities.startTLS && capabilities.enhancedStatusCodes)
        #expect(capabilities.maxSize == 10_485_760 && capabilities.authMechanisms == ["PLAIN", "LOGIN"])
        #expect(!capabilities.smtpUTF8)

        let rejected = try parser.consume(Array("550 5.1.1 <nobody@acme.test>: Recipient address rejected\n".utf8))
        #expect(rejected.first?.enhancedCode == "5.1.1" && rejected.first?.isMailboxFailure == true)
        let busy = try parser.consume(Array("451 4.7.1 Try again later\r\n".utf8)).first
        #expect(busy?.isTransient == true && busy?.enhancedCode == "4.7.1" && busy?.isMailboxFailure == false)
        #expect(try parser.consume(Array("250 2.0.0 Ok: queued as 4F1\r\n".utf8)).first?.description == "250 2.0.0 Ok: queued as 4F1")
        #expect(try parser.consume(Array("554 5.7.1 1.2.3 is not a code here\r\n".utf8)).first?.enhancedCode == "5.7.1")
        #expect(try parser.consume(Array("250 9.9.9 wrong class\r\n".utf8)).first?.enhancedCode == nil)
        #expect(!parser.hasPartialReply)
    }

    @Test("Malformed replies are protocol errors, not guesses")
    func malformed() {
        for bad in ["hello\r\n", "2500 x\r\n", "250-a\r\n251 b\r\n", "650 x\r\n", String(repeating: "x", count: 5000)] {
            var parser = SMTPReplyParser()
            #expect(throws: SMTPProtocolError.self, "\(bad.prefix(20))") { _ = try parser.consume(Array(bad.utf8)) }
        }
    }

    @Test("Commands are single lines; no value can add one")
    func commands() throws {
        #expect(try SMTPCommand.mailFrom("bounce@acme.test", size: 1200, eightBit: true, smtpUTF8: false).encoded()
            == Array("MAIL FROM:<bounce@acme.test> SIZE=1200 BODY=8BITMIME\r\n".utf8))
        #expect(try SMTPCommand.rcptTo("asa@example.com").encoded() == Array("RCPT TO:<asa@example.com>\r\n".utf8))
        #expect(try SMTPCommand.authPlain(username: "user", password: "pass").encoded() == Array("AUTH PLAIN AHVzZXIAcGFzcw==\r\n".utf8))
        #expect(try SMTPCommand.authLoginStep("user").encoded() == Array("dXNlcg==\r\n".utf8))
        for hostile in ["a@b.c>\r\nRCPT TO:<victim@x.y", "a@b.c\nDATA", "a\0b"] {
            #expect(throws: SMTPProtocolError.self) { _ = try SMTPCommand.rcptTo(hostile).encoded() }
            #expect(throws: SMTPProtocolError.self) { _ = try SMTPCommand.mailFrom(hostile, size: nil, eightBit: false, smtpUTF8: false).encoded() }
        }
        #expect(throws: SMTPProtocolError.self) { _ = try SMTPCommand.authPlain(username: "u\r\nQUIT", password: "p").encoded() }
    }

    @Test("DATA doubles leading dots, never sends a bare LF or CR, and ends with CRLF.CRLF")
    func data() {
        #expect(SMTPData.encode(Array("Subject: x\r\n\r\n.hidden\r\n..two\r\nend".utf8)) == Array("Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n".utf8))
        #expect(SMTPData.encode(Array("a\nb\rc\r\n".utf8)) == Array("a\r\nb\r\nc\r\n.\r\n".utf8))
        #expect(SMTPData.encode(Array(".".utf8)) == Array("..\r\n.\r\n".utf8))
        #expect(SMTPData.encode([]) == Array(".\r\n".utf8))
    }
}
