import Crypto
import Foundation
import TidingsCrypto

/// A KEK that never leaves AWS KMS (or a KMS-compatible service): data keys are wrapped with
/// KMS `Encrypt` and unwrapped with `Decrypt`, the workspace bound in as encryption context
/// (`{"tidings:workspace": id}`), so a wrapped key copied to another workspace does not unwrap.
///
/// The provider owns an HTTP client: call `shutdown()` when done with it.
public final class AWSKMSKeyProvider: KeyEncryptionKeyProvider {
    public struct Settings: Sendable, CustomStringConvertible {
        /// Key id, key ARN, alias name (`alias/…`) or alias ARN of a symmetric KMS key.
        public var keyId: String
        public var region: String
        public var endpoint: KMSEndpoint
        public var credentials: AWSCredentials
        /// The limit for each KMS request.
        public var timeout: Duration

        public init(keyId: String, region: String, endpoint: KMSEndpoint, credentials: AWSCredentials, timeout: Duration = .seconds(10)) {
            self.keyId = keyId
            self.region = region
            self.endpoint = endpoint
            self.credentials = credentials
            self.timeout = timeout
        }

        /// Names the key, region and endpoint; never the credentials.
        public var description: String {
            "aws-kms key \(keyId) in \(region) at \(endpoint)"
        }
    }

    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// A data key made by KMS: the key itself, and its wrapped form to store.
    public struct GeneratedKey: Sendable {
        public var key: SymmetricKey
        public var wrapped: Data
    }

    /// The encryption-context entry that binds a wrapped key to its workspace.
    public static let workspaceContextKey = "tidings:workspace"

    public let kekId: String
    public let keyId: String
    public let client: KMSClient

    public init(settings: Settings, now: @escaping @Sendable () -> Date = Date.init) throws {
        guard !settings.keyId.isEmpty else { throw Problem(description: "The AWS KMS key id is empty.") }
        guard !settings.region.isEmpty else { throw Problem(description: "The AWS KMS region is empty.") }
        self.keyId = settings.keyId
        self.kekId = Self.kekId(forKeyId: settings.keyId)
        self.client = KMSClient(
            endpoint: settings.endpoint, region: settings.region, credentials: settings.credentials,
            timeout: settings.timeout, now: now
        )
    }

    /// The `kekId` recorded with keys wrapped under `keyId`.
    public static func kekId(forKeyId keyId: String) -> String {
        "aws-kms:" + keyId
    }

    public static func encryptionContext(_ workspaceId: String) -> [String: String] {
        [workspaceContextKey: workspaceId]
    }

    public func wrap(_ key: SymmetricKey, for workspaceId: String) async throws -> Data {
        let plaintext = key.withUnsafeBytes { Data($0) }
        return try await client.encrypt(keyId: keyId, plaintext: plaintext, context: Self.encryptionContext(workspaceId)).ciphertext
    }

    /// Decrypts with the workspace's context, and only under this provider's key.
    public func unwrap(_ wrapped: Data, for workspaceId: String) async throws -> SymmetricKey {
        let result = try await client.decrypt(ciphertext: wrapped, context: Self.encryptionContext(workspaceId), keyId: keyId)
        return try Self.dataKey(result.plaintext, operation: "Decrypt")
    }

    /// Wraps an already wrapped key under `toKeyId` with KMS `ReEncrypt`, for rotating the KEK:
    /// the key is never in the clear outside KMS. Record the result with `kekId(forKeyId: toKeyId)`.
    public func rewrap(_ wrapped: Data, for workspaceId: String, toKeyId: String) async throws -> Data {
        let context = Self.encryptionContext(workspaceId)
        return try await client.reEncrypt(
            ciphertext: wrapped, sourceContext: context, sourceKeyId: keyId,
            destinationKeyId: toKeyId, destinationContext: context
        ).ciphertext
    }

    /// A fresh 256-bit data key from KMS `GenerateDataKey`, with its wrapped form for `workspaceId`
    /// (which `unwrap(_:for:)` opens).
    public func generateDataKey(for workspaceId: String) async throws -> GeneratedKey {
        let result = try await client.generateDataKey(keyId: keyId, context: Self.encryptionContext(workspaceId))
        return GeneratedKey(key: try Self.dataKey(result.plaintext, operation: "GenerateDataKey"), wrapped: result.ciphertext)
    }

    public func shutdown() async throws {
        try await client.shutdown()
    }

    private static func dataKey(_ bytes: Data, operation: String) throws -> SymmetricKey {
        guard bytes.count == 32 else {
            throw KMSError(operation: operation, reason: .malformedResponse("expected a 32-byte key, got \(bytes.count) bytes"))
        }
        return SymmetricKey(data: bytes)
    }
}
