import Foundation
import Testing

/// Let's Encrypt's ACME test server (Debian `pebble`) on loopback: its API over HTTPS with a
/// certificate from the test CA, validating HTTP-01 challenges against `httpPort`.
final class Pebble: Sendable {
    let process: ChildProcess
    let directory: URL
    let port: Int
    let managementPort: Int
    /// Where Pebble connects to fetch `/.well-known/acme-challenge/<token>` (Tidings' plain-HTTP port).
    let httpPort: Int

    /// The ACME directory URL.
    var directoryURL: String { "https://localhost:\(port)/dir" }
    /// The test CA that signed Pebble's own HTTPS certificate.
    var testCAFile: String { SMTPPeer.caFile }
    var logFile: URL { directory.appendingPathComponent("pebble.log") }

    static var binary: String {
        get throws {
            try HTTPSScanTests.tool("TIDINGS_PEBBLE", "pebble")
        }
    }

    /// Starts Pebble and waits until its directory answers.
    /// - Parameter nonceRejectPercent: how many good nonces Pebble refuses as `badNonce` (clients must retry).
    init(httpPort: Int, nonceRejectPercent: Int = 10) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-pebble-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.httpPort = httpPort
        port = try MotoServer.freePort()
        managementPort = try MotoServer.freePort()
        let ca = SMTPPeer.certificates
        let configuration: [String: Any] = ["pebble": [
            "listenAddress": "127.0.0.1:\(port)", "managementListenAddress": "127.0.0.1:\(managementPort)",
            "certificate": ca.appendingPathComponent("server.pem").path, "privateKey": ca.appendingPathComponent("server.key").path,
            "httpPort": httpPort, "tlsPort": try MotoServer.freePort(), "ocspResponderURL": "", "externalAccountBindingRequired": false,
        ]]
        let configFile = directory.appendingPathComponent("pebble.json")
        try JSONSerialization.data(withJSONObject: configuration).write(to: configFile)
        let logFile = directory.appendingPathComponent("pebble.log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }
        var environment = ProcessInfo.processInfo.environment
        environment["PEBBLE_VA_NOSLEEP"] = "1"
        environment["PEBBLE_WFE_NONCEREJECT"] = "\(nonceRejectPercent)"
        process = try ChildProcess(
            try Self.binary, ["-config", configFile.path], environment: environment,
            output: log.fileDescriptor, error: log.fileDescriptor
        )
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try await run("/usr/bin/curl", ["-sS", "-f", "--cacert", SMTPPeer.caFile, "https://localhost:\(port)/dir"]).status == 0 { return }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        process.killAndWait()
        throw ServerProcess.Failure(description: "pebble did not start:\n\((try? String(contentsOf: logFile, encoding: .utf8)) ?? "")")
    }

    /// The root that Pebble's issued chains lead to (made anew at each start).
    func rootCertificate() async throws -> String {
        let fetched = try await run("/usr/bin/curl", ["-sS", "-f", "--cacert", testCAFile, "https://localhost:\(managementPort)/roots/0"])
        guard fetched.status == 0 else { throw ServerProcess.Failure(description: "cannot fetch Pebble's root: \(fetched.stderr)") }
        return fetched.stdout
    }

    func stop() {
        process.send(SIGTERM)
        process.waitUntilExit()
        TestLog.append((try? String(contentsOf: logFile, encoding: .utf8)) ?? "")
        try? FileManager.default.removeItem(at: directory)
    }
}
