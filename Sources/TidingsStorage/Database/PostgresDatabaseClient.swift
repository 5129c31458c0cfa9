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
    private let settings: DatabaseURL.PostgresSettings
    private let logger: Logger
    /// Callers that arrive before `run()` wait here instead of racing the pool's start.
    private let started = Gate()

    /// A pool for `settings`; TLS as its `sslmode` says (see `PostgresTLS.swift`).
    public init(settings: DatabaseURL.PostgresSettings, maxConnections: Int = 20, logger: Logger) throws {
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: try settings.clientTLS()
        )
        configuration.options.maximumConnections = maxConnections
        configuration.options.minimumConnections = 0
        // No keep-alive queries: idle connections simply close after the idle timeout. A pool
        // told to stop while a keep-alive query was running could fail to stop at all.
        configuration.options.keepAliveBehavior = nil
        var ownLogger = logger
        ownLogger[metadataKey: "db"] = "postgres"
        ownLogger[metadataKey: "database"] = "\(settings.database)"
        ownLogger[metadataKey: "role"] = "\(settings.username)"
        var backgroundLogger = ownLogger
        // Below info, PostgresNIO logs bound values and result rows: personal data.
        backgroundLogger.logLevel = max(backgroundLogger.logLevel, .info)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: backgroundLogger)
        self.settings = settings
        self.logger = ownLogger
    }

    /// Opens one connection, outside the pool, and closes it again: a server that cannot be
    /// reached, refuses TLS or shows a certificate that does not verify fails here at once, with
    /// the reason (`PostgresConnectionFailure`). The pool would only keep retrying in the
    /// background and, a minute later, fail its callers without saying why.
    public func checkConnection() async throws {
        let configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database, tls: try settings.connectionTLS()
        )
        var quiet = logger
        quiet.logLevel = max(quiet.logLevel, .info)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: quiet)
        } catch {
            throw PostgresConnectionFailure(error, settings: settings)
        }
        try? await connection.close()
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        await started.wait()
        let scope = TenantScope.current
        return try await client.withConnection { connection in
            let db = connection.sql(queryLogLevel: nil)
            // Every connection handed out carries the task's tenant scope, overwriting any earlier one.
            try await db.enter(scope)
            return try await body(db)
        }
    }

    /// VACUUM frees the dead row versions an UPDATE leaves behind (it cannot run in a transaction).
    public func discardReplacedContent(of tables: [String]) async throws {
        try await read { db in
            for table in tables { try await db.raw("VACUUM \(ident: table)").run() }
        }
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        await started.wait()
        // BEGIN/COMMIT by hand rather than `withTransaction`, which wraps the body's errors:
        // a domain error thrown inside must reach the caller as itself (a 4xx, not a 500).
        let scope = TenantScope.current
        return try await client.withConnection { connection in
            let db = connection.sql(queryLogLevel: nil)
            try await db.raw("BEGIN").run()
            try await db.enter(scope)
            let result: T
            do {
                result = try await body(db)
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
            try await db.raw("COMMIT").run()
            return result
        }
    }

    public func run() async throws {
        await started.open()
        logger.debug("Connection pool running")
        await client.run()
        logger.debug("Connection pool stopped")
    }

    public func close() async throws {}
}

/// Opens once; everything waiting is released then, everything later passes straight through.
actor Gate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}
