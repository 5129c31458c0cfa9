import Crypto
import Foundation
import SQLKit
import Synchronization
import TidingsCrypto
import TidingsDomain
import TidingsStorage

/// Accepting messages (`POST /v1/messages`), reading them, cancelling them.
///
/// A message is a row, with its job in the queue, before the API answers 202; the delivery
/// worker renders and sends it. Sending to an address that is not a contact yet creates the
/// contact, as SendStreak does; a contact whose mailbox bounced is not sent to (`suppressed`).
public struct MessageService: Sendable {
    let env: ServiceEnvironment
    let signal: JobSignal
    private let fromDomains = DomainCache()
    /// Sends without an idempotency key share transactions (group commit, as events do).
    private let committer: GroupCommitter<PendingSend, [Accepted]>

    /// Woken when a contact a message created was queued for automations.
    let automationSignal: JobSignal

    public init(_ env: ServiceEnvironment, signal: JobSignal, automationSignal: JobSignal = JobSignal()) {
        self.env = env
        self.signal = signal
        self.automationSignal = automationSignal
        self.committer = GroupCommitter(maxBatch: 64) { [env] pending in
            let audit = try await env.auditRecorder()
            return try await env.database.transaction { db in
                var outputs: [[Accepted]] = []
                for item in pending {
                    // A batch may hold several workspaces' messages: each is fenced to its own.
                    try await db.enter(.workspace(item.workspaceId))
                    outputs.append(try await Self.store(
                        item.drafts, workspaceId: item.workspaceId, vault: item.vault, actor: item.actor, audit: audit, db: db, now: item.now
                    ))
                }
                try await db.enter(TenantScope.current)
                return outputs
            }
        }
    }

    /// Checked messages of one request, waiting for a shared transaction.
    struct PendingSend: Sendable {
        var workspaceId: String
        var drafts: [Draft]
        var vault: Vault
        var actor: AuditActor
        var now: Date
    }

    public static let jobKind = "message.deliver"
    /// Attachments: at most this many files per message …
    public static let maxAttachments = 20
    /// … and this many bytes in all, decoded.
    public static let maxAttachmentBytes = 10 * 1024 * 1024
    /// cc and bcc together.
    public static let maxCopies = 50
    /// `metadata`, serialised.
    public static let maxMetadataBytes = 4096
    /// `variables`, serialised.
    public static let maxVariablesBytes = 256 * 1024
    /// How far ahead `sendAt` may lie.
    public static let maxSchedule: TimeInterval = 90 * 86400
    public static let maxBatch = 500
    /// How long an `Idempotency-Key` is remembered.
    public static let idempotencyWindow: TimeInterval = 24 * 3600

    static let notFound = DomainError.notFound("message_not_found", "No message with this id exists in this workspace.")

    /// The 202 answer for one accepted message.
    public struct Accepted: Sendable, Equatable {
        public var id: String
        public var status: MessageStatus
        public var contactCreated: Bool
    }

    /// An answer to replay for a repeated `Idempotency-Key`.
    public struct Replay: Sendable, Equatable {
        public var status: Int
        public var body: String
    }

    /// A message checked and ready to store: everything but the contact.
    struct Draft: Sendable {
        var email: EmailAddress
        var target: TemplateRepository.SendTarget
        var emailServerId: String
        var request: MessageRequest
        var sendAt: Date
        var fromDomain: String
        var origin: MessageOrigin = .api
    }

    // MARK: Accepting

