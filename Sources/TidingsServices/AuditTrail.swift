import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Records audit events inside the transaction of the change they describe: if the audit
/// write fails, the change fails with it. Obtained before the transaction opens
/// (`ServiceEnvironment.auditRecorder()`), since it holds the checkpoint-signing key.
public struct AuditRecorder: Sendable {
    let signer: CheckpointSigner
    let now: @Sendable () -> Date

    /// One change, in the stream of `workspaceId` (or `Vault.instanceScope`).
    public func record(_ change: AuditChange, in stream: String, by actor: AuditActor, db: any SQLDatabase) async throws {
        try await record([(stream, actor, change)], db: db)
    }

    /// Several changes, appended to their streams in the order given.
    public func record(_ entries: [(stream: String, actor: AuditActor, change: AuditChange)], db: any SQLDatabase) async throws {
        guard !entries.isEmpty else { return }
        let at = now()
        var order: [String] = []
        var byStream: [String: [AuditRepository.NewEvent]] = [:]
        for entry in entries {
            if byStream[entry.stream] == nil { order.append(entry.stream) }
            byStream[entry.stream, default: []].append(
                AuditRepository.NewEvent(id: Identifier.make("au", at: at), occurredAt: at, actor: entry.actor, change: entry.change)
            )
        }
        // A fixed order of streams, so two transactions never wait on each other's heads.
        for stream in order.sorted() {
            try await db.enter(stream == Vault.instanceScope ? .instance : .workspace(stream))
            try await AuditRepository(db, stream: stream).append(byStream[stream]!, signer: signer)
        }
        try await db.enter(TenantScope.current)
    }
}

extension ServiceEnvironment {
    /// The recorder for audit events; call before opening the transaction it writes in.
    public func auditRecorder() async throws -> AuditRecorder {
        AuditRecorder(signer: try await keyring.checkpointSigner(), now: now)
    }
}

/// Reading the audit log and checking that nobody has altered it.
public struct AuditService: Sendable {
    let env: ServiceEnvironment

    public init(_ env: ServiceEnvironment) {
        self.env = env
    }

    public static let maxPageSize = 500
    public static let defaultPageSize = 50

    /// A workspace's events, newest first unless `oldestFirst`.
    public func list(
        workspaceId: String, filter: AuditRepository.Filter, cursor: String?, limit: Int?, oldestFirst: Bool = false
    ) async throws -> Page<AuditEvent> {
        let limit = try Self.pageSize(limit)
        let after = try cursor.map { cursor throws(DomainError) -> Int in
            guard let sequence = Int(try Cursor.decode(cursor)) else {
                throw .invalid("invalid_cursor", "The cursor is not one this API returned.", field: "cursor")
            }
            return sequence
        }
        if let since = filter.since, let until = filter.until, since >= until {
            throw DomainError.invalid("invalid_range", "'since' must lie before 'until'.", field: "since")
        }
        let events = try await env.database.read { db in
            try await AuditRepository(db, stream: workspaceId).list(filter: filter, after: after, limit: limit + 1, newestFirst: !oldestFirst)
        }
        guard events.count > limit else { return Page(items: events, nextCursor: nil) }
        let items = Array(events.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { Cursor.encode(String($0.sequence)) })
    }

    static func pageSize(_ limit: Int?) throws(DomainError) -> Int {
        guard let limit else { return defaultPageSize }
        guard (1...maxPageSize).contains(limit) else {
            throw .invalid("invalid_limit", "The limit must be between 1 and \(maxPageSize).", field: "limit")
        }
        return limit
    }

    /// Signs the head of every stream that has events since its last checkpoint, so the
    /// newest events are covered too. Returns how many checkpoints were written.
    @discardableResult
    public func checkpointHeads() async throws -> Int {
        let signer = try await env.keyring.checkpointSigner()
        let now = env.now()
        let streams = try await env.database.read { db in try await AuditRepository.streams(in: db) }
        var written = 0
        for stream in streams {
            let signed = try await env.database.transaction { db in
                try await AuditRepository(db, stream: stream).checkpointHead(signer: signer, at: now)
            }
            if signed != nil { written += 1 }
        }
        return written
    }

