import Crypto
import Foundation
import Testing
import TidingsApp
import TidingsCrypto
import TidingsDomain
@testable import TidingsKMS
import TidingsServices
import TidingsStorage

/// The `aws-kms` key-encryption-key provider against a real KMS-compatible server (moto) on loopback.
/// One test at a time: each starts its own moto_server, and several Python servers starting at
/// once starve the rest of the run on a small machine.
@Suite("AWS KMS", .serialized)
struct AWSKMSTests {
    @Test("A data key wrapped by KMS unwraps for its own workspace only")
    func wrapUnwrap() async throws {
        try await MotoServer.with { moto in
            let keyId = try await moto.createKey()
            try await moto.withProvider(keyId: keyId) { provider in
                #expect(provider.kekId == "aws-kms:\(keyId)")

                let dataKey = SymmetricKey(size: .bits256)
                let raw = dataKey.withUnsafeBytes { Data($0) }
                let wrapped = try await provider.wrap(dataKey, for: "ws_a")
                #expect(wrapped.range(of: raw) == nil, "the wrapped form does not hold the key")
                #expect(try await provider.unwrap(wrapped, for: "ws_a") == dataKey)

                // Each workspace has a KMS key of its own, made on first use and named by an alias.
                #expect(provider.kekId(for: "ws_a") == "aws-kms:alias/tidings/ws_a")
                let own = try await provider.client.describeKey("alias/tidings/ws_a")
                #expect(own.state == "Enabled")
                #expect(!keyId.hasSuffix(own.keyId), "not the instance's key")

                // A wrapped key copied to another workspace does not unwrap: not under that
                // workspace's key, nor under this one's with the other workspace as context.
                _ = try await provider.wrap(SymmetricKey(size: .bits256), for: "ws_b")
                await #expect(throws: KMSError.self) { _ = try await provider.unwrap(wrapped, for: "ws_b") }
                await #expect(throws: AWSKMSKeyProvider.Problem.self) {
                    _ = try await provider.unwrap(wrapped, for: "ws_b", kekId: provider.kekId(for: "ws_a"))
                }
                let instanceWrapped = try await provider.wrap(dataKey, for: Vault.instanceScope)
                do {
                    _ = try await provider.unwrap(instanceWrapped, for: "ws_b", kekId: provider.kekId)
                    Issue.record("a key wrapped for the instance unwrapped for ws_b")
                } catch let error as KMSError {
                    #expect(error.operation == "Decrypt")
                    #expect(error.errorType == "InvalidCiphertextException")
                }
            }
        }
    }

    @Test("GenerateDataKey gives a 256-bit key whose wrapped form unwraps to it, for its workspace only")
    func generateDataKey() async throws {
        try await MotoServer.with { moto in
            try await moto.withProvider(keyId: try await moto.createKey()) { provider in
                let generated = try await provider.generateDataKey(for: "ws_a")
                #expect(generated.key.bitCount == 256)
                #expect(try await provider.unwrap(generated.wrapped, for: "ws_a") == generated.key)
                await #expect(throws: (any Error).self) { _ = try await provider.unwrap(generated.wrapped, for: "ws_b") }
                let instance = try await provider.generateDataKey(for: Vault.instanceScope)
                #expect(try await provider.unwrap(instance.wrapped, for: Vault.instanceScope) == instance.key)
            }
        }
    }

    @Test("ReEncrypt moves a wrapped key under another KMS key, which then unwraps it; the old key no longer does")
    func rewrap() async throws {
        try await MotoServer.with { moto in
            let oldKey = try await moto.createKey()
            let newKey = try await moto.createKey()
            try await moto.withProvider(keyId: oldKey) { old in
                try await moto.withProvider(keyId: newKey) { new in
                    let dataKey = SymmetricKey(size: .bits256)
                    let scope = Vault.instanceScope
                    let wrapped = try await old.wrap(dataKey, for: scope)
                    let rewrapped = try await old.rewrap(wrapped, toKeyId: newKey)
                    #expect(rewrapped != wrapped)
                    #expect(AWSKMSKeyProvider.kekId(forKeyId: newKey) == new.kekId)
                    #expect(try await new.unwrap(rewrapped, for: scope) == dataKey)
                    // Unwrapping is pinned to the provider's own key.
                    await #expect(throws: KMSError.self) { _ = try await old.unwrap(rewrapped, for: scope, kekId: old.kekId) }
                    await #expect(throws: KMSError.self) { _ = try await new.unwrap(rewrapped, for: "ws_b", kekId: new.kekId) }
                }
            }
        }
    }

    @Test("Bad credentials and unknown keys fail with the operation and KMS's error type")
    func clearErrors() async throws {
        try await MotoServer.with { moto in
            let keyId = try await moto.createKey()
            let dataKey = SymmetricKey(size: .bits256)
            let cases: [(AWSCredentials, String, String)] = [
                (AWSCredentials(accessKeyId: moto.credentials.accessKeyId, secretAccessKey: "not-the-secret"), keyId, "SignatureDoesNotMatch"),
                (AWSCredentials(accessKeyId: "AKIDUNKNOWN", secretAccessKey: "whatever"), keyId, "InvalidClientTokenId"),
                (moto.credentials, "11111111-2222-3333-4444-555555555555", "NotFoundException"),
            ]
            for (credentials, key, type) in cases {
                try await moto.withProvider(keyId: key, credentials: credentials) { provider in
                    do {
                        _ = try await provider.wrap(dataKey, for: Vault.instanceScope)
                        Issue.record("wrapping succeeded; expected \(type)")
                    } catch let error as KMSError {
                        #expect(error.operation == "Encrypt")
                        #expect(error.errorType == type)
                        #expect(error.description.hasPrefix("AWS KMS Encrypt failed with \(type) (HTTP "), "\(error)")
                        #expect(!error.description.contains("not-the-secret"))
                    }
                }
            }
        }
    }

    @Test("A KMS that does not answer in time fails the request with a clear error")
    func timeout() async throws {
        // Listens (the kernel completes the handshake) but never answers.
        let socket = try MotoServer.boundLoopbackSocket()
        defer { close(socket) }
        #expect(listen(socket, 8) == 0)
        let port = try MotoServer.port(of: socket)
        let settings = AWSKMSKeyProvider.Settings(
            keyId: "alias/tidings", region: "us-east-1", endpoint: try KMSEndpoint(parsing: "http://127.0.0.1:\(port)", policy: .development),
            credentials: AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret"), timeout: .milliseconds(500)
        )
        try await withKMSProvider(settings) { provider in
            let started = ContinuousClock.now
            do {
                _ = try await provider.wrap(SymmetricKey(size: .bits256), for: "ws_a")
                Issue.record("a silent endpoint answered")
            } catch let error as KMSError {
                #expect(error.operation == "Encrypt")
                guard case .transport = error.reason else {
                    Issue.record("expected a transport failure, got \(error)")
                    return
                }
                #expect(error.description.hasPrefix("AWS KMS Encrypt failed: no answer"))
            }
            // Without the limit the request would wait for ever; the bound leaves room for a loaded machine.
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test("Plain http:// is accepted only for loopback endpoints, and only outside production", arguments: [
        ("https://kms.eu-west-1.amazonaws.com", true, true),
        ("https://kms.internal:8443/", true, true),
        ("http://127.0.0.1:4566", true, false),
        ("http://127.8.9.10", true, false),
        ("http://localhost:4566", true, false),
        ("http://[::1]:4566", true, false),
        ("http://[::ffff:127.0.0.1]:4566", true, false),
        ("http://10.0.0.5:4566", false, false),
        ("http://kms.eu-west-1.amazonaws.com", false, false),
        ("http://127.0.0.1.example.com", false, false),
        ("http://[::2]:4566", false, false),
        ("http://128.0.0.1", false, false),
        ("ftp://127.0.0.1", false, false),
        ("kms.eu-west-1.amazonaws.com", false, false),
        ("https://user:pass@kms.eu-west-1.amazonaws.com", false, false),
    ])
    func endpointSchemes(url: String, inDevelopment: Bool, inProduction: Bool) throws {
        for (policy, accepted) in [(OutboundURLPolicy.development, inDevelopment), (.init(environment: .staging), inDevelopment), (.production, inProduction)] {
            if accepted {
                let endpoint = try KMSEndpoint(parsing: url, policy: policy)
                #expect(endpoint.path == "/")
            } else {
                #expect(throws: KMSEndpoint.Refused.self, "\(url) in \(policy.environment)") { _ = try KMSEndpoint(parsing: url, policy: policy) }
            }
        }
    }

    @Test("A refused endpoint says why: not loopback, or production")
    func refusalsExplain() {
        func refusal(_ url: String, _ policy: OutboundURLPolicy) -> String {
            do {
                _ = try KMSEndpoint(parsing: url, policy: policy)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal("http://127.0.0.1:4566", .production).contains("production refuses"))
        #expect(refusal("http://127.0.0.1:4566", .production).contains("TIDINGS_ENVIRONMENT=development"))
        #expect(refusal("http://kms.internal", .development).contains("not loopback"))
    }

    @Test("The endpoint's Host header and request URL")
    func endpointForms() throws {
        #expect(try KMSEndpoint.aws(region: "eu-west-1").requestURL == "https://kms.eu-west-1.amazonaws.com/")
        #expect(try KMSEndpoint.aws(region: "eu-west-1").hostHeader == "kms.eu-west-1.amazonaws.com")
        #expect(try KMSEndpoint.aws(region: "cn-north-1").hostHeader == "kms.cn-north-1.amazonaws.com.cn")
        #expect(try KMSEndpoint(parsing: "http://127.0.0.1:4566", policy: .development).hostHeader == "127.0.0.1:4566")
        #expect(try KMSEndpoint(parsing: "http://[::1]:4566", policy: .development).requestURL == "http://[::1]:4566/")
        #expect(try KMSEndpoint(parsing: "https://kms.example.test:443", policy: .production).hostHeader == "kms.example.test")
    }

    @Test("KMS error answers are read from JSON, the error-type header or AWS's XML form")
    func errorParsing() {
        func reason(_ body: String, status: Int = 400, header: String? = nil) -> KMSError.Reason {
            KMSClient.serviceError(status: status, errorTypeHeader: header, body: Data(body.utf8))
        }
        #expect(reason(#"{"__type":"com.amazonaws.kms#NotFoundException","message":"Key 'k' does not exist"}"#)
            == .service(type: "NotFoundException", message: "Key 'k' does not exist", status: 400))
        #expect(reason(#"{"__type":"AccessDeniedException","Message":"denied"}"#) == .service(type: "AccessDeniedException", message: "denied", status: 400))
        #expect(reason("", status: 403, header: "UnrecognizedClientException:http://internal.amazon.com/coral/")
            == .service(type: "UnrecognizedClientException", message: "", status: 403))
        #expect(reason("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error></ErrorResponse>", status: 403)
            == .service(type: "SignatureDoesNotMatch", message: "no", status: 403))
        #expect(reason("Bad Gateway", status: 502) == .service(type: "HTTP 502", message: "", status: 502))
        let error = KMSError(operation: "Decrypt", reason: .service(type: "InvalidCiphertextException", message: "", status: 400))
        #expect(error.description == "AWS KMS Decrypt failed with InvalidCiphertextException (HTTP 400)")
    }

    @Test("keys rotate-kek --to-key-id re-wraps every data key under another KMS key, and the data stays readable")
    func rotateKEKInKMS() async throws {
        try await MotoServer.with { moto in
            let first = try await moto.createKey()
            let second = try await moto.createKey()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidings-kms-cli-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            func environment(_ keyId: String) -> [String: String] {
                ProcessInfo.processInfo.environment.merging([
                    "TIDINGS_DATA_DIR": directory.path, "TIDINGS_DATABASE_URL": "sqlite://\(directory.path)/tidings.sqlite",
                    "TIDINGS_KMS_PROVIDER": "aws-kms", "TIDINGS_KMS_KEY_ID": keyId, "TIDINGS_KMS_ENDPOINT": moto.endpoint,
                    // moto speaks plain HTTP on loopback, which production refuses.
                    "TIDINGS_ENVIRONMENT": "development",
                    "AWS_REGION": MotoServer.region, "AWS_ACCESS_KEY_ID": moto.credentials.accessKeyId,
                    "AWS_SECRET_ACCESS_KEY": moto.credentials.secretAccessKey,
                ]) { $1 }
            }
            let binary = try ServerProcess.binary
            let created = try await run(binary, ["workspace", "create", "--name", "KMS", "--owner-email", "kim@kms.test", "--json"], environment: environment(first))
            #expect(created.status == 0, "\(created.stderr)")
            let workspaceId = try #require((try JSONSerialization.jsonObject(with: Data(created.stdout.utf8)) as? [String: String])?["workspaceId"])
            #expect(try await run(binary, ["keys", "rotate-data-key", "--workspace", workspaceId], environment: environment(first)).status == 0)

            let unnamed = try await run(binary, ["keys", "rotate-kek"], environment: environment(first))
            #expect(unnamed.status != 0 && unnamed.stderr.contains("--to-key-id"), "\(unnamed.stderr)")
            let rotated = try await run(binary, ["keys", "rotate-kek", "--to-key-id", second], environment: environment(first))
            #expect(rotated.status == 0, "\(rotated.stderr)")
            #expect(rotated.stdout.contains("TIDINGS_KMS_KEY_ID=\(second)"))

            // Under the new key both the instance's and the workspace's keys open.
            let listed = try await run(binary, ["workspace", "list"], environment: environment(second))
            #expect(listed.status == 0 && listed.stdout.contains(workspaceId), "\(listed.stderr)")
            let resealed = try await run(binary, ["keys", "rotate-data-key", "--workspace", workspaceId], environment: environment(second))
            #expect(resealed.status == 0, "\(resealed.stderr)")
            // The old key no longer opens anything.
            #expect(try await run(binary, ["workspace", "list"], environment: environment(first)).status != 0)
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("secrets/kek.key").path), "no local KEK is made")
        }
    }

    @Test("Tidings configured with aws-kms seals and opens event properties through the API", arguments: TestBackend.all)
    func endToEnd(backend: TestBackend) async throws {
        try await MotoServer.with { moto in
            let keyId = try await moto.createKey()
            let flags = [
                TidingsConfiguration.Key.kmsProvider: "aws-kms",
                TidingsConfiguration.Key.kmsKeyId: keyId,
                TidingsConfiguration.Key.kmsEndpoint: moto.endpoint,
                // moto speaks plain HTTP on loopback, which production refuses.
                TidingsConfiguration.Key.environment: "development",
            ]
            let environment = [
                "AWS_REGION": MotoServer.region,
                "AWS_ACCESS_KEY_ID": moto.credentials.accessKeyId,
                "AWS_SECRET_ACCESS_KEY": moto.credentials.secretAccessKey,
            ]
            try await withAPI(backend, flags: flags, environment: environment) { api, tidings in
                #expect(tidings.keyProvider.kekId == "aws-kms:\(keyId)")
                let workspace = try await tidings.makeWorkspace()
                let marker = "plan-\(UUID().uuidString)"
                let recorded = try await api.post("/v1/events", key: workspace.key, json: [
                    "email": "kms@example.com", "slug": "upgraded", "properties": ["plan": marker, "seats": 7],
                ])
                #expect(recorded.status == .created)
                let events = try await api.get("/v1/contacts/kms@example.com/events", key: workspace.key)
                let properties = events.data.first?["properties"] as? [String: Any]
                #expect(properties?["plan"] as? String == marker)
                #expect(properties?["seats"] as? Int == 7)

                let stored = try await tidings.database.read { db in
                    try await db.raw("SELECT id, properties FROM events").all().map {
                        (id: try $0.decode(column: "id", as: String.self), properties: try $0.decode(column: "properties", as: String?.self) ?? "")
                    }
                }
                #expect(stored.count == 1)
                let sealed = try #require(stored.first)
                #expect(!sealed.properties.contains(marker))

                // The data key is stored wrapped by the KMS key, under the workspace's context.
                let keys = try await tidings.database.read { db in try await WorkspaceKeyRepository(db, workspaceId: workspace.id).list(.data) }
                #expect(keys.count == 1)
                #expect(keys.first?.kekId == "aws-kms:alias/tidings/\(workspace.id)")
                try await moto.withProvider(keyId: keyId) { other in
                    let wrapped = try #require(keys.first?.wrapped)
                    _ = try await other.unwrap(wrapped, for: workspace.id)
                    await #expect(throws: (any Error).self) { _ = try await other.unwrap(wrapped, for: "ws_other") }

                    // Another instance, with its own provider for the same KMS key, opens what this one sealed.
                    let vault = try await Keyring(database: tidings.database, provider: other).vault(for: workspace.id)
                    let opened = try await vault.open(sealed.properties, table: "events", column: "properties", row: sealed.id)
                    #expect(opened.contains(marker))

                    // Deleting the workspace deletes its KMS key's alias and schedules the key's
                    // deletion: the wrapped key copied out before (as any backup holds it) is dead.
                    let workspaceKey = try await other.client.describeKey(AWSKMSKeyProvider.workspaceAlias(workspace.id))
                    try await tidings.workspaces.delete(id: workspace.id, by: .tester)
                    #expect(try await other.client.describeKey(workspaceKey.keyId).state == "PendingDeletion")
                    await #expect(throws: WorkspaceKeysDestroyed.self) { _ = try await other.unwrap(wrapped, for: workspace.id) }
                }
                #expect(!FileManager.default.fileExists(atPath: tidings.configuration.kekFile), "no local KEK is made")
            }
        }
    }
}
