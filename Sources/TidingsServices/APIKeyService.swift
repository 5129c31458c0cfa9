import Foundation
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Managing API keys of one workspace, and recognising a presented key.
public struct APIKeyService: Sendable {
    let env: ServiceEnvironment
    private let usage = UsageRecorder()
    private let recognised = RecognisedKeys()

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    /// The default overlap during which a rotated key's old secret keeps working.
    public static let defaultRotationOverlap: TimeInterval = 24 * 3600
    public static let maxRotationOverlap: TimeInterval = 30 * 24 * 3600

    public struct Issued: Sendable {
        public var key: APIKey
        /// Shown once; only its keyed hash is stored.
        public var token: APIKeyToken
    }

    public func create(
        workspaceId: String, name rawName: String, scopes: [Scope], expiresAt: Date?, by actor: AuditActor
    ) async throws -> Issued {
        let name = try DisplayName.validate(rawName, field: "name", maxLength: APIKey.maxNameLength)
        guard !scopes.isEmpty else { throw DomainError.invalid("invalid_scopes", "At least one scope is required.", field: "scopes") }
        let now = env.now()
        if let expiresAt, expiresAt <= now {
            throw DomainError.invalid("invalid_expiry", "The expiry must be in the future.", field: "expiresAt")
        }
        let token = APIKeyToken.generate()
        let key = APIKey(
            id: Identifier.make("key", at: now), workspaceId: workspaceId, name: name, scopes: scopes.sorted(),
            hint: token.hint, createdAt: now, expiresAt: expiresAt, revokedAt: nil, lastUsedAt: nil
        )
        let secretHash = env.hasher.hash(token.secret)
        let audit = try await env.auditRecorder()
        try await env.database.transaction { db in
            guard try await WorkspaceRepository.exists(id: workspaceId, in: db) else {
                throw DomainError.notFound("workspace_not_found", "No workspace with this id exists.")
            }
            try await APIKeyRepository(db, workspaceId: workspaceId).insert(key, secretHash: secretHash)
            try await audit.record(Self.created(key), in: workspaceId, by: actor, db: db)
        }
        return Issued(key: key, token: token)
    }

    public func list(workspaceId: String) async throws -> [APIKey] {
        try await env.database.read { db in try await APIKeyRepository(db, workspaceId: workspaceId).list() }
    }

    public func get(workspaceId: String, id: String) async throws -> APIKey {
        guard let key = try await env.database.read({ db in try await APIKeyRepository(db, workspaceId: workspaceId).find(id: id) }) else {
            throw Self.notFound
        }
        return key
    }

    /// Revokes at once. Revoking a revoked key changes nothing (idempotent).
    public func revoke(workspaceId: String, id: String, by actor: AuditActor) async throws -> APIKey {
        let now = env.now()
        let audit = try await env.auditRecorder()
        let key = try await env.database.transaction { db in
            let repository = APIKeyRepository(db, workspaceId: workspaceId)
            guard let before = try await repository.find(id: id) else { throw Self.notFound }
            try await repository.revoke(id: id, at: now)
            if before.revokedAt == nil {
                try await audit.record(AuditChange("api_key.revoked", target: ("api_key", id), summary: ["name": .string(before.name)]),
                                       in: workspaceId, by: actor, db: db)
            }
            return try await repository.find(id: id)!
        }
        recognised.forget(keyId: id)
        return key
    }

    /// A request carried this key over plain HTTP: the key is marked exposed, audited, and (when
    /// `revoke`) revoked at once. Returns the key as it is now, or `nil` when the text is no usable key
    /// (nothing to protect then).
    public func reportExposure(bearer: String, revoke: Bool, by actor: AuditActor) async throws -> APIKey? {
        guard let principal = try? await TenantScope.with(.instance, { try await authenticate(bearer: bearer) }) else { return nil }
        let workspaceId = principal.workspaceId, id = principal.apiKeyId
        let now = env.now()
        let audit = try await env.auditRecorder()
        let key = try await TenantScope.$current.withValue(.workspace(workspaceId)) {
            try await env.database.transaction { db in
                let repository = APIKeyRepository(db, workspaceId: workspaceId)
                guard let before = try await repository.find(id: id) else { throw Self.notFound }
                try await repository.markExposed(id: id, at: now)
                try await audit.record(
                    AuditChange("api_key.exposed", target: ("api_key", id), summary: [
                        "name": .string(before.name), "hint": .string(before.hint), "transport": .string("http"),
                        "revoked": .bool(revoke && before.revokedAt == nil),
                    ]),
                    in: workspaceId, by: actor, db: db
                )
                if revoke, before.revokedAt == nil {
                    try await repository.revoke(id: id, at: now)
                    try await audit.record(
                        AuditChange("api_key.revoked", target: ("api_key", id), summary: [
                            "name": .string(before.name), "reason": .string("sent over plain HTTP"),
                        ]),
                        in: workspaceId, by: .system("transport-security"), db: db
                    )
                }
                return try await repository.find(id: id)!
            }
        }
        recognised.forget(keyId: id)
        return key
    }

