import Configuration
import Foundation
import TidingsDomain
import TidingsTLS

/// Where the HTTPS certificate comes from.
public struct TLSSettings: Sendable {
    public enum Source: Sendable {
        /// Zero configuration: a local CA in `<data>/tls/` signs a certificate for the host names.
        case localCA(LocalCertificateAuthority)
        /// PEM files named by `TIDINGS_TLS_CERT_FILE` and `TIDINGS_TLS_KEY_FILE`, reloaded when they change.
        case files(CertificateFiles)
        /// Issued and renewed by an ACME CA (`TIDINGS_ACME_DIRECTORY_URL`).
        case acme(ACMESettings)
    }

    public struct ACMESettings: Sendable {
        /// The CA's directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
        public var directoryURL: URL
        /// The account's contact address (optional; the CA mails expiry warnings there).
        public var email: String?
        /// Extra trust roots (PEM) for the CA's own HTTPS endpoint, e.g. a test CA's.
        public var caFile: String?
        /// Where the issued certificate and key are cached between starts.
        public var directory: String
    }

    public var source: Source
    /// The names the certificate must cover: the public URL's host and `TIDINGS_TLS_HOSTNAMES`.
    public var hostnames: [String]
    /// The HTTPS port (for the hints Tidings prints).
    public var httpsPort: Int
    /// How often file certificates are checked for changes and renewals are considered (default 60 s).
    public var checkInterval: Duration

    /// The source's name, as logs and reports show it.
    public var sourceName: String {
        switch source {
        case .localCA: "local-ca"
        case .files: "files"
        case .acme: "acme"
        }
    }

    init(reader: ConfigReader, dataDirectory: String, publicHost: String, httpsPort: Int, string: (String) -> String?) throws {
        self.httpsPort = httpsPort
        typealias Key = TidingsConfiguration.Key
        let name = TidingsConfiguration.variableName
        var names = [publicHost.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()]
        for entry in (string(Key.tlsHostnames) ?? "").split(separator: ",") {
            let host = entry.trimmingCharacters(in: .whitespaces).lowercased()
            guard !host.isEmpty else { continue }
            guard (try? EmailServer.validateHost(host)) != nil, !host.contains("*") else {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.tlsHostnames)) must list host names or IP addresses; '\(host.prefix(100))' is not one.")
            }
            if !names.contains(host) { names.append(host) }
        }
        hostnames = names
        if let text = string(Key.tlsReloadSeconds) {
            guard let seconds = Int(text), (1...86400).contains(seconds) else {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.tlsReloadSeconds)) must be a whole number of seconds from 1 to 86400; got '\(text)'.")
            }
            checkInterval = .seconds(seconds)
        } else {
            checkInterval = .seconds(60)
        }
        let certificate = string(Key.tlsCertFile), key = string(Key.tlsKeyFile)
        let directory = string(Key.acmeDirectoryURL)
        if certificate != nil || key != nil {
            guard let certificate, let key else {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.tlsCertFile)) and \(name(Key.tlsKeyFile)) go together; only one is set.")
            }
            guard directory == nil else {
                throw TidingsConfiguration.Invalid(description: "Set either certificate files (\(name(Key.tlsCertFile))) or ACME (\(name(Key.acmeDirectoryURL))), not both.")
            }
            for path in [certificate, key] where !FileManager.default.isReadableFile(atPath: path) {
                throw TidingsConfiguration.Invalid(description: "The TLS file \(path) cannot be read.")
            }
            source = .files(CertificateFiles(certificatePath: certificate, keyPath: key))
        } else if let directory {
            guard let url = URL(string: directory), url.scheme == "https", url.host != nil else {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.acmeDirectoryURL)) must be an https:// URL; got '\(directory.prefix(200))'.")
            }
            let caFile = string(Key.acmeCaFile)
            if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.acmeCaFile)) names \(caFile), which cannot be read.")
            }
            let email = string(Key.acmeEmail)
            if let email, (try? EmailAddress(email)) == nil {
                throw TidingsConfiguration.Invalid(description: "\(name(Key.acmeEmail)) must be an email address; got '\(email.prefix(100))'.")
            }
            source = .acme(ACMESettings(directoryURL: url, email: email, caFile: caFile, directory: "\(dataDirectory)/tls/acme"))
        } else {
            source = .localCA(LocalCertificateAuthority(directory: "\(dataDirectory)/tls"))
        }
    }
}
