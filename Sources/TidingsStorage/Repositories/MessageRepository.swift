import Foundation
import SQLKit
import TidingsCrypto
import TidingsDomain

/// Messages of one workspace and their timelines; requests and server replies sealed.
public struct MessageRepository: Sendable {
    let db: any SQLDatabase
    let vault: Vault
    var workspaceId: String { vault.scope }

    public init(_ db: any SQLDatabase, vault: Vault) {
        self.db = db
        self.vault = vault
    }

    public struct Filter: Sendable {
        public var status: MessageStatus?
        public var contactId: String?
        public var templateSlug: String?
        public var createdFrom: Date?
        public var createdBefore: Date?

        public init(status: MessageStatus? = nil, contactId: String? = nil, templateSlug: String? = nil, createdFrom: Date? = nil, createdBefore: Date? = nil) {
            self.status = status
            self.contactId = contactId
            self.templateSlug = templateSlug
            self.createdFrom = createdFrom
            self.createdBefore = createdBefore
        }
    }

    private static let columns = """
        id, contact_id, template_id, template_slug, template_version, email_server_id, status, request_sealed, message_id_domain,
        send_at, attempts, next_attempt_at, tls_version, tls_cipher, tls_verified, origin_kind, origin_id, topic_id, marketing,
        created_at, updated_at
        """

    /// New messages, in one statement. `sealedRequests` are their requests already sealed
    /// (`sealRequest`), so a caller can do that work before its transaction.
    public func insert(_ messages: [Message], sealedRequests: [String]? = nil) async throws {
        guard !messages.isEmpty else { return }
        precondition(sealedRequests == nil || sealedRequests!.count == messages.count)
        if messages.count > 1, let sealedRequests, let first = messages.first,
           case let domain = "@\(Self.messageIdDomain(first))>", messages.allSatisfy({ Self.sharesAllButRecipient($0, first, domain: domain) }) {
            return try await insertSharing(messages, sealedRequests: sealedRequests)
        }
        var rows: [SQLQueryString] = []
        for (index, message) in messages.enumerated() {
            precondition(message.workspaceId == workspaceId)
            rows.append("""
                (\(bind: message.id), \(bind: message.contactId), \(bind: message.templateId), \(bind: message.templateSlug),
                 \(bind: message.templateVersion), \(bind: message.emailServerId), \(bind: message.status.rawValue),
                 \(bind: try sealedRequests?[index] ?? sealRequest(message)), \(bind: Self.messageIdDomain(message)), \(bind: Timestamp.format(message.sendAt)),
                 \(bind: message.attempts), \(bind: message.nextAttemptAt.map(Timestamp.format)), \(bind: message.tlsVersion),
                 \(bind: message.tlsCipher), \(bind: message.tlsVerified), \(bind: message.origin.kind.rawValue),
                 \(bind: message.origin.id), \(bind: message.origin.topicId), \(bind: message.origin.marketing),
                 \(bind: Timestamp.format(message.createdAt)),
                 \(bind: Timestamp.format(message.updatedAt)), \(bind: workspaceId))
                """)
        }
        try await db.raw("""
            INSERT INTO messages (\(unsafeRaw: Self.columns), workspace_id) VALUES \(rows.joined(separator: ", "))
            """).run()
    }

    /// Whether two new messages differ only in id, contact, status and request, as the
    /// messages of one announcement batch do.
    /// (`domain` is `@` and `other`'s Message-ID domain and `>`.)
    static func sharesAllButRecipient(_ message: Message, _ other: Message, domain: String) -> Bool {
        message.workspaceId == other.workspaceId && message.templateId == other.templateId && message.templateSlug == other.templateSlug
            && message.templateVersion == other.templateVersion && message.emailServerId == other.emailServerId
            && message.messageIdHeader.hasSuffix(domain) && message.sendAt == other.sendAt && message.attempts == other.attempts
            && message.nextAttemptAt == other.nextAttemptAt && message.tlsVersion == other.tlsVersion && message.tlsCipher == other.tlsCipher
            && message.tlsVerified == other.tlsVerified && message.origin == other.origin && message.createdAt == other.createdAt
            && message.updatedAt == other.updatedAt
    }

