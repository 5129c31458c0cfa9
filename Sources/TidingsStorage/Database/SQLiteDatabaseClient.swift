import Foundation
import ServiceLifecycle
import Logging
import NIOPosix
import SQLKit
import SQLiteKit
import Synchronization

/// SQLite in WAL mode: one serialised writer connection and a few reader connections.
///
/// WAL lets readers run while the writer commits; the writer mutex keeps our
/// own transactions from contending for SQLite's single write lock.
public final class SQLiteDatabaseClient: DatabaseClient {
    public var kind: DatabaseKind { .sqlite }
    public let path: String

    private let writer: SQLiteConnection
    private let readers: [SQLiteConnection]
    private let writeLock = AsyncMutex()
    private let nextReader = Atomic<Int>(0)
    private let logger: Logger

    private init(path: String, writer: SQLiteConnection, readers: [SQLiteConnection], logger: Logger) {
        self.path = path
        self.writer = writer
        self.readers = readers
        self.logger = logger
    }

    /// Opens (creating if needed) the database file at `path`.
    /// How hard a commit waits for the disk (SQLite's `synchronous` in WAL mode).
    public enum Durability: String, Sendable, CaseIterable {
        /// A commit survives a crash of the process; the last commits before a power loss
        /// or an operating-system crash may roll back. SQLite's recommended setting for WAL.
        case normal
        /// Every commit is synced to disk before it is acknowledged: survives power loss, slower.
        case full
    }

    public static func open(
        path: String, durability: Durability = .normal, readerCount: Int = 2, logger: Logger
    ) async throws -> SQLiteDatabaseClient {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var connectionLogger = logger
        connectionLogger[metadataKey: "db"] = "sqlite"
        let writer = try await SQLiteConnection.open(storage: .file(path: path), logger: connectionLogger)
        do {
            // WAL and its synchronous level are per database; foreign keys and the busy timeout per connection.
            try await execute(writer, "PRAGMA journal_mode = WAL")
            try await execute(writer, durability == .full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
            try await configure(writer)
            var readers: [SQLiteConnection] = []
            for _ in 0..<max(1, readerCount) {
                let reader = try await SQLiteConnection.open(storage: .file(path: path), logger: connectionLogger)
                try await configure(reader)
                readers.append(reader)
            }
            return SQLiteDatabaseClient(path: path, writer: writer, readers: readers, logger: logger)
        } catch {
            try? await writer.close()
            throw error
        }
    }

    private static func configure(_ connection: SQLiteConnection) async throws {
        try await execute(connection, "PRAGMA foreign_keys = ON")
        try await execute(connection, "PRAGMA busy_timeout = 5000")
        // Deleted and overwritten content is zeroed rather than left in free pages of the file.
        try await execute(connection, "PRAGMA secure_delete = ON")
    }

    private static func execute(_ connection: SQLiteConnection, _ sql: String) async throws {
        try await connection.query(sql, []) { _ in }
    }

    public func read<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        let index = nextReader.wrappingAdd(1, ordering: .relaxed).oldValue
        return try await body(readers[index % readers.count].sql(queryLogLevel: nil))
    }

    public func transaction<T: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> T) async throws -> T {
        await writeLock.lock()
        do {
            try await Self.execute(writer, "BEGIN IMMEDIATE")
            let result: T
            do {
                result = try await body(writer.sql(queryLogLevel: nil))
            } catch {
                try? await Self.execute(writer, "ROLLBACK")
                throw error
            }
            do {
                try await Self.execute(writer, "COMMIT")
            } catch {
                // A failed COMMIT leaves the transaction open; the next writer needs it closed.
                try? await Self.execute(writer, "ROLLBACK")
                throw error
            }
            await writeLock.unlock()
            return result
        } catch {
            await writeLock.unlock()
            throw error
        }
    }

    /// Rows are overwritten in place with `secure_delete`; the WAL still holds the earlier
    /// page images until a checkpoint that truncates it.
    public func discardReplacedContent(of tables: [String]) async throws {
        await writeLock.lock()
        do {
            try await Self.execute(writer, "PRAGMA wal_checkpoint(TRUNCATE)")
            await writeLock.unlock()
        } catch {
            await writeLock.unlock()
            throw error
        }
    }

    /// Nothing to drive; waits for the service group to shut down, then closes the connections.
    /// (When the group is cancelled instead, whoever ran the group closes them.)
    public func run() async throws {
        try? await gracefulShutdown()
        if !Task.isCancelled {
            try await close()
        }
    }

    /// Closes every connection; closing twice is harmless.
    public func close() async throws {
        for reader in readers { try? await reader.close() }
        try await writer.close()
    }
}

