import NIOSSL
import PostgresNIO

/// `sslmode` and its companions, turned into the TLS settings of PostgresNIO, as libpq
/// means them: `prefer` and `require` encrypt without checking the certificate, `verify-ca`
/// checks the chain, `verify-full` the chain and the host name. TLS 1.2 is the minimum.
extension DatabaseURL.PostgresSettings {
    /// The client's TLS settings; `nil` for `disable`. Reads the PEM files now, so a bad one is
    /// a start-up error naming the parameter.
    func tlsConfiguration() throws(DatabaseURL.ParseError) -> TLSConfiguration? {
        let mode = effectiveSSLMode
        guard mode != .disable else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        switch mode {
        case .disable, .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let sslRootCert {
            let roots = try Self.certificates(sslRootCert, parameter: "sslrootcert")
            tls.trustRoots = .certificates(roots)
        }
        if let sslCert, let sslKey {
            tls.certificateChain = try Self.certificates(sslCert, parameter: "sslcert").map { .certificate($0) }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: sslKey, format: .pem))
            } catch {
                throw DatabaseURL.ParseError(description: "sslkey=\(sslKey) is not a PEM private key (an encrypted key is not supported)")
            }
        }
        return tls
    }

    private static func certificates(_ path: String, parameter: String) throws(DatabaseURL.ParseError) -> [NIOSSLCertificate] {
        let certificates = try? NIOSSLCertificate.fromPEMFile(path)
        guard let certificates, !certificates.isEmpty else {
            throw DatabaseURL.ParseError(description: "\(parameter)=\(path) holds no PEM certificate")
        }
        return certificates
    }

    /// The pool's TLS setting.
    func clientTLS() throws(DatabaseURL.ParseError) -> PostgresClient.Configuration.TLS {
        guard let tls = try tlsConfiguration() else { return .disable }
        return effectiveSSLMode == .prefer ? .prefer(tls) : .require(tls)
    }

    /// The same, for a single connection.
    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        guard let tls = try tlsConfiguration() else { return .disable }
        let context = try NIOSSLContext(configuration: tls)
        return effectiveSSLMode == .prefer ? .prefer(context) : .require(context)
    }
}

/// Tidings could not open a connection to PostgreSQL; `description` says why in the terms of
/// the settings (TLS, certificate, host name, the server's refusal), never the password.
public struct PostgresConnectionFailure: Error, CustomStringConvertible {
    public var description: String

    init(_ error: any Error, settings: DatabaseURL.PostgresSettings) {
        let target = "PostgreSQL at \(settings.host):\(settings.port) (sslmode=\(settings.sslMode.rawValue))"
        description = "Could not connect to \(target): \(Self.reason(error, settings: settings))"
    }

    static func reason(_ error: any Error, settings: DatabaseURL.PostgresSettings) -> String {
        let roots = settings.sslRootCert.map { "sslrootcert=\($0)" } ?? "the system's trust store (set sslrootcert for a private CA)"
        if let error = error as? PSQLError {
            if error.code == .sslUnsupported {
                return "the server does not offer TLS, which sslmode=\(settings.sslMode.rawValue) requires"
            }
            if let info = error.serverInfo {
                let message = info[.message] ?? "no message"
                let state = info[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return "the server refused the connection: \(message)\(state)"
            }
            if let underlying = error.underlying { return reason(underlying, settings: settings) }
            return "\(error.code)"
        }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "the server's certificate does not name \(settings.host) (sslmode=verify-full checks the host name; verify-ca does not)"
        }
        let text = "\(error)"
        if text.contains("Connection refused") {
            return "nothing accepts connections there (connection refused)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate is not signed by a certificate authority in \(roots)"
        }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return "the TLS handshake failed: \(text)"
        }
        return text
    }
}
