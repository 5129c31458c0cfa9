import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import TidingsDomain

/// Where and how to reach one SMTP server.
public struct SMTPEndpoint: Sendable, Hashable {
    public var host: String
    public var port: Int
    public var security: SMTPSession.Security
    public var username: String?
    public var password: String?
    /// The name this client gives in EHLO.
    public var clientName: String
    /// Base64 SHA-256 digests of public keys (SPKI), one of which the server's certificate must
    /// carry, besides passing the usual checks; empty for no pinning.
    public var tlsPins: [String]

    public init(
        host: String, port: Int, security: SMTPSession.Security, username: String? = nil, password: String? = nil, clientName: String,
        tlsPins: [String] = []
    ) {
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.clientName = clientName
        self.tlsPins = tlsPins
    }

    /// 127.0.0.0/8, ::1 or localhost: the only servers a password may reach without TLS.
    public var isLoopback: Bool {
        OutboundURLPolicy.isLoopback(host)
    }
}

/// How long to wait for each reply (RFC 5321 §4.5.3.2 gives the defaults).
public struct SMTPTimeouts: Sendable, Hashable {
    public var connect: TimeAmount
    /// The 220 greeting: 5 minutes.
    public var greeting: TimeAmount
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT: 5 minutes.
    public var command: TimeAmount
    /// The 354 after DATA: 2 minutes.
    public var dataInitiation: TimeAmount
    /// The reply after the message's final dot: 10 minutes.
    public var dataTermination: TimeAmount

    public init(connect: TimeAmount = .seconds(30), greeting: TimeAmount = .minutes(5), command: TimeAmount = .minutes(5),
                dataInitiation: TimeAmount = .minutes(2), dataTermination: TimeAmount = .minutes(10)) {
        self.connect = connect
        self.greeting = greeting
        self.command = command
        self.dataInitiation = dataInitiation
        self.dataTermination = dataTermination
    }

    func limit(for step: SMTPSession.Step) -> TimeAmount {
        switch step {
        case .greeting: greeting
        case .data: dataInitiation
        case .message: dataTermination
        default: command
        }
    }
}

/// Certificate checks for the connections to SMTP servers.
public struct SMTPTLSSettings: Sendable, Hashable {
    /// PEM files of certificate authorities trusted besides the system's (a private CA).
    public var additionalTrustRoots: [String]

    public init(additionalTrustRoots: [String] = []) {
        self.additionalTrustRoots = additionalTrustRoots
    }

    func makeConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.additionalTrustRoots = additionalTrustRoots.map { .file($0) }
        return configuration
    }
}

/// The TLS a connection negotiated.
public struct SMTPTLSInfo: Sendable, Hashable, Codable {
    /// `TLSv1.2` or `TLSv1.3`.
    public var version: String
    /// The IANA name of the cipher suite, e.g. `TLS_AES_128_GCM_SHA256`.
    public var cipher: String
    /// Whether the handshake verified the server's certificate: a trusted chain naming the host.
    public var verified: Bool
    /// Base64 SHA-256 of the server certificate's public key (SPKI): what a pin names.
    public var serverKey: String?
    /// `true` when the server's key matched one of the endpoint's pins, `false` when it matched
    /// none (the connection is then closed), `nil` when the endpoint has no pins.
    public var pinMatched: Bool?

    public init(version: String, cipher: String, verified: Bool, serverKey: String? = nil, pinMatched: Bool? = nil) {
        self.version = version
        self.cipher = cipher
        self.verified = verified
        self.serverKey = serverKey
        self.pinMatched = pinMatched
    }
}

/// Public-key pinning: the digest `openssl x509 -pubkey -noout | openssl pkey -pubin -outform
/// der | openssl dgst -sha256 -binary | base64` prints for a certificate.
public enum SMTPKeyPin {
    /// Base64 SHA-256 of the DER SubjectPublicKeyInfo of `certificate`.
    public static func digest(of certificate: NIOSSLCertificate) throws -> String {
        let spki = try certificate.extractPublicKey().toSPKIBytes()
        return Data(SHA256.hash(data: spki)).base64EncodedString()
    }
}

/// One step of a conversation with a server, as a person checking the settings reads it.
public struct SMTPStepRecord: Sendable, Hashable, Codable {
    /// `connect`, `greeting`, `EHLO`, `STARTTLS`, `TLS handshake`, `AUTH`, `MAIL`, … `QUIT`.
    public var step: String
    public var ok: Bool
    /// The server's reply, or what went wrong. Never a password.
    public var detail: String
}

