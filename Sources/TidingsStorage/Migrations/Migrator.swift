import Foundation
import Logging
import SQLKit
import TidingsDomain

/// Applies pending migrations and reports their state.
public struct Migrator: Sendable {
    public struct Status: Sendable, Equatable {
        public var number: Int
        public var name: String
        /// `nil` while the migration is pending.
        public var appliedAt: Date?
    }

    public struct SchemaTooNewError: Error, CustomStringConvertible {
        public var appliedNumber: Int
        public var description: String {
            "The database has migration \(appliedNumber) applied, which this version of Tidings does not know. Run a newer version."
        }
    }

    private let database: any DatabaseClient
    private let migrations: [any Migration]
    private let logger: Logger

    public init(database: any DatabaseClient, migrations: [any Migration] = Migrations.all, logger: Logger) {
        self.database = database
        self.migrations = migrations
        self.logger = logger
    }

    /// Applies every pending migration in one transaction; concurrent instances wait for each other.
    /// Returns the migrations that were applied.
    @discardableResult
    public func migrate(now: Date = Date()) async throws -> [String] {
        let migrations = self.migrations
        let kind = database.kind
        let applied = try await database.transaction { db in
            if kind == .postgres {
                // Serialises `tidings serve` processes that start at the same moment, from the very first statement.
                try await db.raw("SELECT pg_advisory_xact_lock(\(literal: Self.lockKey))").run()
            }
            try await Self.createLedger(on: db)
            let done = try await Self.appliedNumbers(on: db)
            if let newest = done.max(), newest > (migrations.map(\.number).max() ?? 0) {
                throw SchemaTooNewError(appliedNumber: newest)
            }
            var names: [String] = []
            for migration in migrations where !done.contains(migration.number) {
                try await migration.apply(on: db, kind: kind)
                try await db.raw("""
                    INSERT INTO tidings_migrations (number, name, applied_at)
                    VALUES (\(bind: migration.number), \(bind: migration.name), \(bind: Timestamp.format(now)))
                    """).run()
                names.append("\(migration.number) \(migration.name)")
            }
            return names
        }
        for name in applied {
            logger.info("Applied migration", metadata: ["migration": "\(name)"])
        }
        return applied
    }

    public func status() async throws -> [Status] {
        let migrations = self.migrations
        return try await database.read { db in
            // A database that was never migrated has no ledger yet: everything is pending.
            let rows = (try? await db.raw("SELECT number, applied_at FROM tidings_migrations").all()) ?? []
            var appliedAt: [Int: Date] = [:]
            for row in rows {
                appliedAt[try row.decode(column: "number", as: Int.self)] =
                    Timestamp.parse(try row.decode(column: "applied_at", as: String.self))
            }
            return migrations.map { Status(number: $0.number, name: $0.name, appliedAt: appliedAt[$0.number]) }
        }
    }

    /// Whether every known migration has been applied (used by `/readyz`).
    public func isCurrent() async throws -> Bool {
        let expected = Set(migrations.map(\.number))
        let applied = try await database.read { db in try await Self.appliedNumbers(on: db) }
        return expected.isSubset(of: applied)
    }

    private static let lockKey = 7_240_531_001

    /// What the application's role may do when another role owns the tables: read and write
    /// the data, but never rewrite or remove audit rows (retention may only clear payloads),
    /// and only read the migration ledger. Applied after every migration run.
    public static func grant(to role: String, on db: any SQLDatabase) async throws {
        let app = SQLIdentifier(role)
        for statement: SQLQueryString in [
            "GRANT USAGE ON SCHEMA public TO \(app)",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \(app)",
            "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM \(app)",
            "GRANT UPDATE (actor_network, actor_agent, summary) ON audit_events TO \(app)",
            "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON tidings_migrations FROM \(app)",
        ] {
            try await db.raw(statement).run()
        }
    }

    private static func createLedger(on db: any SQLDatabase) async throws {
        try await db.raw("""
            CREATE TABLE IF NOT EXISTS tidings_migrations (
                number BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL
            )
            """).run()
    }

    private static func appliedNumbers(on db: any SQLDatabase) async throws -> Set<Int> {
        let rows = try await db.raw("SELECT number FROM tidings_migrations").all()
        return Set(try rows.map { try $0.decode(column: "number", as: Int.self) })
    }
}