    /// Checks one request body and makes a draft; every problem is a 4xx naming the field.
    func draft(workspaceId: String, body: [String: JSONValue], now: Date, targets: inout [String: TemplateRepository.SendTarget]) async throws -> Draft {
        var reader = BodyReader(body)
        let email = try EmailAddress(try reader.string("rcpt", required: true)!, field: "rcpt")
        let slug = try reader.string("templateSlug", required: true)!
        let variables = try reader.object("variables") ?? [:]
        guard JSONValue.object(variables).serialized.count <= Self.maxVariablesBytes else {
            throw DomainError(.tooLarge, code: "too_large", message: "The variables are larger than \(Self.maxVariablesBytes / 1024) KiB.", field: "variables")
        }
        let cc = try Self.addresses(try reader.stringArray("cc") ?? [], field: "cc")
        let bcc = try Self.addresses(try reader.stringArray("bcc") ?? [], field: "bcc")
        guard cc.count + bcc.count <= Self.maxCopies else {
            throw DomainError.invalid("too_many_recipients", "cc and bcc together may name at most \(Self.maxCopies) addresses.", field: "cc")
        }
        let replyTo = try reader.string("replyTo").map { raw throws(DomainError) in
            let mailbox = try MailboxSource(parsing: raw, field: "replyTo")
            _ = try EmailAddress(mailbox.address, field: "replyTo")
            return raw.trimmingCharacters(in: .whitespaces)
        }
        var headers: [[String]] = []
        if let object = try reader.object("headers") {
            guard object.count <= MessageHeaders.maxHeaders else {
                throw DomainError.invalid("too_many_headers", "At most \(MessageHeaders.maxHeaders) headers may be set.", field: "headers")
            }
            for name in object.keys.sorted() {
                guard case .string(let value) = object[name]! else {
                    throw DomainError.invalid("invalid_type", "The header '\(name.prefix(80))' must have a string value.", field: "headers")
                }
                try MessageHeaders.validate(name: name, value: value, field: "headers")
                headers.append([name, value])
            }
        }
        let metadata = try reader.object("metadata") ?? [:]
        guard JSONValue.object(metadata).serialized.count <= Self.maxMetadataBytes else {
            throw DomainError(.tooLarge, code: "too_large", message: "The metadata is larger than \(Self.maxMetadataBytes) bytes.", field: "metadata")
        }
        let attachments = try Self.attachments(try reader.array("attachments") ?? [])
        let tracking = try reader.object("tracking").map { object throws(DomainError) in try TrackingOverride(json: object, field: "tracking") }
        let sendAt = try reader.timestamp("sendAt") ?? now
        guard sendAt <= now.addingTimeInterval(Self.maxSchedule) else {
            throw DomainError.invalid("invalid_timestamp", "The field 'sendAt' lies more than 90 days ahead.", field: "sendAt")
        }
        try reader.rejectUnknownFields()
        let (target, serverId, fromDomain) = try await sendTarget(workspaceId: workspaceId, slug: slug, targets: &targets)
        return Draft(
            email: email, target: target, emailServerId: serverId,
            request: MessageRequest(
                rcpt: email.value, variables: variables, cc: cc, bcc: bcc, replyTo: replyTo, headers: headers,
                metadata: metadata, attachments: attachments, tracking: tracking
            ),
            sendAt: max(sendAt, now), fromDomain: fromDomain
        )
    }

    /// A draft for mail that Tidings sends on its own behalf (announcements, automations):
    /// the template is checked like the API's, the request holds only the recipient and the
    /// variables.
    func draft(
        workspaceId: String, email: EmailAddress, templateSlug: String, variables: [String: JSONValue] = [:], origin: MessageOrigin,
        sendAt: Date, targets: inout [String: TemplateRepository.SendTarget]
    ) async throws -> Draft {
        let (target, serverId, fromDomain) = try await sendTarget(workspaceId: workspaceId, slug: templateSlug, targets: &targets)
        return Draft(
            email: email, target: target, emailServerId: serverId, request: MessageRequest(rcpt: email.value, variables: variables),
            sendAt: sendAt, fromDomain: fromDomain, origin: origin
        )
    }

