import Crypto
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import Synchronization
import ServiceLifecycle
import TidingsCrypto
import TidingsDNS
import TidingsDomain
import TidingsHTTP
import TidingsKMS
import TidingsMail
import TidingsServices
import TidingsStorage
import TidingsTLS

/// The composition root: builds every service from a configuration.
/// The CLI and the tests both start here.
public struct Tidings: Sendable {
    public let configuration: TidingsConfiguration
    public let database: any DatabaseClient
    /// The connection that owns the tables and migrates them, when it is not the application's own.
    public let ownerDatabase: (any DatabaseClient)?
    public let environment: ServiceEnvironment
    public let logger: Logger
    /// Workspace keys for sealing personal data and secrets at rest.
    public let keyring: Keyring
    /// Wraps the workspaces' data keys: the local KEK file, or a KMS.
    public let keyProvider: any KeyEncryptionKeyProvider

    public var workspaces: WorkspaceService { WorkspaceService(environment) }
    public let apiKeys: APIKeyService
    public let templates: TemplateService
    public let domains: DomainService
    public let emailServers: EmailServerService
    /// Wakes this process's delivery workers when a message is queued.
    public let jobSignal = JobSignal()
    public let messages: MessageService
    public var suppressions: SuppressionService { SuppressionService(environment) }
    /// Delivers queued messages: run by `serve`, drained by hand in tests.
    public let deliveries: DeliveryWorker
    public var segments: SegmentService { SegmentService(environment) }
    /// Wakes this process's announcement fan-out when one is started or resumed.
    public let fanOutSignal = JobSignal()
    public let announcements: AnnouncementService
    /// Queues announcements' messages: run by `serve`, drained by hand in tests.
    public let fanOuts: AnnouncementWorker
    /// Wakes this process's automation workers when a trigger is queued.
    public let automationSignal = JobSignal()
    public let automations: AutomationService
    /// Enrols contacts and runs automation steps: run by `serve`, drained by hand in tests.
    public let automationWorker: AutomationWorker
    public let contacts: ContactService
    public let events: EventService
    /// Webhook endpoints and their delivery log.
    public let webhooks: WebhookService
    /// Delivers queued webhook events: run by `serve`, drained by hand in tests.
    public let webhookDeliveries: WebhookWorker
    public var audit: AuditService { AuditService(environment) }
    public var topics: TopicService { TopicService(environment) }
    public var subscriptions: SubscriptionService { SubscriptionService(environment) }
    /// Tracking settings and the public pixel and link requests (one committer for their events).
    public let tracking: TrackingService
    public var stats: StatsService { StatsService(environment) }
    public let accounts: AccountService
    public let accountSettings: AccountService.Settings
    public var migrator: Migrator { Migrator(database: ownerDatabase ?? database, logger: logger) }

    /// Applies pending migrations, then seals any personal data still stored in the clear
    /// from before sealing existed. Returns the migrations applied.
    @discardableResult
    public func migrate() async throws -> [String] {
        try await TenantScope.with(.instance) {
            let applied = try await migrator.migrate()
            if let ownerDatabase, case .postgres(let app) = configuration.database {
                try await ownerDatabase.transaction { db in try await Migrator.grant(to: app.username, on: db) }
            } else if database.kind == .postgres {
                try await warnIfRowSecurityIsBypassed()
            }
            let sealed = try await SealingRetrofit(environment).run()
            // Workspace keys wrapped before each workspace had a KEK of its own move under it,
            // so deleting the workspace shreds them too.
            let rewrapped = try await keyring.rewrapAll()
            if rewrapped > 0 { try await database.discardReplacedContent(of: ["workspace_keys", "instance_keys"]) }
            if !applied.isEmpty || sealed > 0 || rewrapped > 0 {
                let audit = try await environment.auditRecorder()
                let change = AuditChange("schema.migrated", summary: [
                    "migrations": .array(applied.map(JSONValue.string)), "legacyValuesSealed": .number(Double(sealed)),
                    "keysRewrapped": .number(Double(rewrapped)),
                ])
                try await database.transaction { db in
                    try await audit.record(change, in: Vault.instanceScope, by: .system("migrations"), db: db)
                }
            }
            return applied
        }
    }

