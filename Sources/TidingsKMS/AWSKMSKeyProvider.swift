import Crypto
import Foundation
import TidingsCrypto

/// KEKs that never leave AWS KMS (or a KMS-compatible service): data keys are wrapped with
/// KMS `Encrypt` and unwrapped with `Decrypt`, the workspace bound in as encryption context
/// (`{"tidings:workspace": id}`), so a wrapped key copied to another workspace does not unwrap.
///
/// The configured key wraps the instance's own keys. Each workspace gets a KMS key of its
/// own, created on first use, tagged with the workspace id, rotated yearly by KMS and named
/// `alias/tidings/<workspace id>`. Deleting the workspace deletes the alias and schedules the
/// key's deletion (it is disabled at once), so no copy of the workspace's wrapped keys, in any
/// backup, unwraps again. The credentials therefore need `kms:CreateKey`, `kms:CreateAlias`,
/// `kms:DeleteAlias`, `kms:DescribeKey`, `kms:EnableKeyRotation`, `kms:TagResource` and
/// `kms:ScheduleKeyDeletion` besides `kms:Encrypt`, `kms:Decrypt` and `kms:ReEncrypt*`.
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

    /// The alias of a workspace's own KMS key.
    public static func workspaceAlias(_ workspaceId: String) -> String {
        "alias/tidings/" + workspaceId
    }

    /// How long KMS keeps a deleted workspace's key, disabled, before deleting it (KMS's minimum).
    public static let deletionWindowDays = 7

    public func kekId(for scope: String) -> String {
        scope == Vault.instanceScope ? kekId : Self.kekId(forKeyId: Self.workspaceAlias(scope))
    }

    public func opens(kekId: String, for scope: String) -> Bool {
        // A workspace's keys wrapped before workspaces had KMS keys of their own are under the
        // configured key, until they are re-wrapped.
        kekId == self.kekId || (scope != Vault.instanceScope && kekId == self.kekId(for: scope))
    }

    public func wrap(_ key: SymmetricKey, for scope: String) async throws -> Data {
        let plaintext = key.withUnsafeBytes { Data($0) }
        let context = Self.encryptionContext(scope)
        guard scope != Vault.instanceScope else {
            return try await client.encrypt(keyId: keyId, plaintext: plaintext, context: context).ciphertext
        }
        let alias = Self.workspaceAlias(scope)
        do {
            return try await client.encrypt(keyId: alias, plaintext: plaintext, context: context).ciphertext
        } catch let error as KMSError where error.errorType == "NotFoundException" {
            try await createWorkspaceKey(scope)
            return try await client.encrypt(keyId: alias, plaintext: plaintext, context: context).ciphertext
        }
    }

    /// Decrypts with the scope's context, and only under the key named by `kekId`.
    public func unwrap(_ wrapped: Data, for scope: String, kekId: String) async throws -> SymmetricKey {
        guard opens(kekId: kekId, for: scope) else {
            throw Problem(description: "Key wrapped under \(kekId), which this instance does not use for \(scope).")
        }
        let wrappingKey = String(kekId.dropFirst("aws-kms:".count))
        do {
            let result = try await client.decrypt(ciphertext: wrapped, context: Self.encryptionContext(scope), keyId: wrappingKey)
            return try Self.dataKey(result.plaintext, operation: "Decrypt")
        } catch let error as KMSError
            where wrappingKey != keyId && ["NotFoundException", "KMSInvalidStateException", "DisabledException"].contains(error.errorType ?? "") {
            throw WorkspaceKeysDestroyed(workspaceId: scope)
        }
    }

    /// Deletes the workspace key's alias and schedules the key's deletion; it is disabled at once.
    public func destroyKeys(for workspaceId: String) async throws {
        let alias = Self.workspaceAlias(workspaceId)
        let key: KMSClient.KeyDescription
        do {
            key = try await client.describeKey(alias)
        } catch let error as KMSError where error.errorType == "NotFoundException" {
            return  // never had a key, or already destroyed
        }
        try await client.deleteAlias(alias)
        do {
            try await client.scheduleKeyDeletion(key.keyId, pendingDays: Self.deletionWindowDays)
        } catch let error as KMSError where error.errorType == "KMSInvalidStateException" {
            // already pending deletion
        }
    }

    /// Creates the workspace's key and its alias. When another instance was quicker, its key
    /// is the one: ours, unused, is scheduled for deletion.
    private func createWorkspaceKey(_ workspaceId: String) async throws {
        let created = try await client.createKey(
            description: "Tidings workspace \(workspaceId)", tags: [Self.workspaceContextKey: workspaceId]
        )
        try await client.enableKeyRotation(created)
        do {
            try await client.createAlias(Self.workspaceAlias(workspaceId), targetKeyId: created)
        } catch let error as KMSError where error.errorType == "AlreadyExistsException" {
            try await client.scheduleKeyDeletion(created, pendingDays: Self.deletionWindowDays)
        }
    }

    /// Wraps a key of the instance, already wrapped, under `toKeyId` with KMS `ReEncrypt`, for
    /// rotating the instance KEK: the key is never in the clear outside KMS. Record the result
    /// with `kekId(forKeyId: toKeyId)`.
    public func rewrap(_ wrapped: Data, toKeyId: String) async throws -> Data {
        let context = Self.encryptionContext(Vault.instanceScope)
        return try await client.reEncrypt(
            ciphertext: wrapped, sourceContext: context, sourceKeyId: keyId,
            destinationKeyId: toKeyId, destinationContext: context
        ).ciphertext
    }

    /// A fresh 256-bit data key from KMS `GenerateDataKey` under the scope's KMS key, with its
    /// wrapped form (which `unwrap(_:for:)` opens).
    public func generateDataKey(for scope: String) async throws -> GeneratedKey {
        let context = Self.encryptionContext(scope)
        let wrappingKey = String(kekId(for: scope).dropFirst("aws-kms:".count))
        let result: KMSClient.DataKeyResult
        do {
            result = try await client.generateDataKey(keyId: wrappingKey, context: context)
        } catch let error as KMSError where scope != Vault.instanceScope && error.errorType == "NotFoundException" {
            try await createWorkspaceKey(scope)
            result = try await client.generateDataKey(keyId: wrappingKey, context: context)
        }
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
