/// One SMTP connection as a pure state machine: it is told what the server replied and says
/// what to send next; the network edge does the sending, the TLS handshake and the timing.
///
/// - The connection opens (greeting, EHLO, STARTTLS, AUTH) and then says `.ready`; each
///   `begin(_:)` runs one transaction and ends with `.transactionEnded`, after which the
///   connection is ready again. `quit()` closes it. A session made with an envelope runs that
///   one transaction and quits on its own.
/// - `starttls` requires STARTTLS: a server that does not offer it, or refuses it, fails the
///   attempt; there is no plaintext fallback. After the handshake the client says EHLO again
///   and forgets everything the server said before.
/// - A password is sent only over TLS (or to a loopback server, when the edge allows it).
/// - With PIPELINING, RSET, MAIL, every RCPT and DATA go in one write; replies are matched in
///   order. RSET precedes every transaction after the first on a connection.
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
        /// The connection is open, secured and authenticated: `begin(_:)` a transaction or `quit()`.
        case ready
        /// The transaction's outcome per recipient; the connection can take the next one.
        case transactionEnded([String: Outcome])
        /// Close the connection after sending what came before. Carries the outcomes of the
        /// transaction in progress, if one was.
        case finish([String: Outcome])
    }

    /// What the session waits for, so the edge can apply the matching timeout (RFC 5321 §4.5.3.2).
    public enum Step: String, Sendable, Equatable {
        case greeting, ehlo = "EHLO", helo = "HELO", startTLS = "STARTTLS", tlsHandshake = "TLS handshake", auth = "AUTH"
        case reset = "RSET", mail = "MAIL", rcpt = "RCPT", data = "DATA", message = "end of data", quit = "QUIT"
    }

    private enum Expecting: Sendable, Equatable {
        case greeting, ehlo, helo, startTLS, tlsHandshake, authPlain, authLoginUser, authLoginPassword, authLoginDone
        case reset, mail, rcpt(Int), data, message, quit, done
        /// A reply to a pipelined command whose transaction already failed.
        case ignored
    }

    private let configuration: Configuration
    /// Set for a session that runs one transaction and quits.
    private let oneShot: Envelope?
    private var envelope: Envelope?
    private var expecting: [Expecting] = [.greeting]
    private var tlsActive: Bool
    private var triedHELO = false
    private var transactions = 0
    private var capabilities = SMTPCapabilities()
    private var outcomes: [String: Outcome] = [:]
    private var accepted: [String] = []

    /// A connection that opens and says `.ready`.
    public init(configuration: Configuration) {
        self.configuration = configuration
        oneShot = nil
        tlsActive = configuration.security == .implicitTLS
    }

    /// A connection that delivers one envelope and quits; `.finish` carries the outcomes.
    public init(configuration: Configuration, envelope: Envelope) {
        self.configuration = configuration
        oneShot = envelope
        tlsActive = configuration.security == .implicitTLS
    }

    /// Why the session ended early, when it did.
    public private(set) var failure: String?

    /// What the server said it supports (after EHLO; again after STARTTLS).
    public var serverCapabilities: SMTPCapabilities { capabilities }

    /// The reply the session waits for next; nil while idle or closed.
    public var awaiting: Step? {
        switch expecting.first {
        case nil, .done: nil
        case .greeting: .greeting
        case .ehlo: .ehlo
        case .helo: .helo
        case .startTLS: .startTLS
        case .tlsHandshake: .tlsHandshake
        case .authPlain, .authLoginUser, .authLoginPassword, .authLoginDone: .auth
        case .reset: .reset
        case .mail, .ignored: .mail
        case .rcpt: .rcpt
        case .data: .data
        case .message: .message
        case .quit: .quit
        }
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

    /// Starts a transaction on a ready connection.
    public mutating func begin(_ envelope: Envelope) -> [Action] {
        guard self.envelope == nil, expecting.allSatisfy({ $0 == .ignored }), oneShot == nil || transactions == 0 else {
            return fail("a transaction was started while the connection was busy")
        }
        self.envelope = envelope
        outcomes = [:]
        accepted = []
        return startTransaction()
    }

    /// Ends the connection politely.
    public mutating func quit() -> [Action] {
        guard envelope == nil else { return fail("the connection was closed during a transaction") }
        return sendQuit(ignoring: expecting.count)
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
            return becomeReady()
        case .authLoginUser:
            guard reply.code == 334 else { return fail("authentication failed: \(reply)") }
            return sendCommand(.authLoginStep(configuration.username ?? ""), expect: .authLoginPassword)
        case .authLoginPassword:
            guard reply.code == 334 else { return fail("authentication failed: \(reply)") }
            return sendCommand(.authLoginStep(configuration.password ?? ""), expect: .authLoginDone)
        case .reset:
            guard reply.isPositive else { return fail("the server refused RSET: \(reply)") }
            return capabilities.pipelining ? [] : sendCommand(mailCommand, expect: .mail)
        case .mail:
            guard let envelope else { return fail("the server answered MAIL outside a transaction") }
            guard reply.isPositive else {
                for recipient in envelope.recipients { outcomes[recipient] = outcome(for: reply) }
                // Pipelined RCPTs and DATA are still answered before anything else is.
                return endTransaction(pending: capabilities.pipelining ? envelope.recipients.count + 1 : 0)
            }
            return capabilities.pipelining ? [] : sendRecipient(0)
        case .rcpt(let index):
            guard let envelope else { return fail("the server answered RCPT outside a transaction") }
            let recipient = envelope.recipients[index]
            if reply.isPositive {
                accepted.append(recipient)
            } else {
                outcomes[recipient] = outcome(for: reply)
            }
            if capabilities.pipelining { return [] }
            if index + 1 < envelope.recipients.count { return sendRecipient(index + 1) }
            return accepted.isEmpty ? endTransaction() : sendCommand(.data, expect: .data)
        case .data:
            guard let envelope else { return fail("the server answered DATA outside a transaction") }
            guard reply.code == 354 else {
                for recipient in accepted { outcomes[recipient] = outcome(for: reply) }
                return endTransaction()
            }
            // Pipelined DATA after every RCPT was refused: end the message empty.
            expecting.insert(.message, at: 0)
            return [.send(SMTPData.encode(accepted.isEmpty ? [] : envelope.message))]
        case .message:
            for recipient in accepted {
                outcomes[recipient] = reply.isPositive ? .delivered(reply) : outcome(for: reply)
            }
            return endTransaction()
        case .ignored:
            return []
        case .quit, .done:
            expecting = [.done]
            let result = outcomes
            outcomes = [:]
            return [.finish(result)]
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
        return becomeReady()
    }

    private mutating func becomeReady() -> [Action] {
        expecting = []
        guard let oneShot else { return [.ready] }
        return begin(oneShot)
    }

    private var mailCommand: SMTPCommand {
        let envelope = envelope!
        return .mailFrom(
            envelope.sender, size: capabilities.maxSize != nil ? envelope.message.count : nil,
            eightBit: envelope.eightBit && capabilities.eightBitMIME, smtpUTF8: envelope.smtpUTF8 && capabilities.smtpUTF8
        )
    }

    private mutating func startTransaction() -> [Action] {
        let envelope = envelope!
        if envelope.smtpUTF8, !capabilities.smtpUTF8 {
            // Permanent, as RFC 6531 §3.2 has it: this server can never take the address.
            for recipient in envelope.recipients {
                outcomes[recipient] = .bounced(SMTPReply(code: 553, enhancedCode: "5.6.7", lines: ["5.6.7 an internationalised address needs SMTPUTF8, which the server does not offer"]))
            }
            return endTransaction()
        }
        if let limit = capabilities.maxSize, limit > 0, envelope.message.count > limit {
            for recipient in envelope.recipients {
                outcomes[recipient] = .bounced(SMTPReply(code: 552, enhancedCode: "5.3.4", lines: ["5.3.4 the message is larger than the server's limit of \(limit) bytes"]))
            }
            return endTransaction()
        }
        transactions += 1
        let reset = transactions > 1
        guard capabilities.pipelining else {
            if reset { return appendCommand(.reset, expect: .reset) }
            return appendCommand(mailCommand, expect: .mail)
        }
        var bytes: [UInt8] = []
        do {
            if reset { bytes += try SMTPCommand.reset.encoded() }
            bytes += try mailCommand.encoded()
            for recipient in envelope.recipients { bytes += try SMTPCommand.rcptTo(recipient).encoded() }
            bytes += try SMTPCommand.data.encoded()
        } catch {
            return fail("\(error)")
        }
        expecting += (reset ? [.reset] : []) + [.mail] + envelope.recipients.indices.map { .rcpt($0) } + [.data]
        return [.send(bytes)]
    }

    private mutating func sendRecipient(_ index: Int) -> [Action] {
        sendCommand(.rcptTo(envelope!.recipients[index]), expect: .rcpt(index))
    }

    /// The transaction is over; `pending` replies are still owed to pipelined commands.
    private mutating func endTransaction(pending: Int = 0) -> [Action] {
        expecting = Array(repeating: .ignored, count: pending)
        envelope = nil
        guard oneShot == nil else { return sendQuit(ignoring: pending) }
        let result = outcomes
        outcomes = [:]
        return [.transactionEnded(result)]
    }

    /// QUIT, after `pending` replies still owed to pipelined commands.
    private mutating func sendQuit(ignoring pending: Int) -> [Action] {
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

    /// Like `sendCommand`, after replies still owed to earlier pipelined commands.
    private mutating func appendCommand(_ command: SMTPCommand, expect step: Expecting) -> [Action] {
        do {
            let bytes = try command.encoded()
            expecting.append(step)
            return [.send(bytes)]
        } catch {
            return fail("\(error)")
        }
    }

    private func outcome(for reply: SMTPReply) -> Outcome {
        reply.isPermanent ? .bounced(reply) : .deferred("the server answered \(reply)")
    }

    /// Every recipient of the transaction in progress without an outcome is deferred: the
    /// server did not take the message (a refused greeting, TLS or authentication is not the
    /// recipient's fault), and the session ends.
    private mutating func fail(_ reason: String) -> [Action] {
        if failure == nil { failure = reason }
        for recipient in (envelope ?? oneShot)?.recipients ?? [] where outcomes[recipient] == nil {
            outcomes[recipient] = .deferred(reason)
        }
        envelope = nil
        expecting = [.done]
        let result = outcomes
        outcomes = [:]
        return [.finish(result)]
    }
}
