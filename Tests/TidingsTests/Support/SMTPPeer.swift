import Foundation
import Testing

/// A real SMTP server for a test: aiosmtpd driven by `scripts/peers/smtp_peer.py`, on a free
/// loopback port, recording every message's exact bytes and every command it received.
final class SMTPPeer: Sendable {
    let directory: URL
    let port: Int

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `TIDINGS_PYTHON` (set by scripts/test), else the first python3 on PATH.
    static var python: String {
        if let path = ProcessInfo.processInfo.environment["TIDINGS_PYTHON"] { return path }
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
        return directories.map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/python3"
    }

    /// The test CA and certificates (`make_test_ca.sh`), made once per test run.
    static let certificates: URL = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-test-ca-\(getpid())")
        if !FileManager.default.fileExists(atPath: directory.appendingPathComponent("server.pem").path) {
            let script = repositoryRoot.appendingPathComponent("scripts/peers/make_test_ca.sh").path
            (try? ChildProcess("/bin/bash", [script, directory.path]))?.waitUntilExit()
        }
        return directory
    }()

    static var caFile: String { certificates.appendingPathComponent("ca.pem").path }

    /// Starts a peer; `arguments` are the script's (`--mode`, `--user`, …). TLS modes get the
    /// test CA's localhost certificate unless `certificate` names another pair (`other`, `untrusted`).
    static func start(_ arguments: [String], certificate: String = "server") async throws -> SMTPPeer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        let records = directory.appendingPathComponent("records")
        let script = ProcessInfo.processInfo.environment["TIDINGS_SMTP_PEER"] ?? repositoryRoot.appendingPathComponent("scripts/peers/smtp_peer.py").path
        let pem = certificates.appendingPathComponent("\(certificate).pem").path
        let key = certificates.appendingPathComponent("\(certificate).key").path
        guard FileManager.default.fileExists(atPath: pem) else {
            throw Failure(description: "The test CA was not made (scripts/peers/make_test_ca.sh needs openssl).")
        }
        let peerArguments = [script, "--port-file", portFile.path, "--record-dir", records.path, "--cert", pem, "--key", key] + arguments
        let log = directory.appendingPathComponent("peer.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process: ChildProcess
        do {
            process = try ChildProcess(python, peerArguments, output: handle.fileDescriptor, error: handle.fileDescriptor)
        } catch {
            throw Failure(description: "Could not run \(python) \(script): \(error). Run scripts/test, which installs aiosmtpd.")
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, process.isRunning {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return SMTPPeer(process: process, directory: directory, port: port)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.killAndWait()
        throw Failure(description: "The SMTP peer did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    private init(process: ChildProcess, directory: URL, port: Int) {
        self.directory = directory
        self.port = port
        self.process = process
    }

    private let process: ChildProcess

    /// Runs `body` with a started peer, and stops it after.
    static func with<T: Sendable>(_ arguments: [String], certificate: String = "server", _ body: (SMTPPeer) async throws -> T) async throws -> T {
        let peer = try await start(arguments, certificate: certificate)
        defer { peer.stop() }
        return try await body(peer)
    }

    func stop() {
        process.killAndWait()
        try? FileManager.default.removeItem(at: directory)
    }

    struct Received: @unchecked Sendable {
        // @unchecked: `envelope` is parsed JSON, read only.
        var bytes: [UInt8]
        var envelope: [String: Any]
        var text: String { String(decoding: bytes, as: UTF8.self) }
        var mailFrom: String? { envelope["mail_from"] as? String }
        var recipients: [String] { envelope["rcpt_tos"] as? [String] ?? [] }
        var tls: Bool { envelope["tls"] as? Bool ?? false }
        var tlsVersion: String? { envelope["tls_version"] as? String }
        var authUser: String? { envelope["auth_user"] as? String }
    }

    /// Every message received so far, in order.
    func received() -> [Received] {
        let records = directory.appendingPathComponent("records")
        var messages: [Received] = []
        var number = 1
        while let json = try? Data(contentsOf: records.appendingPathComponent("\(number).json")),
              let envelope = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
              let bytes = try? Data(contentsOf: records.appendingPathComponent("\(number).eml")) {
            messages.append(Received(bytes: Array(bytes), envelope: envelope))
            number += 1
        }
        return messages
    }

    /// Waits until at least `count` messages arrived (or `timeout` passed) and returns them.
    func waitForMessages(_ count: Int, timeout: TimeInterval = 20) async throws -> [Received] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let messages = received()
            if messages.count >= count { return messages }
            try await Task.sleep(for: .milliseconds(50))
        }
        return received()
    }

    /// Every command line received, AUTH arguments masked.
    func commands() -> [String] {
        let text = (try? String(contentsOf: directory.appendingPathComponent("records/commands.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Connections accepted.
    func connections() -> Int {
        let text = (try? String(contentsOf: directory.appendingPathComponent("records/connections.log"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").count
    }
}

/// Verifies DKIM signatures on `message` with dkimpy, answering the DNS lookups with `records`
/// (name → TXT value). Returns dkimpy's verdict per signature, as `True`/`False` lines.
func dkimVerify(_ message: [UInt8], records: [String: String]) async throws -> [Bool] {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-dkim-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let messageFile = directory.appendingPathComponent("message.eml")
    try Data(message).write(to: messageFile)
    let recordsFile = directory.appendingPathComponent("records.json")
    try JSONSerialization.data(withJSONObject: records).write(to: recordsFile)
    let script = """
        import dkim, json, sys
        records = json.load(open(sys.argv[2]))
        message = open(sys.argv[1], 'rb').read()
        def dns(name, timeout=5):
            return records.get(name.decode().rstrip('.'), '').encode() or None
        verifier = dkim.DKIM(message)
        count = len([l for l in message.split(b'\\r\\n\\r\\n')[0].split(b'\\r\\n') if l.lower().startswith(b'dkim-signature:')])
        for index in range(count):
            print(verifier.verify(idx=index, dnsfunc=dns))
        """
    let result = try await run(SMTPPeer.python, ["-c", script, messageFile.path, recordsFile.path])
    guard result.status == 0 else { throw SMTPPeer.Failure(description: "dkimpy failed: \(result.stderr)") }
    return result.stdout.split(separator: "\n").map { $0 == "True" }
}

extension SMTPPeer {
    /// The pin of one of the test CA's certificates (`server`, `other`, `untrusted`), made as the
    /// README tells operators to make it: openssl's SHA-256 of the DER public key, in base64.
    static func keyPin(of certificate: String) async throws -> String {
        let path = certificates.appendingPathComponent("\(certificate).pem").path
        let result = try await run("/bin/bash", ["-c", """
            set -o pipefail
            openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64
            """, "pin", path])
        guard result.status == 0 else { throw Failure(description: "openssl could not make the pin of \(path): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
