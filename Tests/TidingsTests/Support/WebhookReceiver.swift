import Foundation
import Testing

/// A real webhook receiver for a test: `scripts/peers/webhook_receiver.py` (Python's
/// http.server) on a free loopback port. It verifies each request's Standard Webhooks
/// signature with its own HMAC code against the secrets the test gives it, answers as told,
/// and records what it got.
final class WebhookReceiver: Sendable {
    private let process: ChildProcess
    let directory: URL
    let port: Int
    let tls: Bool

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` with TLS (the test CA's certificate names localhost).
    var baseURL: String { tls ? "https://localhost:\(port)" : "http://127.0.0.1:\(port)" }

    static func start(tls: Bool = false) async throws -> WebhookReceiver {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-webhooks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let portFile = directory.appendingPathComponent("port")
        var arguments = [
            SMTPPeer.repositoryRoot.appendingPathComponent("scripts/peers/webhook_receiver.py").path,
            "--port-file", portFile.path, "--record-dir", directory.appendingPathComponent("records").path,
        ]
        if tls {
            arguments += [
                "--cert", SMTPPeer.certificates.appendingPathComponent("server.pem").path,
                "--key", SMTPPeer.certificates.appendingPathComponent("server.key").path,
            ]
        }
        let log = directory.appendingPathComponent("receiver.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let process = try ChildProcess(SMTPPeer.python, arguments, output: handle.fileDescriptor, error: handle.fileDescriptor)
        // Generous: on a busy machine a Python start can take a while.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            if let text = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return WebhookReceiver(process: process, directory: directory, port: port, tls: tls)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.killAndWait()
        throw Failure(description: "The webhook receiver did not start: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    private init(process: ChildProcess, directory: URL, port: Int, tls: Bool) {
        self.process = process
        self.directory = directory
        self.port = port
        self.tls = tls
    }

    /// Runs `body` with a started receiver, and stops it after.
    static func with<T: Sendable>(tls: Bool = false, _ body: (WebhookReceiver) async throws -> T) async throws -> T {
        let receiver = try await start(tls: tls)
        defer { receiver.stop() }
        return try await body(receiver)
    }

    func stop() {
        process.killAndWait()
        try? FileManager.default.removeItem(at: directory)
    }

    private var records: URL { directory.appendingPathComponent("records") }

    /// The secrets signatures are checked against, in order (`matched` refers to these positions).
    func trust(_ secrets: [String]) throws {
        try FileManager.default.createDirectory(at: records, withIntermediateDirectories: true)
        try secrets.joined(separator: "\n").write(to: records.appendingPathComponent("secrets"), atomically: true, encoding: .utf8)
    }

    /// Answer every request with this status (`"503"`, `"redirect"`, `"stall 3"`); `nil`: 200 if verified, else 401.
    func answer(_ behaviour: String?) throws {
        try FileManager.default.createDirectory(at: records, withIntermediateDirectories: true)
        let file = records.appendingPathComponent("status")
        if let behaviour {
            try behaviour.write(to: file, atomically: true, encoding: .utf8)
        } else {
            try? FileManager.default.removeItem(at: file)
        }
    }

    /// The body of every answer from now on (`nil`: a small JSON object).
    func reply(_ body: String?) throws {
        try FileManager.default.createDirectory(at: records, withIntermediateDirectories: true)
        let file = records.appendingPathComponent("reply")
        if let body {
            try body.write(to: file, atomically: true, encoding: .utf8)
        } else {
            try? FileManager.default.removeItem(at: file)
        }
    }

    struct Received: @unchecked Sendable {
        // @unchecked: parsed JSON, read only.
        var record: [String: Any]
        var headers: [String: String] { record["headers"] as? [String: String] ?? [:] }
        var body: String { record["body"] as? String ?? "" }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
        var verified: Bool { record["verified"] as? Bool ?? false }
        var matched: [Int] { record["matched"] as? [Int] ?? [] }
        var answered: Int { record["answered"] as? Int ?? 0 }
        var path: String { record["path"] as? String ?? "" }
        /// The `v1,…` entries of `webhook-signature`.
        var signatures: [String] { (headers["webhook-signature"] ?? "").split(separator: " ").map(String.init) }
    }

    /// Every request received so far, in order.
    func received() -> [Received] {
        var all: [Received] = []
        var number = 1
        while let data = try? Data(contentsOf: records.appendingPathComponent("\(number).json")),
              let record = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            all.append(Received(record: record))
            number += 1
        }
        return all
    }
}