    /// Messages that share everything but id, contact, status and request: what they share is
    /// bound once and the rest comes from VALUES, so a batch of a thousand is a statement of
    /// four thousand values rather than twenty-two thousand, quicker to build and to parse.
    private func insertSharing(_ messages: [Message], sealedRequests: [String]) async throws {
        let first = messages[0]
        var rows: [SQLQueryString] = []
        rows.reserveCapacity(messages.count)
        for (message, sealed) in zip(messages, sealedRequests) {
            rows.append("(\(bind: message.id), \(bind: message.contactId), \(bind: message.status.rawValue), \(bind: sealed))")
        }
        try await db.raw("""
            INSERT INTO messages (id, contact_id, status, request_sealed, template_id, template_slug, template_version, email_server_id,
                message_id_domain, send_at, attempts, next_attempt_at, tls_version, tls_cipher, tls_verified, origin_kind, origin_id,
                topic_id, marketing, created_at, updated_at, workspace_id)
            SELECT v.column1, v.column2, v.column3, v.column4, \(bind: first.templateId), \(bind: first.templateSlug), \(bind: first.templateVersion),
                \(bind: first.emailServerId), \(bind: Self.messageIdDomain(first)), \(bind: Timestamp.format(first.sendAt)), \(bind: first.attempts),
                \(bind: first.nextAttemptAt.map(Timestamp.format)), \(bind: first.tlsVersion), \(bind: first.tlsCipher),
                CAST(\(bind: first.tlsVerified) AS BOOLEAN),
                \(bind: first.origin.kind.rawValue), \(bind: first.origin.id), \(bind: first.origin.topicId), \(bind: first.origin.marketing),
                \(bind: Timestamp.format(first.createdAt)), \(bind: Timestamp.format(first.updatedAt)), \(bind: workspaceId)
            FROM (VALUES \(rows.joined(separator: ", "))) AS v
            """).run()
    }

    /// Writes what a delivery attempt changed: status, attempts, request (settled recipients),
    /// next attempt, TLS.
    public func update(_ message: Message) async throws {
        try await update([message])
    }

    /// Several messages' attempts written in one statement (`UPDATE … FROM (VALUES …)`, which
    /// both SQLite and PostgreSQL understand; unnamed VALUES columns are column1, column2, …).
    public func update(_ messages: [Message]) async throws {
        guard !messages.isEmpty else { return }
        var rows: [SQLQueryString] = []
        for message in messages {
            precondition(message.workspaceId == workspaceId)
            rows.append("""
                (\(bind: message.id), \(bind: message.status.rawValue), \(bind: try sealRequest(message)), \(bind: message.attempts),
                 \(bind: message.nextAttemptAt.map(Timestamp.format)), \(bind: message.emailServerId), \(bind: message.tlsVersion),
                 \(bind: message.tlsCipher), \(bind: message.tlsVerified), \(bind: Timestamp.format(message.updatedAt)))
                """)
        }
        // tls_verified is cast: a VALUES column that is NULL in every row has no type of its own.
        // `id IN (…)` lets the planner find each message by its key: joined on `v.column1`
        // alone, SQLite walks every message of the workspace and compares it with each row of
        // VALUES, which made each delivery's write slower as the history grew.
        try await db.raw("""
            UPDATE messages SET status = v.column2, request_sealed = v.column3, attempts = v.column4, next_attempt_at = v.column5,
                email_server_id = v.column6, tls_version = v.column7, tls_cipher = v.column8,
                tls_verified = CAST(v.column9 AS BOOLEAN), updated_at = v.column10
            FROM (VALUES \(rows.joined(separator: ", "))) AS v
            WHERE messages.workspace_id = \(bind: workspaceId) AND messages.id IN (\(binds: messages.map(\.id))) AND messages.id = v.column1
            """).run()
    }

