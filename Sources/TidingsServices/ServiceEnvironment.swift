import Foundation
import Logging
import TidingsCrypto
import TidingsStorage

/// What every use case needs: the database, the time, and the key that hashes secrets.
public struct ServiceEnvironment: Sendable {
    public var database: any DatabaseClient
    public var hasher: SecretHasher
    /// Seals personal data and secrets before they are stored.
    public var keyring: Keyring
    /// Injected so expiry, overlap and ordering can be tested without sleeping.
    public var now: @Sendable () -> Date
    public var logger: Logger

    public init(
        database: any DatabaseClient, hasher: SecretHasher, keyring: Keyring,
        now: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.database = database
        self.hasher = hasher
        self.keyring = keyring
        self.now = now
        self.logger = logger
    }
}

/// A loop that claims jobs from the durable queue until asked to stop; `stop()` lets the work
/// in progress finish.
public protocol QueueWorker: Sendable {
    func run() async
    func stop()
}

extension DeliveryWorker: QueueWorker {}
extension AnnouncementWorker: QueueWorker {}
extension AutomationWorker: QueueWorker {}
extension WebhookWorker: QueueWorker {}
