import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// A call to AWS KMS that did not succeed: which operation, and what KMS (or the way to it) said.
public struct KMSError: Error, CustomStringConvertible, Sendable {
    public enum Reason: Sendable, Equatable {
        /// KMS answered with an error: its type (`NotFoundException`, `InvalidCiphertextException`,
        /// `AccessDeniedException`, `UnrecognizedClientException`, …) and message.
        case service(type: String, message: String, status: Int)
        /// No answer: the connection, TLS or the time limit failed.
        case transport(String)
        /// An answer that is not what the operation returns.
        case malformedResponse(String)
    }

    /// The KMS operation, e.g. `Decrypt`.
    public var operation: String
    public var reason: Reason

    public init(operation: String, reason: Reason) {
        self.operation = operation
        self.reason = reason
    }

    /// The KMS error type, when KMS answered with one.
    public var errorType: String? {
        if case .service(let type, _, _) = reason { return type }
        return nil
    }

    public var description: String {
        switch reason {
        case .service(let type, let message, let status):
            return "AWS KMS \(operation) failed with \(type) (HTTP \(status))\(message.isEmpty ? "" : ": \(message)")"
        case .transport(let detail):
            return "AWS KMS \(operation) failed: no answer (\(detail))"
        case .malformedResponse(let detail):
            return "AWS KMS \(operation) failed: unreadable answer (\(detail))"
        }
    }
}

/// The AWS KMS JSON API (`POST /`, `application/x-amz-json-1.1`, `X-Amz-Target: TrentService.<Op>`),
/// signed with SigV4. Owns one HTTP client: call `shutdown()` once done.
public final class KMSClient: Sendable {
    public let endpoint: KMSEndpoint
    private let signer: SigV4Signer
    private let httpClient: HTTPClient
    private let timeout: TimeAmount
    private let now: @Sendable () -> Date
    private let isShutDown = Mutex(false)

    /// The largest answer read; KMS answers are a few kilobytes.
    static let maxResponseBytes = 1 << 20