    /// Starts an attempt for claimed messages, in whichever workspaces (instance scope): those
    /// not final yet become `sending`, their attempt count goes up, and their timelines get a
    /// `sending` step. Returns the ids marked.
    public static func markSending(_ messages: [(id: String, workspaceId: String)], at now: Date, db: any SQLDatabase) async throws -> Set<String> {
        guard !messages.isEmpty else { return [] }
        let finals = MessageStatus.allCases.filter(\.isFinal).map(\.rawValue)
        let stamp = Timestamp.format(now)
        let marked = Set(try await db.raw("""
            UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = \(bind: stamp)
            WHERE id IN (\(binds: messages.map(\.id))) AND status NOT IN (\(binds: finals))
            RETURNING id
            """).all().map { try $0.decode(column: "id", as: String.self) })
        guard !marked.isEmpty else { return [] }
        var last: [String: Int] = [:]
        // With the workspaces named, the timeline index (workspace_id, message_id, position)
        // finds each message's steps; by message id alone it would be read end to end.
        let workspaces = Array(Set(messages.map(\.workspaceId)))
        for row in try await db.raw("""
            SELECT message_id, MAX(position) AS last FROM message_events
            WHERE workspace_id IN (\(binds: workspaces)) AND message_id IN (\(binds: Array(marked))) GROUP BY message_id
            """).all() {
            last[try row.decode(column: "message_id", as: String.self)] = try row.decode(column: "last", as: Int?.self) ?? 0
        }
        let rows = messages.filter { marked.contains($0.id) }.map { message -> SQLQueryString in
            "(\(bind: Identifier.make("me", at: now)), \(bind: message.workspaceId), \(bind: message.id), \(bind: (last[message.id] ?? 1) + 1), 'sending', NULL, \(bind: stamp))"
        }
        try await db.raw("""
            INSERT INTO message_events (id, workspace_id, message_id, position, kind, detail_sealed, at) VALUES \(rows.joined(separator: ", "))
            """).run()
        return marked
    }

