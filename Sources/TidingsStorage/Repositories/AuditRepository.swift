import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// One audit stream (a workspace's, or `instance`): appends that extend its hash chain,
/// and reads for the API and for verification. Appends run inside the caller's transaction,
/// so a change and its audit event commit together or not at all.
public struct AuditRepository: Sendable {
    let db: any SQLDatabase
    public let stream: String

    /// Every `checkpointInterval`-th event of a stream gets a signed checkpoint as it is written.
    public static let checkpointInterval = 100

    public init(_ db: any SQLDatabase, stream: String) {
        self.db = db
        self.stream = stream
    }

    /// An event to append; its place in the chain is decided when it is written.
    public struct NewEvent: Sendable {
        public var id: String
        public var occurredAt: Date
        public var actor: AuditActor
        public var change: AuditChange

        public init(id: String, occurredAt: Date, actor: AuditActor, change: AuditChange) {
            self.id = id
            self.occurredAt = occurredAt
            self.actor = actor
            self.change = change
        }
    }

    /// An event row exactly as stored, for verification.
    public struct StoredRow: Sendable {
        public var sequence: Int
        public var id: String
        /// `nil` once retention has dropped the payload.
        public var payload: AuditChain.Payload?
        public var payloadHash: String
        public var previousHash: String
        public var hash: String
    }

    public struct Checkpoint: Sendable {
        public var sequence: Int
        public var hash: String
        public var keyId: String
        public var signature: String
    }

    /// Appends events to the chain. Taking the stream's head row locks it on PostgreSQL until
    /// the transaction ends, so concurrent writers of one stream queue rather than fork it.
    public func append(_ events: [NewEvent], signer: CheckpointSigner) async throws {
        guard !events.isEmpty else { return }
        let count = events.count
        var head = try await advanceHead(by: count)
        if head == nil {
            try await db.raw("""
                INSERT INTO audit_heads (stream, seq, hash) VALUES (\(bind: stream), 0, \(bind: AuditChain.genesis))
                ON CONFLICT (stream) DO NOTHING
                """).run()
            head = try await advanceHead(by: count)
        }
        guard let (last, previous) = head else { throw StorageError.corruptValue(column: "audit_heads.seq") }
        var sequence = last - count
        var hash = previous
        var insert = db.insert(into: "audit_events").columns(
            "stream", "seq", "id", "occurred_at", "actor_kind", "actor_id", "actor_network", "actor_agent",
            "action", "target_kind", "target_id", "summary", "payload_hash", "prev_hash", "hash"
        )
        var checkpoints: [(Int, String)] = []
        for event in events {
            sequence += 1
            let payload = Self.payload(of: event, stream: stream)
            let payloadHash = AuditChain.payloadHash(payload)
            let link = AuditChain.link(previous: hash, sequence: sequence, payloadHash: payloadHash)
            insert = insert.values([
                SQLBind(stream), SQLBind(sequence), SQLBind(event.id), SQLBind(payload.occurredAt), SQLBind(payload.actorKind),
                SQLBind(payload.actorId), SQLBind(payload.actorNetwork), SQLBind(payload.actorAgent), SQLBind(payload.action),
                SQLBind(payload.targetKind), SQLBind(payload.targetId), SQLBind(payload.summary), SQLBind(payloadHash),
                SQLBind(hash), SQLBind(link),
            ])
            if sequence % Self.checkpointInterval == 0 { checkpoints.append((sequence, link)) }
            hash = link
        }
        try await insert.run()
        try await db.raw("UPDATE audit_heads SET hash = \(bind: hash) WHERE stream = \(bind: stream)").run()
        let now = events.last!.occurredAt
        for (sequence, link) in checkpoints {
            try await insertCheckpoint(sequence: sequence, hash: link, signer: signer, at: now)
        }
    }

    /// Signs the stream's current head, so events since the last interval checkpoint are
    /// covered too. Returns the sequence signed, or `nil` when there is nothing new.
    @discardableResult
    public func checkpointHead(signer: CheckpointSigner, at now: Date) async throws -> Int? {
        guard let (sequence, hash) = try await advanceHead(by: 0), sequence > 0 else { return nil }
        let signed = try await db.raw("""
            SELECT 1 AS one FROM audit_checkpoints WHERE stream = \(bind: stream) AND seq = \(bind: sequence)
            """).first()
        guard signed == nil else { return nil }
        try await insertCheckpoint(sequence: sequence, hash: hash, signer: signer, at: now)
        return sequence
    }

