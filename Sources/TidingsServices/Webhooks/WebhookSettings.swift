import Foundation
import TidingsDomain

/// How webhooks are delivered: the request, the retry schedule, when an endpoint is given up
/// on, and which targets are allowed.
public struct WebhookSettings: Sendable {
    /// Which URLs may be targets: HTTPS only, and in production public addresses only.
    public var policy: OutboundURLPolicy
    /// Requests in flight at once in this process.
    public var concurrency: Int
    /// The limit for one request as a whole: connecting, TLS, sending and the answer's head.
    public var timeout: Duration
    /// How long a claimed delivery stays leased; longer than any attempt can take, so a live
    /// worker never loses its claim, and a dead worker's deliveries are taken over after it.
    public var lease: TimeInterval
    /// How often the queue is looked at for due deliveries.
    public var pollInterval: Duration
    /// The wait after the first, second, … failed attempt; the last one repeats. Standard
    /// Webhooks' example schedule, then 14 hours.
    public var retryDelays: [TimeInterval]
    /// A delivery not accepted this long after its first attempt has failed.
    public var giveUpAfter: TimeInterval
    /// An endpoint whose every attempt has failed for this long is disabled.
    public var disableAfter: TimeInterval
    /// After a rotation the previous secret keeps signing this long.
    public var rotationOverlap: TimeInterval
    /// PEM files of certificate authorities trusted besides the system's.
    public var trustRoots: [String]
    /// The first bytes of an answer's body kept in the delivery log.
    public var snippetBytes: Int
    /// Finished deliveries (their bodies name contacts) are kept in the log this long.
    public var logRetention: TimeInterval

    public init(
        policy: OutboundURLPolicy, concurrency: Int = 16, timeout: Duration = .seconds(15), lease: TimeInterval? = nil,
        pollInterval: Duration = .seconds(1), retryDelays: [TimeInterval] = [5, 300, 1800, 7200, 18000, 36000, 50400],
        giveUpAfter: TimeInterval = 72 * 3600, disableAfter: TimeInterval = 72 * 3600, rotationOverlap: TimeInterval = 24 * 3600,
        trustRoots: [String] = [], snippetBytes: Int = 256, logRetention: TimeInterval = 30 * 86400
    ) {
        self.policy = policy
        self.concurrency = concurrency
        self.timeout = timeout
        // The request's own limit, a DNS lookup (two servers, two tries each) and the recording.
        self.lease = lease ?? Double(timeout.components.seconds) * 2 + 60
        self.pollInterval = pollInterval
        self.retryDelays = retryDelays
        self.giveUpAfter = giveUpAfter
        self.disableAfter = disableAfter
        self.rotationOverlap = rotationOverlap
        self.trustRoots = trustRoots
        self.snippetBytes = snippetBytes
        self.logRetention = logRetention
    }

    /// The wait after failed attempt number `attempt` (from 1), ±20 % so that deliveries that
    /// failed together do not return in lockstep.
    public func delay(afterAttempt attempt: Int, jitter: Double = Double.random(in: 0.8...1.2)) -> TimeInterval {
        guard let last = retryDelays.last else { return 60 }
        let index = max(attempt, 1) - 1
        let base = index < retryDelays.count ? retryDelays[index] : last
        return base * jitter
    }
}
