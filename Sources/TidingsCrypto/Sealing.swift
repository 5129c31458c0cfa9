import Crypto
import Foundation

/// Where a sealed value lives. Bound into the AES-GCM associated data, so a ciphertext
/// copied to another row, column, table or workspace fails to open.
public struct SealContext: Sendable, Hashable {
    public var workspaceId: String
    public var table: String
    public var column: String
    public var rowId: String

    public init(workspaceId: String, table: String, column: String, rowId: String) {
        self.workspaceId = workspaceId
        self.table = table
        self.column = column
        self.rowId = rowId
    }

    /// Length-prefixed, so no two different contexts can produce the same bytes.
    var associatedData: [UInt8] {
        let parts = [workspaceId, table, column, rowId]
        var data: [UInt8] = []
        data.reserveCapacity(15 + parts.reduce(0) { $0 + 4 + $1.utf8.count })
        data.append(contentsOf: "tidings.seal.v1".utf8)
        for part in parts {
            withUnsafeBytes(of: UInt32(part.utf8.count).bigEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: part.utf8)
        }
        return data
    }
}

/// A workspace's data key in memory. Never stored unwrapped.
public struct DataKey: Sendable {
    public var id: String
    var key: SymmetricKey

    public init(id: String, key: SymmetricKey) {
        precondition(key.bitCount == 256, "data keys are AES-256")
        self.id = id
        self.key = key
    }

    public static func generate(id: String) -> DataKey {
        DataKey(id: id, key: SymmetricKey(size: .bits256))
    }

    /// The key wrapped by the KEK, as it is stored.
    public func wrapped(by provider: any KeyEncryptionKeyProvider, for workspaceId: String) async throws -> Data {
        try await provider.wrap(key, for: workspaceId)
    }
}

public enum SealingError: Error, Equatable, CustomStringConvertible {
    /// The bytes are not a sealed value of a format this version reads.
    case unrecognisedFormat
    /// The value was sealed with a key this keyring does not hold (e.g. a shredded workspace).
    case unknownKey(String)
    /// The value was changed, or belongs to another row, column, table or workspace.
    case authenticationFailed

    public var description: String {
        switch self {
        case .unrecognisedFormat: "The stored value is not in a sealed format this version reads."
        case .unknownKey(let id): "The stored value was sealed with key \(id), which is not available."
        case .authenticationFailed: "The stored value failed authentication: changed, or moved from another place."
        }
    }
}

/// Envelope format of a sealed value:
/// `0x01 | key-id length (1 byte) | key id (ASCII) | 12-byte nonce | ciphertext | 16-byte tag`.
/// The version byte lets a later format coexist; the key id says which data key opens it,
/// so keys can rotate while old values stay readable.
public enum Sealer {
    static let version: UInt8 = 1

    public static func seal(_ plaintext: some DataProtocol, with key: DataKey, context: SealContext) throws -> Data {
        let keyId = Data(key.id.utf8)
        precondition(keyId.count <= 255, "key ids are short")
        // A fresh random nonce for every value (never reused under one key: 96 random bits).
        let nonce = try AES.GCM.Nonce(data: BufferedRandom.bytes(12))
        let box = try AES.GCM.seal(plaintext, using: key.key, nonce: nonce, authenticating: context.associatedData)
        var out = Data([version, UInt8(keyId.count)])
        out.append(keyId)
        out.append(contentsOf: box.nonce)
        out.append(box.ciphertext)
        out.append(box.tag)
        return out
    }

    /// The id of the key that sealed `sealed`, to find it before opening.
    public static func keyId(of sealed: Data) throws(SealingError) -> String {
        let start = sealed.startIndex
        guard sealed.count >= 2, sealed[start] == version else { throw .unrecognisedFormat }
        let length = Int(sealed[start + 1])
        guard sealed.count >= 2 + length + 12 + 16 else { throw .unrecognisedFormat }
        return String(decoding: sealed[(start + 2)..<(start + 2 + length)], as: UTF8.self)
    }

    public static func open(_ sealed: Data, with key: DataKey, context: SealContext) throws(SealingError) -> Data {
        let keyId = try keyId(of: sealed)
        guard keyId == key.id else { throw .unknownKey(keyId) }
        // After the key id: nonce, ciphertext and tag, as AES-GCM's combined form has them.
        let box = sealed[(sealed.startIndex + 2 + Int(sealed[sealed.startIndex + 1]))...]
        do {
            return try AES.GCM.open(try AES.GCM.SealedBox(combined: box), using: key.key, authenticating: context.associatedData)
        } catch {
            throw .authenticationFailed
        }
    }
}

/// Keyed blind index: equality lookups (a contact by email) without storing the value.
/// HMAC-SHA-256 under a per-workspace index key, so equal values in two workspaces
/// index differently and the index reveals nothing without the key.
public struct BlindIndex: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    public func index(_ value: String) -> String {
        SecretHasher.hex(HMAC<SHA256>.authenticationCode(for: Data(value.utf8), using: key))
    }

    /// HMAC-SHA-256 of `message` under a key derived (HKDF) from the index key for `purpose`,
    /// so links the workspace signs share no key with its indexes and die with its keys.
    func authenticationCode(_ message: [UInt8], purpose: String) -> [UInt8] {
        let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data("tidings.\(purpose).v1".utf8), outputByteCount: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: derived))
    }
}

/// Fresh key material, so callers above this layer need not import Crypto.
public enum SymmetricKeyMaterial {
    public static func random() -> SymmetricKey { SymmetricKey(size: .bits256) }
}
