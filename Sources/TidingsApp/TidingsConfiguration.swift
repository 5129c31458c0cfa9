import Configuration
import Foundation
import Logging
import TidingsDNS
import TidingsDomain
import TidingsKMS
import TidingsMail
import TidingsServices
import TidingsStorage

/// Every setting of Tidings, read once at start-up.
///
/// Precedence: command-line flags, then `TIDINGS_*` environment variables, then
/// the optional JSON config file (`--config` / `TIDINGS_CONFIG_FILE`, keys in
/// camelCase such as `"httpPort": 8080`), then the defaults below.
public struct TidingsConfiguration: Sendable {
    public enum LogFormat: String, Sendable, CaseIterable { case text, json }
    public enum KEKProvider: String, Sendable, CaseIterable {
        case local
        case awsKMS = "aws-kms"
    }

    /// Holds the SQLite database, the server secrets and (later) TLS material. Default `./tidings-data`.
    public var dataDirectory: String
    /// `sqlite:///path` or `postgres://...?sslmode=verify-full&sslrootcert=...` (libpq's TLS
    /// parameters). Default: `tidings.sqlite` in the data directory.
    public var database: DatabaseURL
    /// PostgreSQL only: a role that owns the tables and runs migrations, so the application's
    /// own role (`database`) is not the owner: row-level security then binds it, and it is
    /// granted no UPDATE or DELETE on audit rows. Without it, one role does both.
    public var databaseOwner: DatabaseURL?
    /// The address both ports listen on (default 127.0.0.1).
    public var httpHost: String
    /// The plain-HTTP port (default 8080): only redirects to HTTPS and answers ACME challenges,
    /// unless `plainHTTP` is on.
    public var httpPort: Int
    /// The HTTPS port the API and the web pages are served on (default 8443).
    public var httpsPort: Int
    /// Development only: serve everything over plain HTTP on `httpPort` (no HTTPS port).
    /// Refused unless the environment is not production and the host is loopback.
    public var plainHTTP: Bool
    /// Where the HTTPS certificate comes from, and the names it must cover.
    public var tls: TLSSettings
    /// Proxies (CIDRs) whose `X-Forwarded-For` / `X-Forwarded-Proto` are believed; nobody else's are.
    public var trustedProxies: [IPNetwork]
    /// Whether an API key sent over plain HTTP is revoked at once (default true); it is marked exposed either way.
    public var revokeExposedKeys: Bool
    /// The base URL Tidings puts into links in emails and pages.
    public var publicURL: String
    public var environment: DeploymentEnvironment
    public var logLevel: Logger.Level
    public var logFormat: LogFormat
    /// Where the HMAC key for API-key hashes is read from when not given directly.
    public var apiKeySecretFile: String
    /// Base64 of the HMAC key for API-key hashes; required to be identical on every instance.
    public var apiKeySecret: String?
    /// `normal` (default: survives a process crash) or `full` (also survives power loss; slower).
    public var sqliteDurability: SQLiteDatabaseClient.Durability
    /// The local key-encryption key (default `secrets/kek.key` in the data directory).
    public var kekFile: String
    /// What holds the key-encryption key: `local` (default: the KEK file) or `aws-kms`.
    public var kekProvider: KEKProvider
    /// The AWS KMS key, endpoint and credentials; set exactly when `kekProvider` is `aws-kms`.
    public var awsKMS: AWSKMSKeyProvider.Settings?
    /// The largest CSV upload `POST /v1/contacts/import` reads (default 256 MiB).
    public var importMaxBytes: Int
    /// PostgreSQL: the most connections this instance opens (default 20). Several instances
    /// together must stay under the server's `max_connections`.
    public var databasePoolSize: Int
    /// Dashboard sessions end after this many idle minutes (default 30) ...
    public var sessionIdleMinutes: Int
    /// ... and this many hours after sign-in (default 12).
    public var sessionMaxHours: Int
    /// Accounts unused this many days are disabled (default 90).
    public var accountInactivityDays: Int
    /// The list of common passwords new passwords are checked against
    /// (default: Debian john-data's `/usr/share/john/password.lst`).
    public var commonPasswordsFile: String
    /// Delivering messages: the SMTP client and the queue (`TIDINGS_SMTP_*`, `TIDINGS_DELIVERY_*`).
    public var delivery: DeliverySettings
    /// The DNS servers the checks of sending domains ask (`TIDINGS_DNS_SERVER`: `host` or
    /// `host:port`, several separated by commas). Default: the nameservers of /etc/resolv.conf.
    public var dnsServers: [DNSServerAddress]
    /// How long each DNS query waits for an answer before it is asked again (default 5 s, twice per server).
    public var dnsTimeout: Duration

