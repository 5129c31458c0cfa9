import Foundation
import TidingsDomain

/// Where the data lives: `sqlite:///absolute/path.sqlite`, `sqlite://relative/path.sqlite`
/// or `postgres://user:password@host:port/database?sslmode=...`.
///
/// PostgreSQL URLs take libpq's TLS parameters: `sslmode` (`disable`, `prefer`, `require`,
/// `verify-ca`, `verify-full`), `sslrootcert` (a PEM file of the certificate authorities to
/// trust; default, or `system`: the system's trust store), and `sslcert` with `sslkey` (a
/// client certificate and its key, for servers that ask for one).
public enum DatabaseURL: Sendable, Equatable {
    case sqlite(path: String)
    case postgres(PostgresSettings)

    public struct PostgresSettings: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var username: String
        public var password: String?
        public var database: String
        /// As written in the URL; `effectiveSSLMode` is what the connection does.
        public var sslMode: PostgresSSLMode
        /// A PEM file of trusted certificate authorities; `nil` for the system's trust store.
        public var sslRootCert: String?
        /// A PEM client certificate (chain) and its PEM private key, given together.
        public var sslCert: String?
        public var sslKey: String?

        public init(
            host: String, port: Int, username: String, password: String?, database: String, sslMode: PostgresSSLMode = .prefer,
            sslRootCert: String? = nil, sslCert: String? = nil, sslKey: String? = nil
        ) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.sslMode = sslMode
            self.sslRootCert = sslRootCert
            self.sslCert = sslCert
            self.sslKey = sslKey
        }

        /// As libpq does: `require` with an `sslrootcert` verifies the chain, like `verify-ca`.
        public var effectiveSSLMode: PostgresSSLMode {
            sslMode == .require && sslRootCert != nil ? .verifyCA : sslMode
        }
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Parses `text`; errors name `variable`, the setting it came from.
    public init(parsing text: String, variable: String = "TIDINGS_DATABASE_URL") throws(ParseError) {
        if text.hasPrefix("sqlite://") {
            let path = String(text.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw ParseError(description: "\(variable): an sqlite URL needs a path, e.g. sqlite:///var/lib/tidings/tidings.sqlite") }
            self = .sqlite(path: path)
            return
        }
        guard let components = URLComponents(string: text),
              let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw ParseError(description: "\(variable) must start with sqlite:// or postgres://")
        }
        guard let host = components.host, !host.isEmpty else {
            throw ParseError(description: "\(variable): a postgres URL needs a host")
        }
        guard let username = components.user, !username.isEmpty else {
            throw ParseError(description: "\(variable): a postgres URL needs a user name")
        }
        let database = String(components.path.drop(while: { $0 == "/" }))
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard Self.postgresParameters.contains(item.name) else {
                throw ParseError(description: """
                    \(variable): unknown parameter '\(item.name.prefix(64))'; a postgres URL takes \
                    \(Self.postgresParameters.sorted().joined(separator: ", "))
                    """)
            }
            guard let value = item.value, !value.isEmpty else {
                throw ParseError(description: "\(variable): \(item.name) needs a value")
            }
            parameters[item.name] = value
        }
        let sslModeText = parameters["sslmode"] ?? PostgresSSLMode.prefer.rawValue
        guard let sslMode = PostgresSSLMode(rawValue: sslModeText) else {
            let hint = sslModeText == "allow" ? " (allow, which tries plaintext first, is not supported)" : ""
            throw ParseError(description: """
                \(variable): sslmode must be \(PostgresSSLMode.allCases.map(\.rawValue).joined(separator: ", ")); \
                got '\(sslModeText.prefix(64))'\(hint)
                """)
        }
        // `system` names the system's trust store, as in libpq 16.
        let rootCert = parameters["sslrootcert"].flatMap { $0 == "system" ? nil : $0 }
        let cert = parameters["sslcert"]
        let key = parameters["sslkey"]
        guard (cert == nil) == (key == nil) else {
            throw ParseError(description: "\(variable): sslcert and sslkey go together (a client certificate and its private key)")
        }
        if sslMode == .disable, rootCert != nil || cert != nil {
            throw ParseError(description: "\(variable): sslmode=disable uses no TLS; sslrootcert, sslcert and sslkey need another sslmode")
        }
        for (name, path) in [("sslrootcert", rootCert), ("sslcert", cert), ("sslkey", key)] {
            guard let path else { continue }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                  FileManager.default.isReadableFile(atPath: path)
            else {
                throw ParseError(description: "\(variable): \(name)=\(path) is not a readable file")
            }
        }
        let settings = PostgresSettings(
            host: host,
            port: components.port ?? 5432,
            username: username.removingPercentEncoding ?? username,
            password: components.password.map { $0.removingPercentEncoding ?? $0 },
            database: database.isEmpty ? username : database,
            sslMode: sslMode, sslRootCert: rootCert, sslCert: cert, sslKey: key
        )
        // The PEM files are read now, so a wrong one is refused at start, naming the setting.
        do throws(ParseError) {
            _ = try settings.tlsConfiguration()
        } catch {
            throw ParseError(description: "\(variable): \(error.description)")
        }
        self = .postgres(settings)
    }

    static let postgresParameters: Set<String> = ["sslmode", "sslrootcert", "sslcert", "sslkey"]

    /// A description safe for logs: never the password.
    public var redacted: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        case .postgres(let settings): "postgres://\(settings.username)@\(settings.host):\(settings.port)/\(settings.database)"
        }
    }

    /// How the connection to the database is protected in transit: for the start-up log and
    /// the compliance report.
    public var transportSecurity: DatabaseTransportSecurity {
        switch self {
        case .sqlite:
            DatabaseTransportSecurity(sslMode: nil, host: nil, isLocal: true, trustRoots: nil, clientCertificate: false)
        case .postgres(let settings):
            DatabaseTransportSecurity(
                sslMode: settings.effectiveSSLMode, host: settings.host, isLocal: OutboundURLPolicy.isLoopback(settings.host),
                trustRoots: settings.sslRootCert, clientCertificate: settings.sslCert != nil
            )
        }
    }
}