    public func find(id: String) async throws -> Message? {
        guard let row = try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM messages WHERE workspace_id = \(bind: workspaceId) AND id = \(bind: id)
            """).first() else { return nil }
        return try await decode(row)
    }

    /// The messages with these ids (those that exist), in no particular order.
    public func find(ids: [String]) async throws -> [Message] {
        guard !ids.isEmpty else { return [] }
        var found: [Message] = []
        for row in try await db.raw("""
            SELECT \(unsafeRaw: Self.columns) FROM messages WHERE workspace_id = \(bind: workspaceId) AND id IN (\(binds: ids))
            """).all() {
            found.append(try await decode(row))
        }
        return found
    }

    /// Newest first, after the cursor `beforeId`.
    public func list(filter: Filter, beforeId: String?, limit: Int) async throws -> [Message] {
        var query = SQLQueryString("SELECT \(unsafeRaw: Self.columns) FROM messages WHERE workspace_id = \(bind: workspaceId)")
        if let status = filter.status { query.appendInterpolation(" AND status = \(bind: status.rawValue)" as SQLQueryString) }
        if let contactId = filter.contactId { query.appendInterpolation(" AND contact_id = \(bind: contactId)" as SQLQueryString) }
        if let slug = filter.templateSlug { query.appendInterpolation(" AND template_slug = \(bind: slug)" as SQLQueryString) }
        if let from = filter.createdFrom { query.appendInterpolation(" AND created_at >= \(bind: Timestamp.format(from))" as SQLQueryString) }
        if let before = filter.createdBefore { query.appendInterpolation(" AND created_at < \(bind: Timestamp.format(before))" as SQLQueryString) }
        if let beforeId { query.appendInterpolation(" AND id < \(bind: beforeId)" as SQLQueryString) }
        query.appendInterpolation(" ORDER BY id DESC LIMIT \(bind: limit)" as SQLQueryString)
        var messages: [Message] = []
        for row in try await db.raw(query).all() {
            messages.append(try await decode(row))
        }
        return messages
    }

    public func addEvent(messageId: String, _ event: MessageEvent) async throws {
        try await addEvents([(messageId, event)])
    }

    /// Appends to the timelines, after each message's last step (`newMessages`: they have none yet).
    public func addEvents(_ events: [(messageId: String, event: MessageEvent)], newMessages: Bool = false) async throws {
        guard !events.isEmpty else { return }
        var positions: [String: Int] = [:]
        if !newMessages {
            let ids = Array(Set(events.map(\.messageId)))
            for row in try await db.raw("""
                SELECT message_id, MAX(position) AS last FROM message_events
                WHERE workspace_id = \(bind: workspaceId) AND message_id IN (\(binds: ids)) GROUP BY message_id
                """).all() {
                positions[try row.decode(column: "message_id", as: String.self)] = try row.decode(column: "last", as: Int?.self) ?? 1
            }
        }
        if newMessages, events.count > 1, let at = events.first?.event.at, events.allSatisfy({ $0.event.at == at }) {
            return try await addFirstEvents(events, at: at)
        }
        var rows: [SQLQueryString] = []
        for (messageId, event) in events {
            // A message with no stored step yet has the implied first one (`timeline(of:)`).
            let position = positions[messageId].map { $0 + 1 } ?? (newMessages ? 1 : 2)
            positions[messageId] = position
            let detail = try sealDetail(event)
            rows.append("(\(bind: event.id), \(bind: workspaceId), \(bind: messageId), \(bind: position), \(bind: event.kind.rawValue), \(bind: detail), \(bind: Timestamp.format(event.at)))")
        }
        try await db.raw("""
            INSERT INTO message_events (id, workspace_id, message_id, position, kind, detail_sealed, at) VALUES \(rows.joined(separator: ", "))
            """).run()
    }

    /// The first step of each of many new messages' timelines, all at the same time: the
    /// workspace, position and time are bound once.
    private func addFirstEvents(_ events: [(messageId: String, event: MessageEvent)], at: Date) async throws {
        var rows: [SQLQueryString] = []
        rows.reserveCapacity(events.count)
        for (messageId, event) in events {
            rows.append("(\(bind: event.id), \(bind: messageId), \(bind: event.kind.rawValue), \(bind: try sealDetail(event)))")
        }
        try await db.raw("""
            INSERT INTO message_events (id, message_id, kind, detail_sealed, workspace_id, position, at)
            SELECT v.column1, v.column2, v.column3, v.column4, \(bind: workspaceId), 1, \(bind: Timestamp.format(at))
            FROM (VALUES \(rows.joined(separator: ", "))) AS v
            """).run()
    }

    private func sealDetail(_ event: MessageEvent) throws -> String? {
        event.detail.isEmpty ? nil : try vault.seal(JSONValue.object(event.detail).serializedString, table: "message_events", column: "detail", row: event.id)
    }

    /// The message's timeline. Its first step is at position 1; when no row holds that
    /// position, the step is implied by the message row: `queued` at its creation. Announcement
    /// fan-outs store none (one row fewer for each of up to millions of messages).
    public func timeline(of message: Message) async throws -> [MessageEvent] {
        var events: [MessageEvent] = []
        var first = true
        for row in try await db.raw("""
            SELECT id, position, kind, detail_sealed, at FROM message_events
            WHERE workspace_id = \(bind: workspaceId) AND message_id = \(bind: message.id) ORDER BY position
            """).all() {
            if first, try row.decode(column: "position", as: Int.self) != 1 { events.append(Self.impliedStep(of: message)) }
            first = false
            let id = try row.decode(column: "id", as: String.self)
            guard let kind = MessageStatus(rawValue: try row.decode(column: "kind", as: String.self)) else {
                throw StorageError.corruptValue(column: "message_events.kind")
            }
            var detail: [String: JSONValue] = [:]
            if let sealed = try row.decode(column: "detail_sealed", as: String?.self) {
                let text = try await vault.open(sealed, table: "message_events", column: "detail", row: id)
                guard case .object(let object)? = try? JSONValue.parse(Array(text.utf8)) else {
                    throw StorageError.corruptValue(column: "message_events.detail_sealed")
                }
                detail = object
            }
            events.append(MessageEvent(id: id, kind: kind, detail: detail, at: try row.decodeTimestamp("at")))
        }
        return first ? [Self.impliedStep(of: message)] : events
    }

    /// The first step of a message whose timeline does not store it.
    static func impliedStep(of message: Message) -> MessageEvent {
        MessageEvent(id: "me_" + message.id.dropFirst("msg_".count), kind: .queued, at: message.createdAt)
    }

    /// The domain of `<id@domain>`.
    static func messageIdDomain(_ message: Message) -> String {
        let header = message.messageIdHeader
        guard let at = header.lastIndex(of: "@") else { return "tidings.invalid" }
        return String(header[header.index(after: at)...].prefix { $0 != ">" })
    }

    func sealRequest(_ message: Message) throws -> String {
        try Self.sealRequest(message, vault: vault)
    }

    /// A message's request as `insert` stores it.
    public static func sealRequest(_ message: Message, vault: Vault) throws -> String {
        let json = String(decoding: try JSONEncoder().encode(message.request), as: UTF8.self)
        return try vault.seal(json, table: "messages", column: "request", row: message.id)
    }

    /// Seals the requests of messages that differ only in their recipient (an announcement's
    /// batch): the request's JSON is written once, and each address is put into it, which
    /// spares a JSON encoding per message. Nil when the template's JSON does not hold the
    /// recipient in exactly one place (then `sealRequest` does it message by message).
    public struct RecipientSealer: Sendable {
        let prefix: String
        let suffix: String

        public init?(_ template: MessageRequest) {
            let marker = "\u{1}rcpt\u{1}"
            var request = template
            request.rcpt = marker
            guard let json = try? String(decoding: JSONEncoder().encode(request), as: UTF8.self),
                  let encoded = try? String(decoding: JSONEncoder().encode(marker), as: UTF8.self),
                  let range = json.range(of: encoded), json[range.upperBound...].range(of: encoded) == nil
            else { return nil }
            prefix = String(json[..<range.lowerBound])
            suffix = String(json[range.upperBound...])
        }

        /// The sealed request of message `messageId` to `rcpt`, as `sealRequest` would store it.
        public func seal(rcpt: String, messageId: String, vault: Vault) throws -> String {
            try vault.seal(prefix + JSONValue.string(rcpt).serializedString + suffix, table: "messages", column: "request", row: messageId)
        }
    }

    private func decode(_ row: any SQLRow) async throws -> Message {
        let id = try row.decode(column: "id", as: String.self)
        let json = try await vault.open(try row.decode(column: "request_sealed", as: String.self), table: "messages", column: "request", row: id)
        guard let request = try? JSONDecoder().decode(MessageRequest.self, from: Data(json.utf8)) else {
            throw StorageError.corruptValue(column: "messages.request_sealed")
        }
        guard let status = MessageStatus(rawValue: try row.decode(column: "status", as: String.self)) else {
            throw StorageError.corruptValue(column: "messages.status")
        }
        guard let originKind = MessageOrigin.Kind(rawValue: try row.decode(column: "origin_kind", as: String.self)) else {
            throw StorageError.corruptValue(column: "messages.origin_kind")
        }
        let origin = MessageOrigin(
            kind: originKind, id: try row.decode(column: "origin_id", as: String?.self), topicId: try row.decode(column: "topic_id", as: String?.self),
            marketing: try row.decode(column: "marketing", as: Bool.self)
        )
        return Message(
            id: id, workspaceId: workspaceId, contactId: try row.decode(column: "contact_id", as: String.self),
            templateId: try row.decode(column: "template_id", as: String.self), templateSlug: try row.decode(column: "template_slug", as: String.self),
            templateVersion: try row.decode(column: "template_version", as: Int.self),
            emailServerId: try row.decode(column: "email_server_id", as: String?.self), status: status, request: request,
            messageIdHeader: "<\(id)@\(try row.decode(column: "message_id_domain", as: String.self))>", sendAt: try row.decodeTimestamp("send_at"),
            attempts: try row.decode(column: "attempts", as: Int.self),
            nextAttemptAt: try row.decode(column: "next_attempt_at", as: String?.self).flatMap(Timestamp.parse),
            tlsVersion: try row.decode(column: "tls_version", as: String?.self), tlsCipher: try row.decode(column: "tls_cipher", as: String?.self),
            tlsVerified: try row.decode(column: "tls_verified", as: Bool?.self), origin: origin,
            createdAt: try row.decodeTimestamp("created_at"), updatedAt: try row.decodeTimestamp("updated_at")
        )
    }
}
