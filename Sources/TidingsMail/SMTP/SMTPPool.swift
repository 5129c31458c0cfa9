import NIOCore
import NIOPosix
import Synchronization

/// What one delivery attempt came to.
public struct SMTPDelivery: Sendable {
    public var outcomes: [String: SMTPSession.Outcome]
    /// The TLS of the connection that carried it (nil without TLS, or if none was opened).
    public var tls: SMTPTLSInfo?
}

/// Connections to one SMTP server, shared by every delivery to it: at most `maxConnections`
/// open at once, at most `rateLimit` messages a second, idle connections reused for the next
/// message (with RSET between transactions) and closed after `idleTimeout`.
public actor SMTPPool {
    public let endpoint: SMTPEndpoint
    private let tls: SMTPTLSSettings
    private let timeouts: SMTPTimeouts
    private let maxConnections: Int
    private let interval: Duration?
    private let idleTimeout: Duration
    private let group: any EventLoopGroup

    private var idle: [(connection: SMTPConnection, since: ContinuousClock.Instant)] = []
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var nextSlot = ContinuousClock.now
    private var closed = false
    /// Set when the process stops: a message still waiting for its rate-limit slot is given
    /// back (deferred) rather than holding up the stop for as long as the slot is away.
    private let pacingStopped = Atomic<Bool>(false)

    public init(endpoint: SMTPEndpoint, tls: SMTPTLSSettings = SMTPTLSSettings(), timeouts: SMTPTimeouts = SMTPTimeouts(),
                maxConnections: Int, rateLimit: Double?, idleTimeout: Duration = .seconds(30),
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = endpoint
        self.tls = tls
        self.timeouts = timeouts
        self.maxConnections = max(1, maxConnections)
        // A tiny positive rate (1e-300 per second) would make an interval no Duration can hold:
        // at most one message a day is as slow as pacing needs to go.
        self.interval = rateLimit.flatMap { $0 > 0 ? Duration.seconds(min(1 / $0, 86400)) : nil }
        self.idleTimeout = idleTimeout
        self.group = group
    }

    /// Delivers one message. Never throws: a server that cannot be reached defers every recipient.
    public func deliver(_ envelope: SMTPSession.Envelope) async -> SMTPDelivery {
        guard await paceToRateLimit() else {
            return SMTPDelivery(outcomes: Self.deferAll(envelope, "Tidings stopped while the message waited for the server's rate limit"), tls: nil)
        }
        var connection: SMTPConnection
        var reused: Bool
        switch await acquire() {
        case .success(let acquired):
            (connection, reused) = acquired
        case .failure(let error):
            return SMTPDelivery(outcomes: Self.deferAll(envelope, error.reason), tls: nil)
        }
        var outcomes = await connection.send(envelope)
        // A reused connection the server closed while it was idle: try once on a fresh one.
        let stillOpen = await connection.isOpen
        if reused, outcomes.isEmpty || !stillOpen && Self.nothingTaken(outcomes) {
            release(connection, keep: false)
            switch await acquire(fresh: true) {
            case .success(let acquired):
                (connection, reused) = acquired
                outcomes = await connection.send(envelope)
            case .failure(let error):
                return SMTPDelivery(outcomes: Self.deferAll(envelope, error.reason), tls: nil)
            }
        }
        let keep = await connection.isOpen
        release(connection, keep: keep)
        if outcomes.isEmpty { outcomes = Self.deferAll(envelope, "the connection to the server was closed") }
        return SMTPDelivery(outcomes: outcomes, tls: connection.tls)
    }

    /// Closes every idle connection (QUIT) and refuses new deliveries.
    public func shutdown() async {
        closed = true
        let connections = idle.map(\.connection)
        idle = []
        open -= connections.count
        for connection in connections { await connection.close() }
        for waiter in waiters { waiter.resume() }
        waiters = []
    }

    /// Connections open now, idle or busy.
    public var openConnections: Int { open }

    /// Ends the waits for rate-limit slots (see `deliver`); for a graceful stop.
    public nonisolated func stopPacing() {
        pacingStopped.store(true, ordering: .relaxed)
    }

    /// Waits for this message's slot; false when pacing was stopped first.
    private func paceToRateLimit() async -> Bool {
        guard let interval else { return true }
        let now = ContinuousClock.now
        let slot = max(now, nextSlot)
        nextSlot = slot + interval
        while ContinuousClock.now < slot {
            if pacingStopped.load(ordering: .relaxed) { return false }
            try? await Task.sleep(until: min(slot, ContinuousClock.now + .milliseconds(200)), clock: .continuous)
        }
        return true
    }

    private func acquire(fresh: Bool = false) async -> Result<(SMTPConnection, Bool), SMTPConnectionError> {
        while true {
            if closed { return .failure(SMTPConnectionError(reason: "the server is shutting down", steps: [])) }
            if !fresh, let candidate = idle.popLast() {
                if ContinuousClock.now - candidate.since < idleTimeout, await candidate.connection.isOpen {
                    return .success((candidate.connection, true))
                }
                open -= 1
                Task { await candidate.connection.close() }
                continue
            }
            if open < maxConnections {
                open += 1
                do {
                    let connection = try await SMTPConnection.open(to: endpoint, tls: tls, timeouts: timeouts, on: group)
                    return .success((connection, false))
                } catch {
                    open -= 1
                    wakeOne()
                    return .failure(error as? SMTPConnectionError ?? SMTPConnectionError(reason: "\(error)", steps: []))
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func release(_ connection: SMTPConnection, keep: Bool) {
        if keep, !closed {
            idle.append((connection, ContinuousClock.now))
        } else {
            open -= 1
            Task { await connection.close() }
        }
        wakeOne()
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    private static func deferAll(_ envelope: SMTPSession.Envelope, _ reason: String) -> [String: SMTPSession.Outcome] {
        Dictionary(envelope.recipients.map { ($0, .deferred(reason)) }, uniquingKeysWith: { first, _ in first })
    }

    /// Every recipient deferred because the connection went away: the server took nothing.
    private static func nothingTaken(_ outcomes: [String: SMTPSession.Outcome]) -> Bool {
        outcomes.values.allSatisfy { if case .deferred(let reason) = $0 { reason.contains("closed the connection") } else { false } }
    }
}
