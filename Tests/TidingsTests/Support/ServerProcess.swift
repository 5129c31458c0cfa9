import Foundation
import Testing

/// A real `tidings` process, as an operator runs it, with its output captured to a file.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: `process` and the ports are only touched from the test that owns this object.
    private var process: ChildProcess?
    let logFile: URL
    let dataDirectory: URL
    /// The port the API answers on: HTTPS, or plain HTTP in development mode.
    private(set) var port = 0
    /// With `.https`: the plain-HTTP port (redirects, ACME challenges).
    private(set) var plainPort = 0
    let transport: Transport
    /// The plain-HTTP port to listen on (0: any free one).
    let requestedHTTPPort: Int

    /// How the server is reached: `.https` as an operator runs it (the local CA's certificate),
    /// or plain HTTP in development mode for tests about something else.
    enum Transport {
        case https
        case developmentPlainHTTP
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static var binary: String {
        get throws {
            if let path = ProcessInfo.processInfo.environment["TIDINGS_BINARY"] { return path }
            let fallback = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/debug/tidings").path
            guard FileManager.default.isExecutableFile(atPath: fallback) else {
                throw Failure(description: "No tidings binary: run scripts/test, or set TIDINGS_BINARY.")
            }
            return fallback
        }
    }

    /// The environment every command of this server gets: its data directory and database.
    let environment: [String: String]

    init(
        dataDirectory: URL, databaseURL: String, ownerURL: String? = nil, extraEnvironment: [String: String] = [:],
        transport: Transport = .developmentPlainHTTP, httpPort: Int = 0
    ) {
        self.dataDirectory = dataDirectory
        self.transport = transport
        self.requestedHTTPPort = httpPort
        self.logFile = dataDirectory.appendingPathComponent("server.log")
        var environment = ProcessInfo.processInfo.environment
        // When the suite's logs are captured, servers log everything, so a leak at any level shows.
        if TestLog.path != nil { environment["TIDINGS_LOG_LEVEL"] = "trace" }
        environment["TIDINGS_DATA_DIR"] = dataDirectory.appendingPathComponent("data").path
        environment["TIDINGS_DATABASE_URL"] = databaseURL
        environment["TIDINGS_DATABASE_OWNER_URL"] = ownerURL
        if transport == .developmentPlainHTTP {
            environment["TIDINGS_ENVIRONMENT"] = "development"
            environment["TIDINGS_PLAIN_HTTP"] = "true"
        }
        environment.merge(extraEnvironment) { $1 }
        self.environment = environment
    }

    /// Starts `tidings serve` on a free port and waits until it answers `/healthz`.
    func start() async throws {
        TestLog.append(log)  // a previous server's output in this directory, before it is replaced
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        defer { try? handle.close() }
        let process = try ChildProcess(
            try Self.binary, ["serve", "--port", "\(requestedHTTPPort)", "--https-port", "0"],
            environment: environment, output: handle.fileDescriptor, error: handle.fileDescriptor
        )
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let port = listeningPort(after: "Tidings is serving") {
                let plain = listeningPort(after: "plain-HTTP port redirects")
                if transport == .developmentPlainHTTP || plain != nil {
                    self.port = port
                    self.plainPort = plain ?? 0
                    return
                }
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(description: "tidings serve did not start:\n\(log)")
    }

    /// The port from a start-up line such as `address=[IPv4]127.0.0.1/127.0.0.1:PORT … Tidings is serving`.
    private func listeningPort(after message: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains(message) }),
              let range = line.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression)
        else { return nil }
        return Int(line[range].split(separator: ":").last!)
    }

    var log: String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }

    var baseURL: String { transport == .https ? "https://localhost:\(port)" : "http://127.0.0.1:\(port)" }
    var plainURL: String { "http://127.0.0.1:\(plainPort)" }
    /// The local CA's certificate, to give clients (`curl --cacert`).
    var caFile: String { dataDirectory.appendingPathComponent("data/tls/ca.pem").path }

    /// Sends SIGTERM and returns the exit status once the process has stopped.
    func stop(timeout: TimeInterval = 15) async throws -> Int32 {
        defer { TestLog.append(log) }
        guard let process else { throw Failure(description: "tidings serve was not started") }
        process.send(SIGTERM)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            process.send(SIGKILL)
            await process.waitForExit()
            throw Failure(description: "tidings serve did not stop within \(timeout) s of SIGTERM")
        }
        return await process.waitForExit()
    }

    /// Kills the server with SIGKILL, as a crash or an operator's `kill -9` would, and waits
    /// until it has gone.
    func kill() async {
        guard let process else { return }
        process.send(SIGKILL)
        await process.waitForExit()
        TestLog.append(log)
    }

    /// Runs another `tidings` command against the same data directory and database.
    func command(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try await run(try Self.binary, arguments, environment: environment)
        TestLog.append(result.stderr)
        return result
    }
}

/// Runs a program to completion and returns its exit status and output.
///
/// The output goes to files, not pipes: a child that writes more than a pipe holds to one
/// stream while the other is being read would otherwise wait forever. The wait suspends
/// instead of blocking, so a long-running child (schemathesis, pg_dump) never holds one of
/// the few threads the concurrently running tests share.
func run(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil, in directory: URL? = nil
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-run-\(UUID().uuidString)")
    let outFile = base.appendingPathExtension("out"), errFile = base.appendingPathExtension("err")
    defer {
        try? FileManager.default.removeItem(at: outFile)
        try? FileManager.default.removeItem(at: errFile)
    }
    _ = FileManager.default.createFile(atPath: outFile.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
    let out = try FileHandle(forWritingTo: outFile), err = try FileHandle(forWritingTo: errFile)
    // Standard input is /dev/null: a child that waits on its input (openssl s_client under
    // testssl.sh) gets EOF.
    let process: ChildProcess
    do {
        defer {
            try? out.close()
            try? err.close()
        }
        process = try ChildProcess(
            executable, arguments, environment: environment, directory: directory,
            output: out.fileDescriptor, error: err.fileDescriptor
        )
    }
    let status = await process.waitForExit()
    let stdout = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errFile, encoding: .utf8)) ?? ""
    return (status, stdout, stderr)
}
