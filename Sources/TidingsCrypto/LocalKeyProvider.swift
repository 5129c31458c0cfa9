import Crypto
import Foundation

/// Wraps and unwraps data keys with key-encryption keys (KEKs) kept where the database
/// cannot reach them: a local directory, or a key management service.
///
/// Each workspace has a KEK of its own inside the provider, derived from or next to the
/// instance's KEK. Destroying it (`destroyKeys(for:)`) is what crypto-shredding rests on:
/// the workspace's wrapped data keys — in the database and in every backup of it — no
/// longer unwrap, while the instance KEK and every other workspace are untouched.
public protocol KeyEncryptionKeyProvider: Sendable {
    /// Names the instance KEK (which wraps the instance's own keys).
    var kekId: String { get }
    /// Names the KEK new keys of `scope` are wrapped with; recorded with each wrapped key.
    func kekId(for scope: String) -> String
    /// Whether this provider unwraps keys recorded under `kekId` for `scope`.
    func opens(kekId: String, for scope: String) -> Bool
    /// Wraps a data key of `scope` (a workspace id, or the instance scope) under `kekId(for: scope)`.
    func wrap(_ key: SymmetricKey, for scope: String) async throws -> Data
    /// Unwraps a key stored for `scope` under the KEK named `kekId`.
    func unwrap(_ wrapped: Data, for scope: String, kekId: String) async throws -> SymmetricKey
    /// Destroys the workspace's own KEK, for good. Idempotent.
    func destroyKeys(for workspaceId: String) async throws
    /// Releases what the provider holds open (a KMS provider's HTTP client); called once, at shutdown.
    func shutdown() async throws
}

extension KeyEncryptionKeyProvider {
    public func shutdown() async throws {}

    /// Unwraps a key wrapped by `wrap(_:for:)` of this provider.
    public func unwrap(_ wrapped: Data, for scope: String) async throws -> SymmetricKey {
        try await unwrap(wrapped, for: scope, kekId: kekId(for: scope))
    }
}

/// A workspace's KEK was destroyed: its data can no longer be opened, by anyone.
public struct WorkspaceKeysDestroyed: Error, CustomStringConvertible {
    public var workspaceId: String

    public init(workspaceId: String) {
        self.workspaceId = workspaceId
    }

    public var description: String {
        "The keys of workspace \(workspaceId) were destroyed when it was deleted; its data cannot be opened."
    }
}

/// The zero-config provider: the instance KEK is 256 random bits in a file outside the
/// database (mode 0600); each workspace adds a 256-bit secret of its own in the
/// `workspace-keys` directory beside it.
///
/// A workspace's keys are wrapped with AES-256-GCM under HKDF-SHA256(instance KEK, salt:
/// the workspace's secret), the workspace id bound in as associated data, so a wrapped key
/// copied to another workspace does not unwrap. Deleting the workspace's secret file
/// shreds it: a copy of the database, restored with the same instance KEK, still cannot
/// open it. Back up the KEK file; the workspace secrets are kept with it on purpose and
/// must not go into the database's backups.
public struct LocalKeyProvider: KeyEncryptionKeyProvider {
    public let kekId: String
    private let kek: SymmetricKey
    /// Where each workspace's secret lives: `<directory>/<workspace id>.key`.
    public let workspaceKeyDirectory: String

    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// The suffix that names keys wrapped under a workspace's own KEK.
    static let workspaceSuffix = "/workspace"

    init(kekId: String, kek: SymmetricKey, workspaceKeyDirectory: String) {
        self.kekId = kekId
        self.kek = kek
        self.workspaceKeyDirectory = workspaceKeyDirectory
    }

    /// Reads the KEK file, creating it (mode 0600) when missing; refuses a file others can read.
    /// Workspace secrets go in `workspace-keys/` in the same directory, unless given.
    public static func loadOrCreate(at path: String, workspaceKeyDirectory: String? = nil) throws -> LocalKeyProvider {
        let kek = try KeyFile.loadOrCreate(at: path)
        // The id names the key without revealing it: the first bytes of a hash of it.
        let id = kek.withUnsafeBytes { "local-" + SecretHasher.hex(SHA256.hash(data: Data("tidings.kek.id".utf8) + Data($0)).prefix(6)) }
        let directory = workspaceKeyDirectory
            ?? ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("workspace-keys")
        return LocalKeyProvider(kekId: id, kek: kek, workspaceKeyDirectory: directory)
    }