    private func insertCheckpoint(sequence: Int, hash: String, signer: CheckpointSigner, at now: Date) async throws {
        let signature = try signer.sign(stream: stream, sequence: sequence, hash: hash)
        try await db.raw("""
            INSERT INTO audit_checkpoints (stream, seq, hash, key_id, signature, signed_at)
            VALUES (\(bind: stream), \(bind: sequence), \(bind: hash), \(bind: signer.keyId), \(bind: signature), \(bind: Timestamp.format(now)))
            ON CONFLICT (stream, seq) DO NOTHING
            """).run()
    }

    /// Moves the head forward by `count` (0 just locks it); returns the new sequence and the hash before the move.
    private func advanceHead(by count: Int) async throws -> (Int, String)? {
        guard let row = try await db.raw("""
            UPDATE audit_heads SET seq = seq + \(literal: count) WHERE stream = \(bind: stream) RETURNING seq, hash
            """).first() else { return nil }
        return (try row.decode(column: "seq", as: Int.self), try row.decode(column: "hash", as: String.self))
    }

    static func payload(of event: NewEvent, stream: String) -> AuditChain.Payload {
        AuditChain.Payload(
            id: event.id, stream: stream, occurredAt: Timestamp.format(event.occurredAt),
            actorKind: event.actor.kind.rawValue, actorId: event.actor.id, actorNetwork: event.actor.network,
            actorAgent: event.actor.userAgent, action: event.change.action, targetKind: event.change.targetKind,
            targetId: event.change.targetId, summary: JSONValue.object(event.change.summary).serializedString
        )
    }

    // MARK: Reading

    public struct Filter: Sendable {
        public var actorId: String?
        /// Exact, or a prefix when it ends in `.*` (`contact.*`).
        public var action: String?
        public var targetId: String?
        public var since: Date?
        public var until: Date?

        public init(actorId: String? = nil, action: String? = nil, targetId: String? = nil, since: Date? = nil, until: Date? = nil) {
            self.actorId = actorId
            self.action = action
            self.targetId = targetId
            self.since = since
            self.until = until
        }
    }

    /// Events matching `filter`, newest first (or oldest first), after the cursor's sequence.
    public func list(filter: Filter, after cursor: Int?, limit: Int, newestFirst: Bool) async throws -> [AuditEvent] {
        var query = SQLQueryString("SELECT * FROM audit_events WHERE stream = \(bind: stream)")
        if let actorId = filter.actorId { query.appendInterpolation(" AND actor_id = \(bind: actorId)" as SQLQueryString) }
        if let action = filter.action {
            if action.hasSuffix(".*") {
                query.appendInterpolation(" AND substr(action, 1, \(literal: action.count - 1)) = \(bind: String(action.dropLast()))" as SQLQueryString)
            } else {
                query.appendInterpolation(" AND action = \(bind: action)" as SQLQueryString)
            }
        }
        if let target = filter.targetId { query.appendInterpolation(" AND target_id = \(bind: target)" as SQLQueryString) }
        if let since = filter.since { query.appendInterpolation(" AND occurred_at >= \(bind: Timestamp.format(since))" as SQLQueryString) }
        if let until = filter.until { query.appendInterpolation(" AND occurred_at < \(bind: Timestamp.format(until))" as SQLQueryString) }
        if let cursor {
            query.appendInterpolation((newestFirst ? " AND seq < \(bind: cursor)" : " AND seq > \(bind: cursor)") as SQLQueryString)
        }
        query.appendInterpolation(" ORDER BY seq \(unsafeRaw: newestFirst ? "DESC" : "ASC") LIMIT \(literal: limit)" as SQLQueryString)
        return try await db.raw(query).all().map(decodeEvent)
    }

