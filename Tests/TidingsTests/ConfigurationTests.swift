import Foundation
import Testing
import TidingsApp
import TidingsDNS
import TidingsKMS
import TidingsStorage

@Suite("Configuration")
struct ConfigurationTests {
    @Test("With nothing set, Tidings uses ./tidings-data, SQLite, HTTPS on 127.0.0.1:8443 with the local CA, in production")
    func defaults() async throws {
        let configuration = try await TidingsConfiguration.load(flags: [:], environment: [:])
        #expect(configuration.dataDirectory == "./tidings-data")
        #expect(configuration.database == .sqlite(path: "./tidings-data/tidings.sqlite"))
        #expect(configuration.httpHost == "127.0.0.1")
        #expect(configuration.httpPort == 8080)
        #expect(configuration.httpsPort == 8443)
        #expect(!configuration.plainHTTP)
        #expect(configuration.publicURL == "https://localhost:8443")
        #expect(configuration.tls.sourceName == "local-ca" && configuration.tls.hostnames == ["localhost"])
        #expect(configuration.trustedProxies.isEmpty && configuration.revokeExposedKeys)
        #expect(configuration.environment == .production)
        #expect(configuration.logFormat == .text)
        #expect(configuration.kekProvider == .local && configuration.awsKMS == nil)
        #expect(configuration.databasePoolSize == 20)
    }

