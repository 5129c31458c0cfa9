import ArgumentParser
import Foundation
import Logging
import TidingsApp
import TidingsStorage

@main
struct TidingsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tidings",
        abstract: "A self-hostable email platform that proves its data-protection measures.",
        discussion: """
            Settings come from flags, then TIDINGS_* environment variables, then an optional JSON \
            config file (--config or TIDINGS_CONFIG_FILE), then defaults. With nothing set, \
            `tidings serve` keeps its data in ./tidings-data and listens on 127.0.0.1:8080.
            """,
        subcommands: [Serve.self, Migrate.self, WorkspaceCommand.self, APIKeyCommand.self, UserCommand.self, OperatorCommand.self, AccessCommand.self, AuditCommand.self, KeysCommand.self]
    )
}

/// Settings shared by every command that touches data, so CLI commands and a running server agree.
struct SettingsOptions: ParsableArguments {
    @Option(help: "JSON config file (TIDINGS_CONFIG_FILE).")
    var config: String?
    @Option(help: "Data directory for SQLite, secrets and TLS material (TIDINGS_DATA_DIR, default ./tidings-data).")
    var dataDir: String?
    @Option(help: "sqlite:///path/file.sqlite or postgres://user:pass@host:port/db (TIDINGS_DATABASE_URL).")
    var databaseUrl: String?
    @Option(help: "production, staging or development (TIDINGS_ENVIRONMENT, default production).")
    var environment: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (TIDINGS_LOG_LEVEL, default info).")
    var logLevel: String?
    @Option(help: "text or json (TIDINGS_LOG_FORMAT, default text).")
    var logFormat: String?

    var flags: [String: String] {
        var flags: [String: String] = [:]
        flags[TidingsConfiguration.Key.configFile] = config
        flags[TidingsConfiguration.Key.dataDir] = dataDir
        flags[TidingsConfiguration.Key.databaseURL] = databaseUrl
        flags[TidingsConfiguration.Key.environment] = environment
        flags[TidingsConfiguration.Key.logLevel] = logLevel
        flags[TidingsConfiguration.Key.logFormat] = logFormat
        return flags
    }

    /// Loads the configuration (these flags plus `extraFlags`), installs logging and opens Tidings.
    func open(extraFlags: [String: String] = [:]) async throws -> Tidings {
        let configuration: TidingsConfiguration
        do {
            configuration = try await TidingsConfiguration.load(
                flags: flags.merging(extraFlags) { $1 }, environment: ProcessInfo.processInfo.environment
            )
        } catch let error as TidingsConfiguration.Invalid {
            throw ValidationError(error.description)
        }
        LogSetup.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        return try await Tidings.open(configuration, logger: Logger(label: "tidings"))
    }

    /// Opens Tidings, applies pending migrations (unless `migrate` is false) and runs `body` with it.
    func withTidings<T: Sendable>(
        migrate: Bool = true, extraFlags: [String: String] = [:], _ body: @Sendable (Tidings) async throws -> T
    ) async throws -> T {
        // Operator commands work across workspaces.
        try await TenantScope.with(.instance) {
            try await open(extraFlags: extraFlags).withDatabase { tidings in
                if migrate { try await tidings.migrate() }
                return try await body(tidings)
            }
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the API server (applies pending migrations first).")

    @OptionGroup var settings: SettingsOptions
    @Option(help: "Address to listen on (TIDINGS_HTTP_HOST, default 127.0.0.1).")
    var host: String?
    @Option(help: "Plain-HTTP port: redirects to HTTPS, ACME challenges (TIDINGS_HTTP_PORT, default 8080).")
    var port: String?
    @Option(help: "HTTPS port for the API and pages (TIDINGS_HTTPS_PORT, default 8443).")
    var httpsPort: String?
    @Option(help: "Base URL used in links Tidings sends out (TIDINGS_PUBLIC_URL).")
    var publicUrl: String?

    func run() async throws {
        var flags: [String: String] = [:]
        flags[TidingsConfiguration.Key.httpHost] = host
        flags[TidingsConfiguration.Key.httpPort] = port
        flags[TidingsConfiguration.Key.httpsPort] = httpsPort
        flags[TidingsConfiguration.Key.publicURL] = publicUrl
        try await settings.open(extraFlags: flags).serve()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations, or list them with --status.")

    @OptionGroup var settings: SettingsOptions
    @Flag(help: "List every migration and whether it has been applied; change nothing.")
    var status = false

    func run() async throws {
        let status = self.status
        try await settings.withTidings(migrate: false) { tidings in
            if status {
                for migration in try await tidings.migrator.status() {
                    let state = migration.appliedAt.map { "applied \(ISO8601DateFormatter().string(from: $0))" } ?? "pending"
                    print(String(format: "%04d  %-24@  %@", migration.number, migration.name as NSString, state as NSString))
                }
            } else {
                let applied = try await tidings.migrate()
                print(applied.isEmpty ? "The database is up to date." : "Applied: \(applied.joined(separator: ", "))")
            }
        }
    }
}

/// Prints one JSON object on stdout (scripts depend on exactly that).
func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}