/// libpq's `sslmode` values, weakest first.
public enum PostgresSSLMode: String, Sendable, CaseIterable, Comparable {
    /// No TLS.
    case disable
    /// TLS if the server offers it, else plaintext; the certificate is not checked.
    case prefer
    /// TLS, but the certificate is not checked: safe against someone listening, not against
    /// an active attacker who answers in the server's place.
    case require
    /// TLS with the server's certificate chain verified; the host name is not checked.
    case verifyCA = "verify-ca"
    /// TLS with the chain verified and the certificate naming the host connected to.
    case verifyFull = "verify-full"

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// What protects the bytes between Tidings and its database.
public struct DatabaseTransportSecurity: Sendable, Equatable, CustomStringConvertible {
    /// The effective mode; `nil` for SQLite (a local file: nothing crosses a network).
    public var sslMode: PostgresSSLMode?
    public var host: String?
    /// The server is on this machine (loopback), or the database is a local file.
    public var isLocal: Bool
    /// The trusted certificate authorities' PEM file; `nil` for the system's trust store.
    public var trustRoots: String?
    public var clientCertificate: Bool

    /// Encrypted, with the server's identity proven: the chain verified and the host name matched.
    public var isVerified: Bool { sslMode == .verifyFull }

    /// What production asks for: a connection that stays on this machine, or `verify-full`.
    public var meetsProductionRequirement: Bool { isLocal || isVerified }

    public var description: String {
        guard let sslMode else { return "local SQLite file (nothing crosses a network)" }
        let roots = trustRoots.map { "the CA in \($0)" } ?? "the system's trust store"
        var text = switch sslMode {
        case .disable: "sslmode=disable: not encrypted"
        case .prefer: "sslmode=prefer: encrypted only if the server offers TLS, certificate not verified (not safe against an active attacker)"
        case .require: "sslmode=require: encrypted, certificate not verified (not safe against an active attacker)"
        case .verifyCA: "sslmode=verify-ca: encrypted, certificate chain verified against \(roots), host name not checked"
        case .verifyFull: "sslmode=verify-full: encrypted, certificate chain verified against \(roots) and host name checked"
        }
        if clientCertificate { text += ", client certificate presented" }
        if isLocal { text += " (loopback)" }
        return text
    }
}