    /// The configuration keys, each also a `TIDINGS_*` variable (camelCase becomes `_`).
    public enum Key {
        public static let configFile = "tidings.configFile"
        public static let dataDir = "tidings.dataDir"
        public static let databaseURL = "tidings.databaseUrl"
        public static let databaseOwnerURL = "tidings.databaseOwnerUrl"
        public static let httpHost = "tidings.httpHost"
        public static let httpPort = "tidings.httpPort"
        public static let httpsPort = "tidings.httpsPort"
        public static let plainHTTP = "tidings.plainHttp"
        public static let tlsCertFile = "tidings.tlsCertFile"
        public static let tlsKeyFile = "tidings.tlsKeyFile"
        public static let tlsHostnames = "tidings.tlsHostnames"
        public static let tlsReloadSeconds = "tidings.tlsReloadSeconds"
        public static let acmeDirectoryURL = "tidings.acmeDirectoryUrl"
        public static let acmeEmail = "tidings.acmeEmail"
        public static let acmeCaFile = "tidings.acmeCaFile"
        public static let trustedProxies = "tidings.trustedProxies"
        public static let revokeExposedKeys = "tidings.revokeExposedKeys"
        public static let publicURL = "tidings.publicUrl"
        public static let environment = "tidings.environment"
        public static let logLevel = "tidings.logLevel"
        public static let logFormat = "tidings.logFormat"
        public static let apiKeySecret = "tidings.apiKeySecret"
        public static let apiKeySecretFile = "tidings.apiKeySecretFile"
        public static let sqliteSynchronous = "tidings.sqliteSynchronous"
        public static let importMaxBytes = "tidings.importMaxBytes"
        public static let databasePoolSize = "tidings.databasePoolSize"
        public static let kekFile = "tidings.kekFile"
        public static let sessionIdleMinutes = "tidings.sessionIdleMinutes"
        public static let sessionMaxHours = "tidings.sessionMaxHours"
        public static let accountInactivityDays = "tidings.accountInactivityDays"
        public static let commonPasswordsFile = "tidings.commonPasswordsFile"
        public static let smtpHeloName = "tidings.smtpHeloName"
        public static let smtpCaFile = "tidings.smtpCaFile"
        public static let smtpConnectTimeout = "tidings.smtpConnectTimeout"
        public static let smtpReplyTimeout = "tidings.smtpReplyTimeout"
        public static let smtpDataTimeout = "tidings.smtpDataTimeout"
        public static let deliveryConcurrency = "tidings.deliveryConcurrency"
        public static let deliveryLeaseSeconds = "tidings.deliveryLeaseSeconds"
        public static let deliveryRetryMinSeconds = "tidings.deliveryRetryMinSeconds"
        public static let deliveryRetryMaxSeconds = "tidings.deliveryRetryMaxSeconds"
        public static let deliveryGiveUpHours = "tidings.deliveryGiveUpHours"
        public static let dnsServer = "tidings.dnsServer"
        public static let dnsTimeout = "tidings.dnsTimeout"
        public static let kmsProvider = "tidings.kmsProvider"
        public static let kmsKeyId = "tidings.kmsKeyId"
        public static let kmsRegion = "tidings.kmsRegion"
        public static let kmsEndpoint = "tidings.kmsEndpoint"
        // AWS's own variables, read as AWS tools read them.
        public static let awsRegion = "aws.region"
        public static let awsDefaultRegion = "aws.defaultRegion"
        public static let awsAccessKeyId = "aws.accessKeyId"
        public static let awsSecretAccessKey = "aws.secretAccessKey"
        public static let awsSessionToken = "aws.sessionToken"
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the configuration from flags (already keyed as in `Key`), an environment and the optional file.
    public static func load(flags: [String: String], environment: [String: String]) async throws -> TidingsConfiguration {
        let flagProvider = InMemoryProvider(
            name: "flags",
            values: Dictionary(uniqueKeysWithValues: flags.map { (AbsoluteConfigKey(stringLiteral: $0.key), ConfigValue(.string($0.value), isSecret: false)) })
        )
        let envProvider = EnvironmentVariablesProvider(environmentVariables: environment)
        let early = ConfigReader(providers: [flagProvider, envProvider])
        var providers: [any ConfigProvider] = [flagProvider, envProvider]
        if let file = early.string(forKey: ConfigKey(Key.configFile)) {
            guard FileManager.default.fileExists(atPath: file) else {
                throw Invalid(description: "The config file \(file) does not exist.")
            }
            // The file holds plain keys (`httpPort`); the reader asks for `tidings.httpPort`.
            let fileProvider = try await FileProvider<JSONSnapshot>(filePath: .init(file)).mapKeys { key in
                key.components.first == "tidings" ? AbsoluteConfigKey(Array(key.components.dropFirst()), context: key.context) : key
            }
            providers.append(fileProvider)
        }
        return try TidingsConfiguration(reader: ConfigReader(providers: providers))
    }