    /// Opens the data directory, the secrets and the database (without starting anything).
    public static func open(
        _ configuration: TidingsConfiguration,
        logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init
    ) async throws -> Tidings {
        try FileManager.default.createDirectory(
            atPath: configuration.dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]
        )
        let hashKey = try ServerSecrets.apiKeyHashKey(configuration)
        for warning in configuration.databaseTransportWarnings {
            logger.warning("The database connection is not verified end to end", metadata: ["warning": "\(warning)"])
        }
        let keyProvider = try makeKeyProvider(configuration)
        let database: any DatabaseClient
        do {
            switch configuration.database {
            case .sqlite(let path):
                database = try await SQLiteDatabaseClient.open(path: path, durability: configuration.sqliteDurability, logger: logger)
            case .postgres(let settings):
                let client = try PostgresDatabaseClient(settings: settings, maxConnections: configuration.databasePoolSize, logger: logger)
                try await client.checkConnection()
                database = client
            }
        } catch {
            try? await keyProvider.shutdown()
            throw error
        }
        var ownerDatabase: (any DatabaseClient)?
        if case .postgres(let settings) = configuration.databaseOwner {
            do {
                let client = try PostgresDatabaseClient(settings: settings, maxConnections: 2, logger: logger)
                try await client.checkConnection()
                ownerDatabase = client
            } catch {
                try? await keyProvider.shutdown()
                throw error
            }
        }
        let keyring = Keyring(database: database, provider: keyProvider, now: now)
        let environment = ServiceEnvironment(database: database, hasher: SecretHasher(key: hashKey), keyring: keyring, now: now, logger: logger)
        return Tidings(
            configuration: configuration, database: database, ownerDatabase: ownerDatabase, environment: environment,
            keyring: keyring, keyProvider: keyProvider, logger: logger,
            commonPasswords: Self.loadCommonPasswords(configuration.commonPasswordsFile, logger: logger)
        )
    }

    /// The key-encryption-key provider the configuration names. A KMS provider holds an HTTP
    /// client, released by `withDatabase` and `serve` when they end.
    public static func makeKeyProvider(_ configuration: TidingsConfiguration) throws -> any KeyEncryptionKeyProvider {
        switch configuration.kekProvider {
        case .local:
            return try LocalKeyProvider.loadOrCreate(at: configuration.kekFile)
        case .awsKMS:
            guard let settings = configuration.awsKMS else {
                throw TidingsConfiguration.Invalid(description: "TIDINGS_KMS_PROVIDER=aws-kms without its settings.")
            }
            // Requests are signed with the real time, whatever clock the services are given.
            return try AWSKMSKeyProvider(settings: settings)
        }
    }

    private init(
        configuration: TidingsConfiguration, database: any DatabaseClient, ownerDatabase: (any DatabaseClient)?,
        environment: ServiceEnvironment, keyring: Keyring, keyProvider: any KeyEncryptionKeyProvider, logger: Logger,
        commonPasswords: CommonPasswordList
    ) {
        self.ownerDatabase = ownerDatabase
        self.configuration = configuration
        self.keyring = keyring
        self.keyProvider = keyProvider
        self.database = database
        self.environment = environment
        self.logger = logger
        self.apiKeys = APIKeyService(environment)
        self.templates = TemplateService(environment)
        self.domains = DomainService(environment, checker: DomainChecker(
            lookup: DNSResolver(servers: configuration.dnsServers, timeout: configuration.dnsTimeout), helo: configuration.delivery.clientName
        ))
        self.emailServers = EmailServerService(environment, delivery: configuration.delivery)
        self.messages = MessageService(environment, signal: jobSignal, automationSignal: automationSignal)
        self.deliveries = DeliveryWorker(environment, settings: configuration.delivery, signal: jobSignal)
        self.announcements = AnnouncementService(environment, messages: messages, fanOut: fanOutSignal)
        self.fanOuts = AnnouncementWorker(environment, messages: messages, signal: fanOutSignal, deliveries: jobSignal)
        self.events = EventService(environment, automationSignal: automationSignal)
        self.contacts = ContactService(environment, automationSignal: automationSignal)
        self.automations = AutomationService(environment, messages: messages)
        self.automationWorker = AutomationWorker(
            environment, engine: AutomationEngine(environment, messages: messages, deliverySignal: jobSignal),
            settings: AutomationWorkerSettings(lease: configuration.delivery.lease, pollInterval: configuration.delivery.pollInterval),
            signal: automationSignal
        )
        let webhookTargets = WebhookTargets(
            policy: configuration.webhooks.policy, dns: DNSResolver(servers: configuration.dnsServers, timeout: configuration.dnsTimeout)
        )
        self.webhookDeliveries = WebhookWorker(environment, settings: configuration.webhooks, targets: webhookTargets)
        self.webhooks = WebhookService(environment, settings: configuration.webhooks, targets: webhookTargets, signal: webhookDeliveries.signal)
        self.tracking = TrackingService(environment)
        var settings = AccountService.Settings()
        settings.sessionIdleTimeout = TimeInterval(configuration.sessionIdleMinutes * 60)
        settings.sessionLifetime = TimeInterval(configuration.sessionMaxHours * 3600)
        settings.inactivityLimit = TimeInterval(configuration.accountInactivityDays * 86400)
        settings.publicURL = configuration.publicURL
        self.accountSettings = settings
        self.accounts = AccountService(environment, settings: settings, commonPasswords: commonPasswords)
    }

    /// The list new passwords are checked against. Without the file, a short built-in list
    /// of the most obvious choices stands in, and the gap is logged at every start.
    static func loadCommonPasswords(_ path: String, logger: Logger) -> CommonPasswordList {
        if let list = try? CommonPasswordList(contentsOfFile: path) { return list }
        logger.warning("The common-password list is missing; install Debian's john-data or set TIDINGS_COMMON_PASSWORDS_FILE", metadata: ["path": "\(path)"])
        return CommonPasswordList([
            "password", "passw0rd", "qwerty", "qwertyuiop", "letmein", "welcome", "admin", "administrator", "iloveyou",
            "monkey", "dragon", "sunshine", "princess", "football", "baseball", "trustno1", "123456", "12345678",
            "123456789", "1234567890", "abc123", "changeme", "secret", "tidings",
        ])
    }

    /// A role that owns the tables, or a superuser, is not bound by row-level security.
    private func warnIfRowSecurityIsBypassed() async throws {
        let (superuser, owner) = try await database.read { db in
            let row = try await db.raw("""
                SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user) AS superuser,
                       (SELECT tableowner = current_user FROM pg_tables WHERE tablename = 'contacts' AND schemaname = current_schema()) AS owner
                """).first()
            return (try row?.decode(column: "superuser", as: Bool?.self) ?? false, try row?.decode(column: "owner", as: Bool?.self) ?? false)
        }
        if superuser || owner {
            logger.warning("""
                Tidings connects to PostgreSQL as the tables' owner or a superuser: row-level security and the \
                append-only grants on audit rows do not bind it. Give it its own role and set TIDINGS_DATABASE_OWNER_URL.
                """)
        }
    }

    /// Runs `body` while the database machinery runs (PostgreSQL's pool needs a running task), then
    /// closes it and releases the key provider.
    public func withDatabase<T: Sendable>(_ body: @Sendable (Tidings) async throws -> T) async throws -> T {
        let pools = PoolRunner([database] + (ownerDatabase.map { [$0] } ?? []), logger: logger)
        let result: Result<T, any Error>
        do {
            result = .success(try await body(self))
        } catch {
            result = .failure(error)
        }
        var cleanup: (any Error)?
        do {
            try await database.close()
            try await ownerDatabase?.close()
            try await keyProvider.shutdown()
        } catch {
            cleanup = error
        }
        await pools.stop()
        let value = try result.get()
        if let cleanup { throw cleanup }
        return value
    }

    /// The HTTP router with every route (also what the OpenAPI contract test inspects).
    public func makeRouter(transport: TransportSecurity = TransportSecurity(listener: .https)) throws -> Router<TidingsRequestContext> {
        let services = APIServices(
            contacts: contacts, events: events, apiKeys: apiKeys, templates: templates, domains: domains, emailServers: emailServers,
            messages: messages, suppressions: suppressions, audit: audit, automations: automations, segments: segments, announcements: announcements,
            webhooks: webhooks,
            accounts: accounts, accountSettings: accountSettings, listWorkspaces: { [workspaces] in try await workspaces.list() },
            makeImport: { [environment] workspaceId, types, actor in try ContactImport(environment, workspaceId: workspaceId, types: types, by: actor) },
            isReady: { [migrator] in (try? await migrator.isCurrent()) ?? false },
            now: environment.now,
            importMaxBytes: configuration.importMaxBytes,
            topics: topics, subscriptions: subscriptions,
            tracking: tracking, stats: stats
        )
        return try buildRouter(services: services, transport: transport)
    }

    /// The application the HTTPS port serves, on the plain HTTP server (tests drive its router directly).
    public func buildApplication() throws -> some ApplicationProtocol {
        Application(
            router: try makeRouter(),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
            logger: logger
        )
    }

    /// `tidings serve`: runs the database, the listeners and the background jobs as services until
    /// SIGTERM/SIGINT. Pending migrations are applied before any port accepts connections.
    public func serve() async throws {
        let server = MigratingServer(migrate: { [self] in try await self.migrate() }, serve: { [self] in try await self.runListeners() })
        let group = ServiceGroup(configuration: .init(
            // Shut down in reverse order: the server drains before the database closes.
            services: (ownerDatabase.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                .init(service: database),
                .init(service: PeriodicJob(name: "audit-checkpoints", interval: .seconds(60), logger: logger) { [audit] in
                    try await audit.checkpointHeads()
                }),
                .init(service: PeriodicJob(name: "inactive-accounts", interval: .seconds(3600), logger: logger) { [accounts] in
                    try await accounts.disableInactive()
                }),
                .init(service: PeriodicJob(name: "data-key-rotations", interval: .seconds(3600), logger: logger) { [environment] in
                    try await KeyRotation(environment).finishRotations()
                }),
                .init(service: PeriodicJob(name: "idempotency-keys", interval: .seconds(3600), logger: logger) { [environment] in
                    try await MessageService.purgeIdempotencyKeys(environment)
                }),
                .init(service: PeriodicJob(name: "webhook-delivery-log", interval: .seconds(3600), logger: logger) { [webhooks] in
                    try await webhooks.purgeDeliveryLog()
                }),
                // Each domain is checked once a day; the hourly pass picks up those due.
                .init(service: PeriodicJob(name: "domain-checks", interval: .seconds(3600), logger: logger) { [domains] in
                    try await domains.verifyDue()
                }),
                // Stop after the server (reverse order): work in progress finishes first.
                .init(service: WorkerService(worker: deliveries, schemaIsCurrent: { [migrator] in
                    (try? await migrator.isCurrent()) ?? false
                })),
                .init(service: WorkerService(worker: fanOuts, schemaIsCurrent: { [migrator] in
                    (try? await migrator.isCurrent()) ?? false
                })),
                .init(service: WorkerService(worker: automationWorker, schemaIsCurrent: { [migrator] in
                    (try? await migrator.isCurrent()) ?? false
                })),
                .init(service: WorkerService(worker: webhookDeliveries, schemaIsCurrent: { [migrator] in
                    (try? await migrator.isCurrent()) ?? false
                })),
                .init(service: server),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch {
            // The database service may not have reached its own close (e.g. the port was taken).
            try? await database.close()
            try? await keyProvider.shutdown()
            throw error
        }
        // The server has drained: no request needs the key provider any more.
        try await keyProvider.shutdown()
    }

    /// The HTTPS port with the API and pages, and the plain-HTTP port that redirects, answers ACME
    /// challenges and refuses API keys; or, in development with `TIDINGS_PLAIN_HTTP`, one plain port.
    func runListeners() async throws {
        if configuration.plainHTTP {
            logger.warning("Serving the API over plain HTTP (development only, loopback only): TIDINGS_PLAIN_HTTP is on")
            let application = Application(
                router: try makeRouter(transport: transport(.developmentPlainHTTP)),
                configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
                onServerRunning: { [self] channel in announce(channel, scheme: "http", certificate: nil) },
                logger: logger
            )
            try await application.run()
            return
        }
        let challenges = ACMEChallenges()
        let tls = try await HTTPSCertificates.prepare(configuration.tls, challenges: challenges, keyring: keyring, logger: logger)
        // Redirects go to the public URL when it is HTTPS, else to this host's HTTPS port once bound.
        let configuredOrigin = Self.origin(of: configuration.publicURL)
        let origin = RedirectOrigin(configuredOrigin ?? "https://localhost:\(configuration.httpsPort)")
        let originIsConfigured = configuredOrigin != nil
        let https = Application(
            router: try makeRouter(transport: transport(.https)),
            server: try .tls(.http1(), tlsConfiguration: tls.certificates.tlsConfiguration()),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpsPort), serverName: nil),
            onServerRunning: { [self] channel in
                if !originIsConfigured, let port = channel.localAddress?.port { origin.value.withLock { $0 = "https://localhost:\(port)" } }
                announce(channel, scheme: "https", certificate: tls.certificates.credentials)
            },
            logger: logger
        )
        let plain = Application(
            router: try makeRouter(transport: transport(.plainHTTP, httpsOrigin: { origin.value.withLock { $0 } }, challenges: challenges)),
            configuration: .init(address: .hostname(configuration.httpHost, port: configuration.httpPort), serverName: nil),
            onServerRunning: { [logger] channel in
                logger.notice("The plain-HTTP port redirects to HTTPS and answers ACME challenges", metadata: [
                    "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "scheme": "http",
                ])
            },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await https.run() }
            group.addTask { try await plain.run() }
            group.addTask { await tls.run() }
            // The first failure (a port in use) ends the others; otherwise all drain on shutdown.
            for try await _ in group {}
        }
    }

    /// What a listener of `kind` allows: trusted proxies, where to redirect, the ACME answers,
    /// and what happens to an API key that arrives over plain HTTP.
    public func transport(
        _ listener: TransportSecurity.Listener, httpsOrigin: @escaping @Sendable () -> String = { "https://localhost" },
        challenges: ACMEChallenges = ACMEChallenges()
    ) -> TransportSecurity {
        let revoke = configuration.revokeExposedKeys
        return TransportSecurity(
            listener: listener, trustedProxies: configuration.trustedProxies, httpsOrigin: httpsOrigin,
            challengeResponse: { token in challenges.response(for: token) },
            reportExposedKey: { [apiKeys, logger] bearer, actor in
                do {
                    return try await apiKeys.reportExposure(bearer: bearer, revoke: revoke, by: actor).map { $0.revokedAt != nil }
                } catch {
                    logger.error("Recording an exposed API key failed", metadata: ["error_type": "\(type(of: error))"])
                    return nil
                }
            }
        )
    }

    private func announce(_ channel: any Channel, scheme: String, certificate: ServerCertificates.Credentials?) {
        var metadata: Logger.Metadata = [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
            "scheme": "\(scheme)",
            "database": "\(configuration.database.redacted)",
            "databaseTransport": "\(configuration.database.transportSecurity)",
            "environment": "\(configuration.environment.rawValue)",
            // Names the KEK (never its material or any credential).
            "kek": "\(keyProvider.kekId)",
        ]
        if let certificate {
            metadata["certificate"] = "\(certificate.source)"
            metadata["certificate_names"] = "\(certificate.names.joined(separator: ","))"
            metadata["certificate_not_after"] = "\(Timestamp.format(certificate.notValidAfter))"
        }
        logger.notice("Tidings is serving", metadata: metadata)
    }

    /// `https://host[:port]` of an https URL; nil for anything else.
    static func origin(of url: String) -> String? {
        // Port 0 (a port picked at start) says nothing about where clients should go.
        guard let components = URLComponents(string: url), components.scheme == "https", let host = components.host,
              components.port != 0 else { return nil }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return "https://\(bracketed)" + (components.port.map { ":\($0)" } ?? "")
    }
}

/// Where the plain-HTTP port sends browsers: known once the HTTPS port is bound.
final class RedirectOrigin: Sendable {
    let value: Mutex<String>
    init(_ origin: String) { value = Mutex(origin) }
}

/// Migrates, then serves; a server whose schema is behind never takes a request.
struct MigratingServer: Service {
    let migrate: @Sendable () async throws -> [String]
    let serve: @Sendable () async throws -> Void

    func run() async throws {
        _ = try await migrate()
        try await serve()
    }
}
