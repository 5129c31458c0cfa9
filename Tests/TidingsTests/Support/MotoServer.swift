import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import TidingsDomain
@testable import TidingsKMS

/// A real `moto_server` on loopback, speaking the KMS and IAM APIs, with request signatures checked.
///
/// moto checks SigV4 signatures and IAM policies once its first few actions are done: the first
/// three create an IAM user with a KMS policy and an access key, and every request after that
/// must be signed with that key, so these tests also prove the signing against an independent
/// verifier. The server is required: if it cannot be started the test fails (never skips).
final class MotoServer: Sendable {
    private let process: ChildProcess
    let logFile: URL
    let port: Int
    let credentials: AWSCredentials
    static let region = "us-east-1"

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// `TIDINGS_MOTO_SERVER` (set by scripts/test), else `moto_server` on PATH.
    static var executable: String {
        get throws {
            let environment = ProcessInfo.processInfo.environment
            if let path = environment["TIDINGS_MOTO_SERVER"], !path.isEmpty { return path }
            for directory in (environment["PATH"] ?? "").split(separator: ":") {
                let candidate = "\(directory)/moto_server"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
            throw Failure(description: """
                The AWS KMS tests need moto_server: run scripts/test (it installs moto[server] from \
                scripts/requirements-test.txt), or set TIDINGS_MOTO_SERVER to its path.
                """)
        }
    }

    /// Plain HTTP on loopback: allowed outside production only (`OutboundURLPolicy`), so every
    /// Tidings pointed at it runs as `development`.
    var endpoint: String { "http://127.0.0.1:\(port)" }

    private init(process: ChildProcess, logFile: URL, port: Int, credentials: AWSCredentials) {
        self.process = process
        self.logFile = logFile
        self.port = port
        self.credentials = credentials
    }

    /// Starts moto on a free loopback port, gives it an IAM user allowed to use KMS, runs `body`, stops it.
    static func with<T: Sendable>(_ body: (MotoServer) async throws -> T) async throws -> T {
        let server = try await start()
        do {
            let result = try await body(server)
            server.stop()
            return result
        } catch {
            server.stop()
            throw error
        }
    }

    private static func start() async throws -> MotoServer {
        let executable = try executable
        var lastLog = ""
        // A port found free may be taken before moto binds it: try a few.
        for _ in 0..<3 {
            let port = try freePort()
            let logFile = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-moto-\(UUID().uuidString).log")
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
            let handle = try FileHandle(forWritingTo: logFile)
            var environment = ProcessInfo.processInfo.environment
            // Requests after the first three must be signed by a known IAM user and allowed by its policy.
            environment["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
            defer { try? handle.close() }
            let process: ChildProcess
            do {
                process = try ChildProcess(
                    executable, ["-H", "127.0.0.1", "-p", String(port)], environment: environment,
                    output: handle.fileDescriptor, error: handle.fileDescriptor
                )
            } catch {
                try? FileManager.default.removeItem(at: logFile)
                throw Failure(description: "Could not run moto_server at \(executable) (\(error)); run scripts/test, or set TIDINGS_MOTO_SERVER.")
            }

            do {
                let deadline = Date().addingTimeInterval(30)
                while Date() < deadline, process.isRunning, !log(logFile).contains("Running on http://") {
                    try await Task.sleep(for: .milliseconds(50))
                }
                lastLog = log(logFile)
                guard process.isRunning, lastLog.contains("Running on http://") else {
                    forceStop(process)
                    try? FileManager.default.removeItem(at: logFile)
                    continue
                }
                let credentials: AWSCredentials
                do {
                    credentials = try await createKMSUser(port: port)
                } catch {
                    throw Failure(description: "moto_server started but its IAM set-up failed: \(error)\n\(log(logFile))")
                }
                return MotoServer(process: process, logFile: logFile, port: port, credentials: credentials)
            } catch {
                forceStop(process)
                try? FileManager.default.removeItem(at: logFile)
                throw error
            }
        }
        throw Failure(description: "moto_server (\(executable)) did not start:\n\(lastLog)")
    }

    func stop() {
        Self.forceStop(process)
        try? FileManager.default.removeItem(at: logFile)
    }

    /// moto keeps nothing worth a graceful stop.
    private static func forceStop(_ process: ChildProcess) {
        process.killAndWait()
    }

    private static func log(_ file: URL) -> String {
        (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    }

    /// Runs `body` with a provider for `keyId` on this server, signing as its IAM user (or with `credentials`).
    func withProvider<T: Sendable>(
        keyId: String, credentials: AWSCredentials? = nil, _ body: (AWSKMSKeyProvider) async throws -> T
    ) async throws -> T {
        try await withKMSProvider(.init(
            keyId: keyId, region: Self.region, endpoint: try KMSEndpoint(parsing: endpoint, policy: .development), credentials: credentials ?? self.credentials
        ), body)
    }

    /// Creates a symmetric KMS key (KMS `CreateKey`) and returns its id.
    func createKey() async throws -> String {
        struct Input: Encodable { var Description = "tidings test KEK" }
        struct Output: Decodable {
            struct Metadata: Decodable { var KeyId: String }
            var KeyMetadata: Metadata
        }
        let client = KMSClient(endpoint: try KMSEndpoint(parsing: endpoint, policy: .development), region: Self.region, credentials: credentials)
        do {
            let output: Output = try await client.perform("CreateKey", Input())
            try await client.shutdown()
            return output.KeyMetadata.KeyId
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    // MARK: Set-up

    /// The three unauthenticated actions: an IAM user, its KMS policy and its access key.
    private static func createKMSUser(port: Int) async throws -> AWSCredentials {
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#
        _ = try await iam(port: port, ["Action": "CreateUser", "UserName": "tidings"])
        _ = try await iam(port: port, ["Action": "PutUserPolicy", "UserName": "tidings", "PolicyName": "kms", "PolicyDocument": policy])
        let answer = try await iam(port: port, ["Action": "CreateAccessKey", "UserName": "tidings"])
        guard let id = element("AccessKeyId", in: answer), let secret = element("SecretAccessKey", in: answer) else {
            throw Failure(description: "CreateAccessKey answered without a key: \(answer)")
        }
        return AWSCredentials(accessKeyId: id, secretAccessKey: secret)
    }

    /// One IAM Query API call (form-encoded POST, signed for service `iam`).
    private static func iam(port: Int, _ parameters: [String: String]) async throws -> String {
        let form = parameters.merging(["Version": "2010-05-08"]) { $1 }.sorted { $0.key < $1.key }
            .map { "\(SigV4Signer.uriEncode($0.key))=\(SigV4Signer.uriEncode($0.value))" }
        let body = Data(form.joined(separator: "&").utf8)
        let signer = SigV4Signer(credentials: AWSCredentials(accessKeyId: "AKIDSETUP", secretAccessKey: "setup"), region: region, service: "iam")
        let signed = signer.sign(.init(
            method: "POST", host: "127.0.0.1:\(port)", path: "/",
            headers: [(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")], body: body
        ), at: Date())
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/")
        request.method = .POST
        for header in signed.headers { request.headers.add(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status == .ok else { throw Failure(description: "IAM \(parameters["Action"] ?? "?"): \(response.status) \(text)") }
        return text
    }

    private static func element(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return String(xml[open.upperBound..<close.lowerBound])
    }

    /// A loopback port nothing listens on right now.
    static func freePort() throws -> Int {
        let socket = try boundLoopbackSocket()
        defer { close(socket) }
        return try port(of: socket)
    }

    /// A TCP socket bound to 127.0.0.1 on a port the system picks.
    static func boundLoopbackSocket() throws -> Int32 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw Failure(description: "bind() failed")
        }
        return fd
    }

    static func port(of socket: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        guard named == 0 else { throw Failure(description: "getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs `body` with a provider for `settings`, and shuts its HTTP client down however `body` ends.
func withKMSProvider<T: Sendable>(_ settings: AWSKMSKeyProvider.Settings, _ body: (AWSKMSKeyProvider) async throws -> T) async throws -> T {
    let provider = try AWSKMSKeyProvider(settings: settings)
    do {
        let result = try await body(provider)
        try await provider.shutdown()
        return result
    } catch {
        try? await provider.shutdown()
        throw error
    }
}

extension OutboundURLPolicy {
    /// What a development instance allows: plain http:// to loopback, as moto_server speaks it.
    static let development = OutboundURLPolicy(environment: .development)
    static let production = OutboundURLPolicy(environment: .production)
}
