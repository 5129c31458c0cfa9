import Foundation
import Testing
import TidingsApp
import TidingsStorage

/// `TIDINGS_DATABASE_URL`'s TLS parameters, read as libpq reads them, and what Tidings says
/// about the result.
@Suite("Database URL")
struct DatabaseURLTests {
    static func settings(_ url: String) throws -> DatabaseURL.PostgresSettings {
        guard case .postgres(let settings) = try DatabaseURL(parsing: url) else { throw TestBackend.Unavailable(description: "not postgres") }
        return settings
    }

    static func refusal(_ url: String, variable: String = "TIDINGS_DATABASE_URL") -> String {
        do {
            _ = try DatabaseURL(parsing: url, variable: variable)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("sslmode takes libpq's disable, prefer (the default), require, verify-ca and verify-full")
    func modes() throws {
        #expect(try Self.settings("postgres://app@db.internal/tidings").sslMode == .prefer)
        for mode in PostgresSSLMode.allCases {
            #expect(try Self.settings("postgres://app@db.internal/tidings?sslmode=\(mode.rawValue)").sslMode == mode)
        }
        #expect(PostgresSSLMode.disable < .require && PostgresSSLMode.verifyCA < .verifyFull)
        let ca = SMTPPeer.caFile
        let full = try Self.settings("postgres://app@db.internal/tidings?sslmode=verify-full&sslrootcert=\(ca)")
        #expect(full.sslRootCert == ca && full.effectiveSSLMode == .verifyFull)
        #expect(try Self.settings("postgres://app@db.internal/tidings?sslmode=verify-full&sslrootcert=system").sslRootCert == nil)
        // libpq: `require` with a root certificate verifies the chain.
        #expect(try Self.settings("postgres://app@db.internal/tidings?sslmode=require&sslrootcert=\(ca)").effectiveSSLMode == .verifyCA)
    }

    @Test("Unknown modes and parameters, unreadable or non-PEM files and a lone sslcert are refused, naming the setting")
    func refusals() throws {
        let notPEM = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-not-pem-\(UUID().uuidString).pem")
        try Data("hello".utf8).write(to: notPEM)
        defer { try? FileManager.default.removeItem(at: notPEM) }
        let base = "postgres://app@db.internal/tidings?"
        let cases: [(String, String)] = [
            ("sslmode=verify_full", "sslmode must be disable, prefer, require, verify-ca, verify-full; got 'verify_full'"),
            ("sslmode=allow", "allow, which tries plaintext first, is not supported"),
            ("sslmode=", "sslmode needs a value"),
            ("sslrootcerts=/etc/ca.pem", "unknown parameter 'sslrootcerts'"),
            ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "sslrootcert=/nonexistent/ca.pem is not a readable file"),
            ("sslmode=verify-full&sslrootcert=/tmp", "sslrootcert=/tmp is not a readable file"),
            ("sslmode=verify-full&sslrootcert=\(notPEM.path)", "sslrootcert=\(notPEM.path) holds no PEM certificate"),
            ("sslmode=verify-full&sslcert=\(SMTPPeer.caFile)", "sslcert and sslkey go together"),
            ("sslmode=disable&sslrootcert=\(SMTPPeer.caFile)", "sslmode=disable uses no TLS"),
        ]
        for (query, message) in cases {
            let text = Self.refusal(base + query)
            #expect(text.hasPrefix("TIDINGS_DATABASE_URL"), "\(query): \(text)")
            #expect(text.contains(message), "\(query): \(text)")
        }
        let keyAsCertificate = SMTPPeer.certificates.appendingPathComponent("client.pem").path
        #expect(Self.refusal(base + "sslmode=verify-full&sslcert=\(keyAsCertificate)&sslkey=\(keyAsCertificate)").contains("is not a PEM private key"))
        #expect(Self.refusal(base + "sslmode=bogus", variable: "TIDINGS_DATABASE_OWNER_URL").hasPrefix("TIDINGS_DATABASE_OWNER_URL"))
    }

    @Test("The owner URL's mistakes name TIDINGS_DATABASE_OWNER_URL")
    func ownerURLNamesItsVariable() async throws {
        do {
            _ = try await TidingsConfiguration.load(flags: [:], environment: [
                "TIDINGS_DATABASE_URL": "postgres://app@db.internal/tidings?sslmode=verify-full",
                "TIDINGS_DATABASE_OWNER_URL": "postgres://owner@db.internal/tidings?sslmode=strict",
            ])
            Issue.record("sslmode=strict was accepted")
        } catch let error as TidingsConfiguration.Invalid {
            #expect(error.description.hasPrefix("TIDINGS_DATABASE_OWNER_URL: sslmode must be"), "\(error)")
        }
    }

    @Test("The effective transport security is described, and production warns about anything short of verify-full off this machine")
    func productionWarnings() async throws {
        func configuration(_ url: String, environment: String = "production") async throws -> TidingsConfiguration {
            try await TidingsConfiguration.load(flags: [:], environment: ["TIDINGS_DATABASE_URL": url, "TIDINGS_ENVIRONMENT": environment])
        }
        let ca = SMTPPeer.caFile
        let cases: [(String, String)] = [
            ("disable", "in the clear"),
            ("prefer", "an active attacker on the network can pose as the database"),
            ("require", "an active attacker on the network can pose as the database"),
            ("verify-ca&sslrootcert=\(ca)", "any server with a certificate from the same certificate authority"),
        ]
        for (mode, risk) in cases {
            let warnings = try await configuration("postgres://app@db.internal:5432/tidings?sslmode=\(mode)").databaseTransportWarnings
            #expect(warnings.count == 1, "\(mode)")
            let warning = warnings.first ?? ""
            #expect(warning.hasPrefix("TIDINGS_DATABASE_URL reaches PostgreSQL at db.internal with sslmode="), "\(warning)")
            #expect(warning.contains(risk) && warning.contains("Use sslmode=verify-full"), "\(warning)")
        }
        #expect(try await configuration("postgres://app@db.internal/tidings?sslmode=verify-full").databaseTransportWarnings.isEmpty)
        #expect(try await configuration("postgres://app@db.internal/tidings?sslmode=require", environment: "staging").databaseTransportWarnings.isEmpty)
        #expect(try await configuration("postgres://app@127.0.0.1/tidings?sslmode=disable").databaseTransportWarnings.isEmpty)
        #expect(try await configuration("postgres://app@localhost/tidings").databaseTransportWarnings.isEmpty)
        #expect(try await configuration("sqlite:///tmp/x.sqlite").databaseTransportWarnings.isEmpty)
        // The owner's connection is held to the same rule.
        let owner = try await TidingsConfiguration.load(flags: [:], environment: [
            "TIDINGS_DATABASE_URL": "postgres://app@db.internal/tidings?sslmode=verify-full",
            "TIDINGS_DATABASE_OWNER_URL": "postgres://owner@db.internal/tidings?sslmode=require",
        ])
        #expect(owner.databaseTransportWarnings.map { $0.hasPrefix("TIDINGS_DATABASE_OWNER_URL") } == [true])

        let required = try await configuration("postgres://app@db.internal/tidings?sslmode=require")
        #expect("\(required.database.transportSecurity)" == "sslmode=require: encrypted, certificate not verified (not safe against an active attacker)")
        let full = try await configuration("postgres://app@db.internal/tidings?sslmode=verify-full")
        #expect("\(full.database.transportSecurity)" == "sslmode=verify-full: encrypted, certificate chain verified against the system's trust store and host name checked")
        #expect(try await configuration("sqlite:///tmp/x.sqlite").database.transportSecurity.meetsProductionRequirement)
    }

    @Test("A server that cannot be reached fails the start at once, saying so")
    func unreachable() async throws {
        let port = try MotoServer.freePort()
        let settings = try Self.settings("postgres://app:pw@127.0.0.1:\(port)/tidings?sslmode=verify-full")
        let client = try PostgresDatabaseClient(settings: settings, maxConnections: 1, logger: TestLog.logger("database-url"))
        do {
            try await client.checkConnection()
            Issue.record("connected to a port nothing listens on")
        } catch let error as PostgresConnectionFailure {
            #expect(error.description == "Could not connect to PostgreSQL at 127.0.0.1:\(port) (sslmode=verify-full): nothing accepts connections there (connection refused)")
            #expect(!error.description.contains("pw"))
        }
    }
}
