import Crypto
import Foundation
import SwiftASN1
import X509

/// The zero-configuration certificates: a private CA made at first start, and a server
/// certificate it signs for `localhost`, the loopback addresses and the configured host names.
///
/// Files in the directory (created with mode 0700; keys 0600):
/// - `ca.pem` — give it to clients (`curl --cacert tidings-data/tls/ca.pem …`) or to a trust store;
/// - `ca.key` — the CA's private key; never leaves this directory;
/// - `server.pem`, `server.key` — what the HTTPS port presents.
///
/// The server certificate is made again when the names change, when it was signed by another
/// CA, or when less than a third of its lifetime remains.
public struct LocalCertificateAuthority: Sendable {
    public let directory: String

    public static let caLifetime: TimeInterval = 10 * 365 * 86400
    /// What browsers accept for any certificate (398 days), less a day.
    public static let serverLifetime: TimeInterval = 397 * 86400

    public init(directory: String) {
        self.directory = directory
    }

    public var caPath: String { "\(directory)/ca.pem" }
    var caKeyPath: String { "\(directory)/ca.key" }
    public var certificatePath: String { "\(directory)/server.pem" }
    public var keyPath: String { "\(directory)/server.key" }

    public struct Outcome: Sendable {
        public var certificateChainPEM: String
        public var privateKeyPEM: String
        /// Whether the CA was made now (a new CA must be handed to clients again).
        public var createdAuthority: Bool
        /// Whether the server certificate was (re)issued now.
        public var issuedCertificate: Bool
        public var notValidAfter: Date
    }

    /// Loads the CA and the server certificate, making or renewing what is missing or stale.
    public func ensure(hostnames: [String], now: Date = Date()) throws -> Outcome {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let names = Self.normalised(hostnames)
        var createdAuthority = false
        let authority: (certificate: Certificate, key: P256.Signing.PrivateKey)
        if let existing = try loadAuthority() {
            authority = existing
        } else {
            authority = try makeAuthority(now: now)
            createdAuthority = true
            try AtomicFile.write(authority.key.pemRepresentation, to: caKeyPath, mode: 0o600)
            try AtomicFile.write(try authority.certificate.serializeAsPEM().pemString, to: caPath, mode: 0o644)
        }
        if !createdAuthority, let current = try? loadServer(), isUsable(current, for: names, issuedBy: authority.certificate, now: now) {
            return Outcome(
                certificateChainPEM: current.pem, privateKeyPEM: current.keyPEM, createdAuthority: false,
                issuedCertificate: false, notValidAfter: current.certificate.notValidAfter
            )
        }
        let key = P256.Signing.PrivateKey()
        let certificate = try issue(for: names, key: key, authority: authority, now: now)
        let pem = try certificate.serializeAsPEM().pemString + "\n"
        try AtomicFile.write(key.pemRepresentation, to: keyPath, mode: 0o600)
        try AtomicFile.write(pem, to: certificatePath, mode: 0o644)
        return Outcome(
            certificateChainPEM: pem, privateKeyPEM: key.pemRepresentation, createdAuthority: createdAuthority,
            issuedCertificate: true, notValidAfter: certificate.notValidAfter
        )
    }

    /// `localhost`, `127.0.0.1` and `::1` always; names lowercased, duplicates dropped, order kept.
    static func normalised(_ hostnames: [String]) -> [String] {
        var seen = Set<String>()
        return (["localhost", "127.0.0.1", "::1"] + hostnames).compactMap { name in
            let lowered = name.trimmingCharacters(in: .whitespaces).lowercased()
            guard !lowered.isEmpty, seen.insert(lowered).inserted else { return nil }
            return lowered
        }
    }

