import Foundation
import Logging
import Testing
import TidingsApp
import TidingsStorage

/// Tidings' connections to PostgreSQL over TLS, against real servers that take TCP
/// connections over TLS only, with certificates from the test CA (libpq's `sslmode` semantics).
@Suite("PostgreSQL over TLS", .enabled(if: TestBackend.all.contains(.postgres), "PostgreSQL is left out by TIDINGS_TEST_BACKENDS"))
struct PostgresTLSTests {
    /// What the server says about the connection a pool of `url` hands out.
    struct Seen: Sendable {
        var ssl: Bool
        var version: String?
        var clientDN: String?
    }

    static func connect(_ url: String) async throws -> Seen {
        guard case .postgres(let settings) = try DatabaseURL(parsing: url) else { throw TestBackend.Unavailable(description: "not postgres") }
        let client = try PostgresDatabaseClient(settings: settings, maxConnections: 1, logger: TestLog.logger("postgres-tls"))
        try await client.checkConnection()
        return try await withThrowingTaskGroup(of: Seen?.self) { group in
            group.addTask {
                try await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await client.read { db in
                let row = try await db.raw("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first()
                return Seen(
                    ssl: try row?.decode(column: "ssl", as: Bool.self) ?? false,
                    version: try row?.decode(column: "version", as: String?.self),
                    clientDN: try row?.decode(column: "client_dn", as: String?.self)
                )
            }
        }
    }

    /// Why connecting to `url` failed (empty if it did not fail).
    static func failure(_ url: String) async -> String {
        do {
            _ = try await connect(url)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("verify-full with the test CA: all of Tidings migrates and works over TLS 1.3, and pg_stat_ssl shows it")
    func verifyFullConnects() async throws {
        try await PostgresTLSServer.with { server in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-pgtls-app-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let url = server.url(["sslmode": "verify-full", "sslrootcert": "ca.pem"])
            let configuration = try await TidingsConfiguration.load(flags: [
                TidingsConfiguration.Key.dataDir: directory.path, TidingsConfiguration.Key.databaseURL: url,
            ], environment: [:])
            #expect(configuration.database.transportSecurity.sslMode == .verifyFull)
            #expect(configuration.database.transportSecurity.isVerified)
            #expect("\(configuration.database.transportSecurity)".contains("certificate chain verified against the CA in"))
            #expect(configuration.databaseTransportWarnings.isEmpty)
            let tidings = try await Tidings.open(configuration, logger: TestLog.logger("postgres-tls"))
            let seen = try await TenantScope.with(.instance) {
                try await tidings.withDatabase { tidings in
                    try await tidings.migrate()
                    let workspace = try await tidings.workspaces.create(name: "TLS", ownerEmail: "owner@tls.test", environment: .production, by: .tester)
                    #expect(try await tidings.workspaces.list().map(\.id).contains(workspace.workspace.id))
                    return try await tidings.database.read { db in
                        let row = try await db.raw("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first()
                        return (try row?.decode(column: "ssl", as: Bool.self), try row?.decode(column: "version", as: String?.self))
                    }
                }
            }
            #expect(seen.0 == true)
            #expect(seen.1 == "TLSv1.3")

            // By name as well as by address: the certificate names both.
            let byName = try await Self.connect(server.url(host: "localhost", ["sslmode": "verify-full", "sslrootcert": "ca.pem"]))
            #expect(byName.ssl)
        }
    }

    @Test("The TLS-only server refuses sslmode=disable; another CA, or the system's trust store, fails verification clearly")
    func refusals() async throws {
        try await PostgresTLSServer.with { server in
            let plain = await Self.failure(server.url(["sslmode": "disable"]))
            #expect(plain.contains("the server refused the connection") && plain.contains("no encryption"), "\(plain)")
            #expect(plain.contains("sslmode=disable"), "\(plain)")

            let otherCA = await Self.failure(server.url(["sslmode": "verify-full", "sslrootcert": "untrusted-ca.pem"]))
            #expect(otherCA.contains("certificate is not signed by a certificate authority in sslrootcert="), "\(otherCA)")
            #expect(otherCA.contains("untrusted-ca.pem"), "\(otherCA)")

            let systemStore = await Self.failure(server.url(["sslmode": "verify-full"]))
            #expect(systemStore.contains("the system's trust store"), "\(systemStore)")

            // libpq's `prefer` and `require` encrypt but check nothing: they connect to any server.
            let required = try await Self.connect(server.url(["sslmode": "require"]))
            let preferred = try await Self.connect(server.url(["sslmode": "prefer"]))
            let byDefault = try await Self.connect(server.url([:]))
            #expect(required.ssl && preferred.ssl)
            #expect(byDefault.ssl, "prefer is the default")
        }
    }

    @Test("A certificate for another host fails verify-full and passes verify-ca (the chain alone)")
    func wrongHost() async throws {
        try await PostgresTLSServer.with(certificate: "other") { server in
            let failure = await Self.failure(server.url(["sslmode": "verify-full", "sslrootcert": "ca.pem"]))
            #expect(failure.contains("the server's certificate does not name 127.0.0.1"), "\(failure)")

            let chainOnly = try await Self.connect(server.url(["sslmode": "verify-ca", "sslrootcert": "ca.pem"]))
            #expect(chainOnly.ssl)
            // As in libpq, `require` with a root certificate checks the chain like verify-ca.
            let url = server.url(["sslmode": "require", "sslrootcert": "ca.pem"])
            #expect(try DatabaseURL(parsing: url).transportSecurity.sslMode == .verifyCA)
            let required = try await Self.connect(url)
            #expect(required.ssl)
            let wrongCA = await Self.failure(server.url(["sslmode": "require", "sslrootcert": "untrusted-ca.pem"]))
            #expect(wrongCA.contains("not signed by a certificate authority"), "\(wrongCA)")
        }
    }

    @Test("A server that asks for a client certificate accepts sslcert/sslkey from its CA and refuses a client without one")
    func clientCertificate() async throws {
        try await PostgresTLSServer.with(clientCertificates: true) { server in
            let seen = try await Self.connect(server.url([
                "sslmode": "verify-full", "sslrootcert": "ca.pem", "sslcert": "client.pem", "sslkey": "client.key",
            ]))
            #expect(seen.ssl)
            #expect(seen.clientDN == "/CN=tidings")
            #expect(try DatabaseURL(parsing: server.url(["sslmode": "verify-full", "sslrootcert": "ca.pem", "sslcert": "client.pem", "sslkey": "client.key"]))
                .transportSecurity.clientCertificate)

            let without = await Self.failure(server.url(["sslmode": "verify-full", "sslrootcert": "ca.pem"]))
            #expect(without.contains("the server refused the connection") && without.contains("certificate"), "\(without)")
        }
    }
}
