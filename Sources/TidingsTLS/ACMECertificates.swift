import Crypto
import Foundation
import Logging
import Synchronization

/// The HTTP-01 answers being validated right now, served on the plain-HTTP port.
public final class ACMEChallenges: Sendable {
    private let pending = Mutex<[String: String]>([:])

    public init() {}

    public func publish(token: String, keyAuthorization: String) {
        pending.withLock { $0[token] = keyAuthorization }
    }

    public func withdraw(token: String) {
        _ = pending.withLock { $0.removeValue(forKey: token) }
    }

    /// The key authorisation for `token`, if its challenge is pending.
    public func response(for token: String) -> String? {
        pending.withLock { $0[token] }
    }
}

/// Seals and opens the private keys ACME keeps on disk (the account key and the certificate's),
/// so a copy of the data directory alone does not hold them.
public struct KeySealer: Sendable {
    public var seal: @Sendable (_ plaintext: String, _ name: String) async throws -> String
    public var open: @Sendable (_ sealed: String, _ name: String) async throws -> String

    public init(
        seal: @escaping @Sendable (String, String) async throws -> String,
        open: @escaping @Sendable (String, String) async throws -> String
    ) {
        self.seal = seal
        self.open = open
    }
}

/// Obtains and renews the HTTPS certificate from an ACME CA, and puts it in service.
///
/// Renewal starts when a third of the certificate's lifetime remains, less a random part
/// of up to a thirtieth of the lifetime (so many instances do not all ask at once). A failed
/// attempt is retried with exponential backoff (1 minute doubling to 6 hours, with jitter);
/// after three failures in a row, or with less than a week left, every failure is logged
/// at critical level, which is what alerting watches.
public actor ACMECertificates {
    public struct Settings: Sendable {
        public var directoryURL: URL
        public var email: String?
        public var caFile: String?
        /// Where the account key, the certificate and its key are kept (keys sealed).
        public var directory: String
        public var names: [String]

        public init(directoryURL: URL, email: String?, caFile: String?, directory: String, names: [String]) {
            self.directoryURL = directoryURL
            self.email = email
            self.caFile = caFile
            self.directory = directory
            self.names = names
        }
    }

    public let settings: Settings
    public let challenges: ACMEChallenges
    /// Where a new certificate goes into service (set once serving starts).
    private var certificates: ServerCertificates?
    private let sealer: KeySealer
    private let now: @Sendable () -> Date
    private let logger: Logger
    private let pollInterval: Duration

    /// Consecutive failed attempts, and when the next may start.
    public private(set) var failures = 0
    public private(set) var lastError: String?
    private var retryAt: Date?
    private var renewAt: Date?
    private var issuedHere: ServerCertificates.Credentials?

    public init(
        settings: Settings, challenges: ACMEChallenges, sealer: KeySealer,
        now: @escaping @Sendable () -> Date = Date.init, logger: Logger, pollInterval: Duration = .milliseconds(500)
    ) {
        self.settings = settings
        self.challenges = challenges
        self.sealer = sealer
        self.now = now
        self.logger = logger
        self.pollInterval = pollInterval
    }

    /// Puts every certificate issued from now on into service there.
    public func use(_ certificates: ServerCertificates) {
        self.certificates = certificates
    }

    var accountKeyPath: String { "\(settings.directory)/account.key.sealed" }
    public var certificatePath: String { "\(settings.directory)/certificate.pem" }
    var keyPath: String { "\(settings.directory)/certificate.key.sealed" }

    /// The certificate ACME issued earlier, if it is still good for the configured names.
    public func loadCached() async throws -> ServerCertificates.Credentials? {
        guard FileManager.default.fileExists(atPath: certificatePath), FileManager.default.fileExists(atPath: keyPath) else { return nil }
        let chain = try String(contentsOfFile: certificatePath, encoding: .utf8)
        let key = try await sealer.open(try String(contentsOfFile: keyPath, encoding: .utf8), "certificate-key")
        guard let credentials = try? ServerCertificates.Credentials(chainPEM: chain, keyPEM: key, source: "acme", now: now()),
              Set(credentials.names) == Set(settings.names) else { return nil }
        adopt(credentials)
        return credentials
    }

    /// When the current ACME certificate is due for renewal (nil before the first).
    public var renewalTime: Date? { renewAt }

    /// Issues a certificate when there is none from ACME yet or renewal is due, unless backing
    /// off after a failure. Returns whether a new certificate went into service.
    @discardableResult
    public func maintain() async -> Bool {
        let time = now()
        if let retryAt, time < retryAt { return false }
        if let renewAt, time < renewAt { return false }
        do {
            try await issue()
            return true
        } catch {
            failures += 1
            lastError = "\(error)"
            let delay = min(6 * 3600, 60 * pow(2, Double(failures - 1))) * Double.random(in: 0.9...1.1)
            retryAt = time.addingTimeInterval(delay)
            let remaining = issuedHere.map { $0.notValidAfter.timeIntervalSince(time) }
            let metadata: Logger.Metadata = [
                "error": "\(error)", "failures": "\(failures)", "retry_in_s": "\(Int(delay))",
                "expires_in_h": "\(remaining.map { String(Int($0 / 3600)) } ?? "none")",
            ]
            if failures >= 3 || (remaining ?? 0) < 7 * 86400 && issuedHere != nil {
                logger.critical("ACME certificate renewal keeps failing", metadata: metadata)
            } else {
                logger.error("ACME certificate request failed", metadata: metadata)
            }
            return false
        }
    }

    /// Runs one issuance: account, order, HTTP-01, finalisation; stores and serves the result.
    public func issue() async throws {
        try FileManager.default.createDirectory(atPath: settings.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let client = try ACMEClient(
            directoryURL: settings.directoryURL, accountKey: try await accountKey(), trustRoots: settings.caFile, pollInterval: pollInterval
        )
        do {
            try await client.register(email: settings.email)
            let key = P256.Signing.PrivateKey()
            let challenges = self.challenges
            let chain = try await client.issue(
                names: settings.names, certificateKey: key,
                publish: { token, answer in challenges.publish(token: token, keyAuthorization: answer) },
                withdraw: { token in challenges.withdraw(token: token) }
            )
            let credentials = try ServerCertificates.Credentials(chainPEM: chain, keyPEM: key.pemRepresentation, source: "acme", now: now())
            try AtomicFile.write(try await sealer.seal(key.pemRepresentation, "certificate-key"), to: keyPath, mode: 0o600)
            try AtomicFile.write(chain, to: certificatePath, mode: 0o644)
            certificates?.replace(with: credentials)
            adopt(credentials)
            failures = 0
            lastError = nil
            retryAt = nil
            logger.notice("ACME certificate in service", metadata: [
                "names": "\(settings.names.joined(separator: ","))", "not_after": "\(credentials.notValidAfter)",
                "renew_at": "\(renewAt.map { "\($0)" } ?? "?")",
            ])
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func adopt(_ credentials: ServerCertificates.Credentials) {
        issuedHere = credentials
        let lifetime = credentials.notValidAfter.timeIntervalSince(credentials.notValidBefore)
        renewAt = credentials.notValidAfter.addingTimeInterval(-lifetime / 3 - Double.random(in: 0...(lifetime / 30)))
    }

    private func accountKey() async throws -> P256.Signing.PrivateKey {
        if FileManager.default.fileExists(atPath: accountKeyPath) {
            let pem = try await sealer.open(try String(contentsOfFile: accountKeyPath, encoding: .utf8), "account-key")
            return try P256.Signing.PrivateKey(pemRepresentation: pem)
        }
        let key = P256.Signing.PrivateKey()
        try AtomicFile.write(try await sealer.seal(key.pemRepresentation, "account-key"), to: accountKeyPath, mode: 0o600)
        return key
    }
}
