import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TidingsCrypto
import TidingsServices
import TidingsTLS

/// The HTTPS port's certificate from the configured source, kept current while serving:
/// the local CA's is renewed, files are reloaded when they change, ACME renews on time.
final class HTTPSCertificates: Sendable {
    let settings: TLSSettings
    let certificates: ServerCertificates
    let acme: ACMECertificates?
    let challenges: ACMEChallenges
    private let fileStamp: Mutex<CertificateFiles.Stamp?>
    private let logger: Logger
    private let now: @Sendable () -> Date

    /// Loads or makes the certificate to start with. Files that cannot be used stop the start
    /// with the reason; with ACME and nothing issued yet, a local-CA certificate serves until
    /// the first issuance succeeds.
    static func prepare(
        _ settings: TLSSettings, challenges: ACMEChallenges, keyring: Keyring, logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) async throws -> HTTPSCertificates {
        var acme: ACMECertificates?
        var stamp: CertificateFiles.Stamp?
        let initial: ServerCertificates.Credentials
        switch settings.source {
        case .localCA(let authority):
            initial = try localCredentials(authority, settings: settings, logger: logger, now: now())
        case .files(let files):
            stamp = files.stamp()
            do {
                initial = try files.load(now: now())
            } catch let problem as CertificateProblem {
                throw TidingsConfiguration.Invalid(description: problem.description)
            }
        case .acme(let options):
            let manager = ACMECertificates(
                settings: .init(directoryURL: options.directoryURL, email: options.email, caFile: options.caFile,
                                directory: options.directory, names: settings.hostnames),
                challenges: challenges, sealer: sealer(keyring, directoryURL: options.directoryURL), now: now, logger: logger
            )
            acme = manager
            if let cached = try await manager.loadCached() {
                initial = cached
            } else {
                logger.notice("No ACME certificate yet: serving an interim local-CA certificate until the CA issues one",
                              metadata: ["names": "\(settings.hostnames.joined(separator: ","))"])
                initial = try localCredentials(
                    LocalCertificateAuthority(directory: options.directory + "/interim"), settings: settings, logger: logger, now: now()
                )
            }
        }
        let certificates = ServerCertificates(initial)
        if let manager = acme { await manager.use(certificates) }
        return HTTPSCertificates(
            settings: settings, certificates: certificates, acme: acme, challenges: challenges,
            fileStamp: stamp, logger: logger, now: now
        )
    }

    private static func localCredentials(
        _ authority: LocalCertificateAuthority, settings: TLSSettings, logger: Logger, now: Date
    ) throws -> ServerCertificates.Credentials {
        let outcome = try authority.ensure(hostnames: settings.hostnames, now: now)
        if outcome.createdAuthority {
            logger.notice("Made a local certificate authority for HTTPS; clients must trust its certificate", metadata: [
                "ca": "\(authority.caPath)", "try": "curl --cacert \(authority.caPath) https://localhost:\(settings.httpsPort)/healthz",
            ])
        } else if outcome.issuedCertificate {
            logger.notice("Issued a new HTTPS certificate from the local CA", metadata: ["ca": "\(authority.caPath)"])
        }
        return try ServerCertificates.Credentials(
            chainPEM: outcome.certificateChainPEM, keyPEM: outcome.privateKeyPEM, source: "local-ca", now: now
        )
    }

    /// ACME's private keys are sealed with the instance's data key, bound to the CA's directory URL.
    static func sealer(_ keyring: Keyring, directoryURL: URL) -> KeySealer {
        KeySealer(
            seal: { plaintext, name in
                try await keyring.vault(for: Vault.instanceScope)
                    .seal(plaintext, table: "acme", column: name, row: directoryURL.absoluteString)
            },
            open: { sealed, name in
                try await keyring.vault(for: Vault.instanceScope)
                    .open(sealed, table: "acme", column: name, row: directoryURL.absoluteString)
            }
        )
    }

    private init(
        settings: TLSSettings, certificates: ServerCertificates, acme: ACMECertificates?, challenges: ACMEChallenges,
        fileStamp: CertificateFiles.Stamp?, logger: Logger, now: @escaping @Sendable () -> Date
    ) {
        self.settings = settings
        self.certificates = certificates
        self.acme = acme
        self.challenges = challenges
        self.fileStamp = Mutex(fileStamp)
        self.logger = logger
        self.now = now
    }

    /// One round of upkeep; returns whether the certificate in service changed.
    @discardableResult
    func maintain() async -> Bool {
        switch settings.source {
        case .localCA(let authority):
            do {
                let outcome = try authority.ensure(hostnames: settings.hostnames, now: now())
                guard outcome.issuedCertificate else { return false }
                certificates.replace(with: try .init(
                    chainPEM: outcome.certificateChainPEM, keyPEM: outcome.privateKeyPEM, source: "local-ca", now: now()
                ))
                logger.notice("Renewed the HTTPS certificate from the local CA")
                return true
            } catch {
                logger.error("Renewing the local-CA certificate failed", metadata: ["error": "\(error)"])
                return false
            }
        case .files(let files):
            let stamp = files.stamp()
            guard stamp != nil, stamp != fileStamp.withLock({ $0 }) else { return false }
            do {
                let credentials = try files.load(now: now())
                certificates.replace(with: credentials)
                fileStamp.withLock { $0 = stamp }
                logger.notice("Reloaded the HTTPS certificate from its files", metadata: [
                    "certificate": "\(files.certificatePath)", "not_after": "\(credentials.notValidAfter)",
                ])
                return true
            } catch {
                // Often a file half-written by a renewal tool: keep serving, try again next round.
                logger.error("The changed HTTPS certificate files cannot be used; the previous certificate stays", metadata: [
                    "error": "\(error)",
                ])
                return false
            }
        case .acme:
            return await acme?.maintain() ?? false
        }
    }

    /// Runs `maintain` every `checkInterval` until graceful shutdown; ACME is asked at once.
    func run() async {
        await cancelWhenGracefulShutdown { [self] in
            if acme != nil { await maintain() }
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: settings.checkInterval)
                } catch {
                    return
                }
                await maintain()
            }
        }
    }
}
