import Crypto
import Foundation

/// The hash chain behind the audit log.
///
/// Each event's payload is hashed on its own (`payloadHash`), and the chain links
/// `previous hash | sequence | payload hash`. Retention can later drop a payload while
/// keeping its hash, and the chain still verifies. Signed checkpoints (Ed25519) over
/// `stream | sequence | hash` make a rewritten chain detectable without trusting the database.
public enum AuditChain {
    /// The `previous` of the first event of every stream.
    public static let genesis = String(repeating: "0", count: 64)

    /// The payload fields of an event, in a fixed order.
    public struct Payload: Sendable {
        public var id: String
        public var stream: String
        public var occurredAt: String
        public var actorKind: String
        public var actorId: String
        public var actorNetwork: String?
        public var actorAgent: String?
        public var action: String
        public var targetKind: String?
        public var targetId: String?
        public var summary: String

        public init(
            id: String, stream: String, occurredAt: String, actorKind: String, actorId: String, actorNetwork: String?,
            actorAgent: String?, action: String, targetKind: String?, targetId: String?, summary: String
        ) {
            self.id = id
            self.stream = stream
            self.occurredAt = occurredAt
            self.actorKind = actorKind
            self.actorId = actorId
            self.actorNetwork = actorNetwork
            self.actorAgent = actorAgent
            self.action = action
            self.targetKind = targetKind
            self.targetId = targetId
            self.summary = summary
        }
    }

    /// Length-prefixed fields (absent ones marked), so no two payloads encode alike.
    public static func payloadHash(_ payload: Payload) -> String {
        var data = Data("tidings.audit.payload.v1".utf8)
        for field in [
            payload.id, payload.stream, payload.occurredAt, payload.actorKind, payload.actorId, payload.actorNetwork,
            payload.actorAgent, payload.action, payload.targetKind, payload.targetId, payload.summary,
        ] {
            append(field, to: &data)
        }
        return SecretHasher.hex(SHA256.hash(data: data))
    }

    public static func link(previous: String, sequence: Int, payloadHash: String) -> String {
        var data = Data("tidings.audit.link.v1".utf8)
        append(previous, to: &data)
        append(String(sequence), to: &data)
        append(payloadHash, to: &data)
        return SecretHasher.hex(SHA256.hash(data: data))
    }

    static func checkpointMessage(stream: String, sequence: Int, hash: String) -> Data {
        var data = Data("tidings.audit.checkpoint.v1".utf8)
        append(stream, to: &data)
        append(String(sequence), to: &data)
        append(hash, to: &data)
        return data
    }

    private static func append(_ field: String?, to data: inout Data) {
        guard let field else {
            data.append(0)
            return
        }
        data.append(1)
        let bytes = Data(field.utf8)
        withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { data.append(contentsOf: $0) }
        data.append(bytes)
    }
}

/// Signs and checks audit checkpoints with the instance's Ed25519 key.
public struct CheckpointSigner: Sendable {
    private let key: Curve25519.Signing.PrivateKey
    /// Names the key in stored checkpoints: a hash of its public half.
    public let keyId: String

    public init(rawRepresentation: Data) throws {
        key = try Curve25519.Signing.PrivateKey(rawRepresentation: rawRepresentation)
        keyId = "ed25519-" + SecretHasher.hex(SHA256.hash(data: key.publicKey.rawRepresentation).prefix(8))
    }

    public static func generate() -> (signer: CheckpointSigner, rawRepresentation: Data) {
        let raw = Curve25519.Signing.PrivateKey().rawRepresentation
        // A freshly generated key always has a valid raw form.
        return (try! CheckpointSigner(rawRepresentation: raw), raw)
    }

    public func sign(stream: String, sequence: Int, hash: String) throws -> String {
        try key.signature(for: AuditChain.checkpointMessage(stream: stream, sequence: sequence, hash: hash)).base64EncodedString()
    }

    public func isValid(signature: String, stream: String, sequence: Int, hash: String) -> Bool {
        guard let bytes = Data(base64Encoded: signature) else { return false }
        return key.publicKey.isValidSignature(bytes, for: AuditChain.checkpointMessage(stream: stream, sequence: sequence, hash: hash))
    }
}
