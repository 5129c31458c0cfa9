import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing
import TidingsApp
import TidingsDomain
import TidingsServices
import TidingsStorage

/// A clock tests move by hand, so expiry and overlap are tested without sleeping.
final class TestClock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))

    var now: Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// Opens a migrated Tidings on a fresh database of `backend`, runs `body`, and cleans up.
/// `environment` stands for the process environment (e.g. AWS credentials).
func withTidings<T: Sendable>(
    _ backend: TestBackend,
    clock: TestClock? = nil,
    flags: [String: String] = [:],
    environment: [String: String] = [:],
    _ body: @Sendable (Tidings) async throws -> T
) async throws -> T {
    let scratch = try await Scratch.make(backend)
    let result: Result<T, any Error>
    do {
        result = .success(try await withTidings(on: scratch, clock: clock, flags: flags, environment: environment, body))
    } catch {
        result = .failure(error)
    }
    await scratch.remove()
    return try result.get()
}

/// Opens a migrated Tidings on `scratch` (which the caller removes), and runs `body`.
func withTidings<T: Sendable>(
    on scratch: Scratch,
    clock: TestClock? = nil,
    flags: [String: String] = [:],
    environment: [String: String] = [:],
    _ body: @Sendable (Tidings) async throws -> T
) async throws -> T {
    let configuration = try await TidingsConfiguration.load(
        flags: scratch.flags.merging(flags) { $1 },
        environment: environment
    )
    let now: @Sendable () -> Date
    if let clock {
        now = { clock.now }
    } else {
        now = { Date() }
    }
    let tidings = try await Tidings.open(configuration, logger: TestLog.logger("test"), now: now)
    // Tests act as an operator would, across workspaces; API requests are fenced by the server.
    return try await TenantScope.with(.instance) { try await tidings.withDatabase { tidings in
        try await tidings.migrate()
        let value = try await body(tidings)
        // While the database is open its WAL still holds recent pages: scan them too.
        if scratch.backend == .sqlite { await StorageScan.check(scratch) }
        return value
    } }
}

/// A workspace and its owner key, for API tests.
struct TestWorkspace: Sendable {
    var id: String
    var key: String
}

extension Tidings {
    func makeWorkspace(name: String = "Acme") async throws -> TestWorkspace {
        let created = try await workspaces.create(name: name, ownerEmail: "owner@acme.test", environment: .production, by: .tester)
        return TestWorkspace(id: created.workspace.id, key: created.token.secret)
    }
}

/// Runs `body` against the real router (no sockets) of a Tidings on `backend`.
func withAPI<T: Sendable>(
    _ backend: TestBackend,
    clock: TestClock? = nil,
    flags: [String: String] = [:],
    environment: [String: String] = [:],
    _ body: @Sendable (TestClient, Tidings) async throws -> T
) async throws -> T {
    try await withTidings(backend, clock: clock, flags: flags, environment: environment) { tidings in
        let application = try tidings.buildApplication()
        return try await application.test(.router) { client in
            try await body(TestClient(client: client), tidings)
        }
    }
}

/// JSON requests with a bearer key, and decoded answers.
struct TestClient: Sendable {
    let client: any TestClientProtocol

    struct Reply: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: String

        /// The body as a JSON object (empty when it is not one).
        var json: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
        }

        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var errorField: String? { (json["error"] as? [String: Any])?["field"] as? String }
        var data: [[String: Any]] { json["data"] as? [[String: Any]] ?? [] }
    }

    func request(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json: Any? = nil, body: String? = nil,
        contentType: String? = nil, headers extra: HTTPFields = [:]
    ) async throws -> Reply {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        var buffer: ByteBuffer?
        if let json {
            buffer = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json, options: [.fragmentsAllowed]))
            headers[.contentType] = contentType ?? "application/json"
        } else if let body {
            buffer = ByteBuffer(string: body)
            if let contentType { headers[.contentType] = contentType }
        }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: buffer)
        return Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
    }

    func get(_ uri: String, key: String?) async throws -> Reply {
        try await request(.get, uri, key: key)
    }

    func post(_ uri: String, key: String?, json: Any) async throws -> Reply {
        try await request(.post, uri, key: key, json: json)
    }

    func delete(_ uri: String, key: String?) async throws -> Reply {
        try await request(.delete, uri, key: key)
    }
}

extension AuditActor {
    /// The actor of changes a test makes directly through the services.
    static let tester = AuditActor(kind: .operator, id: "test-suite")
}

extension Tidings {
    /// The connection an administrator (or an attacker with the owner's credentials) has:
    /// the tables' owner on PostgreSQL, not bound by the application's grants.
    var adminDatabase: any DatabaseClient { ownerDatabase ?? database }
}