    init(reader: ConfigReader) throws {
        func string(_ key: String) -> String? {
            reader.string(forKey: ConfigKey(key)).flatMap { $0.isEmpty ? nil : $0 }
        }
        func choice<T: RawRepresentable<String> & CaseIterable>(_ key: String, _ fallback: T) throws -> T {
            guard let text = string(key) else { return fallback }
            guard let value = T(rawValue: text.lowercased()) else {
                throw Invalid(description: "\(Self.variableName(key)) must be one of \(T.allCases.map(\.rawValue).joined(separator: ", ")); got '\(text)'.")
            }
            return value
        }
        dataDirectory = string(Key.dataDir) ?? "./tidings-data"
        let databaseText = string(Key.databaseURL) ?? "sqlite://\(dataDirectory)/tidings.sqlite"
        do {
            database = try DatabaseURL(parsing: databaseText)
            if let ownerText = string(Key.databaseOwnerURL) {
                databaseOwner = try DatabaseURL(parsing: ownerText, variable: Self.variableName(Key.databaseOwnerURL))
            } else {
                databaseOwner = nil
            }
        } catch {
            throw Invalid(description: error.description)
        }
        if let owner = databaseOwner {
            guard case .postgres(let ownerSettings) = owner, case .postgres(let appSettings) = database else {
                throw Invalid(description: "\(Self.variableName(Key.databaseOwnerURL)) applies to PostgreSQL only, with a postgres:// database URL.")
            }
            guard ownerSettings.database == appSettings.database, ownerSettings.host == appSettings.host, ownerSettings.port == appSettings.port else {
                throw Invalid(description: "\(Self.variableName(Key.databaseOwnerURL)) must name the same server and database as \(Self.variableName(Key.databaseURL)).")
            }
        }
        func port(_ key: String, default fallback: Int) throws -> Int {
            guard let text = string(key) else { return fallback }
            guard let port = Int(text), (0...65535).contains(port) else {
                throw Invalid(description: "\(Self.variableName(key)) must be a port number from 0 to 65535; got '\(text)'.")
            }
            return port
        }
        func flag(_ key: String, default fallback: Bool) throws -> Bool {
            guard let text = string(key)?.lowercased() else { return fallback }
            switch text {
            case "true", "1", "yes", "on": return true
            case "false", "0", "no", "off": return false
            default: throw Invalid(description: "\(Self.variableName(key)) must be true or false; got '\(text)'.")
            }
        }
        environment = try choice(Key.environment, DeploymentEnvironment.production)
        httpHost = string(Key.httpHost) ?? "127.0.0.1"
        httpPort = try port(Key.httpPort, default: 8080)
        httpsPort = try port(Key.httpsPort, default: 8443)
        plainHTTP = try flag(Key.plainHTTP, default: false)
        if plainHTTP {
            guard environment != .production else {
                throw Invalid(description: """
                    \(Self.variableName(Key.plainHTTP)) serves the API without TLS and is for development only; \
                    it is refused while \(Self.variableName(Key.environment)) is production.
                    """)
            }
            guard EmailServer.isLoopback(httpHost) else {
                throw Invalid(description: """
                    \(Self.variableName(Key.plainHTTP)) only binds to loopback (127.0.0.1, ::1, localhost); \
                    \(Self.variableName(Key.httpHost)) is '\(httpHost)'.
                    """)
            }
        } else if httpPort != 0, httpPort == httpsPort {
            throw Invalid(description: "\(Self.variableName(Key.httpPort)) and \(Self.variableName(Key.httpsPort)) must differ; both are \(httpPort).")
        }
        publicURL = string(Key.publicURL) ?? Self.defaultPublicURL(host: httpHost, port: plainHTTP ? httpPort : httpsPort, https: !plainHTTP)
        guard let url = URL(string: publicURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw Invalid(description: "\(Self.variableName(Key.publicURL)) must be an absolute http(s) URL; got '\(publicURL)'.")
        }
        switch IPNetwork.parseList(string(Key.trustedProxies) ?? "") {
        case .success(let networks): trustedProxies = networks
        case .failure(let entry):
            throw Invalid(description: "\(Self.variableName(Key.trustedProxies)) must list CIDRs such as 10.0.0.0/8 or 2001:db8::/32; '\(entry.text)' is not one.")
        }
        revokeExposedKeys = try flag(Key.revokeExposedKeys, default: true)
        tls = try TLSSettings(reader: reader, dataDirectory: dataDirectory, publicHost: url.host!, httpsPort: httpsPort, string: string)
        logLevel = try choice(Key.logLevel, Logger.Level.info)
        logFormat = try choice(Key.logFormat, LogFormat.text)
        apiKeySecret = string(Key.apiKeySecret)
        sqliteDurability = try choice(Key.sqliteSynchronous, SQLiteDatabaseClient.Durability.normal)
        if let text = string(Key.importMaxBytes) {
            guard let bytes = Int(text), bytes > 0 else {
                throw Invalid(description: "\(Self.variableName(Key.importMaxBytes)) must be a positive number of bytes; got '\(text)'.")
            }
            importMaxBytes = bytes
        } else {
            importMaxBytes = 256 * 1024 * 1024
        }
        func positive(_ key: String, default fallback: Int, max: Int) throws -> Int {
            guard let text = string(key) else { return fallback }
            guard let value = Int(text), (1...max).contains(value) else {
                throw Invalid(description: "\(Self.variableName(key)) must be a whole number from 1 to \(max); got '\(text)'.")
            }
            return value
        }
        databasePoolSize = try positive(Key.databasePoolSize, default: 20, max: 500)
        sessionIdleMinutes = try positive(Key.sessionIdleMinutes, default: 30, max: 24 * 60)
        sessionMaxHours = try positive(Key.sessionMaxHours, default: 12, max: 24 * 30)
        accountInactivityDays = try positive(Key.accountInactivityDays, default: 90, max: 3650)
        commonPasswordsFile = string(Key.commonPasswordsFile) ?? "/usr/share/john/password.lst"
        apiKeySecretFile = string(Key.apiKeySecretFile) ?? "\(dataDirectory)/secrets/api-key-hmac.key"
        kekFile = string(Key.kekFile) ?? "\(dataDirectory)/secrets/kek.key"
        kekProvider = try choice(Key.kmsProvider, KEKProvider.local)
        awsKMS = kekProvider == .awsKMS ? try Self.awsKMSSettings(reader, environment: environment) : nil
        let heloName = string(Key.smtpHeloName) ?? URL(string: publicURL)?.host ?? "localhost"
        guard (try? EmailServer.validateHost(heloName)) != nil else {
            throw Invalid(description: "\(Self.variableName(Key.smtpHeloName)) must be a host name; got '\(heloName)'.")
        }
        var trustRoots: [String] = []
        if let caFile = string(Key.smtpCaFile) {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw Invalid(description: "\(Self.variableName(Key.smtpCaFile)) names \(caFile), which cannot be read.")
            }
            trustRoots.append(caFile)
        }
        let timeouts = SMTPTimeouts(
            connect: .seconds(Int64(try positive(Key.smtpConnectTimeout, default: 30, max: 600))),
            greeting: .seconds(Int64(try positive(Key.smtpReplyTimeout, default: 300, max: 3600))),
            command: .seconds(Int64(try positive(Key.smtpReplyTimeout, default: 300, max: 3600))),
            dataInitiation: .seconds(Int64(min(120, try positive(Key.smtpReplyTimeout, default: 300, max: 3600)))),
            dataTermination: .seconds(Int64(try positive(Key.smtpDataTimeout, default: 600, max: 3600)))
        )
        let retryMin = try positive(Key.deliveryRetryMinSeconds, default: 60, max: 86400)
        delivery = DeliverySettings(
            clientName: heloName.lowercased(), tls: SMTPTLSSettings(additionalTrustRoots: trustRoots), timeouts: timeouts,
            concurrency: try positive(Key.deliveryConcurrency, default: 64, max: 1000),
            lease: TimeInterval(try positive(Key.deliveryLeaseSeconds, default: 60, max: 3600)),
            retryMin: TimeInterval(retryMin),
            retryMax: TimeInterval(max(retryMin, try positive(Key.deliveryRetryMaxSeconds, default: 4 * 3600, max: 7 * 86400))),
            giveUpAfter: TimeInterval(try positive(Key.deliveryGiveUpHours, default: 72, max: 24 * 30) * 3600),
            publicURL: publicURL
        )
        dnsServers = try Self.dnsServers(string(Key.dnsServer), resolvConf: try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8))
        dnsTimeout = .seconds(try positive(Key.dnsTimeout, default: 5, max: 60))
    }

    /// `TIDINGS_DNS_SERVER` read, or the system's nameservers from `resolvConf`.
    static func dnsServers(_ text: String?, resolvConf: @autoclosure () -> String?) throws -> [DNSServerAddress] {
        guard let text else { return DNSServerAddress.system(resolvConf: resolvConf()) }
        var servers: [DNSServerAddress] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            do {
                servers.append(try DNSServerAddress(parsing: String(part)))
            } catch {
                throw Invalid(description: """
                    \(variableName(Key.dnsServer)) must be host or host:port (an IPv6 address as [address]:port), several separated \
                    by commas; \(error.description).
                    """)
            }
        }
        return servers
    }

    /// `https://localhost:8443` for a loopback or wildcard address, else the address itself.
    static func defaultPublicURL(host: String, port: Int, https: Bool) -> String {
        let wildcard = ["0.0.0.0", "::", "[::]"].contains(host)
        var name = EmailServer.isLoopback(host) || wildcard ? "localhost" : host
        if name.contains(":"), !name.hasPrefix("[") { name = "[\(name)]" }
        let scheme = https ? "https" : "http"
        let standard = https ? 443 : 80
        return port == standard ? "\(scheme)://\(name)" : "\(scheme)://\(name):\(port)"
    }

    /// What is wrong with the database connections' transport security for this environment:
    /// in production, a PostgreSQL server that is not on this machine must be reached with
    /// `sslmode=verify-full`. Empty when all is well. Logged as warnings at start; the
    /// effective mode of each connection is `database.transportSecurity`.
    public var databaseTransportWarnings: [String] {
        guard environment == .production else { return [] }
        var warnings: [String] = []
        for (key, url) in [(Key.databaseURL, database), (Key.databaseOwnerURL, databaseOwner)] {
            guard let security = url?.transportSecurity, !security.meetsProductionRequirement, let host = security.host else { continue }
            let risk = switch security.sslMode {
            case .verifyCA?: "any server with a certificate from the same certificate authority can pose as the database"
            case .disable?: "the traffic, credentials included, crosses the network in the clear"
            default: "an active attacker on the network can pose as the database and read or change the traffic"
            }
            warnings.append("""
                \(Self.variableName(key)) reaches PostgreSQL at \(host) with \(security): \(risk). \
                Use sslmode=verify-full (with sslrootcert=/path/to/ca.pem for a private certificate authority).
                """)
        }
        return warnings
    }

    /// The environment variable that sets `key`, for error messages.
    static func variableName(_ key: String) -> String {
        var name = ""
        for character in key {
            if character == "." {
                name.append("_")
            } else if character.isUppercase {
                name.append("_")
                name.append(character)
            } else {
                name.append(character.uppercased())
            }
        }
        return name
    }
}

extension Logger.Level: @retroactive CaseIterable {
    public static var allCases: [Logger.Level] { [.trace, .debug, .info, .notice, .warning, .error, .critical] }
}