    private func loadAuthority() throws -> (certificate: Certificate, key: P256.Signing.PrivateKey)? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: caPath), fm.fileExists(atPath: caKeyPath) else { return nil }
        let certificate = try Certificate(pemEncoded: String(contentsOfFile: caPath, encoding: .utf8))
        let key = try P256.Signing.PrivateKey(pemRepresentation: String(contentsOfFile: caKeyPath, encoding: .utf8))
        guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
            throw CertificateProblem("\(caPath) and \(caKeyPath) do not belong together; move both away to make a new local CA.")
        }
        return (certificate, key)
    }

    private func loadServer() throws -> (certificate: Certificate, pem: String, keyPEM: String) {
        let pem = try String(contentsOfFile: certificatePath, encoding: .utf8)
        let keyPEM = try String(contentsOfFile: keyPath, encoding: .utf8)
        let certificate = try Certificate(pemEncoded: pem)
        let key = try Certificate.PrivateKey(pemEncoded: keyPEM)
        guard key.publicKey == certificate.publicKey else { throw CertificateProblem("server key mismatch") }
        return (certificate, pem, keyPEM)
    }

    private func isUsable(
        _ server: (certificate: Certificate, pem: String, keyPEM: String), for names: [String], issuedBy authority: Certificate, now: Date
    ) -> Bool {
        let certificate = server.certificate
        guard certificate.issuer == authority.subject,
              authority.publicKey.isValidSignature(certificate.signature, for: certificate) else { return false }
        let lifetime = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore)
        guard certificate.notValidAfter.timeIntervalSince(now) > lifetime / 3 else { return false }
        return Set(Self.subjectNames(of: certificate)) == Set(names)
    }

    /// The DNS names and IP addresses a certificate names, as text.
    static func subjectNames(of certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            switch name {
            case .dnsName(let host): host.lowercased()
            case .ipAddress(let octets): IPAddressText.format(Array(octets.bytes))
            default: nil
            }
        }
    }

    private func makeAuthority(now: Date) throws -> (certificate: Certificate, key: P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let suffix = Array(SHA256.hash(data: key.publicKey.derRepresentation)).prefix(4).map { String(format: "%02x", $0) }.joined()
        let name = try DistinguishedName {
            OrganizationName("Tidings")
            CommonName("Tidings local CA \(suffix)")
        }
        let identifier = Self.keyIdentifier(publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: Self.serialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Self.caLifetime),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: identifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        return (certificate, key)
    }

    private func issue(
        for names: [String], key: P256.Signing.PrivateKey, authority: (certificate: Certificate, key: P256.Signing.PrivateKey), now: Date
    ) throws -> Certificate {
        let publicKey = Certificate.PublicKey(key.publicKey)
        let alternativeNames = SubjectAlternativeNames(names.map { name in
            if let octets = IPAddressText.parse(name) {
                return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(octets)))
            }
            return .dnsName(name)
        })
        let subject = try DistinguishedName {
            OrganizationName("Tidings")
            CommonName(names.first ?? "localhost")
        }
        return try Certificate(
            version: .v3, serialNumber: Self.serialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Self.serverLifetime),
            issuer: authority.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(publicKey))
                AuthorityKeyIdentifier(keyIdentifier: Self.keyIdentifier(Certificate.PublicKey(authority.key.publicKey)))
                alternativeNames
            },
            issuerPrivateKey: Certificate.PrivateKey(authority.key)
        )
    }

    /// 128 random bits, positive as RFC 5280 §4.1.2.2 requires (the first byte below 0x80, never 0).
    static func serialNumber() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[0] = UInt8.random(in: 1...0x7F, using: &generator)
        return Certificate.SerialNumber(bytes: bytes)
    }

    /// RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the public key.
    static func keyIdentifier(_ key: Certificate.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(Array(SHA256.hash(data: key.subjectPublicKeyInfoBytes)).prefix(20))
    }
}

/// A certificate or key that cannot be used, with the reason in words.
public struct CertificateProblem: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Certificate.PublicKey {
    /// The DER SubjectPublicKeyInfo (what an SPKI pin hashes).
    var subjectPublicKeyInfoBytes: [UInt8] {
        var serializer = DER.Serializer()
        try? serializer.serialize(self)
        return serializer.serializedBytes
    }
}

/// IPv4 and IPv6 addresses as octets and back, for certificate names.
enum IPAddressText {
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    static func format(_ octets: [UInt8]) -> String? {
        switch octets.count {
        case 4:
            return octets.map(String.init).joined(separator: ".")
        case 16:
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            return octets.withUnsafeBytes { raw in
                inet_ntop(AF_INET6, raw.baseAddress, &buffer, socklen_t(buffer.count)).map { _ in String(cString: buffer) }
            }
        default:
            return nil
        }
    }
}
