import Foundation
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The certificate the HTTPS port presents. Every TLS handshake asks for the current one, so
/// a new certificate (renewed, reloaded from files, issued by ACME) takes effect for the next
/// connection without a restart; open connections keep theirs.
public final class ServerCertificates: Sendable {
    /// A parsed, checked certificate chain and its key.
    public struct Credentials: Sendable {
        public let chain: [NIOSSLCertificate]
        public let key: NIOSSLPrivateKey
        public let notValidBefore: Date
        public let notValidAfter: Date
        /// The names (DNS and IP) the leaf certificate is valid for.
        public let names: [String]
        /// Where it came from: `local-ca`, `files`, `acme`.
        public let source: String

        /// Parses PEM text and checks that it can be served: the key belongs to the first
        /// certificate, and the certificate has not expired.
        public init(chainPEM: String, keyPEM: String, source: String, now: Date = Date()) throws {
            let documents = try Self.certificates(in: chainPEM)
            guard let leafPEM = documents.first else {
                throw CertificateProblem("The certificate file holds no PEM certificate.")
            }
            let leaf: Certificate
            let key: Certificate.PrivateKey
            do {
                leaf = try Certificate(pemEncoded: leafPEM)
            } catch {
                throw CertificateProblem("The first certificate cannot be read: \(error).")
            }
            do {
                key = try Certificate.PrivateKey(pemEncoded: keyPEM)
            } catch {
                throw CertificateProblem("The private key cannot be read (PEM, PKCS#8 or SEC1/PKCS#1, unencrypted): \(error).")
            }
            guard key.publicKey == leaf.publicKey else {
                throw CertificateProblem("The private key does not belong to the first certificate of the chain.")
            }
            guard leaf.notValidAfter > now else {
                throw CertificateProblem("The certificate expired at \(leaf.notValidAfter).")
            }
            self.chain = try documents.map { try NIOSSLCertificate(bytes: Array($0.utf8), format: .pem) }
            self.key = try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem)
            self.notValidBefore = leaf.notValidBefore
            self.notValidAfter = leaf.notValidAfter
            self.names = LocalCertificateAuthority.subjectNames(of: leaf)
            self.source = source
        }

        /// Each `-----BEGIN CERTIFICATE-----` block of a PEM file, in order.
        static func certificates(in pem: String) throws -> [String] {
            var blocks: [String] = []
            var current: [Substring]?
            for line in pem.split(whereSeparator: \.isNewline) {
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                if trimmed == "-----BEGIN CERTIFICATE-----" {
                    current = [line]
                } else if trimmed == "-----END CERTIFICATE-----", var block = current {
                    block.append(line)
                    blocks.append(block.joined(separator: "\n"))
                    current = nil
                } else if current != nil {
                    current!.append(line)
                }
            }
            return blocks
        }
    }

    private let current: Mutex<Credentials>

    public init(_ credentials: Credentials) {
        current = Mutex(credentials)
    }

    public var credentials: Credentials { current.withLock { $0 } }

    public func replace(with credentials: Credentials) {
        current.withLock { $0 = credentials }
    }

    /// The server's TLS settings (``ServerTLSPolicy``), presenting the current certificate.
    public func tlsConfiguration() -> TLSConfiguration {
        let initial = credentials
        var configuration = ServerTLSPolicy.configuration(chain: initial.chain, key: initial.key)
        configuration.sslContextCallback = { [self] _, promise in
            let now = credentials
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = now.chain.map { .certificate($0) }
            override.privateKey = .privateKey(now.key)
            promise.succeed(override)
        }
        return configuration
    }
}

/// What the HTTPS port accepts (Mozilla's "intermediate" profile, without the DHE suites):
/// TLS 1.2 and 1.3 only; on TLS 1.2 only ECDHE key exchange with AEAD ciphers. TLS 1.3's
/// suites are all AEAD with (EC)DHE. BoringSSL compresses nothing and never renegotiates as a server.
public enum ServerTLSPolicy {
    public static let minimumVersion = TLSVersion.tlsv12

    /// OpenSSL names of the TLS 1.2 suites, strongest first for each key type.
    public static let tls12CipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ]

    public static func configuration(chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)
        )
        configuration.minimumTLSVersion = minimumVersion
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuites = tls12CipherSuites.joined(separator: ":")
        configuration.curves = [.x25519, .secp256r1, .secp384r1]
        configuration.applicationProtocols = ["http/1.1"]
        configuration.renegotiationSupport = .none
        return configuration
    }
}
