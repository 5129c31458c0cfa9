/// One SMTP delivery as a pure state machine: it is told what the server replied and says
/// what to send next; the network edge does the sending, the TLS handshake and the timing.
///
/// - `starttls` requires STARTTLS: a server that does not offer it, or refuses it, fails the
///   attempt; there is no plaintext fallback. After the handshake the client says EHLO again
///   and forgets everything the server said before.
/// - A password is sent only over TLS (or to a loopback server, when the edge allows it).
/// - With PIPELINING, MAIL, every RCPT and DATA go in one write; replies are matched in order.
/// - Each recipient ends delivered (2xx after the message), deferred (4xx, or the attempt
///   failed before the server took the message) or bounced (5xx).
public struct SMTPSession: Sendable {
    public enum Security: Sendable, Equatable {
        case implicitTLS, startTLS, none
    }

    public struct Configuration: Sendable {
        public var security: Security
        /// The name this client gives in EHLO.
        public var clientName: String
        public var username: String?
        public var password: String?
        /// Whether a password may go to this server without TLS (loopback servers only).
        public var mayAuthenticateInClear: Bool

        public init(security: Security, clientName: String, username: String? = nil, password: String? = nil, mayAuthenticateInClear: Bool = false) {
            self.security = security
            self.clientName = clientName
            self.username = username
            self.password = password
            self.mayAuthenticateInClear = mayAuthenticateInClear
        }
    }

    public struct Envelope: Sendable {
        public var sender: String
        public var recipients: [String]
        public var message: [UInt8]
        public var eightBit: Bool
        public var smtpUTF8: Bool

        public init(sender: String, recipients: [String], message: [UInt8], eightBit: Bool = false, smtpUTF8: Bool = false) {
            self.sender = sender
            self.recipients = recipients
            self.message = message
            self.eightBit = eightBit
            self.smtpUTF8 = smtpUTF8
        }
    }

    /// How one recipient's delivery ended.
    public enum Outcome: Sendable, Equatable {
        case delivered(SMTPReply)
        /// Try again later: a 4xx reply, or a failure before the server took the message.
        case deferred(String)
        case bounced(SMTPReply)
    }

    public enum Action: Sendable, Equatable {
        case send([UInt8])
        /// Start the TLS handshake now; report it with `tlsEstablished()`.
        case startTLS
        /// Every recipient's outcome; close the connection after sending what came before.
        case finish([String: Outcome])
    }

    private enum Expecting: Sendable, Equatable {
        case greeting, ehlo, helo, startTLS, tlsHandshake, authPlain, authLoginUser, authLoginPassword, authLoginDone
        case mail, rcpt(Int), data, message, quit, done
        /// A reply to a pipelined command whose transaction already failed.
        case ignored
    }

    private let configuration: Configuration
    private let envelope: Envelope
    private var expecting: [Expecting] = [.greeting]
    private var tlsActive: Bool
    private var triedHELO = false
    private var capabilities = SMTPCapabilities()
    private var outcomes: [String: Outcome] = [:]
    private var accepted: [String] = []

    public init(configuration: Configuration, envelope: Envelope) {
        self.configuration = configuration
        self.envelope = envelope
        tlsActive = configuration.security == .implicitTLS
    }

    /// The edge reports the TLS handshake done (after `.startTLS`).
    public mutating func tlsEstablished() -> [Action] {
        guard expecting.first == .tlsHandshake else { return fail("TLS was reported outside a STARTTLS exchange") }
        expecting = [.ehlo]
        tlsActive = true
        capabilities = SMTPCapabilities()
        return sendCommand(.ehlo(configuration.clientName))
    }

    /// The edge lost the connection or timed out: every recipient not yet done is deferred.
    public mutating func failed(_ reason: String) -> [Action] {
        fail(reason)
    }