    /// The published version of a template, its email server and its From domain; a missing
    /// template or server is a 4xx naming `templateSlug`.
    func sendTarget(
        workspaceId: String, slug: String, targets: inout [String: TemplateRepository.SendTarget]
    ) async throws -> (TemplateRepository.SendTarget, String, String) {
        let target: TemplateRepository.SendTarget
        if let cached = targets[slug] {
            target = cached
        } else {
            guard (try? Template.validateSlug(slug, field: "templateSlug")) != nil else {
                throw DomainError.invalid("unknown_template", "No template with the slug '\(slug.prefix(80))' exists.", field: "templateSlug")
            }
            let vault = try await env.keyring.vault(for: workspaceId)
            guard let found = try await env.database.read({ db in try await TemplateRepository(db, vault: vault).sendTarget(slug: slug) }) else {
                throw DomainError.invalid("unknown_template", "No template with the slug '\(slug)' exists.", field: "templateSlug")
            }
            target = found
            targets[slug] = found
        }
        guard let serverId = target.emailServerId else {
            throw DomainError(.conflict, code: "no_email_server", message: "The workspace has no email server; add one under /v1/email-servers first. Nothing was queued.")
        }
        return (target, serverId, try await fromDomain(workspaceId: workspaceId, target))
    }

    /// The domain of a template version's From address (for the Message-ID). Versions never
    /// change, so it is read once per version.
    private func fromDomain(workspaceId: String, _ target: TemplateRepository.SendTarget) async throws -> String {
        let key = "\(target.templateId)#\(target.version)"
        if let domain = fromDomains.domains.withLock({ $0[key] }) { return domain }
        let vault = try await env.keyring.vault(for: workspaceId)
        guard let template = try await env.database.read({ db in
            try await TemplateRepository(db, vault: vault).find(slug: target.slug, version: target.version)
        }) else {
            throw DomainError.invalid("unknown_template", "No template with the slug '\(target.slug)' exists.", field: "templateSlug")
        }
        let from = try MailboxSource(parsing: template.content.from, field: "from")
        let domain = from.address.split(separator: "@").last.map(String.init) ?? "tidings.invalid"
        fromDomains.domains.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[key] = domain
        }
        return domain
    }

    final class DomainCache: Sendable {
        let domains = Mutex<[String: String]>([:])
    }

    /// `POST /v1/messages`. With an idempotency key, a repeat of the same body within 24 hours
    /// gets the first answer again (`Replay`); a different body with the same key is a 409.
    public func send(
        workspaceId: String, body: [String: JSONValue], idempotencyKey: String?, by actor: AuditActor,
        render: @Sendable (Accepted) -> String
    ) async throws -> Replay {
        let now = env.now()
        let idempotency = try idempotencyKey.map { key throws(DomainError) in (key: try Self.checkKey(key), digest: Self.digest("single", body)) }
        if let idempotency, let replay = try await replay(workspaceId: workspaceId, idempotency, now: now) { return replay }
        var targets: [String: TemplateRepository.SendTarget] = [:]
        let draft = try await draft(workspaceId: workspaceId, body: body, now: now, targets: &targets)
        let vault = try await env.keyring.vault(for: workspaceId)
        let accepted: Accepted
        if let idempotency {
            // The answer is remembered in the same transaction as the message.
            let audit = try await env.auditRecorder()
            let result = try await env.database.transaction { db in
                let accepted = try await Self.store([draft], workspaceId: workspaceId, vault: vault, actor: actor, audit: audit, db: db, now: now)[0]
                try await Self.remember(idempotency, Replay(status: 202, body: render(accepted)), workspaceId: workspaceId, db: db, now: now)
                return accepted
            }
            accepted = result
        } else {
            accepted = try await committer.submit(PendingSend(workspaceId: workspaceId, drafts: [draft], vault: vault, actor: actor, now: now))[0]
        }
        if accepted.status != .suppressed { signal.wake() }
        if accepted.contactCreated { automationSignal.wake() }
        return Replay(status: 202, body: render(accepted))
    }

    /// One item of a batch: accepted, or the error that item had.
    public enum BatchItem: Sendable {
        case accepted(Accepted)
        case rejected(DomainError)
    }

    /// `POST /v1/messages/batch`: each item checked on its own; the valid ones are stored in one
    /// transaction, the others answered with their error.
    public func sendBatch(
        workspaceId: String, body: [String: JSONValue], idempotencyKey: String?, by actor: AuditActor,
        render: @Sendable ([BatchItem]) -> String
    ) async throws -> Replay {
        let now = env.now()
        var reader = BodyReader(body)
        guard let items = try reader.array("messages"), !items.isEmpty else {
            throw DomainError.invalid("missing_field", "The field 'messages' must be a non-empty array.", field: "messages")
        }
        try reader.rejectUnknownFields()
        guard items.count <= Self.maxBatch else {
            throw DomainError(.tooLarge, code: "batch_too_large", message: "A batch holds at most \(Self.maxBatch) messages; this one has \(items.count).", field: "messages")
        }
        let idempotency = try idempotencyKey.map { key throws(DomainError) in (key: try Self.checkKey(key), digest: Self.digest("batch", body)) }
        if let idempotency, let replay = try await replay(workspaceId: workspaceId, idempotency, now: now) { return replay }
        var targets: [String: TemplateRepository.SendTarget] = [:]
        var results: [BatchItem?] = Array(repeating: nil, count: items.count)
        var drafts: [(index: Int, draft: Draft)] = []
        for (index, item) in items.enumerated() {
            guard case .object(let object) = item else {
                results[index] = .rejected(.invalid("invalid_type", "Each message must be an object.", field: "messages[\(index)]"))
                continue
            }
            do {
                drafts.append((index, try await draft(workspaceId: workspaceId, body: object, now: now, targets: &targets)))
            } catch let error as DomainError {
                var error = error
                error.field = "messages[\(index)]" + (error.field.map { ".\($0)" } ?? "")
                results[index] = .rejected(error)
            }
        }
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let valid = drafts
        let rejected = results
        let (answer, anyQueued) = try await env.database.transaction { db in
            let accepted = try await Self.store(valid.map(\.draft), workspaceId: workspaceId, vault: vault, actor: actor, audit: audit, db: db, now: now)
            var all = rejected
            for (position, item) in valid.enumerated() { all[item.index] = .accepted(accepted[position]) }
            let answer = Replay(status: 200, body: render(all.map { $0! }))
            if let idempotency { try await Self.remember(idempotency, answer, workspaceId: workspaceId, db: db, now: now) }
            return (answer, accepted.contains { $0.status != .suppressed })
        }
        if anyQueued { signal.wake() }
        // A contact a message created may start automations (`contact.created`).
        automationSignal.wake()
        return answer
    }

    /// Stores drafts: contacts ensured, suppressed contacts noted, messages, timelines, jobs,
    /// audit events.
    static func store(
        _ drafts: [Draft], workspaceId: String, vault: Vault, actor: AuditActor, audit: AuditRecorder, db: any SQLDatabase, now: Date
    ) async throws -> [Accepted] {
        guard !drafts.isEmpty else { return [] }
        let contacts = ContactRepository(db, vault: vault)
        var proposed: [(id: String, email: EmailAddress)] = []
        var seen = Set<String>()
        for draft in drafts where seen.insert(draft.email.value).inserted {
            proposed.append((Identifier.make("ct", at: now), draft.email))
        }
        let (ids, created) = try await contacts.ensure(proposed, at: now)
        var bounced: [String: Bool] = [:]
        let messages = MessageRepository(db, vault: vault)
        var accepted: [Accepted] = []
        var inserts: [Message] = []
        var events: [(String, MessageEvent)] = []
        var jobs: [(id: String, workspaceId: String, kind: String, subjectId: String, runAt: Date)] = []
        var records: [(stream: String, actor: AuditActor, change: AuditChange)] = []
        var reported = Set<String>()
        for draft in drafts {
            guard let contactId = ids[draft.email.value] else { throw StorageError.corruptValue(column: "contacts.id") }
            if bounced[contactId] == nil {
                bounced[contactId] = created.contains(draft.email.value) ? false : try await contacts.status(contactId: contactId) == .bounced
            }
            let id = Identifier.make("msg", at: now)
            let status: MessageStatus = bounced[contactId]! ? .suppressed : draft.sendAt > now ? .scheduled : .queued
            let message = Message(
                id: id, workspaceId: workspaceId, contactId: contactId, templateId: draft.target.templateId, templateSlug: draft.target.slug,
                templateVersion: draft.target.version, emailServerId: draft.emailServerId, status: status, request: draft.request,
                messageIdHeader: "<\(id)@\(draft.fromDomain)>", sendAt: draft.sendAt, origin: draft.origin, createdAt: now, updatedAt: now
            )
            inserts.append(message)
            var detail: [String: JSONValue] = [:]
            if status == .scheduled { detail["sendAt"] = .string(Timestamp.format(draft.sendAt)) }
            if status == .suppressed { detail["reason"] = .string("The contact's mailbox bounced; clear it with DELETE /v1/suppressions/{email}.") }
            events.append((id, MessageEvent(id: Identifier.make("me", at: now), kind: status, detail: detail, at: now)))
            if status != .suppressed {
                jobs.append((Identifier.make("job", at: now), workspaceId, jobKind, id, draft.sendAt))
            }
            let pseudonym = JSONValue.string(vault.pseudonym(draft.email.value))
            let contactCreated = created.contains(draft.email.value) && reported.insert(draft.email.value).inserted
            if contactCreated {
                records.append((workspaceId, actor, AuditChange("contact.created", target: ("contact", contactId), summary: ["email": pseudonym, "via": .string("message")])))
            }
            records.append((workspaceId, actor, AuditChange("message.accepted", target: ("message", id), summary: [
                "email": pseudonym, "template": .string(draft.target.slug), "templateVersion": .number(Double(draft.target.version)),
                "status": .string(status.rawValue), "copies": .number(Double(draft.request.cc.count + draft.request.bcc.count)),
                "attachments": .number(Double(draft.request.attachments.count)),
            ])))
            accepted.append(Accepted(id: id, status: status, contactCreated: contactCreated))
        }
        try await messages.insert(inserts)
        try await messages.addEvents(events, newMessages: true)
        try await JobRepository(db).enqueue(jobs, at: now)
        // Contacts created here start the automations triggered by `contact.created`.
        let triggers = created.sorted().compactMap { email in
            ids[email].map { AutomationTrigger.builtIn("contact.created", contactId: $0, at: now) }
        }
        _ = try await AutomationTrigger.enqueue(triggers, workspaceId: workspaceId, db: db, now: now)
        try await audit.record(records, db: db)
        return accepted
    }

    // MARK: Idempotency

    static func checkKey(_ key: String) throws(DomainError) -> String {
        guard (1...255).contains(key.utf8.count), key.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw .invalid("invalid_idempotency_key", "The Idempotency-Key header must be 1 to 255 visible ASCII characters.", field: "Idempotency-Key")
        }
        return key
    }

    static func digest(_ kind: String, _ body: [String: JSONValue]) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(kind.utf8) + [0])
        hasher.update(data: JSONValue.object(body).serialized)
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    private func replay(workspaceId: String, _ idempotency: (key: String, digest: String), now: Date) async throws -> Replay? {
        guard let stored = try await env.database.read({ db in try await IdempotencyRepository(db, workspaceId: workspaceId).find(key: idempotency.key) }),
              stored.createdAt > now.addingTimeInterval(-Self.idempotencyWindow) else { return nil }
        guard stored.requestDigest == idempotency.digest else {
            throw DomainError(.conflict, code: "idempotency_key_reused", message: "This Idempotency-Key was used with a different request in the last 24 hours.", field: "Idempotency-Key")
        }
        return Replay(status: stored.status, body: stored.response)
    }

    /// Saves the answer with the messages; a concurrent request with the same key that saved
    /// first wins, and this transaction is rolled back (its client retries and gets the replay).
    private static func remember(_ idempotency: (key: String, digest: String), _ answer: Replay, workspaceId: String, db: any SQLDatabase, now: Date) async throws {
        let saved = try await IdempotencyRepository(db, workspaceId: workspaceId).save(
            key: idempotency.key,
            .init(requestDigest: idempotency.digest, status: answer.status, response: answer.body, createdAt: now),
            expiredBefore: now.addingTimeInterval(-idempotencyWindow)
        )
        guard saved else {
            throw DomainError(.conflict, code: "idempotency_key_in_use", message: "Another request with this Idempotency-Key was accepted at the same moment; repeat the request to get its answer.", field: "Idempotency-Key")
        }
    }

    /// Forgets idempotency answers older than the window, in every workspace.
    public static func purgeIdempotencyKeys(_ env: ServiceEnvironment) async throws {
        let before = env.now().addingTimeInterval(-idempotencyWindow)
        try await TenantScope.with(.instance) {
            try await env.database.transaction { db in try await IdempotencyRepository.purge(before: before, db: db) }
        }
    }

    // MARK: Checks

    static func addresses(_ raw: [String], field: String) throws(DomainError) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for (index, text) in raw.enumerated() {
            let address = try EmailAddress(text, field: "\(field)[\(index)]").value
            if seen.insert(address).inserted { result.append(address) }
        }
        return result
    }

    static func attachments(_ items: [JSONValue]) throws(DomainError) -> [MessageAttachment] {
        guard items.count <= maxAttachments else {
            throw .invalid("too_many_attachments", "A message may carry at most \(maxAttachments) attachments.", field: "attachments")
        }
        var total = 0
        var result: [MessageAttachment] = []
        for (index, item) in items.enumerated() {
            let field = "attachments[\(index)]"
            guard case .object(let object) = item else { throw .invalid("invalid_type", "Each attachment must be an object.", field: field) }
            var reader = BodyReader(object)
            let content = try reader.string("content", required: true)!
            let filename = try reader.string("filename", required: true)!.trimmingCharacters(in: .whitespaces)
            let contentType = try reader.string("contentType")?.trimmingCharacters(in: .whitespaces).lowercased() ?? "application/octet-stream"
            try reader.rejectUnknownFields()
            guard let decoded = Data(base64Encoded: content, options: .ignoreUnknownCharacters), !content.isEmpty else {
                throw .invalid("invalid_attachment", "The content of \(field) is not base64.", field: "\(field).content")
            }
            total += decoded.count
            guard total <= maxAttachmentBytes else {
                throw DomainError(.tooLarge, code: "attachments_too_large", message: "The attachments are larger than \(maxAttachmentBytes / 1024 / 1024) MiB in all.", field: "attachments")
            }
            guard !filename.isEmpty, filename.utf8.count <= 200,
                  !filename.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "/" || $0 == "\\" }) else {
                throw .invalid("invalid_attachment", "The filename of \(field) must be 1 to 200 bytes without control characters or slashes.", field: "\(field).filename")
            }
            let parts = contentType.split(separator: "/")
            guard parts.count == 2, contentType.utf8.count <= 100,
                  contentType.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "/+-.".unicodeScalars.contains($0)) }) else {
                throw .invalid("invalid_attachment", "The contentType of \(field) must be a media type such as application/pdf.", field: "\(field).contentType")
            }
            result.append(MessageAttachment(filename: filename, contentType: contentType, content: decoded.base64EncodedString()))
        }
        return result
    }

    // MARK: Reading and cancelling

    public struct Detail: Sendable {
        public var message: Message
        public var email: String
        public var events: [MessageEvent]
    }

    public func get(workspaceId: String, id: String) async throws -> Detail {
        guard id.hasPrefix("msg_"), id.count < 100 else { throw Self.notFound }
        let vault = try await env.keyring.vault(for: workspaceId)
        return try await env.database.read { db in
            let messages = MessageRepository(db, vault: vault)
            guard let message = try await messages.find(id: id) else { throw Self.notFound }
            return Detail(message: message, email: message.request.rcpt, events: try await messages.timeline(of: message))
        }
    }

    public struct ListQuery: Sendable {
        public var status: String?
        public var contact: String?
        public var template: String?
        public var from: String?
        public var to: String?
        public var cursor: String?
        public var limit: Int?

        public init(status: String? = nil, contact: String? = nil, template: String? = nil, from: String? = nil, to: String? = nil, cursor: String? = nil, limit: Int? = nil) {
            self.status = status
            self.contact = contact
            self.template = template
            self.from = from
            self.to = to
            self.cursor = cursor
            self.limit = limit
        }
    }

    /// Newest first; `nextCursor` continues the list.
    public func list(workspaceId: String, query: ListQuery) async throws -> Page<Message> {
        var filter = MessageRepository.Filter()
        if let status = query.status {
            guard let value = MessageStatus(rawValue: status) else {
                throw DomainError.invalid("invalid_status", "status must be one of \(MessageStatus.allCases.map(\.rawValue).joined(separator: ", ")).", field: "status")
            }
            filter.status = value
        }
        filter.templateSlug = query.template
        for (name, text) in [("from", query.from), ("to", query.to)] {
            guard let text else { continue }
            guard let date = Timestamp.parse(text) else {
                throw DomainError.invalid("invalid_timestamp", "The parameter '\(name)' must be an RFC 3339 date-time.", field: name)
            }
            if name == "from" { filter.createdFrom = date } else { filter.createdBefore = date }
        }
        if let cursor = query.cursor, !cursor.hasPrefix("msg_") {
            throw DomainError.invalid("invalid_cursor", "The cursor is not one this API gave out.", field: "cursor")
        }
        let limit = query.limit ?? 50
        guard (1...200).contains(limit) else { throw DomainError.invalid("invalid_limit", "limit must be from 1 to 200.", field: "limit") }
        let vault = try await env.keyring.vault(for: workspaceId)
        let contact = try query.contact.map { text throws(DomainError) in try EmailAddress(text, field: "contact") }
        let base = filter
        return try await env.database.read { db in
            var filter = base
            if let contact {
                guard let id = try await ContactRepository(db, vault: vault).findId(email: contact) else { return Page(items: [], nextCursor: nil) }
                filter.contactId = id
            }
            let items = try await MessageRepository(db, vault: vault).list(filter: filter, beforeId: query.cursor, limit: limit + 1)
            return Page(items: Array(items.prefix(limit)), nextCursor: items.count > limit ? items[limit - 1].id : nil)
        }
    }

    /// Cancels a scheduled or deferred (or still queued) message. A message a worker is
    /// sending right now cannot be cancelled: 409.
    public func cancel(workspaceId: String, id: String, by actor: AuditActor) async throws -> Message {
        guard id.hasPrefix("msg_"), id.count < 100 else { throw Self.notFound }
        let vault = try await env.keyring.vault(for: workspaceId)
        let audit = try await env.auditRecorder()
        let now = env.now()
        return try await env.database.transaction { db in
            let messages = MessageRepository(db, vault: vault)
            guard var message = try await messages.find(id: id) else { throw Self.notFound }
            guard [.scheduled, .queued, .deferred].contains(message.status) else {
                throw DomainError(.conflict, code: "not_cancellable", message: "The message is \(message.status.rawValue); only scheduled, queued or deferred messages can be cancelled.")
            }
            // The job row is the workspace's too: the same fence applies. A queued message of an
            // announcement may have no job yet (delivery workers hand them out as they go).
            let jobs = JobRepository(db)
            let removed = try await jobs.removeUnleased(kind: Self.jobKind, subjectId: id, now: now)
            let leased = removed ? false : try await jobs.isLeased(kind: Self.jobKind, subjectId: id, now: now)
            guard !leased else {
                throw DomainError(.conflict, code: "not_cancellable", message: "The message is being sent right now.")
            }
            message.status = .cancelled
            message.nextAttemptAt = nil
            message.updatedAt = now
            try await messages.update(message)
            try await messages.addEvent(messageId: id, MessageEvent(id: Identifier.make("me", at: now), kind: .cancelled, at: now))
            try await audit.record(AuditChange("message.cancelled", target: ("message", id), summary: [:]), in: workspaceId, by: actor, db: db)
            return message
        }
    }
}

/// Wakes the local delivery workers when work was queued, so a message does not wait for
/// the next poll. A wake with nobody waiting is kept for the next wait.
public final class JobSignal: Sendable {
    private struct State {
        var pending = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextId = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func wake() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.waiters.isEmpty else {
                state.pending = true
                return []
            }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns when woken, or after `timeout`.
    public func wait(timeout: Duration) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { state -> Int? in
                if state.pending {
                    state.pending = false
                    return nil
                }
                state.nextId += 1
                state.waiters[state.nextId] = continuation
                return state.nextId
            }
            guard let id else { return continuation.resume() }
            Task { [self] in
                try? await Task.sleep(for: timeout)
                state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
            }
        }
    }
}
