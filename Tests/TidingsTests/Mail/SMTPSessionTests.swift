import Testing
@testable import TidingsMail

/// The delivery state machine against scripted server replies (the network edge is tested
/// against real SMTP servers separately).
@Suite("SMTP session")
struct SMTPSessionTests {
    static func reply(_ text: String) -> SMTPReply {
        var parser = SMTPReplyParser()
        return try! parser.consume(Array((text.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n").utf8)).first!
    }

    static let envelope = SMTPSession.Envelope(
        sender: "bounce@acme.test", recipients: ["asa@example.com", "nobody@example.com"], message: Array("Subject: hi\r\n\r\n.dot\r\n".utf8)
    )

    /// What the client sent, as text, and how the session ended.
    struct Run {
        var sent: [String] = []
        var startedTLS = false
        var outcomes: [String: SMTPSession.Outcome]?
    }

    static func run(
        _ configuration: SMTPSession.Configuration, replies: [String], tlsAfterReply: Int? = nil, envelope: SMTPSession.Envelope = envelope
    ) -> Run {
        var session = SMTPSession(configuration: configuration, envelope: envelope)
        var result = Run()
        func apply(_ actions: [SMTPSession.Action]) -> Bool {
            for action in actions {
                switch action {
                case .send(let bytes): result.sent.append(String(decoding: bytes, as: UTF8.self))
                case .startTLS: result.startedTLS = true
                case .ready, .transactionEnded: break
                case .finish(let outcomes):
                    result.outcomes = outcomes
                    return false
                }
            }
            return true
        }
        for (index, text) in replies.enumerated() {
            guard apply(session.received(reply(text))) else { return result }
            if index == tlsAfterReply, result.startedTLS, !apply(session.tlsEstablished()) { return result }
        }
        _ = apply(session.failed("the connection closed"))
        return result
    }

    @Test("STARTTLS, AUTH PLAIN and a pipelined transaction; one recipient delivered, one bounced")
    func fullDelivery() {
        let configuration = SMTPSession.Configuration(security: .startTLS, clientName: "tidings.acme.test", username: "user", password: "pass")
        let result = Self.run(configuration, replies: [
            "220 mx ESMTP", "250-mx\n250-STARTTLS\n250 PIPELINING", "220 2.0.0 Ready to start TLS",
            "250-mx\n250-PIPELINING\n250-AUTH LOGIN PLAIN\n250 SIZE 1000000", "235 2.7.0 Accepted",
            "250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 <nobody@example.com>: unknown user", "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as ABC", "221 2.0.0 Bye",
        ], tlsAfterReply: 2)
        #expect(result.startedTLS)
        #expect(result.sent == [
            "EHLO tidings.acme.test\r\n", "STARTTLS\r\n", "EHLO tidings.acme.test\r\n", "AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
            "MAIL FROM:<bounce@acme.test> SIZE=\(Self.envelope.message.count)\r\nRCPT TO:<asa@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n",
            "Subject: hi\r\n\r\n..dot\r\n.\r\n", "QUIT\r\n",
        ])
        #expect(result.outcomes?["asa@example.com"] == .delivered(Self.reply("250 2.0.0 Ok: queued as ABC")))
        #expect(result.outcomes?["nobody@example.com"] == .bounced(Self.reply("550 5.1.1 <nobody@example.com>: unknown user")))
    }

    @Test("Required STARTTLS is never given up: not offered, refused, or data before the handshake all defer")
    func noPlaintextFallback() {
        let configuration = SMTPSession.Configuration(security: .startTLS, clientName: "c", username: "user", password: "pass")
        let notOffered = Self.run(configuration, replies: ["220 mx", "250-mx\n250 PIPELINING"])
        #expect(notOffered.sent == ["EHLO c\r\n"], "nothing else is sent, the password least of all")
        #expect(notOffered.outcomes?.values.allSatisfy { if case .deferred = $0 { true } else { false } } == true)

        let refused = Self.run(configuration, replies: ["220 mx", "250-mx\n250 STARTTLS", "454 4.7.0 TLS not available"])
        #expect(refused.sent == ["EHLO c\r\n", "STARTTLS\r\n"])
        #expect(!refused.startedTLS && refused.outcomes?.count == 2)

        // A reply that arrives between "220 Ready" and the handshake was injected before TLS.
        var session = SMTPSession(configuration: configuration, envelope: Self.envelope)
        _ = session.received(Self.reply("220 mx"))
        _ = session.received(Self.reply("250-mx\n250 STARTTLS"))
        #expect(session.received(Self.reply("220 Ready")) == [.startTLS])
        guard case .finish(let outcomes)? = session.received(Self.reply("250 injected")).first else {
            Issue.record("a reply before the handshake did not end the session")
            return
        }
        #expect(outcomes.values.allSatisfy { if case .deferred(let reason) = $0 { reason.contains("before the TLS handshake") } else { false } })
    }

    @Test("A password never goes out in the clear unless the server is local")
    func noCleartextPassword() {
        let remote = Self.run(.init(security: .none, clientName: "c", username: "u", password: "p"), replies: ["220 mx", "250-mx\n250 AUTH PLAIN"])
        #expect(remote.sent == ["EHLO c\r\n"])
        let local = Self.run(.init(security: .none, clientName: "c", username: "u", password: "p", mayAuthenticateInClear: true),
                             replies: ["220 mx", "250-mx\n250 AUTH LOGIN", "334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 ok"])
        #expect(Array(local.sent.prefix(4)) == ["EHLO c\r\n", "AUTH LOGIN\r\n", "dQ==\r\n", "cA==\r\n"])
        #expect(local.sent.last == "MAIL FROM:<bounce@acme.test>\r\n", "without PIPELINING one command at a time")
    }

    @Test("Without PIPELINING: one command at a time; 4xx defers, 5xx bounces, a failed MAIL ends the transaction")
    func outcomes() {
        let configuration = SMTPSession.Configuration(security: .implicitTLS, clientName: "c")
        let mixed = Self.run(configuration, replies: [
            "220 mx", "250 mx", "250 ok", "451 4.3.0 try later", "250 ok", "354 go", "250 queued", "221 bye",
        ])
        #expect(mixed.sent == ["EHLO c\r\n", "MAIL FROM:<bounce@acme.test>\r\n", "RCPT TO:<asa@example.com>\r\n", "RCPT TO:<nobody@example.com>\r\n", "DATA\r\n", "Subject: hi\r\n\r\n..dot\r\n.\r\n", "QUIT\r\n"])
        #expect(mixed.outcomes?["asa@example.com"] == .deferred("the server answered 451 4.3.0 try later"))
        #expect(mixed.outcomes?["nobody@example.com"] == .delivered(Self.reply("250 queued")))

        let mailRefused = Self.run(configuration, replies: ["220 mx", "250-mx\n250 PIPELINING", "552 5.3.4 too big", "503 no", "503 no", "503 no", "221 bye"])
        #expect(mailRefused.sent.last == "QUIT\r\n")
        #expect(mailRefused.outcomes?.values.allSatisfy { $0 == .bounced(Self.reply("552 5.3.4 too big")) } == true)

        let cut = Self.run(configuration, replies: ["220 mx", "250 mx", "250 ok", "250 ok", "250 ok", "354 go"])
        #expect(cut.outcomes?.values.allSatisfy { $0 == .deferred("the connection closed") } == true, "a connection lost mid-DATA defers")

        let ehloRefused = Self.run(.init(security: .none, clientName: "c"), replies: ["220 mx", "502 no ESMTP", "250 hello"])
        #expect(ehloRefused.sent.prefix(3) == ["EHLO c\r\n", "HELO c\r\n", "MAIL FROM:<bounce@acme.test>\r\n"])
    }

    /// Applies actions: sends are collected, the rest returned.
    static func take(_ actions: [SMTPSession.Action], into sent: inout [String]) -> [SMTPSession.Action] {
        actions.filter { action in
            guard case .send(let bytes) = action else { return true }
            sent.append(String(decoding: bytes, as: UTF8.self))
            return false
        }
    }

    @Test("One connection carries several transactions, with RSET before each after the first")
    func reuse() {
        var session = SMTPSession(configuration: .init(security: .implicitTLS, clientName: "c"))
        var sent: [String] = []
        #expect(session.awaiting == .greeting)
        _ = Self.take(session.received(Self.reply("220 mx")), into: &sent)
        #expect(Self.take(session.received(Self.reply("250-mx\n250 PIPELINING")), into: &sent) == [.ready])
        #expect(session.awaiting == nil, "idle between transactions")

        let first = SMTPSession.Envelope(sender: "b@acme.test", recipients: ["a@example.com"], message: Array("x\r\n".utf8))
        _ = Self.take(session.begin(first), into: &sent)
        for text in ["250 ok", "250 ok", "354 go"] { _ = Self.take(session.received(Self.reply(text)), into: &sent) }
        #expect(session.awaiting == .message)
        #expect(Self.take(session.received(Self.reply("250 2.0.0 queued 1")), into: &sent) == [.transactionEnded(["a@example.com": .delivered(Self.reply("250 2.0.0 queued 1"))])])

        let second = SMTPSession.Envelope(sender: "b@acme.test", recipients: ["c@example.com"], message: Array("y\r\n".utf8))
        _ = Self.take(session.begin(second), into: &sent)
        #expect(sent.last == "RSET\r\nMAIL FROM:<b@acme.test>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
        for text in ["250 reset", "250 ok", "550 5.1.1 no such user"] { _ = Self.take(session.received(Self.reply(text)), into: &sent) }
        // DATA was pipelined: it is still answered, and the empty message is ended.
        _ = Self.take(session.received(Self.reply("354 go")), into: &sent)
        #expect(sent.last == ".\r\n")
        #expect(Self.take(session.received(Self.reply("554 no valid recipients")), into: &sent) == [.transactionEnded(["c@example.com": .bounced(Self.reply("550 5.1.1 no such user"))])])

        _ = Self.take(session.quit(), into: &sent)
        #expect(sent.last == "QUIT\r\n")
        #expect(Self.take(session.received(Self.reply("221 bye")), into: &sent) == [.finish([:])])
    }

    @Test("A message over the server's SIZE limit bounces without being sent")
    func sizeLimit() {
        let result = Self.run(.init(security: .implicitTLS, clientName: "c"), replies: ["220 mx", "250-mx\n250 SIZE 10", "221 bye"])
        #expect(result.sent == ["EHLO c\r\n", "QUIT\r\n"])
        #expect(result.outcomes?.values.allSatisfy { if case .bounced(let reply) = $0 { reply.enhancedCode == "5.3.4" } else { false } } == true)
    }

    @Test("An internationalised address asks for SMTPUTF8, and bounces (5.6.7) without it rather than being mangled")
    func smtpUTF8() {
        let utf8 = SMTPSession.Envelope(sender: "bounce@acme.test", recipients: ["jörg@example.com"], message: Array("Subject: hi\r\n\r\nhi\r\n".utf8), smtpUTF8: true)
        let offered = Self.run(
            .init(security: .none, clientName: "c"),
            replies: ["220 mx", "250-mx\n250 SMTPUTF8", "250 2.1.0 Ok", "250 2.1.5 Ok", "354 go", "250 2.0.0 queued", "221 bye"],
            envelope: utf8
        )
        #expect(offered.sent.contains("MAIL FROM:<bounce@acme.test> SMTPUTF8\r\n"))
        #expect(offered.sent.contains("RCPT TO:<jörg@example.com>\r\n"))
        #expect(offered.outcomes?["jörg@example.com"].map { if case .delivered = $0 { true } else { false } } == true)

        let missing = Self.run(.init(security: .none, clientName: "c"), replies: ["220 mx", "250 mx", "221 bye"], envelope: utf8)
        #expect(missing.sent == ["EHLO c\r\n", "QUIT\r\n"])
        #expect(missing.outcomes?["jörg@example.com"].map { if case .bounced(let reply) = $0 { reply.enhancedCode == "5.6.7" } else { false } } == true)
    }
}