    /// The stored rows from `sequence` on, in the order of their sequence numbers, for verification.
    public func rows(from sequence: Int, limit: Int) async throws -> [StoredRow] {
        try await db.raw("""
            SELECT * FROM audit_events WHERE stream = \(bind: stream) AND seq >= \(bind: sequence) ORDER BY seq LIMIT \(literal: limit)
            """).all().map { row in
                let summary = try row.decode(column: "summary", as: String?.self)
                let payload = summary.map { summary in
                    AuditChain.Payload(
                        id: (try? row.decode(column: "id", as: String.self)) ?? "",
                        stream: (try? row.decode(column: "stream", as: String.self)) ?? "",
                        occurredAt: (try? row.decode(column: "occurred_at", as: String.self)) ?? "",
                        actorKind: (try? row.decode(column: "actor_kind", as: String.self)) ?? "",
                        actorId: (try? row.decode(column: "actor_id", as: String.self)) ?? "",
                        actorNetwork: try? row.decode(column: "actor_network", as: String?.self),
                        actorAgent: try? row.decode(column: "actor_agent", as: String?.self),
                        action: (try? row.decode(column: "action", as: String.self)) ?? "",
                        targetKind: try? row.decode(column: "target_kind", as: String?.self),
                        targetId: try? row.decode(column: "target_id", as: String?.self),
                        summary: summary
                    )
                }
                return StoredRow(
                    sequence: try row.decode(column: "seq", as: Int.self),
                    id: try row.decode(column: "id", as: String.self),
                    payload: payload,
                    payloadHash: try row.decode(column: "payload_hash", as: String.self),
                    previousHash: try row.decode(column: "prev_hash", as: String.self),
                    hash: try row.decode(column: "hash", as: String.self)
                )
            }
    }

    public func checkpoints() async throws -> [Checkpoint] {
        try await db.raw("""
            SELECT seq, hash, key_id, signature FROM audit_checkpoints WHERE stream = \(bind: stream) ORDER BY seq
            """).all().map { row in
                Checkpoint(
                    sequence: try row.decode(column: "seq", as: Int.self),
                    hash: try row.decode(column: "hash", as: String.self),
                    keyId: try row.decode(column: "key_id", as: String.self),
                    signature: try row.decode(column: "signature", as: String.self)
                )
            }
    }

    /// Every stream with at least one event (or a head), for verifying them all.
    public static func streams(in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("""
            SELECT stream FROM audit_heads UNION SELECT DISTINCT stream FROM audit_events UNION SELECT DISTINCT stream FROM audit_checkpoints
            """).all().map { try $0.decode(column: "stream", as: String.self) }.sorted()
    }

    /// Retention: clears the payloads (network, user agent, summary) of events older than
    /// `before`, keeping their hashes so the chain still verifies. Returns how many were cleared.
    public func dropPayloads(before: Date) async throws -> Int {
        try await db.raw("""
            UPDATE audit_events SET actor_network = NULL, actor_agent = NULL, summary = NULL
            WHERE stream = \(bind: stream) AND occurred_at < \(bind: Timestamp.format(before)) AND summary IS NOT NULL
            RETURNING seq
            """).all().count
    }

    private func decodeEvent(_ row: any SQLRow) throws -> AuditEvent {
        let summaryText = try row.decode(column: "summary", as: String?.self)
        var summary: [String: JSONValue] = [:]
        if let summaryText, case .object(let members) = try JSONValue.parse(Array(summaryText.utf8)) {
            summary = members
        }
        let targetKind = try row.decode(column: "target_kind", as: String?.self)
        let targetId = try row.decode(column: "target_id", as: String?.self)
        return AuditEvent(
            id: try row.decode(column: "id", as: String.self),
            stream: stream,
            sequence: try row.decode(column: "seq", as: Int.self),
            occurredAt: try row.decodeTimestamp("occurred_at"),
            actor: AuditActor(
                kind: AuditActor.Kind(rawValue: try row.decode(column: "actor_kind", as: String.self)) ?? .system,
                id: try row.decode(column: "actor_id", as: String.self),
                network: try row.decode(column: "actor_network", as: String?.self),
                userAgent: try row.decode(column: "actor_agent", as: String?.self)
            ),
            change: AuditChange(
                try row.decode(column: "action", as: String.self),
                target: targetKind.flatMap { kind in targetId.map { (kind, $0) } },
                summary: summary
            ),
            hasPayload: summaryText != nil,
            hash: try row.decode(column: "hash", as: String.self)
        )
    }
}