    /// Issues a new secret for the key; the previous secret keeps working for `overlap` seconds.
    public func rotate(workspaceId: String, id: String, overlap: TimeInterval, by actor: AuditActor) async throws -> Issued {
        guard overlap >= 0, overlap <= Self.maxRotationOverlap else {
            throw DomainError.invalid(
                "invalid_overlap", "The overlap must be between 0 and \(Int(Self.maxRotationOverlap)) seconds.", field: "overlapSeconds"
            )
        }
        let now = env.now()
        let token = APIKeyToken.generate()
        let secretHash = env.hasher.hash(token.secret)
        let audit = try await env.auditRecorder()
        let key = try await env.database.transaction { db in
            let repository = APIKeyRepository(db, workspaceId: workspaceId)
            guard let key = try await repository.find(id: id) else { throw Self.notFound }
            guard key.isUsable(at: now) else {
                throw DomainError(.conflict, code: "api_key_not_active", message: "A revoked or expired key cannot be rotated.")
            }
            try await repository.rotate(
                id: id, newSecretHash: secretHash, newHint: token.hint,
                oldSecretsValidUntil: now.addingTimeInterval(overlap), at: now
            )
            try await audit.record(
                AuditChange("api_key.rotated", target: ("api_key", id), summary: [
                    "name": .string(key.name), "overlapSeconds": .number(overlap.rounded()), "hint": .string(token.hint),
                ]),
                in: workspaceId, by: actor, db: db
            )
            return try await repository.find(id: id)!
        }
        recognised.forget(keyId: id)
        return Issued(key: key, token: token)
    }

    /// The audit record of a new key: what it may do, never its secret.
    static func created(_ key: APIKey) -> AuditChange {
        var summary: [String: JSONValue] = [
            "name": .string(key.name), "scopes": .array(key.scopes.map { .string($0.rawValue) }), "hint": .string(key.hint),
        ]
        if let expiresAt = key.expiresAt { summary["expiresAt"] = .string(Timestamp.format(expiresAt)) }
        return AuditChange("api_key.created", target: ("api_key", key.id), summary: summary)
    }

    /// Recognises a bearer token. Every failure is the same 401 to the caller, so a
    /// guesser learns nothing; the reason is kept for the log.
    public func authenticate(bearer: String) async throws -> Principal {
        guard let token = APIKeyToken(parsing: bearer) else {
            throw DomainError(.unauthenticated, code: "invalid_api_key", message: "The API key is malformed.")
        }
        let now = env.now()
        let secretHash = env.hasher.hash(token.secret)
        var found = recognised.key(forSecretHash: secretHash, at: now)
        if found == nil {
            // A revocation that lands while we read must win over what we read.
            let epoch = recognised.epoch
            found = try await env.database.read { db in
                try await CredentialRepository(db).key(forSecretHash: secretHash, at: now)
            }
            if let found { recognised.remember(found, secretHash: secretHash, at: now, ifEpoch: epoch) }
        }
        guard let key = found else {
            throw DomainError(.unauthenticated, code: "invalid_api_key", message: "The API key is not valid.")
        }
        guard key.revokedAt == nil else {
            throw DomainError(.unauthenticated, code: "invalid_api_key", message: "The API key has been revoked.")
        }
        if let expiresAt = key.expiresAt, expiresAt <= now {
            throw DomainError(.unauthenticated, code: "invalid_api_key", message: "The API key has expired.")
        }
        if usage.shouldRecord(keyId: key.id, at: now) {
            // Bookkeeping: a failure here must not fail the caller's request.
            do {
                try await env.database.transaction { db in
                    try await APIKeyRepository(db, workspaceId: key.workspaceId).markUsed(id: key.id, at: now)
                }
            } catch {
                env.logger.warning("Could not record API key use", metadata: ["api_key": "\(key.id)", "error_type": "\(type(of: error))"])
            }
        }
        return Principal(workspaceId: key.workspaceId, apiKeyId: key.id, scopes: key.scopes)
    }

    static let notFound = DomainError.notFound("api_key_not_found", "No API key with this id exists in this workspace.")
}

/// Limits `last_used_at` writes to one per key per minute, so authentication stays a read.
final class UsageRecorder: Sendable {
    private let lastRecorded = Mutex<[String: Date]>([:])
    static let interval: TimeInterval = 60

    func shouldRecord(keyId: String, at now: Date) -> Bool {
        lastRecorded.withLock { recorded in
            if let last = recorded[keyId], now.timeIntervalSince(last) < Self.interval, now >= last {
                return false
            }
            recorded[keyId] = now
            return true
        }
    }
}

/// Keys recognised in the last second, so a busy client costs no database read per request.
///
/// Revoking or rotating through this process forgets the key at once; a change made
/// by another process (another instance, or the CLI) is seen within `lifetime`.
/// Expiry is checked on every request from the cached key itself.
final class RecognisedKeys: Sendable {
    static let lifetime: TimeInterval = 1
    static let capacity = 10_000

    private struct Entry {
        var key: APIKey
        var recognisedAt: Date
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Bumped by every `forget`, so a lookup that started before it is not remembered.
        var epoch = 0
    }

    private let state = Mutex(State())

    var epoch: Int { state.withLock { $0.epoch } }

    func key(forSecretHash secretHash: String, at now: Date) -> APIKey? {
        state.withLock { state in
            guard let entry = state.entries[secretHash] else { return nil }
            let age = now.timeIntervalSince(entry.recognisedAt)
            guard age >= 0, age < Self.lifetime else {
                state.entries[secretHash] = nil
                return nil
            }
            return entry.key
        }
    }

    func remember(_ key: APIKey, secretHash: String, at now: Date, ifEpoch epoch: Int) {
        state.withLock { state in
            guard state.epoch == epoch else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[secretHash] = Entry(key: key, recognisedAt: now)
        }
    }

    func forget(keyId: String) {
        state.withLock { state in
            state.epoch &+= 1
            state.entries = state.entries.filter { $0.value.key.id != keyId }
        }
    }
}
