import Foundation
import Logging
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit

/// PostgreSQL through PostgresNIO's connection pool; several Tidings processes may share one database.
public final class PostgresDatabaseClient: DatabaseClient {
    public var kind: DatabaseKind { .postgres }

    private let client: PostgresClient
    private let logger: Logger

    public init(settings: DatabaseURL.PostgresSettings, maxConnections: Int = 20, logger: Logger) throws {
        let tls: PostgresClient.Configuration.TLS
        switch settings.sslMode {
        case "disable": tls = .disable
        case "require": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: tls
        )
        configuration.options.maximumConnections = maxConnections
        configuration.options.minimumConnections = 0
        var backgroundLogger = logger
        backgroundLogger[metadataKey: "db"] = "postgres"
        self.client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        self.logger = backgroundLogger
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            try await body(connection.sql())
        }
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        try await client.withTransaction(logger: logger) { connection in
            try await body(connection.sql())
        }
    }

    public func run() async throws {
        await client.run()
    }

    public func close() async throws {}
}
