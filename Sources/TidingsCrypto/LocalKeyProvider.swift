import Crypto
import Foundation

/// Wraps and unwraps data keys with a key-encryption key (KEK). Implementations keep the
/// KEK where the database cannot reach it: a local file, or a key management service.
public protocol KeyEncryptionKeyProvider: Sendable {
    /// Names the KEK a wrapped key was made with, so rotation can tell old wraps apart.
    var kekId: String { get }
    func wrap(_ key: SymmetricKey, for workspaceId: String) async throws -> Data
    func unwrap(_ wrapped: Data, for workspaceId: String) async throws -> SymmetricKey
    /// Releases what the provider holds open (a KMS provider's HTTP client); called once, at shutdown.
    func shutdown() async throws
}

extension KeyEncryptionKeyProvider {
    public func shutdown() async throws {}
}

/// The zero-config KEK: 256 random bits in a file outside the database, mode 0600.
///
/// Data keys are wrapped with AES-256-GCM, the workspace id bound in as associated data,
/// so a wrapped key copied to another workspace does not unwrap.
public struct LocalKeyProvider: KeyEncryptionKeyProvider {
    public let kekId: String
    private let kek: SymmetricKey

    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    init(kekId: String, kek: SymmetricKey) {
        self.kekId = kekId
        self.kek = kek
    }

    /// Reads the KEK file, creating it (mode 0600) when missing; refuses a file others can read.
    public static func loadOrCreate(at path: String) throws -> LocalKeyProvider {
        let kek = try KeyFile.loadOrCreate(at: path)
        // The id names the key without revealing it: the first bytes of a hash of it.
        let id = kek.withUnsafeBytes { "local-" + SecretHasher.hex(SHA256.hash(data: Data("tidings.kek.id".utf8) + Data($0)).prefix(6)) }
        return LocalKeyProvider(kekId: id, kek: kek)
    }

    public func wrap(_ key: SymmetricKey, for workspaceId: String) async throws -> Data {
        let box = try key.withUnsafeBytes { bytes in
            try AES.GCM.seal(Data(bytes), using: kek, authenticating: Self.associatedData(workspaceId))
        }
        guard let combined = box.combined else { throw Problem(description: "Could not wrap a data key.") }
        return combined
    }

    public func unwrap(_ wrapped: Data, for workspaceId: String) async throws -> SymmetricKey {
        let box = try AES.GCM.SealedBox(combined: wrapped)
        return SymmetricKey(data: try AES.GCM.open(box, using: kek, authenticating: Self.associatedData(workspaceId)))
    }

    static func associatedData(_ workspaceId: String) -> Data {
        Data("tidings.data-key.v1:\(workspaceId)".utf8)
    }
}
