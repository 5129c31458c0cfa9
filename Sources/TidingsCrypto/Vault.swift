import Crypto
import Foundation

/// One scope's keys in memory — a workspace's, or the instance's — with everything needed
/// to store a value safely: sealing, opening, blind indexes for lookups and pseudonyms for logs.
///
/// Repositories of personal data take a vault instead of a bare workspace id, so the
/// scope a query is fenced to and the keys that seal its values arrive together; storing
/// a value in the clear would take more effort than sealing it.
public struct Vault: Sendable {
    /// The workspace id, or `Vault.instanceScope` for instance-level data (users, operators).
    public let scope: String
    let current: DataKey
    let keys: [String: DataKey]
    let index: BlindIndex
    /// Finds a data key this vault was loaded without (created by another process since).
    let reload: @Sendable (String) async throws -> DataKey

    /// The scope of data that belongs to no workspace.
    public static let instanceScope = "instance"

    public init(
        scope: String, current: DataKey, keys: [DataKey], index: BlindIndex,
        reload: @escaping @Sendable (String) async throws -> DataKey
    ) {
        self.scope = scope
        self.current = current
        self.keys = Dictionary(keys.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.index = index
        self.reload = reload
    }

    /// The id of the key new values are sealed with.
    public var currentKeyId: String { current.id }

    /// Seals `plaintext` for the cell (`table`, `column`, `row`) of this scope; the stored form is base64 text.
    public func seal(_ plaintext: String, table: String, column: String, row: String) throws -> String {
        try Sealer.seal(Data(plaintext.utf8), with: current, context: context(table, column, row)).base64EncodedString()
    }

    /// Opens what `seal` stored in the same cell. A value moved from any other cell fails.
    public func open(_ stored: String, table: String, column: String, row: String) async throws -> String {
        guard let sealed = Data(base64Encoded: stored) else { throw SealingError.unrecognisedFormat }
        let keyId = try Sealer.keyId(of: sealed)
        let key: DataKey
        if let known = keys[keyId] {
            key = known
        } else {
            key = try await reload(keyId)
        }
        return String(decoding: try Sealer.open(sealed, with: key, context: context(table, column, row)), as: UTF8.self)
    }

    /// Whether `stored` was sealed with an older key than the current one (data-key rotation re-seals it).
    public func isSealedWithRetiredKey(_ stored: String) -> Bool {
        guard let sealed = Data(base64Encoded: stored), let keyId = try? Sealer.keyId(of: sealed) else { return false }
        return keyId != current.id
    }

    /// The keyed blind index of `value` for equality lookups in `column`. Each column gets
    /// its own index (domain-separated), so equal values in two columns do not match.
    public func blindIndex(_ value: String, column: String) -> String {
        index.index("\(column)\u{0}\(value)")
    }

    /// A short keyed pseudonym for logs and audit summaries: stable within this scope,
    /// so lines about one person can be correlated, and meaningless without the key.
    public func pseudonym(_ value: String) -> String {
        "p_" + String(index.index("pseudonym\u{0}\(value)").prefix(16))
    }

    /// A data key of this vault by id, if it was loaded.
    public func dataKey(id: String) -> DataKey? { keys[id] }

    func context(_ table: String, _ column: String, _ row: String) -> SealContext {
        SealContext(workspaceId: scope, table: table, column: column, rowId: row)
    }
}
