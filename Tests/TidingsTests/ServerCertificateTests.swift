import Foundation
import Testing
import TidingsTLS
import X509

/// Where the HTTPS certificate comes from: the local CA, and operator-supplied files that are
/// reloaded while serving.
@Suite("Server certificates")
struct ServerCertificateTests {
    private func scratchDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-certs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test("The local CA is made once; its certificate names localhost, loopback and the configured hosts, and is reissued only when needed")
    func localCertificateAuthority() throws {
        let directory = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = LocalCertificateAuthority(directory: directory.path)
        let now = Date()
        let first = try authority.ensure(hostnames: ["Mail.Acme.test"], now: now)
        #expect(first.createdAuthority && first.issuedCertificate)
        let leaf = try Certificate(pemEncoded: first.certificateChainPEM)
        let ca = try Certificate(pemEncoded: String(contentsOfFile: authority.caPath, encoding: .utf8))
        #expect(leaf.issuer == ca.subject && ca.publicKey.isValidSignature(leaf.signature, for: leaf))
        let names = try ServerCertificates.Credentials(chainPEM: first.certificateChainPEM, keyPEM: first.privateKeyPEM, source: "local-ca").names
        #expect(names == ["localhost", "127.0.0.1", "::1", "mail.acme.test"])
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
        #expect(try ca.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(leaf.serialNumber.bytes.first.map { $0 > 0 && $0 < 0x80 } == true, "serial numbers are positive")
        for key in [authority.keyPath, "\(directory.path)/ca.key"] {
            let mode = try FileManager.default.attributesOfItem(atPath: key)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600, "\(key)")
        }

        // The same names a day later: the same certificate.
        let again = try authority.ensure(hostnames: ["mail.acme.test"], now: now.addingTimeInterval(86400))
        #expect(!again.createdAuthority && !again.issuedCertificate && again.certificateChainPEM == first.certificateChainPEM)
        // Another name: a new certificate from the same CA.
        let renamed = try authority.ensure(hostnames: ["mail.acme.test", "api.acme.test"], now: now.addingTimeInterval(86400))
        #expect(!renamed.createdAuthority && renamed.issuedCertificate)
        #expect(try String(contentsOfFile: authority.caPath, encoding: .utf8) == (try ca.serializeAsPEM().pemString))
        // Two thirds of the lifetime gone: renewed.
        let late = try authority.ensure(
            hostnames: ["mail.acme.test", "api.acme.test"], now: now.addingTimeInterval(LocalCertificateAuthority.serverLifetime * 0.7)
        )
        #expect(late.issuedCertificate && late.notValidAfter > renamed.notValidAfter)
    }

    @Test("Credentials are refused with a reason when the key does not match, the file holds no certificate, or it expired")
    func credentialsAreChecked() throws {
        let certificates = SMTPPeer.certificates
        func read(_ name: String) throws -> String { try String(contentsOf: certificates.appendingPathComponent(name), encoding: .utf8) }
        let good = try ServerCertificates.Credentials(chainPEM: try read("server.pem"), keyPEM: try read("server.key"), source: "files")
        #expect(good.names.contains("localhost") && good.chain.count == 1)
        let cases: [(String, String, Date, String)] = [
            (try read("server.pem"), try read("other.key"), Date(), "does not belong"),
            ("not a certificate", try read("server.key"), Date(), "no PEM certificate"),
            (try read("server.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", Date(), "private key cannot be read"),
            (try read("server.pem"), try read("server.key"), Date().addingTimeInterval(10 * 86400), "expired"),
        ]
        for (chain, key, now, reason) in cases {
            #expect {
                _ = try ServerCertificates.Credentials(chainPEM: chain, keyPEM: key, source: "files", now: now)
            } throws: { error in
                (error as? CertificateProblem)?.description.contains(reason) == true
            }
        }
    }

    @Test("Certificate files are reloaded while serving; a broken replacement is reported and the old certificate stays")
    func filesAreReloaded() async throws {
        let certificates = SMTPPeer.certificates
        let scratch = try await Scratch.make(.sqlite)
        let live = scratch.directory.appendingPathComponent("live")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        let certificateFile = live.appendingPathComponent("fullchain.pem"), keyFile = live.appendingPathComponent("privkey.pem")
        func install(_ certificate: String, _ key: String) throws {
            // As certbot does: new files, then renamed into place.
            for (source, target) in [(certificate, certificateFile), (key, keyFile)] {
                let staged = target.appendingPathExtension("new")
                try Data(contentsOf: certificates.appendingPathComponent(source)).write(to: staged)
                _ = rename(staged.path, target.path)
            }
        }
        try install("server.pem", "server.key")
        let server = ServerProcess(
            dataDirectory: scratch.directory, databaseURL: scratch.databaseURL, ownerURL: scratch.ownerURL,
            extraEnvironment: [
                "TIDINGS_TLS_CERT_FILE": certificateFile.path, "TIDINGS_TLS_KEY_FILE": keyFile.path, "TIDINGS_TLS_RELOAD_SECONDS": "1",
            ],
            transport: .https
        )
        try await server.start()
        #expect(server.log.contains("certificate=files"))
        func health(trusting ca: String) async throws -> Int32 {
            try await run("/usr/bin/curl", ["-sS", "-o", "/dev/null", "--cacert", certificates.appendingPathComponent(ca).path, "\(server.baseURL)/healthz"]).status
        }
        #expect(try await health(trusting: "ca.pem") == 0)
        #expect(try await health(trusting: "untrusted-ca.pem") != 0)

        // A mismatched pair (a renewal caught halfway) is refused; the running certificate stays.
        try install("untrusted.pem", "server.key")
        try await waitFor(server, "cannot be used")
        #expect(try await health(trusting: "ca.pem") == 0)

        // The complete new pair is served from the next connection on, without a restart.
        try install("untrusted.pem", "untrusted.key")
        try await waitFor(server, "Reloaded the HTTPS certificate")
        #expect(try await health(trusting: "untrusted-ca.pem") == 0)
        #expect(try await health(trusting: "ca.pem") != 0)
        #expect(try await server.stop() == 0)
        await scratch.remove()
    }

    private func waitFor(_ server: ServerProcess, _ text: String) async throws {
        let deadline = Date().addingTimeInterval(20)
        while !server.log.contains(text), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(server.log.contains(text), "\(server.log.suffix(2000))")
    }
}