    public func kekId(for scope: String) -> String {
        scope == Vault.instanceScope ? kekId : kekId + Self.workspaceSuffix
    }

    public func opens(kekId: String, for scope: String) -> Bool {
        // Keys of a workspace wrapped before workspaces had KEKs of their own are opened with
        // the instance KEK, until they are re-wrapped.
        kekId == self.kekId || (scope != Vault.instanceScope && kekId == self.kekId + Self.workspaceSuffix)
    }

    public func wrap(_ key: SymmetricKey, for scope: String) async throws -> Data {
        let wrapping = scope == Vault.instanceScope ? kek : try workspaceKEK(scope, create: true)
        let box = try key.withUnsafeBytes { bytes in
            try AES.GCM.seal(Data(bytes), using: wrapping, authenticating: Self.associatedData(scope))
        }
        guard let combined = box.combined else { throw Problem(description: "Could not wrap a data key.") }
        return combined
    }

    public func unwrap(_ wrapped: Data, for scope: String, kekId: String) async throws -> SymmetricKey {
        guard opens(kekId: kekId, for: scope) else {
            throw Problem(description: "Key wrapped under KEK \(kekId), which is not this instance's KEK (\(self.kekId)).")
        }
        let wrapping = kekId == self.kekId ? kek : try workspaceKEK(scope, create: false)
        let box = try AES.GCM.SealedBox(combined: wrapped)
        return SymmetricKey(data: try AES.GCM.open(box, using: wrapping, authenticating: Self.associatedData(scope)))
    }

    /// Overwrites the workspace's secret and removes it.
    public func destroyKeys(for workspaceId: String) async throws {
        let path = try secretPath(workspaceId)
        guard FileManager.default.fileExists(atPath: path) else { return }
        // Overwrite first, so the secret does not linger in blocks the file system frees.
        if let handle = FileHandle(forWritingAtPath: path) {
            try handle.write(contentsOf: Data(repeating: 0, count: 64))
            try handle.synchronize()
            try handle.close()
        }
        try FileManager.default.removeItem(atPath: path)
    }

    static func associatedData(_ scope: String) -> Data {
        Data("tidings.data-key.v1:\(scope)".utf8)
    }

    private func secretPath(_ workspaceId: String) throws -> String {
        // Workspace ids are generated identifiers; anything that could leave the directory is refused.
        guard !workspaceId.isEmpty, workspaceId.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw Problem(description: "\"\(workspaceId)\" is not a workspace id.")
        }
        return (workspaceKeyDirectory as NSString).appendingPathComponent("\(workspaceId).key")
    }

    /// The workspace's KEK: HKDF of the instance KEK with the workspace's secret as salt.
    private func workspaceKEK(_ workspaceId: String, create: Bool) throws -> SymmetricKey {
        let path = try secretPath(workspaceId)
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw WorkspaceKeysDestroyed(workspaceId: workspaceId) }
            try createSecret(at: path)
        }
        let secret = try KeyFile.loadOrCreate(at: path)
        return secret.withUnsafeBytes { salt in
            HKDF<SHA256>.deriveKey(
                inputKeyMaterial: kek, salt: Data(salt), info: Data("tidings.workspace-kek.v1:\(workspaceId)".utf8), outputByteCount: 32
            )
        }
    }

    /// Creates the secret file if no other process has: written under a temporary name, then
    /// linked into place, which fails if the name exists — so two processes never end up with
    /// different secrets for one workspace.
    private func createSecret(at path: String) throws {
        let temporary = path + ".tmp-\(UUID().uuidString)"
        _ = try KeyFile.loadOrCreate(at: temporary)
        defer { unlink(temporary) }
        if link(temporary, path) != 0, errno != EEXIST {
            throw Problem(description: "Could not create the workspace key file \(path) (errno \(errno)).")
        }
    }
}
