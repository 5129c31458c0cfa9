import Foundation
import Testing

/// A real PostgreSQL server for a test that takes TCP connections over TLS only (`hostssl`),
/// with a certificate from the test CA: `scripts/peers/postgres_tls.sh` on a free loopback
/// port. PostgreSQL's server binaries are required: without them the test fails (scripts/test
/// installs them), it never skips.
final class PostgresTLSServer: Sendable {
    private let process: ChildProcess
    /// The write end of the script's standard input: closing it stops the cluster.
    private let input: FileHandle
    private let directory: URL
    let port: Int

    /// The superuser the script's cluster is made with.
    static let role = "tidings"

    private init(process: ChildProcess, input: FileHandle, directory: URL, port: Int) {
        self.process = process
        self.input = input
        self.directory = directory
        self.port = port
    }

    /// Starts a cluster whose certificate is the test CA's `certificate` pair (`server`: for
    /// localhost and 127.0.0.1; `other`: for wrong.example; `untrusted`: from another CA); with
    /// `clientCertificates`, clients must also present one from the test CA naming the role.
    static func with<T: Sendable>(
        certificate: String = "server", clientCertificates: Bool = false, _ body: (PostgresTLSServer) async throws -> T
    ) async throws -> T {
        let server = try await start(certificate: certificate, clientCertificates: clientCertificates)
        do {
            let result = try await body(server)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }

    private static func start(certificate: String, clientCertificates: Bool) async throws -> PostgresTLSServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-pgtls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let certificates = SMTPPeer.certificates
        let pem = certificates.appendingPathComponent("\(certificate).pem").path
        guard FileManager.default.fileExists(atPath: pem) else {
            throw SMTPPeer.Failure(description: "The test CA was not made (scripts/peers/make_test_ca.sh needs openssl).")
        }
        let portFile = directory.appendingPathComponent("port")
        let log = directory.appendingPathComponent("cluster.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        var arguments = [
            SMTPPeer.repositoryRoot.appendingPathComponent("scripts/peers/postgres_tls.sh").path,
            "--cert", pem, "--key", certificates.appendingPathComponent("\(certificate).key").path, "--port-file", portFile.path,
        ]
        if clientCertificates { arguments += ["--client-ca", certificates.appendingPathComponent("ca.pem").path] }
        let pipe = Pipe()
        let input = pipe.fileHandleForWriting
        let process: ChildProcess
        do {
            defer { try? pipe.fileHandleForReading.close() }
            process = try ChildProcess(
                "/bin/bash", arguments, input: pipe.fileHandleForReading.fileDescriptor,
                output: handle.fileDescriptor, error: handle.fileDescriptor
            )
        }
        // initdb and the first start take a few seconds; more on a busy machine.
        let deadline = Date().addingTimeInterval(90)
        while Date() < deadline, process.isRunning {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return PostgresTLSServer(process: process, input: input, directory: directory, port: port)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try? input.close()
        await process.waitForExit()
        try? FileManager.default.removeItem(at: directory)
        throw SMTPPeer.Failure(description: "The TLS PostgreSQL cluster did not start:\n\(output)")
    }

    /// Closing the script's standard input makes it stop and remove the cluster.
    private func stop() async {
        try? input.close()
        await process.waitForExit()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A URL for the superuser, with these query parameters (`sslmode`, `sslrootcert`, …);
    /// a parameter's value may name a test CA file by its name (`ca.pem`).
    func url(host: String = "127.0.0.1", _ parameters: KeyValuePairs<String, String>) -> String {
        let query = parameters.map { name, value in
            let file = SMTPPeer.certificates.appendingPathComponent(value).path
            return "\(name)=\(value.hasSuffix(".pem") || value.hasSuffix(".key") ? file : value)"
        }
        return "postgres://\(Self.role):\(Self.role)@\(host):\(port)/postgres" + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }
}
