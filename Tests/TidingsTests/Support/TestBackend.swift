import Foundation
import Logging
import Testing
import TidingsApp
import TidingsStorage

/// The database backends a suite runs on. `scripts/test` runs both; a backend that
/// is asked for but cannot be reached fails the test loudly rather than skipping.
enum TestBackend: String, CustomStringConvertible, Sendable {
    case sqlite, postgres

    var description: String { rawValue }

    /// From `TIDINGS_TEST_BACKENDS` (default: both).
    static let all: [TestBackend] = {
        let names = ProcessInfo.processInfo.environment["TIDINGS_TEST_BACKENDS"] ?? "sqlite,postgres"
        return names.split(separator: ",").compactMap { TestBackend(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
    }()

    struct Unavailable: Error, CustomStringConvertible {
        var description: String
    }

    /// The role Tidings connects as on PostgreSQL: not a superuser, not the tables' owner,
    /// so row-level security and the audit grants bind it as they would in production.
    static let applicationRole = "tidings_app"

    /// A fresh, empty database for one test, and how to remove it afterwards. On PostgreSQL
    /// the database URL uses the application role and the owner URL the administrative one.
    func makeDatabase(in directory: URL) async throws -> (url: String, ownerURL: String?, drop: @Sendable () async -> Void) {
        switch self {
        case .sqlite:
            return ("sqlite://\(directory.path)/test.sqlite", nil, {})
        case .postgres:
            guard let serverURL = ProcessInfo.processInfo.environment["TIDINGS_TEST_POSTGRES_URL"] else {
                throw Unavailable(description: """
                    PostgreSQL suites need TIDINGS_TEST_POSTGRES_URL; run scripts/test (it starts a cluster), \
                    or set TIDINGS_TEST_BACKENDS=sqlite to leave PostgreSQL out on purpose.
                    """)
            }
            let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try await Self.ensureApplicationRole(serverURL: serverURL)
            try await Self.administer(serverURL: serverURL, "CREATE DATABASE \(name)")
            guard var components = URLComponents(string: serverURL) else { throw Unavailable(description: "Bad TIDINGS_TEST_POSTGRES_URL") }
            components.path = "/" + name
            let owner = components.string!
            components.user = Self.applicationRole
            components.password = Self.applicationRole
            return (components.string!, owner, {
                try? await Self.administer(serverURL: serverURL, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            })
        }
    }

    private static func ensureApplicationRole(serverURL: String) async throws {
        // Tests run in parallel: a concurrent creation of the same role is fine.
        try? await administer(serverURL: serverURL, """
            DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '\(applicationRole)') THEN
                    CREATE ROLE \(applicationRole) LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '\(applicationRole)';
                END IF;
            END $$
            """)
    }

    /// Runs one statement outside a transaction on the maintenance database.
    private static func administer(serverURL: String, _ sql: String) async throws {
        guard case .postgres(let settings) = try DatabaseURL(parsing: serverURL) else { return }
        let client = try PostgresDatabaseClient(settings: settings, maxConnections: 1, logger: Logger(label: "test-admin"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { group.cancelAll() }
            try await client.read { db in try await db.raw("\(unsafeRaw: sql)").run() }
        }
    }
}

/// A temporary directory and a fresh, empty database of one backend, for one test.
struct Scratch: Sendable {
    let backend: TestBackend
    let directory: URL
    let databaseURL: String
    /// PostgreSQL: the role that owns the tables and migrates (`TIDINGS_DATABASE_OWNER_URL`).
    let ownerURL: String?
    private let dropDatabase: @Sendable () async -> Void

    static func make(_ backend: TestBackend) async throws -> Scratch {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let database = try await backend.makeDatabase(in: directory)
        return Scratch(backend: backend, directory: directory, databaseURL: database.url, ownerURL: database.ownerURL, dropDatabase: database.drop)
    }

    /// The configuration flags that point Tidings at this scratch.
    var flags: [String: String] {
        var flags = [
            TidingsConfiguration.Key.dataDir: directory.path,
            TidingsConfiguration.Key.databaseURL: databaseURL,
        ]
        flags[TidingsConfiguration.Key.databaseOwnerURL] = ownerURL
        // Dozens of tests run at once against one PostgreSQL server: a small pool each keeps them
        // all well under its max_connections.
        if backend == .postgres { flags[TidingsConfiguration.Key.databasePoolSize] = "6" }
        return flags
    }

    /// Backs up this scratch's database as an operator would and restores the backup into a
    /// new scratch: SQLite with `VACUUM INTO` (a consistent copy of a live database),
    /// PostgreSQL with `pg_dump` and `psql`. Only the database is copied — never the data
    /// directory's secrets, which a backup of the database does not hold.
    func restoredBackup(of tidings: Tidings) async throws -> Scratch {
        let restored = try await Scratch.make(backend)
        switch backend {
        case .sqlite:
            let target = restored.directory.appendingPathComponent("test.sqlite").path
            try await tidings.adminDatabase.read { db in try await db.raw("VACUUM INTO \(bind: target)").run() }
        case .postgres:
            let tools = URL(fileURLWithPath: StorageScan.pgDump).deletingLastPathComponent()
            let dump = restored.directory.appendingPathComponent("backup.sql").path
            let dumped = try await run(StorageScan.pgDump, ["--no-owner", "--no-privileges", "--file", dump, "--dbname", ownerURL!])
            guard dumped.status == 0 else { throw TestBackend.Unavailable(description: "pg_dump failed: \(dumped.stderr.prefix(500))") }
            let loaded = try await run(tools.appendingPathComponent("psql").path, [
                "--quiet", "--set", "ON_ERROR_STOP=1", "--file", dump, "--dbname", restored.ownerURL!,
            ])
            try? FileManager.default.removeItem(atPath: dump)
            guard loaded.status == 0 else { throw TestBackend.Unavailable(description: "psql failed: \(loaded.stderr.prefix(500))") }
        }
        return restored
    }

    /// Scans raw storage for anything that should only be stored sealed (see `StorageScan`),
    /// then drops the database and deletes the directory.
    func remove(scan: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) async {
        let logger = TestLog.logger("scratch")
        logger.debug("Scratch removal", metadata: ["directory": "\(directory.lastPathComponent)", "database": "\(databaseURL.split(separator: "/").last ?? "")"])
        if scan { await StorageScan.check(self, sourceLocation: sourceLocation) }
        logger.debug("Scratch scanned", metadata: ["directory": "\(directory.lastPathComponent)"])
        await dropDatabase()
        try? FileManager.default.removeItem(at: directory)
        logger.debug("Scratch removed", metadata: ["directory": "\(directory.lastPathComponent)"])
    }
}
