import Foundation

/// Where the data lives: `sqlite:///absolute/path.sqlite`, `sqlite://relative/path.sqlite`
/// or `postgres://user:password@host:port/database?sslmode=...`.
public enum DatabaseURL: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresSettings)

    public struct PostgresSettings: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// `disable`, `prefer` or `require`.
        public var sslMode: String

        public init(host: String, port: Int, username: String, password: String?, database: String, sslMode: String) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.sslMode = sslMode
        }
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(parsing text: String) throws(ParseError) {
        if text.hasPrefix("sqlite://") {
            let path = String(text.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw ParseError(description: "TIDINGS_DATABASE_URL: an sqlite URL needs a path, e.g. sqlite:///var/lib/tidings/tidings.sqlite") }
            self = .sqlite(path: path)
            return
        }
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ParseError(description: "TIDINGS_DATABASE_URL must start with sqlite:// or postgres://")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ParseError(description: "TIDINGS_DATABASE_URL: a postgres URL needs a host")
        }
        guard let username = components.user, !username.isEmpty else {
            throw ParseError(description: "TIDINGS_DATABASE_URL: a postgres URL needs a user name")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        let sslMode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        guard ["disable", "prefer", "require"].contains(sslMode) else {
            throw ParseError(description: "TIDINGS_DATABASE_URL: sslmode must be disable, prefer or require")
        }
        self = .postgres(PostgresSettings(
            host: host,
            port: components.port ?? 5432,
            username: username.removingPercentEncoding ?? username,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.isEmpty ? username : database,
            sslMode: sslMode
        ))
    }

    /// A description safe for logs: never the password.
    public var redacted: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        case .postgres(let settings): "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)"
        }
    }
}