    /// - Parameter timeout: the limit for each request as a whole (connecting, sending, answering).
    public init(
        endpoint: KMSEndpoint, region: String, credentials: AWSCredentials,
        timeout: Duration = .seconds(10), now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.endpoint = endpoint
        self.signer = SigV4Signer(credentials: credentials, region: region, service: "kms")
        let nanoseconds = timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        self.timeout = .nanoseconds(nanoseconds)
        self.now = now
        let configuration = HTTPClient.Configuration(
            // A signed request is never sent anywhere else.
            redirectConfiguration: .disallow,
            timeout: .init(connect: .nanoseconds(nanoseconds), read: .nanoseconds(nanoseconds))
        )
        self.httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the HTTP client's connections; calling it again does nothing.
    public func shutdown() async throws {
        let first = isShutDown.withLock { done in
            defer { done = true }
            return !done
        }
        if first { try await httpClient.shutdown() }
    }

    // MARK: Operations

    public struct EncryptResult: Sendable {
        public var ciphertext: Data
        /// The ARN of the key that encrypted.
        public var keyId: String
    }

    /// `Encrypt`: up to 4 KiB of `plaintext` under `keyId`, bound to `context`.
    public func encrypt(keyId: String, plaintext: Data, context: [String: String]) async throws -> EncryptResult {
        struct Input: Encodable {
            var KeyId: String
            var Plaintext: Data
            var EncryptionContext: [String: String]
        }
        struct Output: Decodable {
            var CiphertextBlob: Data
            var KeyId: String
        }
        let output: Output = try await perform("Encrypt", Input(KeyId: keyId, Plaintext: plaintext, EncryptionContext: context))
        return EncryptResult(ciphertext: output.CiphertextBlob, keyId: output.KeyId)
    }

    public struct DecryptResult: Sendable {
        public var plaintext: Data
        public var keyId: String
    }

    /// `Decrypt`: fails unless `context` is the one given at encryption and, when `keyId` is
    /// given, unless that key made the ciphertext.
    public func decrypt(ciphertext: Data, context: [String: String], keyId: String?) async throws -> DecryptResult {
        struct Input: Encodable {
            var CiphertextBlob: Data
            var EncryptionContext: [String: String]
            var KeyId: String?
        }
        struct Output: Decodable {
            var Plaintext: Data
            var KeyId: String
        }
        let output: Output = try await perform("Decrypt", Input(CiphertextBlob: ciphertext, EncryptionContext: context, KeyId: keyId))
        return DecryptResult(plaintext: output.Plaintext, keyId: output.KeyId)
    }

    public struct ReEncryptResult: Sendable {
        public var ciphertext: Data
        public var keyId: String
        public var sourceKeyId: String
    }

    /// `ReEncrypt`: decrypts and encrypts again inside KMS, so the plaintext never leaves it.
    public func reEncrypt(
        ciphertext: Data, sourceContext: [String: String], sourceKeyId: String?,
        destinationKeyId: String, destinationContext: [String: String]
    ) async throws -> ReEncryptResult {
        struct Input: Encodable {
            var CiphertextBlob: Data
            var SourceEncryptionContext: [String: String]
            var SourceKeyId: String?
            var DestinationKeyId: String
            var DestinationEncryptionContext: [String: String]
        }
        struct Output: Decodable {
            var CiphertextBlob: Data
            var KeyId: String
            var SourceKeyId: String
        }
        let output: Output = try await perform("ReEncrypt", Input(
            CiphertextBlob: ciphertext, SourceEncryptionContext: sourceContext, SourceKeyId: sourceKeyId,
            DestinationKeyId: destinationKeyId, DestinationEncryptionContext: destinationContext
        ))
        return ReEncryptResult(ciphertext: output.CiphertextBlob, keyId: output.KeyId, sourceKeyId: output.SourceKeyId)
    }

    public struct DataKeyResult: Sendable {
        public var plaintext: Data
        public var ciphertext: Data
        public var keyId: String
    }

    /// `GenerateDataKey` with `KeySpec` `AES_256`: a fresh 256-bit key, in the clear and encrypted under `keyId`.
    public func generateDataKey(keyId: String, context: [String: String]) async throws -> DataKeyResult {
        struct Input: Encodable {
            var KeyId: String
            var KeySpec = "AES_256"
            var EncryptionContext: [String: String]
        }
        struct Output: Decodable {
            var Plaintext: Data
            var CiphertextBlob: Data
            var KeyId: String
        }
        let output: Output = try await perform("GenerateDataKey", Input(KeyId: keyId, EncryptionContext: context))
        return DataKeyResult(plaintext: output.Plaintext, ciphertext: output.CiphertextBlob, keyId: output.KeyId)
    }

    /// `CreateKey`: a new symmetric encryption key, described and tagged; returns its key id.
    public func createKey(description: String, tags: [String: String]) async throws -> String {
        struct Tag: Encodable {
            var TagKey: String
            var TagValue: String
        }
        struct Input: Encodable {
            var Description: String
            var KeyUsage = "ENCRYPT_DECRYPT"
            var KeySpec = "SYMMETRIC_DEFAULT"
            var Tags: [Tag]
        }
        struct Metadata: Decodable {
            var KeyId: String
        }
        struct Output: Decodable {
            var KeyMetadata: Metadata
        }
        let tagList = tags.sorted { $0.key < $1.key }.map { Tag(TagKey: $0.key, TagValue: $0.value) }
        let output: Output = try await perform("CreateKey", Input(Description: description, Tags: tagList))
        return output.KeyMetadata.KeyId
    }

    /// `CreateAlias`: names `targetKeyId` with `aliasName` (`alias/…`); fails with
    /// `AlreadyExistsException` when the name is taken.
    public func createAlias(_ aliasName: String, targetKeyId: String) async throws {
        struct Input: Encodable {
            var AliasName: String
            var TargetKeyId: String
        }
        let _: Empty = try await perform("CreateAlias", Input(AliasName: aliasName, TargetKeyId: targetKeyId))
    }

    /// `DeleteAlias`.
    public func deleteAlias(_ aliasName: String) async throws {
        struct Input: Encodable {
            var AliasName: String
        }
        let _: Empty = try await perform("DeleteAlias", Input(AliasName: aliasName))
    }

    public struct KeyDescription: Sendable {
        public var keyId: String
        /// `Enabled`, `Disabled`, `PendingDeletion`, …
        public var state: String
    }

    /// `DescribeKey`: the key id and state of a key id, ARN or alias.
    public func describeKey(_ keyId: String) async throws -> KeyDescription {
        struct Input: Encodable {
            var KeyId: String
        }
        struct Metadata: Decodable {
            var KeyId: String
            var KeyState: String?
        }
        struct Output: Decodable {
            var KeyMetadata: Metadata
        }
        let output: Output = try await perform("DescribeKey", Input(KeyId: keyId))
        return KeyDescription(keyId: output.KeyMetadata.KeyId, state: output.KeyMetadata.KeyState ?? "Enabled")
    }

    /// `EnableKeyRotation`: KMS rotates the key's material every year, keeping old material
    /// for decryption.
    public func enableKeyRotation(_ keyId: String) async throws {
        struct Input: Encodable {
            var KeyId: String
        }
        let _: Empty = try await perform("EnableKeyRotation", Input(KeyId: keyId))
    }

    /// `ScheduleKeyDeletion`: the key is disabled at once and deleted after `pendingDays`
    /// (7–30); nothing it encrypted can be decrypted after that.
    public func scheduleKeyDeletion(_ keyId: String, pendingDays: Int) async throws {
        struct Input: Encodable {
            var KeyId: String
            var PendingWindowInDays: Int
        }
        let _: Empty = try await perform("ScheduleKeyDeletion", Input(KeyId: keyId, PendingWindowInDays: pendingDays))
    }

    /// An answer whose content is not needed.
    struct Empty: Decodable {}

    // MARK: Transport

    /// Sends one operation of the KMS JSON API and decodes its answer. Binary fields are base64 in
    /// JSON, which is how `JSONEncoder` and `JSONDecoder` treat `Data`.
    public func perform<Input: Encodable, Output: Decodable>(_ operation: String, _ input: Input) async throws -> Output {
        let body: Data
        do {
            body = try JSONEncoder().encode(input)
        } catch {
            throw KMSError(operation: operation, reason: .malformedResponse("could not encode the request: \(error)"))
        }
        let signed = signer.sign(SigV4Signer.Request(
            method: "POST", host: endpoint.hostHeader, path: endpoint.path,
            headers: [
                (name: "Content-Type", value: "application/x-amz-json-1.1"),
                (name: "X-Amz-Target", value: "TrentService.\(operation)"),
            ],
            body: body
        ), at: now())

        var request = HTTPClientRequest(url: endpoint.requestURL)
        request.method = .POST
        for header in signed.headers {
            request.headers.add(name: header.name, value: header.value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))

        let status: Int
        let headers: HTTPHeaders
        let answer: Data
        do {
            let response = try await httpClient.execute(request, timeout: timeout)
            status = Int(response.status.code)
            headers = response.headers
            answer = Data(try await response.body.collect(upTo: Self.maxResponseBytes).readableBytesView)
        } catch {
            throw KMSError(operation: operation, reason: .transport("\(endpoint): \(error)"))
        }
        guard (200..<300).contains(status) else {
            throw KMSError(operation: operation, reason: Self.serviceError(
                status: status, errorTypeHeader: headers.first(name: "x-amzn-ErrorType"), body: answer
            ))
        }
        do {
            // Operations without output (CreateAlias, DeleteAlias) may answer with an empty body.
            return try JSONDecoder().decode(Output.self, from: answer.isEmpty ? Data("{}".utf8) : answer)
        } catch {
            throw KMSError(operation: operation, reason: .malformedResponse("HTTP \(status): \(error)"))
        }
    }

    /// KMS answers errors as JSON `{"__type": "…#NotFoundException", "message": "…"}`; the type
    /// may also come in `X-Amzn-ErrorType`, and a few front ends answer with AWS's XML error form.
    static func serviceError(status: Int, errorTypeHeader: String?, body: Data) -> KMSError.Reason {
        var type: String?
        var message = ""
        if let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] {
            type = (object["__type"] as? String) ?? (object["code"] as? String) ?? (object["Code"] as? String)
            message = (object["message"] as? String) ?? (object["Message"] as? String) ?? ""
        } else {
            let text = String(decoding: body, as: UTF8.self)
            type = firstElement("Code", in: text)
            message = firstElement("Message", in: text) ?? ""
        }
        if type == nil || type?.isEmpty == true {
            type = errorTypeHeader
        }
        let name = type.map(shortTypeName) ?? ""
        return .service(type: name.isEmpty ? "HTTP \(status)" : name, message: String(message.prefix(500)), status: status)
    }

    /// `com.amazonaws.kms#NotFoundException` and `NotFoundException:http://…` are both `NotFoundException`.
    static func shortTypeName(_ type: String) -> String {
        var name = Substring(type)
        if let hash = name.lastIndex(of: "#") { name = name[name.index(after: hash)...] }
        if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
        return name.trimmingCharacters(in: .whitespaces)
    }

    private static func firstElement(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return String(xml[open.upperBound..<close.lowerBound])
    }
}