    @Test("Flags win over TIDINGS_* variables, which win over the config file")
    func precedence() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-config-\(UUID().uuidString).json")
        try Data(#"{"httpPort": 7001, "httpHost": "0.0.0.0", "environment": "staging", "logFormat": "json"}"#.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try await TidingsConfiguration.load(
            flags: [TidingsConfiguration.Key.httpPort: "7003"],
            environment: [
                "TIDINGS_CONFIG_FILE": file.path, "TIDINGS_HTTP_PORT": "7002", "TIDINGS_HTTP_HOST": "127.0.0.2",
                "TIDINGS_DATABASE_URL": "postgres://app:s3cret@db.internal:6543/tidings?sslmode=require",
                "TIDINGS_PUBLIC_URL": "https://mail.acme.test",
            ]
        )
        #expect(configuration.httpPort == 7003)
        #expect(configuration.httpHost == "127.0.0.2")
        #expect(configuration.environment == .staging)
        #expect(configuration.logFormat == .json)
        #expect(configuration.publicURL == "https://mail.acme.test")
        guard case .postgres(let settings) = configuration.database else {
            Issue.record("expected PostgreSQL")
            return
        }
        #expect(settings.host == "db.internal" && settings.port == 6543 && settings.database == "tidings")
        #expect(settings.password == "s3cret" && settings.sslMode == .require)
        #expect(!configuration.database.redacted.contains("s3cret"))
    }

    @Test("Bad settings are refused with a message naming the variable", arguments: [
        ("TIDINGS_HTTP_PORT", "eighty", "TIDINGS_HTTP_PORT"),
        ("TIDINGS_HTTP_PORT", "70000", "TIDINGS_HTTP_PORT"),
        ("TIDINGS_ENVIRONMENT", "prod", "TIDINGS_ENVIRONMENT"),
        ("TIDINGS_LOG_FORMAT", "xml", "TIDINGS_LOG_FORMAT"),
        ("TIDINGS_DATABASE_URL", "mysql://x", "TIDINGS_DATABASE_URL"),
        ("TIDINGS_PUBLIC_URL", "mail.acme.test", "TIDINGS_PUBLIC_URL"),
        ("TIDINGS_SQLITE_SYNCHRONOUS", "off", "TIDINGS_SQLITE_SYNCHRONOUS"),
        ("TIDINGS_DATABASE_POOL_SIZE", "0", "TIDINGS_DATABASE_POOL_SIZE"),
        ("TIDINGS_DATABASE_POOL_SIZE", "many", "TIDINGS_DATABASE_POOL_SIZE"),
        ("TIDINGS_HTTPS_PORT", "https", "TIDINGS_HTTPS_PORT"),
        ("TIDINGS_HTTPS_PORT", "8080", "TIDINGS_HTTPS_PORT"),
        ("TIDINGS_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal", "proxy.internal"),
        ("TIDINGS_TRUSTED_PROXIES", "10.0.0.0/33", "TIDINGS_TRUSTED_PROXIES"),
        ("TIDINGS_REVOKE_EXPOSED_KEYS", "maybe", "TIDINGS_REVOKE_EXPOSED_KEYS"),
        ("TIDINGS_TLS_CERT_FILE", "/nonexistent/cert.pem", "TIDINGS_TLS_KEY_FILE"),
        ("TIDINGS_ACME_DIRECTORY_URL", "http://acme.test/directory", "TIDINGS_ACME_DIRECTORY_URL"),
        ("TIDINGS_TLS_HOSTNAMES", "mail.acme.test, *.acme.test", "TIDINGS_TLS_HOSTNAMES"),
        ("TIDINGS_TLS_RELOAD_SECONDS", "0", "TIDINGS_TLS_RELOAD_SECONDS"),
        ("TIDINGS_DNS_SERVER", "127.0.0.1:99999", "TIDINGS_DNS_SERVER"),
        ("TIDINGS_DNS_SERVER", "dns server.internal", "TIDINGS_DNS_SERVER"),
        ("TIDINGS_DNS_SERVER", "127.0.0.1,", "TIDINGS_DNS_SERVER"),
        ("TIDINGS_DNS_SERVER", "[::1", "TIDINGS_DNS_SERVER"),
        ("TIDINGS_DNS_TIMEOUT", "0", "TIDINGS_DNS_TIMEOUT"),
        ("TIDINGS_DNS_TIMEOUT", "soon", "TIDINGS_DNS_TIMEOUT"),
    ])
    func badSettingsAreRefused(variable: String, value: String, named: String) async throws {
        do {
            _ = try await TidingsConfiguration.load(flags: [:], environment: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch let error as TidingsConfiguration.Invalid {
            #expect(error.description.contains(named))
        }
    }

    @Test("Plain HTTP is for development on loopback only")
    func plainHTTPIsDevelopmentOnly() async throws {
        let development = try await TidingsConfiguration.load(flags: [:], environment: [
            "TIDINGS_PLAIN_HTTP": "true", "TIDINGS_ENVIRONMENT": "development",
        ])
        #expect(development.plainHTTP && development.publicURL == "http://localhost:8080")
        for (environment, variable) in [
            (["TIDINGS_PLAIN_HTTP": "true"], "TIDINGS_ENVIRONMENT"),
            (["TIDINGS_PLAIN_HTTP": "true", "TIDINGS_ENVIRONMENT": "production"], "production"),
            (["TIDINGS_PLAIN_HTTP": "true", "TIDINGS_ENVIRONMENT": "development", "TIDINGS_HTTP_HOST": "0.0.0.0"], "loopback"),
            (["TIDINGS_PLAIN_HTTP": "yes", "TIDINGS_ENVIRONMENT": "staging", "TIDINGS_HTTP_HOST": "10.1.2.3"], "10.1.2.3"),
        ] {
            do {
                _ = try await TidingsConfiguration.load(flags: [:], environment: environment)
                Issue.record("\(environment) was accepted")
            } catch let error as TidingsConfiguration.Invalid {
                #expect(error.description.contains(variable), "\(error.description)")
            }
        }
    }

    @Test("Certificates come from files, ACME or the local CA, for the public host and the extra names")
    func certificateSources() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-tlsconf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem").path, key = directory.appendingPathComponent("key.pem").path
        FileManager.default.createFile(atPath: certificate, contents: Data())
        FileManager.default.createFile(atPath: key, contents: Data())
        let files = try await TidingsConfiguration.load(flags: [:], environment: [
            "TIDINGS_TLS_CERT_FILE": certificate, "TIDINGS_TLS_KEY_FILE": key, "TIDINGS_PUBLIC_URL": "https://Mail.Acme.test",
            "TIDINGS_TLS_HOSTNAMES": "api.acme.test, 192.0.2.7",
        ])
        #expect(files.tls.sourceName == "files")
        #expect(files.tls.hostnames == ["mail.acme.test", "api.acme.test", "192.0.2.7"])
        let acme = try await TidingsConfiguration.load(flags: [:], environment: [
            "TIDINGS_ACME_DIRECTORY_URL": "https://acme.test/dir", "TIDINGS_PUBLIC_URL": "https://mail.acme.test", "TIDINGS_DATA_DIR": "/srv/t",
        ])
        guard case .acme(let settings) = acme.tls.source else {
            Issue.record("expected ACME")
            return
        }
        #expect(settings.directoryURL.absoluteString == "https://acme.test/dir" && settings.directory == "/srv/t/tls/acme")
        do {
            _ = try await TidingsConfiguration.load(flags: [:], environment: [
                "TIDINGS_TLS_CERT_FILE": certificate, "TIDINGS_TLS_KEY_FILE": key, "TIDINGS_ACME_DIRECTORY_URL": "https://acme.test/dir",
            ])
            Issue.record("files and ACME together were accepted")
        } catch let error as TidingsConfiguration.Invalid {
            #expect(error.description.contains("not both"))
        }
        let proxied = try await TidingsConfiguration.load(flags: [:], environment: ["TIDINGS_TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32 ,192.0.2.1"])
        #expect(proxied.trustedProxies.map(\.description) == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"])
    }

    @Test("A key file readable by others is refused at start")
    func looseKeyFileIsRefused() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = try await TidingsConfiguration.load(flags: [TidingsConfiguration.Key.dataDir: directory.path], environment: [:])
        // First start creates the key file with mode 0600.
        try await Tidings.open(configuration, logger: .init(label: "test")).withDatabase { _ in }
        let keyFile = configuration.apiKeySecretFile
        let mode = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
        await #expect(throws: (any Error).self) {
            _ = try await Tidings.open(configuration, logger: .init(label: "test"))
        }
    }

    @Test("TIDINGS_DNS_SERVER names the DNS servers domain checks ask; without it, those of /etc/resolv.conf")
    func dnsServers() async throws {
        let configured = try await TidingsConfiguration.load(flags: [:], environment: [
            "TIDINGS_DNS_SERVER": "127.0.0.1:5353, [::1]:53,resolver.internal", "TIDINGS_DNS_TIMEOUT": "3",
        ])
        #expect(configured.dnsServers.map(\.description) == ["127.0.0.1:5353", "[::1]:53", "resolver.internal:53"])
        #expect(configured.dnsTimeout == .seconds(3))
        let defaults = try await TidingsConfiguration.load(flags: [:], environment: [:])
        let resolvConf = try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)
        #expect(defaults.dnsServers == DNSServerAddress.system(resolvConf: resolvConf))
        #expect(defaults.dnsTimeout == .seconds(5))
    }

    static let awsKMS = [
        "TIDINGS_KMS_PROVIDER": "aws-kms", "TIDINGS_KMS_KEY_ID": "alias/tidings", "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    ]

    @Test("aws-kms takes its key and region from TIDINGS_KMS_* (region also from AWS_REGION / AWS_DEFAULT_REGION) and AWS credentials")
    func awsKMSSettings() async throws {
        let configuration = try await TidingsConfiguration.load(flags: [:], environment: Self.awsKMS.merging(["AWS_SESSION_TOKEN": "token-123"]) { $1 })
        #expect(configuration.kekProvider == .awsKMS)
        let settings = try #require(configuration.awsKMS)
        #expect(settings.keyId == "alias/tidings")
        #expect(settings.region == "eu-west-1")
        #expect(settings.endpoint.requestURL == "https://kms.eu-west-1.amazonaws.com/")
        #expect(settings.credentials == AWSCredentials(
            accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", sessionToken: "token-123"
        ))
        for text in ["\(settings)", String(reflecting: settings), { var out = ""; dump(configuration, to: &out); return out }()] {
            #expect(!text.contains("EXAMPLEKEY") && !text.contains("token-123"), "credentials printed: \(text)")
        }

        var environment = Self.awsKMS
        environment["AWS_REGION"] = nil
        environment["AWS_DEFAULT_REGION"] = "us-west-2"
        #expect(try await TidingsConfiguration.load(flags: [:], environment: environment).awsKMS?.region == "us-west-2")
        environment["AWS_REGION"] = "eu-central-1"
        #expect(try await TidingsConfiguration.load(flags: [:], environment: environment).awsKMS?.region == "eu-central-1")
        environment["TIDINGS_KMS_REGION"] = "ap-south-1"
        environment["TIDINGS_KMS_ENDPOINT"] = "http://127.0.0.1:4566"
        // Plain http:// to loopback: a local KMS stand-in, outside production only.
        environment["TIDINGS_ENVIRONMENT"] = "development"
        let local = try await TidingsConfiguration.load(flags: [:], environment: environment).awsKMS
        #expect(local?.region == "ap-south-1")
        #expect(local?.endpoint.requestURL == "http://127.0.0.1:4566/")
        environment["TIDINGS_ENVIRONMENT"] = "staging"
        #expect(try await TidingsConfiguration.load(flags: [:], environment: environment).awsKMS?.endpoint.scheme == "http")
    }

    @Test("Production refuses a plain http:// KMS endpoint even on loopback, naming the variable")
    func productionRefusesPlainHTTP() async throws {
        for (endpoint, environment) in [("http://127.0.0.1:4566", "production"), ("http://localhost:4566", nil), ("http://kms.internal:4566", "development")] {
            var variables = Self.awsKMS
            variables["TIDINGS_KMS_ENDPOINT"] = endpoint
            variables["TIDINGS_ENVIRONMENT"] = environment
            do {
                _ = try await TidingsConfiguration.load(flags: [:], environment: variables)
                Issue.record("\(endpoint) was accepted in \(environment ?? "production (default)")")
            } catch let error as TidingsConfiguration.Invalid {
                #expect(error.description.hasPrefix("TIDINGS_KMS_ENDPOINT: "), "\(error)")
                #expect(error.description.contains(environment == "development" ? "not loopback" : "production refuses"), "\(error)")
            }
        }
        var variables = Self.awsKMS
        variables["TIDINGS_KMS_ENDPOINT"] = "https://kms.internal:8443"
        #expect(try await TidingsConfiguration.load(flags: [:], environment: variables).awsKMS?.endpoint.requestURL == "https://kms.internal:8443/")
    }

    @Test("aws-kms without a setting it needs, or with a wrong one, is refused naming the variable", arguments: [
        ("TIDINGS_KMS_KEY_ID", nil, "TIDINGS_KMS_KEY_ID"),
        ("AWS_ACCESS_KEY_ID", nil, "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", nil, "AWS_SECRET_ACCESS_KEY"),
        ("AWS_REGION", nil, "TIDINGS_KMS_REGION"),
        ("AWS_REGION", "eu-west-1.evil.test/", "TIDINGS_KMS_REGION"),
        ("TIDINGS_KMS_ENDPOINT", "http://kms.internal:4566", "TIDINGS_KMS_ENDPOINT"),
        ("TIDINGS_KMS_ENDPOINT", "http://10.1.2.3", "TIDINGS_KMS_ENDPOINT"),
        ("TIDINGS_KMS_PROVIDER", "vault", "TIDINGS_KMS_PROVIDER"),
    ] as [(String, String?, String)])
    func awsKMSSettingsAreRequired(variable: String, value: String?, named: String) async throws {
        var environment = Self.awsKMS
        environment[variable] = value
        do {
            _ = try await TidingsConfiguration.load(flags: [:], environment: environment)
            Issue.record("\(variable)=\(value ?? "(unset)") was accepted")
        } catch let error as TidingsConfiguration.Invalid {
            #expect(error.description.contains(named), "\(error)")
            #expect(!error.description.contains("EXAMPLEKEY"))
        }
    }
}
