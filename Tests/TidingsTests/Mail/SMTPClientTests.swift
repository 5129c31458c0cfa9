import Foundation
import NIOCore
import Testing
@testable import TidingsMail

/// The SMTP client's network edge against real SMTP servers (aiosmtpd): TLS, certificate
/// checks, STARTTLS attacks, every kind of failure reply, lost connections, timeouts, pooling.
@Suite("SMTP client against real servers")
struct SMTPClientTests {
    static let message = Array("From: a@acme.test\r\nTo: b@example.com\r\nSubject: hi\r\nMessage-ID: <1@acme.test>\r\n\r\n.leading dot\r\nbody\r\n".utf8)

    static func envelope(_ recipients: [String] = ["b@example.com"]) -> SMTPSession.Envelope {
        SMTPSession.Envelope(sender: "a@acme.test", recipients: recipients, message: message)
    }

    static func endpoint(
        _ peer: SMTPPeer, _ security: SMTPSession.Security, host: String = "localhost", user: String? = nil, password: String? = nil, pins: [String] = []
    ) -> SMTPEndpoint {
        SMTPEndpoint(host: host, port: peer.port, security: security, username: user, password: password, clientName: "client.acme.test", tlsPins: pins)
    }

    static let trusted = SMTPTLSSettings(additionalTrustRoots: [SMTPPeer.caFile])
    static let quick = SMTPTimeouts(connect: .seconds(5), greeting: .seconds(2), command: .seconds(2), dataInitiation: .seconds(2), dataTermination: .seconds(2))

    static func deliverOnce(_ peer: SMTPPeer, _ security: SMTPSession.Security, host: String = "localhost", user: String? = nil, password: String? = nil,
                            tls: SMTPTLSSettings = trusted, recipients: [String] = ["b@example.com"], pins: [String] = []) async -> SMTPDelivery {
        let pool = SMTPPool(
            endpoint: endpoint(peer, security, host: host, user: user, password: password, pins: pins), tls: tls, timeouts: quick, maxConnections: 1, rateLimit: nil
        )
        let delivery = await pool.deliver(envelope(recipients))
        await pool.shutdown()
        return delivery
    }

    @Test("Required STARTTLS with AUTH: certificate checked, the exact bytes arrive, TLS version and cipher recorded")
    func startTLSAndAuth() async throws {
        try await SMTPPeer.with(["--mode", "starttls-auth", "--user", "relay", "--password", "Relay-pass-6631"]) { peer in
            let delivery = await Self.deliverOnce(peer, .startTLS, user: "relay", password: "Relay-pass-6631")
            guard case .delivered(let reply)? = delivery.outcomes["b@example.com"] else {
                Issue.record("not delivered: \(delivery.outcomes)")
                return
            }
            #expect(reply.code == 250 && reply.enhancedCode == "2.0.0")
            #expect(delivery.tls?.version == "TLSv1.3")
            #expect(delivery.tls?.cipher.hasPrefix("TLS_") == true && delivery.tls?.cipher.hasPrefix("TLS_RSA") == false, "\(String(describing: delivery.tls))")
            let received = try #require(peer.received().first)
            #expect(received.bytes == Self.message, "dot-stuffing undone by the server gives back the exact message")
            #expect(received.tls && received.authUser == "relay" && received.mailFrom == "a@acme.test")
            // The password went only over TLS; it never appears in what the server logged as commands.
            #expect(!peer.commands().joined().contains("Relay-pass"))
            #expect(peer.commands().firstIndex { $0.hasPrefix("AUTH") }! > peer.commands().firstIndex(of: "STARTTLS")!)
        }
    }