    public mutating func received(_ reply: SMTPReply) -> [Action] {
        guard let step = expecting.first else { return fail("the server sent a reply nobody asked for: \(reply)") }
        expecting.removeFirst()
        switch step {
        case .greeting:
            guard reply.isPositive else { return fail("the server's greeting was \(reply)") }
            return sendCommand(.ehlo(configuration.clientName), expect: .ehlo)
        case .ehlo:
            guard reply.isPositive else {
                // A server without ESMTP: HELO, unless TLS or authentication is required.
                guard !triedHELO, configuration.security != .startTLS, configuration.username == nil else {
                    return fail("the server refused EHLO: \(reply)")
                }
                triedHELO = true
                return sendCommand(.helo(configuration.clientName), expect: .helo)
            }
            capabilities = SMTPCapabilities(ehlo: reply)
            return afterGreeting()
        case .helo:
            guard reply.isPositive else { return fail("the server refused HELO: \(reply)") }
            return afterGreeting()
        case .startTLS:
            guard reply.code == 220 else { return fail("the server refused STARTTLS: \(reply); not sending without TLS") }
            expecting = [.tlsHandshake]
            return [.startTLS]
        case .tlsHandshake:
            // Anything the server says before the handshake is an injection attempt.
            return fail("the server sent data before the TLS handshake")
        case .authPlain, .authLoginDone:
            guard reply.code == 235 else { return fail("authentication failed: \(reply)") }
            return startTransaction()
        case .authLoginUser:
            guard reply.code == 334 else { return fail("authentication failed: \(reply)") }
            return sendCommand(.authLoginStep(configuration.username ?? ""), expect: .authLoginPassword)
        case .authLoginPassword:
            guard reply.code == 334 else { return fail("authentication failed: \(reply)") }
            return sendCommand(.authLoginStep(configuration.password ?? ""), expect: .authLoginDone)
        case .mail:
            guard reply.isPositive else {
                for recipient in envelope.recipients { outcomes[recipient] = outcome(for: reply) }
                // Pipelined RCPTs and DATA are still answered before QUIT is.
                return quit(ignoring: capabilities.pipelining ? envelope.recipients.count + 1 : 0)
            }
            return capabilities.pipelining ? [] : sendRecipient(0)
        case .rcpt(let index):
            let recipient = envelope.recipients[index]
            if reply.isPositive {
                accepted.append(recipient)
            } else {
                outcomes[recipient] = outcome(for: reply)
            }
            if capabilities.pipelining { return [] }
            if index + 1 < envelope.recipients.count { return sendRecipient(index + 1) }
            return accepted.isEmpty ? quit() : sendCommand(.data, expect: .data)
        case .data:
            guard reply.code == 354 else {
                for recipient in accepted { outcomes[recipient] = outcome(for: reply) }
                return quit()
            }
            guard !accepted.isEmpty else {
                // Pipelined DATA after every RCPT was refused: end the message empty, then quit.
                expecting = [.message]
                return [.send(SMTPData.encode([]))]
            }
            expecting = [.message]
            return [.send(SMTPData.encode(envelope.message))]
        case .message:
            for recipient in accepted {
                outcomes[recipient] = reply.isPositive ? .delivered(reply) : outcome(for: reply)
            }
            return quit()
        case .ignored:
            return []
        case .quit, .done:
            expecting = [.done]
            return [.finish(outcomes)]
        }
    }

    private mutating func afterGreeting() -> [Action] {
        if configuration.security == .startTLS, !tlsActive {
            guard capabilities.startTLS else { return fail("the server does not offer STARTTLS, which this server's settings require") }
            return sendCommand(.startTLS, expect: .startTLS)
        }
        if let username = configuration.username, let password = configuration.password {
            guard tlsActive || configuration.mayAuthenticateInClear else {
                return fail("not sending the password without TLS")
            }
            if capabilities.authMechanisms.contains("PLAIN") || !capabilities.authMechanisms.contains("LOGIN") {
                return sendCommand(.authPlain(username: username, password: password), expect: .authPlain)
            }
            return sendCommand(.authLogin, expect: .authLoginUser)
        }
        return startTransaction()
    }

    private mutating func startTransaction() -> [Action] {
        let mail = SMTPCommand.mailFrom(
            envelope.sender, size: capabilities.maxSize != nil ? envelope.message.count : nil,
            eightBit: envelope.eightBit && capabilities.eightBitMIME, smtpUTF8: envelope.smtpUTF8 && capabilities.smtpUTF8
        )
        if envelope.smtpUTF8, !capabilities.smtpUTF8 {
            return fail("the message needs SMTPUTF8, which the server does not offer")
        }
        guard capabilities.pipelining else { return sendCommand(mail, expect: .mail) }
        var bytes: [UInt8] = []
        do {
            bytes += try mail.encoded()
            for recipient in envelope.recipients { bytes += try SMTPCommand.rcptTo(recipient).encoded() }
            bytes += try SMTPCommand.data.encoded()
        } catch {
            return fail("\(error)")
        }
        expecting = [.mail] + envelope.recipients.indices.map { .rcpt($0) } + [.data]
        return [.send(bytes)]
    }

    private mutating func sendRecipient(_ index: Int) -> [Action] {
        sendCommand(.rcptTo(envelope.recipients[index]), expect: .rcpt(index))
    }

    /// QUIT, after `pending` replies still owed to pipelined commands.
    private mutating func quit(ignoring pending: Int = 0) -> [Action] {
        let actions = sendCommand(.quit)
        expecting = Array(repeating: .ignored, count: pending) + [.quit]
        return actions
    }

    private mutating func sendCommand(_ command: SMTPCommand, expect step: Expecting? = nil) -> [Action] {
        do {
            let bytes = try command.encoded()
            if let step { expecting = [step] }
            return [.send(bytes)]
        } catch {
            return fail("\(error)")
        }
    }

    private func outcome(for reply: SMTPReply) -> Outcome {
        reply.isPermanent ? .bounced(reply) : .deferred("the server answered \(reply)")
    }

    /// Every recipient without an outcome is deferred: the server did not take the message
    /// (a refused greeting, TLS or authentication is not the recipient's fault), and the
    /// session ends.
    private mutating func fail(_ reason: String) -> [Action] {
        for recipient in envelope.recipients where outcomes[recipient] == nil {
            outcomes[recipient] = .deferred(reason)
        }
        expecting = [.done]
        return [.finish(outcomes)]
    }
}