/// The connection could not be opened, secured or authenticated.
public struct SMTPConnectionError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var steps: [SMTPStepRecord]
    /// The TLS negotiated before the failure, if the handshake completed (a pin mismatch, a
    /// refused password).
    public var tls: SMTPTLSInfo?
    public var description: String { reason }

    public init(reason: String, steps: [SMTPStepRecord], tls: SMTPTLSInfo? = nil) {
        self.reason = reason
        self.steps = steps
        self.tls = tls
    }
}

/// One open connection to an SMTP server, ready for transactions one after another.
public final class SMTPConnection: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<SMTPClientHandler>
    /// The TLS the connection negotiated (nil without TLS).
    public let tls: SMTPTLSInfo?
    /// What happened while the connection opened.
    public let steps: [SMTPStepRecord]

    private init(channel: any Channel, handler: NIOLoopBound<SMTPClientHandler>, tls: SMTPTLSInfo?, steps: [SMTPStepRecord]) {
        self.channel = channel
        self.handler = handler
        self.tls = tls
        self.steps = steps
    }

    /// Connects, reads the greeting, says EHLO, secures the connection and authenticates.
    public static func open(
        to endpoint: SMTPEndpoint, tls: SMTPTLSSettings = SMTPTLSSettings(), timeouts: SMTPTimeouts = SMTPTimeouts(),
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> SMTPConnection {
        let configuration = SMTPSession.Configuration(
            security: endpoint.security, clientName: endpoint.clientName, username: endpoint.username, password: endpoint.password,
            mayAuthenticateInClear: endpoint.isLoopback
        )
        let tlsConfiguration = tls.makeConfiguration()
        let sslContext: NIOSSLContext?
        do {
            sslContext = endpoint.security == .none ? nil : try NIOSSLContext(configuration: tlsConfiguration)
        } catch {
            throw SMTPConnectionError(reason: "the TLS settings are unusable: \(error)", steps: [])
        }
        let verifies = tlsConfiguration.certificateVerification == .fullVerification
        let serverName = Self.isIPAddress(endpoint.host) ? nil : endpoint.host
        let eventLoop = group.next()
        let ready = eventLoop.makePromise(of: SMTPClientHandler.Opened.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeouts.connect)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                do {
                    let handler = SMTPClientHandler(
                        session: SMTPSession(configuration: configuration), timeouts: timeouts, ready: ready,
                        makeTLS: sslContext.map { context in { try NIOSSLClientHandler(context: context, serverHostname: serverName) } },
                        verifies: verifies, pins: endpoint.tlsPins
                    )
                    let operations = channel.pipeline.syncOperations
                    if endpoint.security == .implicitTLS, let sslContext {
                        try operations.addHandler(TLSServerHelloObserver())
                        try operations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: serverName))
                    }
                    try operations.addHandler(handler)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            let reason = "could not connect to \(endpoint.host):\(endpoint.port): \(Self.describe(error))"
            ready.fail(SMTPConnectionError(reason: reason, steps: [SMTPStepRecord(step: "connect", ok: false, detail: reason)]))
            throw SMTPConnectionError(reason: reason, steps: [SMTPStepRecord(step: "connect", ok: false, detail: reason)])
        }
        let opened = try await ready.futureResult.get()
        return SMTPConnection(channel: channel, handler: opened.handler, tls: opened.tls, steps: opened.steps)
    }

    /// Runs one transaction. Never throws: a lost connection defers every recipient.
    public func send(_ envelope: SMTPSession.Envelope) async -> [String: SMTPSession.Outcome] {
        let promise = channel.eventLoop.makePromise(of: [String: SMTPSession.Outcome].self)
        let handler = self.handler
        channel.eventLoop.execute {
            handler.value.begin(envelope, promise: promise)
        }
        return (try? await promise.futureResult.get()) ?? [:]
    }

    /// Whether the connection can take another transaction.
    public var isOpen: Bool {
        get async {
            let handler = self.handler
            return (try? await channel.eventLoop.submit { handler.value.isIdle }.get()) ?? false
        }
    }

    /// QUIT, then close. Returns what the server answered to QUIT, as a step.
    @discardableResult
    public func close() async -> SMTPStepRecord? {
        let promise = channel.eventLoop.makePromise(of: SMTPStepRecord?.self)
        let handler = self.handler
        channel.eventLoop.execute {
            handler.value.quit(promise: promise)
        }
        let step = try? await promise.futureResult.get()
        try? await channel.closeFuture.get()
        return step ?? nil
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as NIOSSLError: "TLS failed: \(error)"
        case let error as BoringSSLError: "TLS failed: \(error)"
        case let error as NIOSSLExtraError: "TLS failed: \(error)"
        case is ChannelError: "\(error)"
        default: "\(error)"
        }
    }
}