    @Test("Implicit TLS from the first byte, also to an IP address (checked against the certificate's IP entry)")
    func implicitTLS() async throws {
        try await SMTPPeer.with(["--mode", "implicit-tls"]) { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS, host: "127.0.0.1")
            #expect(delivery.outcomes["b@example.com"].map { if case .delivered = $0 { true } else { false } } == true, "\(delivery.outcomes)")
            #expect(peer.received().first?.tls == true)
        }
    }

    @Test("Certificates are verified: an unknown CA or a name that does not match ends the attempt before anything is sent")
    func certificateChecks() async throws {
        for certificate in ["untrusted", "other"] {
            try await SMTPPeer.with(["--mode", "starttls-auth", "--user", "relay", "--password", "pw-7781"], certificate: certificate) { peer in
                let delivery = await Self.deliverOnce(peer, .startTLS, user: "relay", password: "pw-7781")
                guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else {
                    Issue.record("\(certificate): \(delivery.outcomes)")
                    return
                }
                #expect(reason.contains("TLS"), "\(certificate): \(reason)")
                #expect(!peer.commands().contains { $0.hasPrefix("AUTH") || $0.hasPrefix("MAIL") }, "\(certificate): \(peer.commands())")
                #expect(peer.received().isEmpty)
            }
        }
        // Without the test CA among the trust roots, the system's roots do not know it either.
        try await SMTPPeer.with(["--mode", "implicit-tls"]) { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS, tls: SMTPTLSSettings())
            #expect(peer.received().isEmpty && delivery.outcomes.count == 1)
        }
    }

    @Test("A pinned key is checked on top of the usual verification, before anything goes over the new TLS")
    func pinning() async throws {
        let right = try await SMTPPeer.keyPin(of: "server")
        let other = try await SMTPPeer.keyPin(of: "other")
        #expect(right != other)
        // The current key listed second, as while a new key is being rolled out.
        try await SMTPPeer.with(["--mode", "implicit-tls"]) { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS, pins: [other, right])
            #expect(delivery.outcomes["b@example.com"].map { if case .delivered = $0 { true } else { false } } == true, "\(delivery.outcomes)")
            #expect(delivery.tls?.pinMatched == true && delivery.tls?.verified == true && delivery.tls?.serverKey == right)
        }
        // Without pins the key is still reported, and nothing is compared.
        try await SMTPPeer.with(["--mode", "implicit-tls"]) { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS)
            #expect(delivery.tls?.pinMatched == nil && delivery.tls?.serverKey == right && delivery.tls?.verified == true)
        }
        // A key matching no pin: implicit TLS ends before the greeting is even read.
        try await SMTPPeer.with(["--mode", "implicit-tls"]) { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS, pins: [other])
            guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else { Issue.record("\(delivery.outcomes)"); return }
            #expect(reason.hasPrefix("TLS certificate pin mismatch"), "\(reason)")
            #expect(reason.contains(right), "the reason shows the key the server has: \(reason)")
            #expect(peer.commands().isEmpty, "\(peer.commands())")
            #expect(peer.received().isEmpty)
        }
        // STARTTLS: no second EHLO, no AUTH, no password over the unpinned connection.
        try await SMTPPeer.with(["--mode", "starttls-auth", "--user", "relay", "--password", "Pin-pass-5150"]) { peer in
            do {
                let connection = try await SMTPConnection.open(
                    to: Self.endpoint(peer, .startTLS, user: "relay", password: "Pin-pass-5150", pins: [other]), tls: Self.trusted, timeouts: Self.quick
                )
                await connection.close()
                Issue.record("a server whose key matches no pin was accepted")
            } catch let error as SMTPConnectionError {
                #expect(error.reason.hasPrefix("TLS certificate pin mismatch"))
                #expect(error.tls?.pinMatched == false && error.tls?.serverKey == right)
                let failed = try #require(error.steps.first { !$0.ok })
                #expect(failed.step == "TLS handshake" && failed.detail.contains("pin mismatch"), "\(error.steps)")
            }
            #expect(peer.commands().last == "STARTTLS", "\(peer.commands())")
            #expect(!peer.commands().contains { $0.hasPrefix("AUTH") })
        }
        // A pin adds to verification, it never replaces it: the right pin of an untrusted server is not enough.
        let untrusted = try await SMTPPeer.keyPin(of: "untrusted")
        try await SMTPPeer.with(["--mode", "implicit-tls"], certificate: "untrusted") { peer in
            let delivery = await Self.deliverOnce(peer, .implicitTLS, pins: [untrusted])
            guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else { Issue.record("\(delivery.outcomes)"); return }
            #expect(reason.contains("TLS failed"), "\(reason)")
            #expect(peer.received().isEmpty)
        }
    }

    @Test("STARTTLS that fails, or bytes injected before the handshake, never fall back to plaintext")
    func noFallback() async throws {
        try await SMTPPeer.with(["--mode", "starttls-fails"]) { peer in
            let delivery = await Self.deliverOnce(peer, .startTLS, user: "u", password: "secret-pw")
            guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else { Issue.record("\(delivery.outcomes)"); return }
            #expect(reason.contains("454"))
            #expect(peer.commands().last == "STARTTLS" || peer.commands().last == "QUIT", "\(peer.commands())")
            #expect(!peer.commands().contains { $0.hasPrefix("AUTH") || $0.hasPrefix("MAIL") })
        }
        try await SMTPPeer.with(["--mode", "starttls-inject"]) { peer in
            let delivery = await Self.deliverOnce(peer, .startTLS, user: "u", password: "secret-pw")
            guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else { Issue.record("\(delivery.outcomes)"); return }
            #expect(reason.contains("before the TLS handshake"), "\(reason)")
            #expect(peer.commands().last == "STARTTLS", "nothing follows the STARTTLS the attack answered: \(peer.commands())")
            #expect(peer.received().isEmpty)
        }
    }

    @Test("Replies classify: 4xx defers, 5xx bounces, 5.1.1 is a mailbox failure", arguments: [
        ("connect", "421 4.3.2 Service not available", "deferred"),
        ("mail", "451 4.3.0 Try again later", "deferred"),
        ("rcpt", "452 4.2.2 Mailbox full", "deferred"),
        ("rcpt", "550 5.1.1 <b@example.com>: Recipient address rejected: User unknown", "bounced"),
        ("message", "554 5.7.1 Message rejected as spam", "bounced"),
    ])
    func replies(at: String, reply: String, expected: String) async throws {
        try await SMTPPeer.with(["--mode", "reply", "--reply-at", at, "--reply", reply]) { peer in
            let delivery = await Self.deliverOnce(peer, .none, host: "127.0.0.1")
            let outcome = try #require(delivery.outcomes["b@example.com"])
            switch outcome {
            case .deferred(let reason):
                #expect(expected == "deferred" && reason.contains(String(reply.prefix(3))), "\(reason)")
            case .bounced(let smtpReply):
                #expect(expected == "bounced" && smtpReply.code == Int(reply.prefix(3)))
                #expect(smtpReply.isMailboxFailure == reply.contains("5.1.1"))
            case .delivered:
                Issue.record("\(at) \(reply): delivered")
            }
        }
    }

    @Test("A connection dropped mid-DATA, or a server that stalls past the timeout, defers")
    func lostAndStalled() async throws {
        try await SMTPPeer.with(["--mode", "drop-mid-data"]) { peer in
            let delivery = await Self.deliverOnce(peer, .none, host: "127.0.0.1")
            guard case .deferred? = delivery.outcomes["b@example.com"] else { Issue.record("\(delivery.outcomes)"); return }
            #expect(peer.received().isEmpty)
        }
        for point in ["connect", "data", "message"] {
            try await SMTPPeer.with(["--mode", "stall", "--stall-at", point]) { peer in
                let started = ContinuousClock.now
                let delivery = await Self.deliverOnce(peer, .none, host: "127.0.0.1")
                guard case .deferred(let reason)? = delivery.outcomes["b@example.com"] else { Issue.record("\(point): \(delivery.outcomes)"); return }
                #expect(reason.contains("within 2 s"), "\(point): \(reason)")
                #expect(ContinuousClock.now - started < .seconds(15))
            }
        }
    }

    @Test("The pool reuses one connection for several messages, with RSET between transactions")
    func pooling() async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            let pool = SMTPPool(endpoint: Self.endpoint(peer, .none, host: "127.0.0.1"), timeouts: Self.quick, maxConnections: 1, rateLimit: nil)
            for index in 0..<5 {
                let delivery = await pool.deliver(Self.envelope(["r\(index)@example.com"]))
                #expect(delivery.outcomes["r\(index)@example.com"].map { if case .delivered = $0 { true } else { false } } == true)
            }
            await pool.shutdown()
            #expect(peer.connections() == 1)
            #expect(peer.commands().filter { $0 == "RSET" }.count == 4, "\(peer.commands())")
            #expect(peer.received().map(\.recipients) == (0..<5).map { ["r\($0)@example.com"] })
        }
    }

    @Test("The pool opens at most maxConnections and keeps to the rate limit")
    func limits() async throws {
        try await SMTPPeer.with(["--mode", "plain"]) { peer in
            // Default timeouts: a short one running out on a busy machine would end a connection
            // and open another, which this count would take for a third one at once.
            let pool = SMTPPool(endpoint: Self.endpoint(peer, .none, host: "127.0.0.1"), timeouts: SMTPTimeouts(), maxConnections: 2, rateLimit: 20)
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<20 {
                    group.addTask { _ = await pool.deliver(Self.envelope(["r\(index)@example.com"])) }
                }
            }
            let elapsed = ContinuousClock.now - started
            await pool.shutdown()
            #expect(peer.received().count == 20)
            #expect(peer.connections() <= 2, "\(peer.connections())")
            // 20 messages at 20 per second: the last may not start before ~0.95 s.
            #expect(elapsed >= .milliseconds(900), "\(elapsed)")
        }
    }
}