    /// What `tidings audit verify` found in one stream.
    public struct Verification: Sendable {
        public var stream: String
        public var events: Int
        public var checkpoints: Int
        /// Events whose payload retention has cleared (their hashes still verify the chain).
        public var payloadsDropped: Int
        /// The first problem, naming the event it was found at; `nil` when the stream is intact.
        public var problem: String?
    }

    /// Checks the hash chain and the signed checkpoints of one stream, or of every stream.
    public func verify(stream: String? = nil) async throws -> [Verification] {
        let signer = try await env.keyring.checkpointSigner()
        let streams = try await env.database.read { db in
            if let stream { return [stream] }
            return try await AuditRepository.streams(in: db)
        }
        var results: [Verification] = []
        for stream in streams {
            results.append(try await verifyStream(stream, signer: signer))
        }
        return results
    }

    private func verifyStream(_ stream: String, signer: CheckpointSigner) async throws -> Verification {
        var result = Verification(stream: stream, events: 0, checkpoints: 0, payloadsDropped: 0, problem: nil)
        let (checkpoints, head) = try await env.database.read { db in
            let head = try await db.raw("SELECT seq FROM audit_heads WHERE stream = \(bind: stream)").first()
            return (try await AuditRepository(db, stream: stream).checkpoints(), try head?.decode(column: "seq", as: Int.self))
        }
        result.checkpoints = checkpoints.count
        let signedAt = Set(checkpoints.map(\.sequence))
        var hashes: [Int: String] = [:]
        var expected = 1
        var previous = AuditChain.genesis
        var previousId: String?
        chain: while true {
            let from = expected
            let rows = try await env.database.read { db in try await AuditRepository(db, stream: stream).rows(from: from, limit: 1000) }
            if rows.isEmpty { break }
            for row in rows {
                let place = "event \(row.id) (position \(row.sequence))"
                if row.sequence != expected {
                    result.problem = "Events at positions \(expected)–\(row.sequence - 1) are missing before \(place): they were deleted."
                    break chain
                }
                if row.previousHash != previous {
                    let after = previousId.map { "event \($0)" } ?? "the start of the log"
                    result.problem = "\(place) does not follow \(after): events were inserted, deleted or reordered here."
                    break chain
                }
                if let payload = row.payload {
                    if AuditChain.payloadHash(payload) != row.payloadHash {
                        result.problem = "\(place) was changed: its content does not match its hash."
                        break chain
                    }
                } else {
                    result.payloadsDropped += 1
                }
                if AuditChain.link(previous: previous, sequence: row.sequence, payloadHash: row.payloadHash) != row.hash {
                    result.problem = "\(place) was changed: its chain hash is not the one its content and predecessor give."
                    break chain
                }
                if signedAt.contains(row.sequence) { hashes[row.sequence] = row.hash }
                previous = row.hash
                previousId = row.id
                expected += 1
                result.events += 1
            }
        }
        if result.problem != nil { return result }
        let last = expected - 1
        for checkpoint in checkpoints {
            guard checkpoint.keyId == signer.keyId,
                  signer.isValid(signature: checkpoint.signature, stream: stream, sequence: checkpoint.sequence, hash: checkpoint.hash)
            else {
                result.problem = "The checkpoint at position \(checkpoint.sequence) does not carry a valid signature of this instance: it was forged or altered."
                return result
            }
            if checkpoint.sequence > last {
                result.problem = "The log ends at position \(last), but a signed checkpoint covers position \(checkpoint.sequence): events were removed from the end."
                return result
            }
            if hashes[checkpoint.sequence] != checkpoint.hash {
                result.problem = "The events up to position \(checkpoint.sequence) differ from what was signed there: they were rewritten."
                return result
            }
        }
        if let head, head > last {
            result.problem = "The log ends at position \(last), but \(head) events were written: events were removed from the end."
        }
        return result
    }
}