/// Drives an `SMTPSession` on the connection's event loop: replies in, commands out, TLS
/// inserted when the session asks for it, a timeout for every reply awaited.
final class SMTPClientHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Opened: @unchecked Sendable {
        // @unchecked: `handler` is loop-bound; it is only touched on its event loop.
        var handler: NIOLoopBound<SMTPClientHandler>
        var tls: SMTPTLSInfo?
        var steps: [SMTPStepRecord]
    }

    private var session: SMTPSession
    private var parser = SMTPReplyParser()
    private let timeouts: SMTPTimeouts
    private let makeTLS: (() throws -> NIOSSLClientHandler)?
    /// Whether the TLS settings verify the certificate (recorded with each connection).
    private let verifies: Bool
    private let pins: [String]
    private var ready: EventLoopPromise<Opened>?
    private var transaction: EventLoopPromise<[String: SMTPSession.Outcome]>?
    private var quitting: EventLoopPromise<SMTPStepRecord?>?
    private var context: ChannelHandlerContext?
    private var timer: Scheduled<Void>?
    private var tls: SMTPTLSInfo?
    private var steps: [SMTPStepRecord] = []
    private var finished = false
    private var waitingForHandshake = false
    /// The reply the current timer is for.
    private var awaited: SMTPSession.Step?

    init(
        session: SMTPSession, timeouts: SMTPTimeouts, ready: EventLoopPromise<Opened>, makeTLS: (() throws -> NIOSSLClientHandler)?,
        verifies: Bool, pins: [String]
    ) {
        self.session = session
        self.timeouts = timeouts
        self.ready = ready
        self.makeTLS = makeTLS
        self.verifies = verifies
        self.pins = pins
    }

    var isIdle: Bool { !finished && ready == nil && transaction == nil && session.awaiting == nil }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        steps.append(SMTPStepRecord(step: "connect", ok: true, detail: "connected to \(context.remoteAddress.map { "\($0)" } ?? "the server")"))
        arm()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let replies: [SMTPReply]
        do {
            replies = try parser.consume(buffer.readableBytesView)
        } catch {
            return perform(session.failed("\(error)"))
        }
        var startTLS = false
        for reply in replies where !finished {
            let step = session.awaiting
            steps.append(SMTPStepRecord(step: step?.rawValue ?? "reply", ok: reply.isPositive || reply.isIntermediate, detail: reply.description))
            let actions = session.received(reply)
            if actions.contains(.startTLS) { startTLS = true }
            perform(actions.filter { $0 != .startTLS })
        }
        guard startTLS, !finished else { return }
        // Nothing the server sent before the handshake may be read as if it came over TLS.
        guard !parser.hasPartialReply else {
            return perform(session.failed("the server sent data before the TLS handshake"))
        }
        do {
            guard let makeTLS else { throw SMTPProtocolError(description: "no TLS settings") }
            let operations = context.pipeline.syncOperations
            try operations.addHandler(makeTLS(), position: .first)
            try operations.addHandler(TLSServerHelloObserver(), position: .first)
            waitingForHandshake = true
            arm()
        } catch {
            perform(session.failed("TLS could not start: \(error)"))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            let tlsHandler = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self)
            let cipher = (try? context.pipeline.syncOperations.handler(type: TLSServerHelloObserver.self))?.cipher
            var info = SMTPTLSInfo(
                version: tlsHandler?.tlsVersion.map(Self.name) ?? "unknown", cipher: cipher.map(TLSServerHelloObserver.name) ?? "unknown",
                verified: verifies, serverKey: tlsHandler?.peerCertificate.flatMap { try? SMTPKeyPin.digest(of: $0) }
            )
            // The pin is checked before a byte goes over the new TLS: for STARTTLS before the
            // second EHLO, for implicit TLS before the greeting is read.
            if !pins.isEmpty {
                info.pinMatched = info.serverKey.map(pins.contains) ?? false
            }
            tls = info
            if info.pinMatched == false {
                let reason = """
                    TLS certificate pin mismatch: the server's public key (SPKI SHA-256 \(info.serverKey ?? "unreadable")) \
                    matches none of the \(pins.count) pinned for this server
                    """
                steps.append(SMTPStepRecord(step: SMTPSession.Step.tlsHandshake.rawValue, ok: false, detail: reason))
                waitingForHandshake = false
                perform(session.failed(reason))
                return
            }
            var detail = "\(info.version), \(info.cipher), certificate \(info.verified ? "verified" : "not verified")"
            if info.pinMatched == true { detail += ", pin matched" }
            steps.append(SMTPStepRecord(step: SMTPSession.Step.tlsHandshake.rawValue, ok: true, detail: detail))
            if waitingForHandshake {
                waitingForHandshake = false
                perform(session.tlsEstablished())
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason = SMTPConnection.describe(error)
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            steps.append(SMTPStepRecord(step: SMTPSession.Step.tlsHandshake.rawValue, ok: false, detail: reason))
        }
        perform(session.failed(reason))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            perform(session.failed(session.awaiting == .quit ? "the server closed the connection after QUIT" : "the server closed the connection"))
        }
        complete()
        context.fireChannelInactive()
    }

    func begin(_ envelope: SMTPSession.Envelope, promise: EventLoopPromise<[String: SMTPSession.Outcome]>) {
        guard isIdle else {
            let reason = finished ? "the connection to the server was closed" : "the connection is busy"
            return promise.succeed(Dictionary(envelope.recipients.map { ($0, .deferred(reason)) }, uniquingKeysWith: { first, _ in first }))
        }
        transaction = promise
        perform(session.begin(envelope))
    }

    func quit(promise: EventLoopPromise<SMTPStepRecord?>) {
        guard !finished else {
            promise.succeed(nil)
            return
        }
        quitting = promise
        if isIdle {
            perform(session.quit())
        } else {
            perform(session.failed("the connection was closed"))
        }
    }

    private func perform(_ actions: [SMTPSession.Action]) {
        guard let context else { return }
        var wrote = false
        for action in actions {
            switch action {
            case .send(let bytes):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
                wrote = true
            case .startTLS:
                break
            case .ready:
                ready?.succeed(Opened(handler: NIOLoopBound(self, eventLoop: context.eventLoop), tls: tls, steps: steps))
                ready = nil
            case .transactionEnded(let outcomes):
                transaction?.succeed(outcomes)
                transaction = nil
            case .finish(let outcomes):
                finished = true
                if let failure = session.failure {
                    steps.append(SMTPStepRecord(step: awaited?.rawValue ?? "connection", ok: false, detail: failure))
                }
                transaction?.succeed(outcomes)
                transaction = nil
                if wrote { context.flush() }
                wrote = false
                context.close(promise: nil)
            }
        }
        if wrote { context.flush() }
        arm()
        if finished { complete() }
    }

    /// Settles every promise still open once the conversation is over.
    private func complete() {
        timer?.cancel()
        timer = nil
        if let ready {
            self.ready = nil
            ready.fail(SMTPConnectionError(reason: session.failure ?? "the server closed the connection", steps: steps, tls: tls))
        }
        if let quitting {
            self.quitting = nil
            let last = steps.last(where: { $0.step == SMTPSession.Step.quit.rawValue })
            quitting.succeed(last)
        }
        transaction?.succeed([:])
        transaction = nil
        finished = true
    }

    /// A timeout for the reply awaited now; none while idle.
    private func arm() {
        guard !finished, let context else { return }
        timer?.cancel()
        timer = nil
        let step: SMTPSession.Step? = waitingForHandshake ? .tlsHandshake : session.awaiting
        awaited = step
        guard let step else { return }
        let limit = timeouts.limit(for: step)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: limit) {
            handler.value.timedOut(step, after: limit)
        }
    }

    private func timedOut(_ step: SMTPSession.Step, after limit: TimeAmount) {
        guard !finished else { return }
        let seconds = Double(limit.nanoseconds) / 1e9
        perform(session.failed("no reply to \(step.rawValue) within \(seconds.formatted()) s"))
    }

    static func name(_ version: TLSVersion) -> String {
        switch version {
        case .tlsv1: "TLSv1"
        case .tlsv11: "TLSv1.1"
        case .tlsv12: "TLSv1.2"
        case .tlsv13: "TLSv1.3"
        }
    }
}

private extension Double {
    func formatted() -> String {
        self == rounded() ? String(Int(self)) : String(self)
    }
}
